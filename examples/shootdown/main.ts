/*
 * Test your own per-CPU code under the simulated machine, and replay the
 * interleaving that broke it.
 *
 * Readers on every CPU read a value through their per-CPU cache while CPU 0
 * updates it and shoots the caches down (kernel.ts).  update() below does it
 * right: publish the new value, then invalidate every cache.  With --buggy it
 * invalidates first and publishes after, so that a reader between the two
 * caches the old value again, and keeps reading it after the update
 * returned.  Real threads hit that window once in a long while; the
 * simulator tries one seeded interleaving per run, and a seed that fails
 * fails the same way every time.
 *
 *   node build/examples/shootdown/main.js              200 seeds, the right update
 *   node build/examples/shootdown/main.js --buggy      finds a failing seed
 *   node build/examples/shootdown/main.js --buggy --seed 12   replays that one
 *   node build/examples/shootdown/main.js --workers    the same code on worker threads
 */
import { parseArgs } from 'node:util';
import {
  boot, cpu_lookup, ipi_register, ipi_trigger, ipi_unregister, kpreempt_disable, kpreempt_enable, preempt_point, xc_barrier, xc_broadcast, xc_wait,
  XC_HIGHPRI,
} from 'ipi';
import { CACHE_BYTES, DONE, invalidate, READER, READS, reader, STALE, VALUE } from './kernel.js';

/** Lookups the readers make in a run. */
const READS_IN_ALL = 40;

const { values } = parseArgs({
  options: { buggy: { type: 'boolean', default: false }, seed: { type: 'string' }, seeds: { type: 'string', default: '200' }, workers: { type: 'boolean', default: false } },
});

/** Publish `value` and make sure no CPU reads an older one once this returns. */
function update(value: number, mem: Int32Array, buggy: boolean): void {
  if (buggy) {
    xc_wait(xc_broadcast(XC_HIGHPRI, invalidate, undefined, undefined)); // the bug: invalidate first...
    Atomics.store(mem, VALUE, value); // ...publish after: a reader in between caches the old value
  } else {
    Atomics.store(mem, VALUE, value);
    xc_wait(xc_broadcast(XC_HIGHPRI, invalidate, undefined, undefined));
  }
  Atomics.store(mem, DONE, value);
}

/** One run, on a simulated machine with this seed (or on workers): how many stale reads there were. */
export async function run(seed: number | undefined, buggy: boolean): Promise<number> {
  const cache = new SharedArrayBuffer(CACHE_BYTES);
  const mem = new Int32Array(cache);
  const image = new URL('./kernel.js', import.meta.url);
  const machine = await boot(seed === undefined ? { ncpu: 4, image, shared: { cache } } : { ncpu: 4, image, shared: { cache }, simulate: { seed } });
  try {
    /* Readers pass from CPU to CPU (an IPI), while this CPU updates three times. */
    const id = ipi_register(reader, READS_IN_ALL);
    Atomics.store(mem, READER, id);
    kpreempt_disable();
    ipi_trigger(id, cpu_lookup(1));
    kpreempt_enable();
    for (let v = 1; v <= 3; v++) {
      update(v, mem, buggy);
      preempt_point(); // this CPU's other work between updates reaches interrupt points, where the others run
    }
    while (Atomics.load(mem, READS) < READS_IN_ALL) xc_barrier(0);
    ipi_unregister(id);
    return Atomics.load(mem, STALE);
  } finally {
    await machine.shutdown();
  }
}

const buggy = values.buggy ?? false;
if (values.workers) {
  const stale = await run(undefined, buggy);
  console.log(`on workers: ${stale} stale reads (real threads rarely hit the window; the simulator finds it)`);
} else if (values.seed !== undefined) {
  const seed = Number(values.seed);
  const stale = await run(seed, buggy);
  console.log(`seed ${seed}: ${stale} stale reads${stale > 0 ? ' (the same every time: this is the replay)' : ''}`);
  process.exitCode = stale > 0 ? 1 : 0;
} else {
  const seeds = Number(values.seeds);
  let failed: number | undefined;
  for (let seed = 1; seed <= seeds && failed === undefined; seed++) if (await run(seed, buggy) > 0) failed = seed;
  if (failed === undefined) {
    console.log(`${seeds} seeds, ${buggy ? 'the buggy' : 'the right'} update: no stale read`);
  } else {
    console.log(`seed ${failed} reads a stale value after an update returned; replay it with --seed ${failed}${buggy ? ' --buggy' : ''}`);
    process.exitCode = 1;
  }
}
