/*
 * Peer measurements: what other worker-calling libraries take for the same
 * trivial call (the worker returns its argument + 1), measured the way
 * bench.ts measures its baselines: performance.now() around each round trip,
 * µs, into a preallocated Float64Array, after unmeasured warm-up calls.
 *
 * Every peer has one worker for unicast and, where it can target several,
 * `width` more for broadcast (a round: one call to each at once, wait for all).
 * Results are checked, so a peer that answers wrongly fails loudly.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { wrap, type Remote } from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { Piscina } from 'piscina';
import { Tinypool } from 'tinypool';
import workerpool from 'workerpool';
import { createSyncFn } from 'synckit';
import type { comlink_api } from './comlink_worker.js';
import { STOP } from './synckit_worker.js';

export interface peer {
  readonly name: string;
  readonly version: string;
  /** n round trips of a trivial call (the worker function returns its argument + 1), one sample (µs) per round trip, after `warm` unmeasured ones. */
  unicast(n: number, warm: number): Promise<Float64Array>;
  /** n rounds of: call the trivial function on each of `width` workers at once and wait for all; one sample (µs) per round. Undefined if the peer cannot target several workers. */
  broadcast?(n: number, warm: number): Promise<Float64Array>;
  /** Terminates every worker of the peer. */
  close(): Promise<void>;
}

/** One call to a worker: resolves to x + 1. */
type call = (x: number) => Promise<number>;

const now = (): number => performance.now();
const here = (file: string): URL => new URL(file, import.meta.url);

const require = createRequire(import.meta.url);

/** A package's version, from its package.json (not every package exports './package.json'). */
function version_of(pkg: string): string {
  for (let dir = dirname(require.resolve(pkg)); ; dir = dirname(dir)) {
    try {
      const json = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (json.name === pkg && json.version !== undefined) return json.version;
    } catch {
      /* no package.json here: look further up */
    }
    if (dirname(dir) === dir) throw new Error(`peers: no package.json found for ${pkg}`);
  }
}

function check(got: number, x: number, name: string): void {
  if (got !== x + 1) throw new Error(`peers: ${name} answered ${got} to ${x}`);
}

/** Round trips of `fn`, awaited one at a time. */
async function unicast_samples(name: string, fn: call, n: number, warm: number): Promise<Float64Array> {
  const out = new Float64Array(n);
  for (let i = 0; i < warm + n; i++) {
    const t0 = now();
    const r = await fn(i);
    const t = now() - t0;
    check(r, i, name);
    if (i >= warm) out[i - warm] = t * 1e3;
  }
  return out;
}

/** Rounds of one call per entry of `fns`, all at once, waited for with Promise.all. */
async function broadcast_samples(name: string, fns: readonly call[], n: number, warm: number): Promise<Float64Array> {
  const out = new Float64Array(n);
  for (let i = 0; i < warm + n; i++) {
    const t0 = now();
    const rs = await Promise.all(fns.map((fn) => fn(i)));
    const t = now() - t0;
    for (const r of rs) check(r, i, name);
    if (i >= warm) out[i - warm] = t * 1e3;
  }
  return out;
}

/* ------------------------------------------------------------- comlink */

/** comlink over plain worker_threads Workers (its nodeEndpoint adapter); `await proxy.fn(x)`. */
export async function open_comlink(width: number): Promise<peer> {
  const name = 'comlink';
  const workers: Worker[] = [];
  const start = (): Remote<comlink_api> => {
    const w = new Worker(here('./comlink_worker.js'));
    workers.push(w);
    return wrap<comlink_api>(nodeEndpoint(w));
  };
  const one = start();
  const many = Array.from({ length: width }, start);
  const unicast: call = (x) => one.fn(x);
  const broadcast: call[] = many.map((p) => (x: number) => p.fn(x));
  return {
    name,
    version: version_of('comlink'),
    unicast: (n, warm) => unicast_samples(name, unicast, n, warm),
    broadcast: (n, warm) => broadcast_samples(name, broadcast, n, warm),
    /* Not releaseProxy: its release message would wait on a worker about to go. */
    close: async () => void (await Promise.all(workers.map((w) => w.terminate()))),
  };
}

/* ------------------------------------------------------------- piscina */

/** piscina pools (min = max threads); `pool.run(x)`.  A broadcast is `width` runs at once on a pool of `width`: one task per thread at a time, so each thread takes one. */
export async function open_piscina(width: number): Promise<peer> {
  const name = 'piscina';
  const filename = here('./pool_worker.js').href;
  const pool = (threads: number): Piscina<number, number> => new Piscina({ filename, minThreads: threads, maxThreads: threads });
  const one = pool(1), many = pool(width);
  const unicast: call = (x) => one.run(x);
  const broadcast: call[] = Array.from({ length: width }, () => (x: number) => many.run(x));
  return {
    name,
    version: version_of('piscina'),
    unicast: (n, warm) => unicast_samples(name, unicast, n, warm),
    broadcast: (n, warm) => broadcast_samples(name, broadcast, n, warm),
    close: async () => void (await Promise.all([one.destroy(), many.destroy()])),
  };
}

/* ------------------------------------------------------------ tinypool */

/** tinypool pools, as piscina (tinypool is a fork of it); `pool.run(x)`. */
export async function open_tinypool(width: number): Promise<peer> {
  const name = 'tinypool';
  const filename = here('./pool_worker.js').href;
  const pool = (threads: number): Tinypool => new Tinypool({ filename, minThreads: threads, maxThreads: threads });
  const one = pool(1), many = pool(width);
  const unicast: call = (x) => one.run(x);
  const broadcast: call[] = Array.from({ length: width }, () => (x: number) => many.run(x));
  return {
    name,
    version: version_of('tinypool'),
    unicast: (n, warm) => unicast_samples(name, unicast, n, warm),
    broadcast: (n, warm) => broadcast_samples(name, broadcast, n, warm),
    close: async () => void (await Promise.all([one.destroy(), many.destroy()])),
  };
}

/* ---------------------------------------------------------- workerpool */

/** workerpool pools of worker_threads (min = max workers); `pool.exec('fn', [x])`.  A busy worker gets no second task, so a broadcast's `width` execs land on `width` workers. */
export async function open_workerpool(width: number): Promise<peer> {
  const name = 'workerpool';
  const script = fileURLToPath(here('./workerpool_worker.js'));
  const pool = (workers: number): workerpool.Pool => workerpool.pool(script, { minWorkers: workers, maxWorkers: workers, workerType: 'thread' });
  const one = pool(1), many = pool(width);
  const exec = (p: workerpool.Pool): call => (x) => p.exec<(x: number) => number>('fn', [x]);
  const unicast = exec(one);
  const broadcast: call[] = Array.from({ length: width }, () => exec(many));
  return {
    name,
    version: version_of('workerpool'),
    unicast: (n, warm) => unicast_samples(name, unicast, n, warm),
    broadcast: (n, warm) => broadcast_samples(name, broadcast, n, warm),
    close: async () => void (await Promise.all([one.terminate(true), many.terminate(true)])),
  };
}

/* ------------------------------------------------------------- synckit */

/** How many synckit peers this process has opened: see the worker path below. */
let synckit_opened = 0;

/**
 * synckit: createSyncFn makes a synchronous function that blocks this thread
 * (Atomics.wait) until its one worker answers, so it is timed without await.
 * No broadcast: a call blocks the caller until it returns, so calls to
 * several workers cannot be in flight at once.
 */
export async function open_synckit(_width: number): Promise<peer> {
  const name = 'synckit';
  /*
   * createSyncFn caches its function (and worker) per path and synckit cannot
   * terminate that worker: close() asks the worker to end itself, and each
   * opening names the same file by a path of its own ('./' repeated), so a
   * later opening starts a live worker instead of getting the dead one.
   */
  const dir = dirname(fileURLToPath(import.meta.url));
  const fn = createSyncFn<(x: number) => number>(`${dir}/${'./'.repeat(++synckit_opened)}synckit_worker.js`);
  return {
    name,
    version: version_of('synckit'),
    unicast: async (n, warm) => {
      const out = new Float64Array(n);
      for (let i = 0; i < warm + n; i++) {
        const t0 = now();
        const r = fn(i);
        const t = now() - t0;
        check(r, i, name);
        if (i >= warm) out[i - warm] = t * 1e3;
      }
      return out;
    },
    close: async () => void fn(STOP),
  };
}

/* --------------------------------------------------------------- all */

/** Every peer, opened in parallel; each has one unicast worker and (where it has broadcast) `width` broadcast workers. */
export async function open_peers(width: number): Promise<peer[]> {
  const opened = await Promise.allSettled([open_comlink, open_piscina, open_tinypool, open_workerpool, open_synckit].map((open) => open(width)));
  const peers = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
  const failed = opened.find((o) => o.status === 'rejected');
  if (failed !== undefined) {
    /* Leave no worker behind. */
    await Promise.all(peers.map((p) => p.close()));
    throw failed.reason;
  }
  return peers;
}
