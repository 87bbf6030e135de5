/*
 * The demo's image: the kernel symbols every CPU loads.  Per-CPU data lives
 * in the shared buffer 'percpu': a "TLB" generation per CPU that a
 * shootdown invalidates, and per-CPU tick counters.
 */
import { cpu_number, shared } from 'ipi';

const percpu = (): Int32Array => new Int32Array(shared('percpu'));

/** An asynchronous IPI handler: count a tick on this CPU. */
export function tick(row: number): void {
  Atomics.add(percpu(), row * 256 + cpu_number(), 1);
}

/** A cross-call that does nothing: for measuring the round trip. */
export function ping(): void {}

/** xcall(9) shootdown: invalidate this CPU's cached translation of `generation`. */
export function tlb_shootdown(generation: number, row: number): void {
  Atomics.store(percpu(), row * 256 + cpu_number(), generation);
}

/** softint(9) handler: deferred work counted per CPU. */
export function deferred(row: number): void {
  Atomics.add(percpu(), row * 256 + cpu_number(), 1);
}
