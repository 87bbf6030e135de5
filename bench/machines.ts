/*
 * The benchmark's ipi machines: all boot the image bench/kernel.ts with one
 * shared buffer, 'bench', which outlives them (its layout is in kernel.ts),
 * so CPU 0 reads the same words whichever machine is up.  One machine is up
 * at a time on this thread.
 */
import { boot, type cpu_evcnt, type Machine } from 'ipi';
import * as k from './kernel.js';

export const image = new URL('./kernel.js', import.meta.url);
export const benchBuf = new SharedArrayBuffer(k.BENCH_BYTES);
/** The 'bench' buffer as Int32 control words. */
export const bw = new Int32Array(benchBuf);
/** The 'bench' buffer as Float64 statistics slots. */
export const bf = new Float64Array(benchBuf);

export interface BenchMachineOptions {
  poll?: number;
  diagnostic?: boolean;
}

export async function bootBench(ncpu: number, extra: BenchMachineOptions = {}): Promise<Machine> {
  const machine = await boot({ ncpu, image, shared: { bench: benchBuf }, ...extra });
  machine.addEventListener('error', (e) => {
    /* Print it and go on: a benchmark that stops at the first handler error tells nothing. */
    e.preventDefault();
    console.error('bench: machine error:', (e as Event & { error: unknown }).error);
  });
  return machine;
}

/** What the counters say happened on a machine over some timed blocks: sleeps and polls, per call. */
export class CounterDelta {
  calls = 0;
  /** Times CPU 0 (the caller) slept on its doorbell. */
  callerSleeps = 0;
  /** Times the other CPUs (the targets) slept on their doorbells, summed. */
  targetSleeps = 0;
  /** Polls of the targets that caught their interrupt before sleeping. */
  targetPollHits = 0;

  /** Runs f, `calls` calls, and adds what the counters moved by. */
  wrap<T>(machine: Machine, calls: number, f: () => T): T {
    const a = machine.counters();
    const r = f();
    this.count(a, machine.counters(), calls);
    return r;
  }

  /** The same for an f that awaits. */
  async wrapAsync<T>(machine: Machine, calls: number, f: () => Promise<T>): Promise<T> {
    const a = machine.counters();
    const r = await f();
    this.count(a, machine.counters(), calls);
    return r;
  }

  private count(a: readonly cpu_evcnt[], b: readonly cpu_evcnt[], calls: number): void {
    this.calls += calls;
    this.callerSleeps += b[0]!.sleeps - a[0]!.sleeps;
    for (let c = 1; c < b.length; c++) {
      this.targetSleeps += b[c]!.sleeps - a[c]!.sleeps;
      this.targetPollHits += b[c]!.poll_hits - a[c]!.poll_hits;
    }
  }

  /** Adds another delta's counts to this one's. */
  add(d: CounterDelta): void {
    this.calls += d.calls;
    this.callerSleeps += d.callerSleeps;
    this.targetSleeps += d.targetSleeps;
    this.targetPollHits += d.targetPollHits;
  }

  /** Per call. */
  get callerSleepRate(): number {
    return this.callerSleeps / this.calls;
  }

  /** Per call, all targets together. */
  get targetSleepRate(): number {
    return this.targetSleeps / this.calls;
  }

  toJSON(): Record<string, number> {
    return {
      calls: this.calls, caller_sleeps: this.callerSleeps, target_sleeps: this.targetSleeps, target_poll_hits: this.targetPollHits,
      caller_sleeps_per_call: this.callerSleepRate, target_sleeps_per_call: this.targetSleepRate,
    };
  }
}
