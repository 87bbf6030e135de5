/*
 * A per-CPU cache with a broadcast shootdown: the image module every CPU
 * loads.  Each CPU caches a value kept in shared memory; an update
 * publishes a new value and then invalidates every CPU's cache with a
 * high-priority xcall (xc_broadcast), so that once the update returns, no
 * CPU reads the old value any more.
 *
 * Shared buffer 'cache' (Int32): [VALUE] the value, [DONE] the last update
 * that returned, [VALID + cpu] and [CACHED + cpu] each CPU's cache,
 * [STALE] reads of a value older than an update that had returned,
 * [READER] the reader's IPI id, [READS] the lookups it has made.
 */
import { cpu_lookup, cpu_number, ipi_trigger, ncpu, shared } from 'ipi';

export const VALUE = 0;
export const DONE = 1;
export const STALE = 2;
export const READER = 3;
export const READS = 4;
export const VALID = 16;
export const CACHED = 32;
export const CACHE_BYTES = 64 * 4;

const mem = (): Int32Array => new Int32Array(shared('cache'));

/** Read the value through this CPU's cache. */
export function lookup(): number {
  const m = mem();
  const me = cpu_number();
  if (Atomics.load(m, VALID + me) === 0) {
    Atomics.store(m, CACHED + me, Atomics.load(m, VALUE));
    Atomics.store(m, VALID + me, 1);
  }
  return Atomics.load(m, CACHED + me);
}

/** The shootdown's function, run on every CPU: forget the cached value. */
export function invalidate(): void {
  Atomics.store(mem(), VALID + cpu_number(), 0);
}

/**
 * A reader: an IPI handler that makes one lookup and passes the reading on
 * to the next CPU (ipi_trigger), `n` lookups in all, so that they come at
 * many moments while the updates go on.  Once an update has returned,
 * reading an older value is a bug: count it.
 */
export function reader(n: number): void {
  const m = mem();
  const done = Atomics.load(m, DONE);
  if (lookup() < done) Atomics.add(m, STALE, 1);
  if (Atomics.add(m, READS, 1) + 1 < n) ipi_trigger(Atomics.load(m, READER), cpu_lookup((cpu_number() + 1) % ncpu));
}
