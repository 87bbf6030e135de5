/* The examples, run as a user runs them (child processes), checked by what they print. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const T = { timeout: 120_000 };

function run(example: string, args: string[]): Promise<{ code: number; out: string }> {
  const file = fileURLToPath(new URL(`../examples/${example}`, import.meta.url));
  return new Promise((resolve) => {
    execFile(process.execPath, [file, ...args], { timeout: 100_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, out: stdout + stderr });
    });
  });
}

test('examples/shootdown: the simulator finds the planted bug, names its seed, and the seed replays it; the right update passes', T, async () => {
  const right = await run('shootdown/main.js', ['--seeds', '100']);
  assert.deepEqual(right, { code: 0, out: '100 seeds, the right update: no stale read\n' });
  const buggy = await run('shootdown/main.js', ['--buggy']);
  assert.equal(buggy.code, 1, buggy.out);
  const seed = /^seed (\d+) reads a stale value after an update returned; replay it with --seed \1 --buggy$/m.exec(buggy.out)?.[1];
  assert.ok(seed, buggy.out);
  const a = await run('shootdown/main.js', ['--buggy', '--seed', seed]), b = await run('shootdown/main.js', ['--buggy', '--seed', seed]);
  assert.equal(a.code, 1);
  assert.match(a.out, new RegExp(`^seed ${seed}: [1-9]\\d* stale reads \\(the same every time: this is the replay\\)\\n$`));
  assert.deepEqual(b, a, 'the replay is exact');
  const fixed = await run('shootdown/main.js', ['--seed', seed]);
  assert.deepEqual(fixed, { code: 0, out: `seed ${seed}: 0 stale reads\n` });
  const workers = await run('shootdown/main.js', ['--workers']);
  assert.match(workers.out, /^on workers: \d+ stale reads/);
});
