/*
 * cpu(9): the CPUs of the machine, and all of each CPU's state.
 *
 * A thread runs one CPU (a worker of the real machine) or several (the
 * simulated machine runs them all on one thread).  So everything a CPU owns
 * lives in its cpu_info, as NetBSD keeps it in struct cpu_info and its
 * machine-independent part, struct cpu_data: the interrupt priority level,
 * the nesting depths and preemption count, the soft interrupt queues, the
 * message descriptor pool, the xcall state, its deferred thread work, the
 * caches of what it decoded, its symbol table.  Each field is used by one
 * facility, named beside it; only the CPU itself touches its live state.
 *
 * Machine-wide state (ncpu, the kernel memory, the sets of attached,
 * running and dead CPUs) is module state: one machine per thread.
 *
 * The current CPU is what the machine-dependent layer says it is: a
 * variable it sets once on a thread that is one CPU (cpu_set_current), or a
 * function it installs where one thread runs several (cpu_set_current_of).
 * curcpu() reads it.  Every library entry point calls cpu_self(fn) first,
 * so that a call before boot() or after shutdown() says so by name.
 */
import { IpiError, KASSERT, rangeError, typeError } from './errors.js';
import { kcpuset_shared, kcpuset_t, KCPUSET_NWORDS } from './kcpuset.js';
import {
  ACT_MASK, ACT_SHIFT, C_ACT, C_ACTSEQ, C_DOORBELL, C_IPIPEND, C_MDIPI, C_STATE, cpu_word, CPUST_DEAD, H_ATTACHED, H_DEAD, H_RUNNING, i32,
} from './layout.js';
import { IPI_MAXREG, IPI_MSG_MAXINFLIGHT, SOFTINT_MAXHANDLERS } from './param.js';

/* Interrupt priority levels, in NetBSD's order. */
export const IPL_NONE = 0;
export const IPL_SOFTCLOCK = 1;
export const IPL_SOFTBIO = 2;
export const IPL_SOFTNET = 3;
export const IPL_SOFTSERIAL = 4;
export const IPL_VM = 5;
export const IPL_SCHED = 6;
export const IPL_HIGH = 7;

/** Soft interrupt levels (softint(9)): the queues below have one ring per level. */
export const SOFTINT_COUNT = 4;

/** Validate an IPL argument. */
export function ipl_check(fn: string, ipl: unknown): number {
  if (typeof ipl !== 'number') throw typeError(fn, 'ipl', 'a number', ipl);
  if (!Number.isInteger(ipl) || ipl < IPL_NONE || ipl > IPL_HIGH) throw rangeError(fn, 'ipl', `an IPL_* level in [${IPL_NONE}, ${IPL_HIGH}]`, ipl);
  return ipl;
}

/** Any function (what a kernel symbol names); callers cast it to the signature they call. */
export type kernel_func = (...args: never[]) => unknown;

export class cpu_info {
  /** The CPU's index, 0 .. ncpu-1 (cpu_index()). */
  readonly ci_index: number;
  /** Kernel word index of this CPU's pending-IPI bitmap. @internal */
  readonly ci_ipipend: number;
  /** Kernel word index of this CPU's machine-dependent vector bits. @internal */
  readonly ci_mdipi: number;
  /** Kernel word index of this CPU's doorbell. @internal */
  readonly ci_doorbell: number;
  /** Kernel word index of this CPU's activity (C_ACT; C_ACTSEQ follows it). @internal */
  readonly ci_act: number;

  /* spl(9), cpu(9): where the CPU is. */
  /** Interrupt priority level. @internal */
  ci_ilevel = IPL_NONE;
  /** Depth of hard interrupt handlers running (cpu_intr_p()). @internal */
  ci_idepth = 0;
  /** Depth of soft interrupt handlers running (cpu_softintr_p()). @internal */
  ci_softdepth = 0;
  /** kpreempt_disable() nesting (NetBSD keeps it in the LWP). @internal */
  ci_nopreempt = 0;

  /* Halt-polling (intr.ts). */
  /** How long (ms) this CPU polls its doorbell before it sleeps; adapts, at most the boot option `poll`. @internal */
  ci_pollwin = 0;
  /** Quick wake-ups in a row while the window is closed. @internal */
  ci_pollprobe = 0;

  /* softint(9): a FIFO ring per level of (handler, generation) entries. */
  /** Levels with work queued, one bit per SOFTINT_* level. @internal */
  ci_softpending = 0;
  /** @internal */
  readonly ci_softq = Array.from({ length: SOFTINT_COUNT }, () => new Int32Array(SOFTINT_MAXHANDLERS));
  /** @internal */
  readonly ci_softqgen = Array.from({ length: SOFTINT_COUNT }, () => new Int32Array(SOFTINT_MAXHANDLERS));
  /** @internal */
  readonly ci_softqhead = new Int32Array(SOFTINT_COUNT);
  /** @internal */
  readonly ci_softqlen = new Int32Array(SOFTINT_COUNT);
  /** Per handler: the generation it is queued for here, or -1. @internal */
  readonly ci_softqueued = new Int32Array(SOFTINT_MAXHANDLERS).fill(-1);

  /* ipi(9): this CPU's pool of message descriptors, as a sender. */
  /** Its first descriptor (cpu * IPI_MSG_MAXINFLIGHT). @internal */
  readonly ci_msgbase: number;
  /** A stack of free descriptors, ci_msgtop of them. @internal */
  readonly ci_msgfree = new Int32Array(IPI_MSG_MAXINFLIGHT);
  /** @internal */
  ci_msgtop = 0;
  /** The message each descriptor in flight carries (a strong reference until ipi_wait). @internal */
  readonly ci_msgobj: (object | undefined)[] = new Array<object | undefined>(IPI_MSG_MAXINFLIGHT).fill(undefined);
  /** The error of each one's local run (multicast, broadcast), or NO_ERROR. @internal */
  readonly ci_msglocal: unknown[] = new Array<unknown>(IPI_MSG_MAXINFLIGHT);
  /** A message's descriptor, valid while ci_msgobj agrees (so reusing a message allocates nothing). @internal */
  ci_msgof = new WeakMap<object, number>();
  /** ipi(9) as a target: the generations seen when a pending word was taken, one array per nesting depth. @internal */
  readonly ci_ipigen: Int32Array[] = [];
  /** @internal */
  ci_ipidepth = 0;

  /* xcall(9) */
  /** Per priority class: xcall functions running here now. @internal */
  readonly ci_xcactive = new Int32Array(2);

  /* Thread work (intr.ts): low-priority xcall parts waiting for thread context. */
  /** @internal */
  readonly ci_threadq: (() => void)[] = [];
  /** A task to run them is queued on the event loop. @internal */
  ci_threadq_scheduled = false;
  /** While > 0 (a high-priority xcall lock is held here), waits run no thread work. @internal */
  ci_thread_held = 0;

  /* Arguments decoded here (arg.ts): views made per cell, and values of cells that change only with a generation. @internal */
  ci_argview: unknown[] = [];
  /** @internal */
  ci_argviewkey = new Float64Array(0);
  /** @internal */
  ci_argvalue: unknown[] = [];
  /** @internal */
  ci_arggen = new Float64Array(0);

  /* Kernel symbols (symbol.ts): this CPU's own copies of the image's functions, by number. */
  /** @internal */
  ci_symtab: kernel_func[] = [];
  /** @internal */
  ci_symidx = new Map<kernel_func, number>();
  /** Symbols that are classes: numbered like the others, refused as handlers. @internal */
  ci_symclass = new Set<number>();
  /** The image modules loaded, in order. @internal */
  ci_modules: string[] = [];

  /** @internal Only the machine creates cpu_info structures. */
  constructor(index: number) {
    this.ci_index = index;
    this.ci_ipipend = cpu_word(index, C_IPIPEND);
    this.ci_mdipi = cpu_word(index, C_MDIPI);
    this.ci_doorbell = cpu_word(index, C_DOORBELL);
    this.ci_act = cpu_word(index, C_ACT);
    this.ci_msgbase = index * IPI_MSG_MAXINFLIGHT;
    for (let i = IPI_MSG_MAXINFLIGHT - 1; i >= 0; i--) this.ci_msgfree[this.ci_msgtop++] = this.ci_msgbase + i;
    for (let d = 0; d <= 2; d++) this.ci_ipigen.push(new Int32Array(IPI_MAXREG));
  }

  toString(): string {
    return `cpu${this.ci_index}`;
  }
}

/* ------------------------------------------------------------- machine */

/** Number of CPUs of the running machine (NetBSD's global `ncpu`); 0 when none. */
export let ncpu = 0;
/** True when contract assertions are checked (the `diagnostic` boot option). */
export let diagnostic = true;

/**
 * kcpuset_attached: the CPUs of the machine.  kcpuset_running: those that
 * have loaded the image and run, and have not died.  Both live in kernel
 * memory: one set for every CPU.
 */
export let kcpuset_attached: kcpuset_t = kcpuset_shared(new Int32Array(KCPUSET_NWORDS));
export let kcpuset_running: kcpuset_t = kcpuset_shared(new Int32Array(KCPUSET_NWORDS));
/** The CPUs that died while the machine ran (kernel memory). @internal */
export let kcpuset_dead: kcpuset_t = kcpuset_shared(new Int32Array(KCPUSET_NWORDS));

let cpus: readonly cpu_info[] = [];
/** This thread was a CPU of a machine that has been shut down (for the error message). */
let was_shut_down = false;

/** Attach this thread to an ncpu machine whose kernel memory is attached: a cpu_info for each CPU. @internal */
export function machine_attach(n: number, diag: boolean): void {
  kcpuset_attached = kcpuset_shared(new Int32Array(i32.buffer, H_ATTACHED * 4, KCPUSET_NWORDS));
  kcpuset_running = kcpuset_shared(new Int32Array(i32.buffer, H_RUNNING * 4, KCPUSET_NWORDS));
  kcpuset_dead = kcpuset_shared(new Int32Array(i32.buffer, H_DEAD * 4, KCPUSET_NWORDS));
  was_shut_down = false;
  cpus = Array.from({ length: n }, (_, i) => new cpu_info(i));
  ncpu = n;
  diagnostic = diag;
}

/** The cpu_info of CPU index, whatever CPU is current (attaching). @internal */
export function cpu_at(index: number): cpu_info {
  return cpus[index];
}

/** Forget the machine (shutdown). @internal */
export function machine_detach(): void {
  kcpuset_attached = kcpuset_shared(new Int32Array(KCPUSET_NWORDS));
  kcpuset_running = kcpuset_shared(new Int32Array(KCPUSET_NWORDS));
  kcpuset_dead = kcpuset_shared(new Int32Array(KCPUSET_NWORDS));
  cpus = [];
  ncpu = 0;
  current = undefined;
  current_of = undefined;
  was_shut_down = true;
}

/* ------------------------------------------------------------- current */

let current: cpu_info | undefined;
let current_of: (() => cpu_info | undefined) | undefined;

/** This thread is CPU ci (the machine-dependent layer, on a thread that is one CPU). @internal */
export function cpu_set_current(ci: cpu_info | undefined): void {
  current = ci;
}

/** The current CPU is what `of` returns (the machine-dependent layer, where one thread runs several). @internal */
export function cpu_set_current_of(of: (() => cpu_info | undefined) | undefined): void {
  current_of = of;
}

/** The error of a call made on a thread that is no CPU of a running machine. */
export function no_machine(fn: string): IpiError {
  return new IpiError(was_shut_down
    ? `${fn}: the machine this thread was a CPU of has been shut down`
    : `${fn}: this thread is not a CPU of a running machine (call boot() first)`);
}

/**
 * The current CPU, for the entry point `fn`: every entry point that needs
 * the machine calls this first, so that a call before boot() or after
 * shutdown() says so rather than failing somewhere inside.
 */
export function cpu_self(fn: string): cpu_info {
  const ci = current_of === undefined ? current : current_of();
  if (ci === undefined) throw no_machine(fn);
  return ci;
}

/**
 * curcpu: the CPU this code runs on.
 * => Throws if this thread is not a CPU of a running machine.
 */
export function curcpu(): cpu_info {
  return cpu_self('curcpu');
}

/** cpu_number: the index of the current CPU. */
export function cpu_number(): number {
  return cpu_self('cpu_number').ci_index;
}

/**
 * cpu_index: the index of `ci`.
 * => ci must be a CPU of this machine.
 */
export function cpu_index(ci: cpu_info): number {
  return ci_check('cpu_index', 'ci', ci);
}

/**
 * cpu_lookup: the CPU with index `idx`.
 * => idx must be an integer in [0, ncpu).
 */
export function cpu_lookup(idx: number): cpu_info {
  cpu_self('cpu_lookup');
  if (typeof idx !== 'number') throw typeError('cpu_lookup', 'idx', 'a number', idx);
  if (!Number.isInteger(idx) || idx < 0 || idx >= ncpu) throw rangeError('cpu_lookup', 'idx', `an integer in [0, ${ncpu})`, idx);
  return cpus[idx];
}

/**
 * Validate that `ci` is a CPU of the running machine; return its index.
 * Bad input, checked whether or not the machine is diagnostic.
 */
export function ci_check(fn: string, what: string, ci: unknown): number {
  cpu_self(fn);
  if (!(ci instanceof cpu_info)) throw typeError(fn, what, 'a cpu_info (curcpu(), cpu_lookup())', ci);
  if (cpus[ci.ci_index] !== ci) throw new IpiError(`${fn}: ${what} (${ci}) is not a CPU of the running machine`);
  return ci.ci_index;
}

/** kpreempt_disable: disable kernel preemption on this CPU (nests). */
export function kpreempt_disable(): void {
  cpu_self('kpreempt_disable').ci_nopreempt++;
}

/**
 * kpreempt_enable: undo one kpreempt_disable().
 * => Preemption must be disabled by kpreempt_disable().
 */
export function kpreempt_enable(): void {
  const ci = cpu_self('kpreempt_enable');
  KASSERT(ci.ci_nopreempt > 0, 'kpreempt_enable', 'l->l_nopreempt != 0', 'preemption is not disabled: call kpreempt_disable() first');
  ci.ci_nopreempt--;
}

/**
 * kpreempt_disabled: true if the current code cannot be preempted: preemption
 * disabled, in an interrupt handler, or at a raised IPL (as NetBSD counts it).
 */
export function kpreempt_disabled(): boolean {
  const ci = cpu_self('kpreempt_disabled');
  return ci.ci_nopreempt > 0 || ci.ci_ilevel > IPL_NONE || ci.ci_idepth > 0 || ci.ci_softdepth > 0;
}

/** cpu_intr_p: true inside a hard interrupt handler (an IPI handler or cross-call). */
export function cpu_intr_p(): boolean {
  return cpu_self('cpu_intr_p').ci_idepth > 0;
}

/** cpu_softintr_p: true inside a soft interrupt handler. */
export function cpu_softintr_p(): boolean {
  return cpu_self('cpu_softintr_p').ci_softdepth > 0;
}

/** True if ci runs thread code: no handler, IPL_NONE. @internal */
export function thread_context_p(ci: cpu_info): boolean {
  return ci.ci_idepth === 0 && ci.ci_softdepth === 0 && ci.ci_ilevel === IPL_NONE;
}

/* ------------------------------------------------------------- life */

/** True if CPU `c` has died. */
export function cpu_dead_p(c: number): boolean {
  return Atomics.load(i32, cpu_word(c, C_STATE)) === CPUST_DEAD;
}

/* ---------------------------------------------------------- activity */

/*
 * What a CPU is doing, for the reports of waits that time out: an ACT_*
 * kind and an argument (a symbol, or a wait code), in its C_ACT word, and
 * a sequence number bumped at every change, so that a reader can tell that
 * a CPU has been doing the same thing since it last looked.  Only the CPU
 * itself writes them, with plain stores (a few nanoseconds per handler);
 * readers may see them stale, which a report can afford.
 */

/** Enter an activity; returns the one to restore with act_leave(). */
export function act_enter(ci: cpu_info, kind: number, arg: number): number {
  const w = ci.ci_act;
  const prev = i32[w];
  i32[w] = kind | (arg << ACT_SHIFT);
  i32[w + 1]++;
  return prev;
}

/** Go back to the activity act_enter() returned. */
export function act_leave(ci: cpu_info, prev: number): void {
  const w = ci.ci_act;
  i32[w] = prev;
  i32[w + 1]++;
}

/** Another CPU's activity: [kind, arg, sequence number]. */
export function act_read(c: number): [kind: number, arg: number, seq: number] {
  const a = Atomics.load(i32, cpu_word(c, C_ACT));
  return [a & ACT_MASK, a >>> ACT_SHIFT, Atomics.load(i32, cpu_word(c, C_ACTSEQ))];
}
