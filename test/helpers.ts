/* Test helpers: a machine with the test image and its log, and bounded waits. */
import { boot, kpreempt_disable, kpreempt_enable, type BootOptions, type Machine } from 'ipi';

export const ROW = 256;
export const imageUrl = new URL('./fixtures/image.js', import.meta.url);

export const kernUrl = new URL('./fixtures/kern_image.js', import.meta.url);

export interface TestMachine {
  machine: Machine;
  log: Int32Array;
  /** Counters of row `row`, one per CPU. */
  row(row: number): number[];
  /** The sequence recorded in row `row` by sequence()/tagged(). */
  seq(row: number): number[];
}

export async function bootTest(ncpu: number, options: BootOptions = {}): Promise<TestMachine> {
  const buf = new SharedArrayBuffer(64 * ROW * 4);
  const log = new Int32Array(buf);
  const machine = await boot({ ncpu, image: imageUrl, ...options, shared: { log: buf, ...options.shared } });
  return {
    machine,
    log,
    row: (r) => Array.from({ length: ncpu }, (_, c) => Atomics.load(log, r * ROW + c)),
    seq: (r) => Array.from(log.subarray(r * ROW + 1, r * ROW + 1 + Atomics.load(log, r * ROW))),
  };
}

/** A test machine whose image also has the softint/xcall fixtures. */
export function bootKern(ncpu: number, options: BootOptions = {}): Promise<TestMachine> {
  return bootTest(ncpu, { ...options, image: [imageUrl, kernUrl] });
}

/** For passing deliberately wrong arguments past the type checker. */
export const bad = (v: unknown): never => v as never;

/**
 * Wait until pred() holds, letting this thread's event loop (and so CPU 0's
 * interrupts) run; throws after `ms`.
 */
export async function until(what: string, pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Let the event loop run for about ms milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Run fn with preemption disabled, as the sending calls require. */
export function preempt<R>(fn: () => R): R {
  kpreempt_disable();
  try {
    return fn();
  } finally {
    kpreempt_enable();
  }
}
