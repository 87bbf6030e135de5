/* Test helpers: a machine with the test image and its log, and bounded waits. */
import {
  boot, cpu_lookup, ipi_unicast, ipi_wait, kpreempt_disable, kpreempt_enable, XC_HIGHPRI, type BootOptions, type CpuDeadEvent, type ipi_msg_t,
  type Machine, type MachineErrorEvent,
} from 'ipi';
import { NOTE_ROW, start } from './fixtures/kern_image.js';

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

/**
 * The machine the suites run on: IPI_MACHINE=sim runs them on the
 * simulated machine (every CPU on this thread, seeded), each boot with the
 * next seed from IPI_SIM_SEED (default 1); anything else, on workers.
 */
export const SIMULATED = process.env.IPI_MACHINE === 'sim';
let simSeed = Number(process.env.IPI_SIM_SEED ?? 1);
/** The seed of the last simulated boot, for messages. */
export let lastSeed: number | undefined;

export async function bootTest(ncpu: number, options: BootOptions = {}): Promise<TestMachine> {
  const buf = new SharedArrayBuffer(64 * ROW * 4);
  const log = new Int32Array(buf);
  const o: BootOptions = { ncpu, image: imageUrl, ...options, shared: { log: buf, ...options.shared } };
  if (SIMULATED) {
    lastSeed = simSeed++;
    delete o.poll;
    o.simulate = { seed: lastSeed };
  }
  const machine = await boot(o);
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

export const failUrl = new URL('./fixtures/fail_image.js', import.meta.url);

/** A test machine whose image also has the failure fixtures. */
export function bootFail(ncpu: number, options: BootOptions = {}): Promise<TestMachine> {
  return bootTest(ncpu, { ...options, image: [imageUrl, failUrl] });
}

/** The machine's 'dead' events, one at a time, and every 'error' event, taken quietly. */
export function deaths(m: Machine): { next: () => Promise<CpuDeadEvent>; errors: MachineErrorEvent[] } {
  const seen: CpuDeadEvent[] = [];
  const errors: MachineErrorEvent[] = [];
  m.addEventListener('dead', (e) => {
    e.preventDefault();
    seen.push(e);
  });
  m.addEventListener('error', (e) => {
    e.preventDefault();
    errors.push(e);
  });
  let taken = 0;
  return {
    errors,
    next: async () => {
      await until('a dead event', () => seen.length > taken);
      return seen[taken++]!;
    },
  };
}

/** The two priorities of xcall(9), for tests that run at both. */
export const PRIS = [['low', 0], ['high', XC_HIGHPRI]] as const;

/** The error text a kern_image routine on CPU `cpu` noted. */
export function noteOf(log: Int32Array, cpu: number): string {
  const base = (NOTE_ROW + cpu) * ROW;
  return String.fromCharCode(...log.subarray(base + 1, base + 1 + Atomics.load(log, base)));
}

/** Start a kern_image routine on CPU k in thread context, by a cross-call; log[done] counts its end, row errrow its errors. */
export function startOn(k: number, routine: string, arg: unknown, done: number, errrow: number): void {
  const msg: ipi_msg_t<Parameters<typeof start>[0]> = { func: start, arg: { routine, arg, done, errrow } };
  preempt(() => ipi_unicast(msg, cpu_lookup(k)));
  ipi_wait(msg);
}

/** Collect the machine's 'error' events (and keep them off the console). */
export function errorsOf(t: TestMachine): MachineErrorEvent[] {
  const errors: MachineErrorEvent[] = [];
  t.machine.addEventListener('error', (e) => {
    e.preventDefault();
    errors.push(e);
  });
  return errors;
}
