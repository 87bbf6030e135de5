/*
 * Machine-independent start-up and shut-down (NetBSD's init_main.c).
 *
 * boot_machine(options, runtime) is the sequence, for every runtime:
 *   1. check the options; create and format the kernel memory;
 *   2. attach this thread to it (kern_attach) and make it CPU 0
 *      (cpu_attach), then set up what is machine-wide (kern_sysinit);
 *   3. have the runtime start CPUs 1 .. ncpu-1; each attaches, imports the
 *      image (numbering its exported functions: the kernel symbols),
 *      publishes its digest of them and runs;
 *   4. import the image on CPU 0; once every CPU runs, check that all
 *      numbered the same symbols;
 *   5. run CPU 0's idle loop on this thread's event loop and hand back
 *      the Machine.
 * A failure at any step halts what was started and rejects with an error
 * naming the CPU and the cause.
 *
 * Per thread, kern_attach() maps the kernel memory, installs the thread's
 * machine-dependent layer and fills the vector table; per CPU, cpu_attach()
 * brings its cpu_info to life on the thread (a thread of the real machine
 * attaches one CPU, the simulated machine all of them).
 *
 * cpu_die() is what happens when a CPU dies while the machine runs.
 */
import { arg_init } from './arg.js';
import { cpu_at, cpu_info, kcpuset_attached, kcpuset_dead, kcpuset_running, machine_attach, machine_detach, ncpu } from './cpu.js';
import { IpiError, rangeError, typeError } from './errors.js';
import { cpu_death_write, type cpu_death } from './failure.js';
import { cpu_idle, cpu_ring, intr_init, machine_halted, poll_window_initial } from './intr.js';
import { ipi_attach, ipi_cpu_dead, ipi_nullop } from './ipi.js';
import { kcpuset_atomic_clear, kcpuset_atomic_set } from './kcpuset.js';
import {
  C_STATE, CPUST_DEAD, CPUST_DYING, CPUST_HALTED, CPUST_RUNNING, cpu_word, f64, H_BOOTTIME, H_DEADGEN, H_HALT, i32, ipireg_word, kmem_attach, kmem_detach, kmem_format,
  kmem_layout, R_FUNC,
} from './layout.js';
import { Machine } from './machine.js';
import { md, md_attach, type cpu_boot_args, type cpu_handle, type cpu_md, type runtime_md } from './md.js';
import { IPI_SYNCH_ID, MAXCPUS } from './param.js';
import { shared_attach, shared_detach } from './shared.js';
import { softint_attach, softint_cpu_dead, softint_schedule } from './softint.js';
import { sym_compare, sym_init, sym_load_module } from './symbol.js';
import { xc_attach, xc_cpu_dead, xc_highpri_softint, xc_init, xc_nullop } from './xcall.js';

/** The library's own kernel symbols, in a fixed order: numbered first, alike on every CPU. */
const BUILTINS = [ipi_nullop, softint_schedule, xc_highpri_softint, xc_nullop];

/** boot({ simulate }): run every CPU on this thread under a seeded scheduler (src/arch/sim). */
export interface SimulateOptions {
  /** The scheduler's seed: the same seed replays the same interleaving. */
  seed: number;
}

export interface BootOptions {
  /** Number of CPUs, 1 .. MAXCPUS; defaults to the available cores (4 when simulated). */
  ncpu?: number;
  /**
   * The image: a module (path, file URL or package specifier) or a list of
   * them.  Every CPU imports them in order before it runs; their exported
   * functions are the kernel symbols.  Relative paths are resolved against
   * the current directory.
   */
  image?: string | URL | readonly (string | URL)[];
  /** Shared buffers every CPU reaches as shared(name). */
  shared?: Readonly<Record<string, SharedArrayBuffer>>;
  /** Check every contract assertion (NetBSD's DIAGNOSTIC); default true. */
  diagnostic?: boolean;
  /**
   * How long (µs) an idle or waiting CPU polls its doorbell before it
   * sleeps.  Polling answers in well under a microsecond but burns a core;
   * default 50 when there are at least as many cores as CPUs, else 0.
   */
  poll?: number;
  /**
   * With `diagnostic`, a wait with no timeout that has waited this many
   * milliseconds prints once which CPUs it waits for and what each is
   * doing, then goes on waiting; 0 never.  Default STALL_REPORT_MS.
   */
  stallReport?: number;
  /** Run every CPU on this thread under a seeded scheduler, in virtual time: a replayable machine. */
  simulate?: SimulateOptions;
}

/** The default of boot({ stallReport }): 10 s, as a wait that long is almost surely stuck. */
export const STALL_REPORT_MS = 10_000;

/** How long shutdown waits for a CPU to leave by itself before terminating it. */
const HALT_GRACE_MS = 2000;

const BOOT_OPTIONS: readonly (keyof BootOptions)[] = ['ncpu', 'image', 'shared', 'diagnostic', 'poll', 'stallReport', 'simulate'];

/** The known option nearest to a misspelt one (Levenshtein distance at most 2), for the error. */
function nearest(name: string): string | undefined {
  const dist = (a: string, b: string): number => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++) {
        d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      }
    }
    return d[a.length][b.length];
  };
  return BOOT_OPTIONS.find((k) => dist(name.toLowerCase(), k.toLowerCase()) <= 2);
}

interface boot_config {
  ncpu: number;
  image: string[];
  shared: Readonly<Record<string, SharedArrayBuffer>>;
  diagnostic: boolean;
  poll: number;
  stallReport: number;
}

/** Check boot()'s options, naming what is wrong; fill in the runtime's defaults. */
export function boot_options(o: BootOptions, runtime: runtime_md): boot_config {
  if (typeof o !== 'object' || o === null) throw typeError('boot', 'options', 'an object', o);
  for (const k of Object.keys(o)) {
    if ((BOOT_OPTIONS as readonly string[]).includes(k)) continue;
    const near = nearest(k);
    throw new TypeError(`boot: unknown option ${JSON.stringify(k)}${near !== undefined ? ` (did you mean ${JSON.stringify(near)}?)` : ''}; ` +
      `the options are ${BOOT_OPTIONS.join(', ')}`);
  }
  const ncpu = o.ncpu ?? runtime.ncpu_default();
  if (typeof ncpu !== 'number') throw typeError('boot', 'options.ncpu', 'a number', ncpu);
  if (!Number.isInteger(ncpu) || ncpu < 1 || ncpu > MAXCPUS) throw rangeError('boot', 'options.ncpu', `an integer in [1, MAXCPUS = ${MAXCPUS}]`, ncpu);
  const shared = o.shared ?? {};
  if (typeof shared !== 'object' || shared === null) throw typeError('boot', 'options.shared', 'a record of SharedArrayBuffers', shared);
  for (const [k, v] of Object.entries(shared)) {
    if (!(v instanceof SharedArrayBuffer)) throw typeError('boot', `options.shared.${k}`, 'a SharedArrayBuffer', v);
  }
  const diagnostic = o.diagnostic ?? true;
  if (typeof diagnostic !== 'boolean') throw typeError('boot', 'options.diagnostic', 'a boolean', diagnostic);
  const poll = o.poll ?? runtime.poll_default(ncpu);
  if (typeof poll !== 'number') throw typeError('boot', 'options.poll', 'a number', poll);
  if (!(poll >= 0 && poll <= 1e6)) throw rangeError('boot', 'options.poll', 'microseconds in [0, 1e6]', poll);
  const stallReport = o.stallReport ?? STALL_REPORT_MS;
  if (typeof stallReport !== 'number') throw typeError('boot', 'options.stallReport', 'a number', stallReport);
  if (!(stallReport >= 0)) throw rangeError('boot', 'options.stallReport', 'milliseconds >= 0 (0: never)', stallReport);
  const list = o.image === undefined ? [] : typeof o.image === 'string' || o.image instanceof URL ? [o.image] : o.image;
  if (!Array.isArray(list)) throw typeError('boot', 'options.image', 'a module path or URL, or an array of them', o.image);
  const image = list.map((m: unknown, i) => {
    if (!(m instanceof URL) && (typeof m !== 'string' || m === '')) throw typeError('boot', `options.image[${i}]`, 'a module path or URL', m);
    return runtime.image_url(m);
  });
  return { ncpu, shared, diagnostic, poll, stallReport, image };
}

/** Create and format the kernel memory of an ncpu machine (the booting CPU, once). */
export function kmem_create(ncpu: number): SharedArrayBuffer {
  const kmem = new SharedArrayBuffer(kmem_layout(ncpu).size);
  kmem_format(kmem, ncpu);
  return kmem;
}

/**
 * Attach this thread to a machine: its kernel memory, its shared buffers,
 * the thread's machine-dependent layer, the vector table.  Once per thread.
 */
export function kern_attach(args: cpu_boot_args, m: cpu_md): void {
  const n = kmem_attach(args.kmem);
  md_attach(m);
  machine_attach(n, args.diagnostic);
  shared_attach(args.shared);
  intr_init(args.poll, args.stallReport);
  ipi_attach();
  softint_attach();
  xc_attach();
}

/** Bring CPU `index` to life on this thread: its symbol table, its caches. */
export function cpu_attach(index: number): cpu_info {
  const ci = cpu_at(index);
  ci.ci_pollwin = poll_window_initial();
  sym_init(ci, BUILTINS);
  arg_init(ci, kmem_layout(ncpu).ncells);
  return ci;
}

/** Machine-wide state, set up once by the booting CPU after its cpu_attach(). */
export function kern_sysinit(ci: cpu_info): void {
  f64[H_BOOTTIME >> 1] = md.now();
  for (let c = 0; c < ncpu; c++) kcpuset_atomic_set(kcpuset_attached, c);
  /* IPI_SYNCH_ID is always registered; its handler is ipi.ts's mailbox handler. */
  Atomics.store(i32, ipireg_word(IPI_SYNCH_ID, R_FUNC), 1);
  xc_init(ci);
}

/** Number an image module's exported functions on CPU ci. */
export function cpu_load_module(ci: cpu_info, url: string, ns: Record<string, unknown>): void {
  sym_load_module(ci, url, ns);
}

/** After loading its image: CPU ci runs. */
export function cpu_running(ci: cpu_info): void {
  Atomics.store(i32, cpu_word(ci.ci_index, C_STATE), CPUST_RUNNING);
  kcpuset_atomic_set(kcpuset_running, ci.ci_index);
}

/** Compare every CPU's symbol table with ci's; the first difference, or null. */
export function cpu_image_check(ci: cpu_info): string | null {
  for (let c = 0; c < ncpu; c++) {
    if (c === ci.ci_index) continue;
    const diff = sym_compare(ci, c);
    if (diff !== null) return diff;
  }
  return null;
}

/** Tell every CPU to halt: idle loops return, waits fail. */
export function machine_halt(): void {
  Atomics.store(i32, H_HALT, 1);
  for (let c = 0; c < ncpu; c++) cpu_ring(c);
}

/** CPU ci stops: it leaves kcpuset_running. */
export function cpu_halt(ci: cpu_info): void {
  Atomics.store(i32, cpu_word(ci.ci_index, C_STATE), CPUST_HALTED);
  kcpuset_atomic_clear(kcpuset_running, ci.ci_index);
}

/** This thread leaves the machine: it forgets it. */
export function kern_detach(): void {
  machine_detach();
  shared_detach();
  md_attach(undefined);
  kmem_detach();
}

/**
 * boot_machine: the sequence above, on `runtime`.  `enter(ci)` makes this
 * thread CPU ci for the runtime (the real machine: a variable; the
 * simulated one: its scheduler's current CPU).
 */
export async function boot_machine(options: BootOptions, runtime: runtime_md, enter: (ci: cpu_info) => void): Promise<Machine> {
  const o = boot_options(options, runtime);
  if (ncpu !== 0) throw new IpiError('boot: this thread is already a CPU of a running machine: shut that one down first');
  const kmem = kmem_create(o.ncpu);
  let machine: Machine | undefined;
  const early: (() => void)[] = [];
  const later = (f: (m: Machine) => void): void => {
    if (machine) f(machine);
    else early.push(() => f(machine!));
  };
  const report = (error: unknown, cpu: number): void => later((m) => m.report(error, cpu));
  const args: cpu_boot_args = { kmem, shared: o.shared, index: 0, diagnostic: o.diagnostic, poll: o.poll, stallReport: o.stallReport };
  kern_attach(args, runtime.md(new Int32Array(kmem), (e) => report(e, 0)));
  const ci = cpu_attach(0);
  enter(ci);
  kern_sysinit(ci);

  let halting = false;
  const handles: cpu_handle[] = [];
  const terminated = new Set<number>();
  const ready: Promise<void>[] = [];
  /* A CPU gone while the machine runs: marked dead by itself on its way out, or here if it could not. */
  const exited = (c: number, code: number | null, error: Error | undefined): void => {
    if (halting) return;
    const reason = terminated.has(c) ? 'terminated' : error !== undefined ? `uncaught ${error.name}: ${error.message}` : `exited with code ${code}`;
    cpu_die(c, { reason, exitCode: terminated.has(c) ? null : code, error: error === undefined ? null : { name: error.name, message: error.message, stack: error.stack ?? '' } });
    later((m) => m.died(c));
  };
  for (let c = 1; c < o.ncpu; c++) {
    ready.push(new Promise<void>((resolve, reject) => {
      let running = false;
      handles.push(runtime.cpu_start({ ...args, index: c }, o.image, {
        ready: () => {
          running = true;
          resolve();
        },
        failed: (e) => reject(new IpiError(`boot: cpu${c} failed to start: ${e.name}: ${e.message}`, { cause: e })),
        error: (e) => report(e, c),
        exited: (code, error) => {
          if (!running) reject(new IpiError(`boot: cpu${c} exited with code ${code} before it was running`, { cause: error }));
          else exited(c, code, error);
        },
      }));
    }));
  }
  /* Handled now: if CPU 0 fails first, the others' failures must not go unhandled. */
  const allReady = Promise.all(ready);
  allReady.catch(() => {});

  let idle: Promise<void> | undefined;
  const halt = async (): Promise<void> => {
    halting = true;
    machine_halt();
    await Promise.all(handles.map((h) => h.halted(HALT_GRACE_MS)));
    await idle;
    cpu_halt(ci);
    kern_detach();
  };

  try {
    for (const url of o.image) {
      let ns: Record<string, unknown>;
      try {
        ns = await runtime.import(ci, url);
      } catch (e) {
        throw new IpiError(`boot: cpu0 failed to load image module ${url}: ${(e as Error).message}`, { cause: e });
      }
      cpu_load_module(ci, url, ns);
    }
    await allReady;
    const diff = cpu_image_check(ci);
    if (diff !== null) throw new IpiError(`boot: the CPUs built different symbol tables: ${diff}`);
  } catch (e) {
    await halt();
    throw e;
  }
  cpu_running(ci);
  idle = (runtime.idle?.(ci) ?? cpu_idle(ci, false)).catch((e: unknown) => report(e, 0));
  machine = new Machine(o.ncpu, {
    halt,
    terminate: async (c) => {
      terminated.add(c);
      await handles[c - 1].terminate();
    },
    ref: (keep) => {
      for (const h of handles) h.ref(keep);
    },
  });
  for (const f of early) f();
  return machine;
}

/**
 * A secondary CPU's start, run by the runtime on the CPU's own thread (or,
 * simulated, on the booting one): attach, import the image, run.
 */
export async function cpu_boot(args: cpu_boot_args, m: cpu_md | undefined, runtime_import: (ci: cpu_info, url: string) => Promise<Record<string, unknown>>,
  image: readonly string[], enter: (ci: cpu_info) => void): Promise<cpu_info> {
  if (m !== undefined) kern_attach(args, m);
  const ci = cpu_attach(args.index);
  enter(ci);
  for (const url of image) cpu_load_module(ci, url, await runtime_import(ci, url));
  cpu_running(ci);
  return ci;
}

/**
 * cpu_die: CPU c has died while the machine runs (its thread exited,
 * crashed or was terminated).  Record why, mark it dead (it leaves
 * kcpuset_running), write off its part of every call in flight so that no
 * one waits for it, release what it held, and ring every CPU so that waits
 * look again.  Runs on the dying CPU itself (on its way out) or on another
 * CPU once its thread is gone; the first caller does it, later ones return
 * false, as do calls during shutdown.
 */
export function cpu_die(c: number, death: cpu_death): boolean {
  if (machine_halted()) return false;
  const st = cpu_word(c, C_STATE);
  const was = Atomics.load(i32, st);
  if (was === CPUST_DEAD || was === CPUST_DYING || was === CPUST_HALTED) return false;
  if (Atomics.compareExchange(i32, st, was, CPUST_DYING) !== was) return false;
  cpu_death_write(c, death);
  /* Publish: the death record is visible to whoever sees the state DEAD. */
  Atomics.store(i32, st, CPUST_DEAD);
  kcpuset_atomic_set(kcpuset_dead, c);
  kcpuset_atomic_clear(kcpuset_running, c);
  Atomics.add(i32, H_DEADGEN, 1);
  ipi_cpu_dead(c);
  xc_cpu_dead(c);
  softint_cpu_dead(c);
  for (let t = 0; t < ncpu; t++) if (t !== c) cpu_ring(t);
  return true;
}
