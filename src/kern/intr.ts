/*
 * Interrupt delivery: priority levels, the service pass, and every place a
 * CPU may take an interrupt.
 *
 * JavaScript cannot be stopped mid-statement, so a CPU takes interrupts only
 * at interrupt points:
 *   1. idle in its event loop (cpu_idle), sleeping on its doorbell;
 *   2. inside every wait of the library (intr_wait, intr_wait_async): a CPU
 *      that waits without servicing its own interrupts would deadlock against
 *      a CPU that cross-calls it, so a wait services hard interrupts at any
 *      IPL, soft interrupts above the current IPL, and deferred thread work
 *      when it waits in thread context;
 *   3. when code lowers its IPL (splx, spl0) or calls preempt_point().
 *
 * The service pass (intr_service) is what an interrupt vector does in a
 * kernel: run the hard handlers (the library's own vectors, then
 * ipi_cpu_handler) at IPL_HIGH with
 * cpu_intr_p() true, then the soft interrupts that are above the level of
 * the interrupted code.  It is callable from any context.
 *
 * The doorbell protocol.  Whoever wants CPU n to look at its state changes
 * that state with an atomic operation, then increments n's doorbell word
 * (Atomics.add) and wakes it (md.wake).  A CPU about to sleep reads its
 * doorbell first, then checks its state, then sleeps only while the doorbell
 * still holds what it read.  A change it missed in the check was made before
 * the increment, so the increment comes after the read and the sleep returns
 * at once: no wake-up is lost.  All of these are sequentially consistent
 * Atomics, which is what orders them.
 */
import { act_enter, act_leave, act_read, cpu_info, cpu_self, diagnostic, ipl_check, IPL_HIGH, IPL_NONE, thread_context_p } from './cpu.js';
import { cpu_death_record } from './failure.js';
import { IpiError, IpiTimeoutError, typeError, type IpiCpuState } from './errors.js';
import {
  ACT_IDLE, ACT_IPI, ACT_MSG, ACT_SOFT, ACT_THREAD, ACT_WAIT, ACT_XCALL, C_DOORBELL, C_MDIPI, C_STATE, cpu_word, CPUST_DEAD, CPUST_HALTED,
  EV_DOORBELL, EV_POLL_HIT, EV_POLL_MISS, EV_POLL_WIN, EV_SLEEP, EV_TIMEOUT, evcnt_index, f64, H_BOOTTIME, H_HALT, i32,
} from './layout.js';
import { md } from './md.js';
import { sym_name } from './symbol.js';

/** Longest single sleep of a wait; waits re-check the machine's state after it. */
const SLEEP_MS = 1000;
/** Service passes an idle CPU runs back to back before it lets its event loop run other tasks (a yield allocates). */
const IDLE_BURST = 1024;

/** Polls read the clock once per this many spins + 1 (a power of two less one). */
const POLL_CLOCK_SPINS = 255;

/*
 * Halt-polling, adaptive, as KVM's halt_poll_ns: before a CPU sleeps on its
 * doorbell, in its idle loop or in a wait, it polls for its window
 * (ci_pollwin), because a CPU that polls answers in well under a
 * microsecond and one that sleeps must be woken (several, up to tens of
 * microseconds).  A poll that catches what it waited for doubles the window
 * (from POLL_GROW_START_MS), up to the boot option `poll`; one that does not
 * halves it, down to nothing: polling that keeps failing (the awaited CPU
 * is slow, or shares this core and cannot run while this one spins: a
 * convoy) stops.  A closed window opens again after POLL_PROBE_SLEEPS
 * sleeps in a row that a poll of the largest window would have caught.
 * A sleep is measured from its start to the sleeper running again, so it
 * includes the wake-up itself, up to POLL_WAKE_SLACK_MS: without that slack
 * a CPU whose wake-ups are slow (a halted vCPU: ~70 µs on a 2-core VM) would
 * never count a sleep as quick, and its window would stay closed for good.
 */
const POLL_GROW_START_MS = 0.002;
const POLL_PROBE_SLEEPS = 8;
const POLL_WAKE_SLACK_MS = 0.1;

/** The largest poll window (ms): the boot option `poll`; 0 never polls. */
let poll_max_ms = 0;
/** A diagnostic wait with no timeout reports itself once after this long (ms; boot's stallReport). */
let stall_ms = Infinity;

export function intr_init(pollMicros: number, stallMs: number): void {
  poll_max_ms = pollMicros / 1000;
  stall_ms = stallMs > 0 ? stallMs : Infinity;
}

/** The window of a CPU that has not polled yet: open, to learn. */
export const poll_window_initial = (): number => poll_max_ms;

function poll_set(ci: cpu_info, ms: number): void {
  ci.ci_pollwin = ms;
  f64[evcnt_index(ci.ci_index, EV_POLL_WIN)] = ms * 1000;
}

/** A poll caught what it waited for: the window grows. */
function poll_hit(ci: cpu_info): void {
  f64[evcnt_index(ci.ci_index, EV_POLL_HIT)]++;
  if (ci.ci_pollwin < poll_max_ms) poll_set(ci, Math.min(poll_max_ms, Math.max(ci.ci_pollwin * 2, POLL_GROW_START_MS)));
}

/** A poll ran its window out: the window shrinks. */
function poll_miss(ci: cpu_info): void {
  f64[evcnt_index(ci.ci_index, EV_POLL_MISS)]++;
  const half = ci.ci_pollwin / 2;
  poll_set(ci, half < POLL_GROW_START_MS ? 0 : half);
}

/** ci slept `ms`: with its window closed, quick wake-ups in a row open it again. */
function poll_slept(ci: cpu_info, ms: number): void {
  if (ci.ci_pollwin !== 0 || poll_max_ms === 0) return;
  if (ms >= poll_max_ms + POLL_WAKE_SLACK_MS) ci.ci_pollprobe = 0;
  else if (++ci.ci_pollprobe >= POLL_PROBE_SLEEPS) {
    ci.ci_pollprobe = 0;
    poll_set(ci, POLL_GROW_START_MS);
  }
}

/** Ring CPU `target`'s doorbell: it re-examines its state. */
export function cpu_ring(target: number): void {
  const bell = cpu_word(target, C_DOORBELL);
  Atomics.add(i32, bell, 1);
  md.wake(bell);
}

/** Count a doorbell rung by `ci`. */
export function cpu_ring_counted(ci: cpu_info, target: number): void {
  f64[evcnt_index(ci.ci_index, EV_DOORBELL)]++;
  cpu_ring(target);
}

/** True once the machine halts (or this CPU has already left it). */
export function machine_halted(): boolean {
  return i32.length === 0 || Atomics.load(i32, H_HALT) !== 0;
}

/*
 * The vector table, as NetBSD/x86's ipifunc[]: what the service pass
 * calls.  Each facility fills its entries when it attaches (init_main.ts),
 * so this module imports none of them and the dependencies form a tree.
 *   - ipi: the registered IPIs, ipi_cpu_handler;
 *   - soft: the soft interrupts, softint_dispatch;
 *   - md[bit]: machine-dependent vectors, interrupts of the library's own
 *     beside the registered IPIs (NetBSD's x86 has its own IPI for xcalls
 *     the same way, so they take no id from ipi_register()): one bit of a
 *     CPU's C_MDIPI word each.
 */
type vector = (ci: cpu_info) => void;
const no_vector: vector = () => {};
let vec_ipi: vector = no_vector;
let vec_soft: (ci: cpu_info) => boolean = () => false;
let vec_soft_pending: (ci: cpu_info) => boolean = () => false;
const vec_md: vector[] = [];

/** The machine-dependent vector bits. */
export const VEC_XCALL_LOW = 1 << 0;
export const VEC_XCALL_HIGH = 1 << 1;

/** Fill the vector table's entry for the registered IPIs. */
export function intr_establish_ipi(fn: vector): void {
  vec_ipi = fn;
}

/**
 * Fill the vector table's entry for the soft interrupts: `dispatch` runs
 * those above the CPU's IPL (true if it ran any); `pending` says whether
 * there are any.
 */
export function intr_establish_soft(dispatch: (ci: cpu_info) => boolean, pending: (ci: cpu_info) => boolean): void {
  vec_soft = dispatch;
  vec_soft_pending = pending;
}

/** Fill the vector table's entry for machine-dependent vector `vec` (one VEC_* bit). */
export function intr_establish_md(vec: number, fn: vector): void {
  vec_md[31 - Math.clz32(vec)] = fn;
}

/**
 * The service pass: hard handlers at IPL_HIGH, then soft interrupts above
 * the interrupted level.  `hardAnyIpl` lets a wait take hard interrupts even
 * at IPL_HIGH.  Returns true if it ran anything.
 */
export function intr_service(ci: cpu_info, hardAnyIpl: boolean): boolean {
  let ran = (hardAnyIpl || ci.ci_ilevel < IPL_HIGH) && intr_hard(ci);
  if (ci.ci_softpending !== 0 && vec_soft(ci)) ran = true;
  return ran;
}

/** Raise the vectors `vec` on CPU `target`; ring it unless they were all pending already. */
export function intr_send_vector(self: cpu_info, target: number, vec: number): void {
  if ((Atomics.or(i32, cpu_word(target, C_MDIPI), vec) & vec) !== vec) cpu_ring_counted(self, target);
}

/**
 * The hard part of the service pass: the vectors, then ipi_cpu_handler(), at
 * IPL_HIGH with cpu_intr_p() true.  Any IPL: callers decide.  True if
 * anything was pending.
 */
export function intr_hard(ci: cpu_info): boolean {
  if (Atomics.load(i32, ci.ci_ipipend) === 0 && Atomics.load(i32, ci.ci_mdipi) === 0) return false;
  const s = ci.ci_ilevel;
  ci.ci_ilevel = IPL_HIGH;
  ci.ci_idepth++;
  try {
    for (let vec = Atomics.exchange(i32, ci.ci_mdipi, 0); vec !== 0; vec &= vec - 1) vec_md[31 - Math.clz32(vec & -vec)](ci);
    vec_ipi(ci);
  } finally {
    ci.ci_idepth--;
    ci.ci_ilevel = s;
  }
  return true;
}

/* ---------------------------------------------------------------- spl(9) */

/** splhigh: raise the IPL to IPL_HIGH; returns the previous level for splx(). */
export function splhigh(): number {
  cpu_self('splhigh');
  return splraiseipl(IPL_HIGH);
}

/**
 * splraiseipl: raise the IPL to at least `ipl`; returns the previous level.
 * => ipl must be an IPL_* level.
 */
export function splraiseipl(ipl: number): number {
  const ci = cpu_self('splraiseipl');
  ipl_check('splraiseipl', ipl);
  const s = ci.ci_ilevel;
  if (ipl > s) ci.ci_ilevel = ipl;
  return s;
}

/**
 * splx: set the IPL to `s`, a value an spl function returned.  Lowering it is
 * an interrupt point: interrupts that arrived meanwhile are taken here.
 * => s must be an IPL_* level.
 */
export function splx(s: number): void {
  const ci = cpu_self('splx');
  ipl_check('splx', s);
  const old = ci.ci_ilevel;
  ci.ci_ilevel = s;
  if (s < old) {
    md.preempt?.();
    intr_service(ci, false);
  }
}

/** spl0: lower the IPL to IPL_NONE, taking pending interrupts. */
export function spl0(): void {
  cpu_self('spl0');
  splx(IPL_NONE);
}

/**
 * preempt_point: an explicit interrupt point for long computations: takes the
 * interrupts the current IPL admits and, in thread context, deferred thread
 * work (low-priority cross-calls).
 */
export function preempt_point(): void {
  const ci = cpu_self('preempt_point');
  md.preempt?.();
  intr_point_service(ci, false);
}

/**
 * cpu_relax: call it in a loop that spins on shared memory, waiting for
 * another CPU.  It takes no interrupt (it is no interrupt point), and on
 * real CPUs it does nothing; on the simulated machine, where every CPU
 * shares one thread, it is where the others run, so that the loop can end.
 * (Linux's cpu_relax(); NetBSD spins with SPINLOCK_BACKOFF.)
 */
export function cpu_relax(): void {
  cpu_self('cpu_relax');
  md.relax?.();
}

/**
 * getmicrouptime: microseconds since the machine booted, on a clock all
 * CPUs share (NetBSD's getmicrouptime(9)); virtual on the simulated machine.
 */
export function getmicrouptime(): number {
  cpu_self('getmicrouptime');
  return (md.now() - f64[H_BOOTTIME >> 1]) * 1000;
}

/* ---------------------------------------------------------- thread work */

/*
 * Work that must run in thread context on a CPU (xcall(9) at low
 * priority), queued in its cpu_info: a task of its event loop, or earlier,
 * inside a wait or preempt_point() that the CPU reaches in thread context.
 *
 * Not inside a wait while the CPU holds the high-priority xcall lock
 * (ci_thread_held): that wait needs only soft interrupts to end, and the
 * work may be an xcall function that issues a high-priority xcall itself,
 * which would wait for the lock its own CPU holds.
 */

/** Keep (+1) or let again (-1) waits on ci run thread work. */
export function thread_work_hold(ci: cpu_info, delta: 1 | -1): void {
  ci.ci_thread_held += delta;
}

/** Queue fn to run in thread context on ci (the current CPU). */
export function thread_defer(ci: cpu_info, fn: () => void): void {
  ci.ci_threadq.push(fn);
  if (!ci.ci_threadq_scheduled) {
    ci.ci_threadq_scheduled = true;
    md.defer(() => {
      ci.ci_threadq_scheduled = false;
      thread_run(ci);
    });
  }
}

/** Run ci's queued thread work; returns true if there was any. */
function thread_run(ci: cpu_info): boolean {
  if (ci.ci_threadq.length === 0) return false;
  for (const fn of ci.ci_threadq.splice(0)) {
    try {
      fn();
    } catch (e) {
      md.report(e);
    }
  }
  return true;
}

/** True if ci has thread work it may run now. @internal */
export function thread_work_p(ci: cpu_info): boolean {
  /* As NetBSD runs it in a kernel thread: never while the interrupted code has preemption disabled. */
  return ci.ci_threadq.length !== 0 && ci.ci_thread_held === 0 && ci.ci_nopreempt === 0 && thread_context_p(ci);
}

/* ---------------------------------------------------------------- waits */

/**
 * What a wait waits for: `done(x)` becomes true once it is over, and
 * `owing(x, out)` lists the CPUs it still waits for (for reports).  A
 * channel is a constant object and x its argument, so that a wait
 * allocates nothing.
 */
export interface wait_chan {
  done(x: number): boolean;
  owing(x: number, out: number[]): void;
}

/*
 * Wait codes: the caller of a wait, for its errors and for what a CPU is
 * doing while it waits (ACT_WAIT's argument, read by other CPUs: a fixed
 * table).  Each has the form to use on a thread that cannot block.
 */
export const W_IPI_WAIT = 0;
export const W_XC_WAIT = 1;
export const W_XC_BROADCAST = 2;
export const W_XC_UNICAST = 3;
export const W_XC_BARRIER = 4;
export const W_IPI_UNREGISTER = 5;
export const W_SOFTINT_DISESTABLISH = 6;
export const W_IPI_WAIT_ASYNC = 7;
export const W_XC_WAIT_ASYNC = 8;
export const W_XC_BROADCAST_ASYNC = 9;
export const W_XC_UNICAST_ASYNC = 10;
export const W_XC_BARRIER_ASYNC = 11;
export const W_IPI_UNREGISTER_ASYNC = 12;
export const W_SOFTINT_DISESTABLISH_ASYNC = 13;
/** The blocking calls, by wait code; each one's Promise form is its name + "_async". */
const WAIT_NAMES = [
  'ipi_wait', 'xc_wait', 'xc_broadcast', 'xc_unicast', 'xc_barrier', 'ipi_unregister', 'softint_disestablish',
  'ipi_wait_async', 'xc_wait_async', 'xc_broadcast_async', 'xc_unicast_async', 'xc_barrier_async', 'ipi_unregister_async',
  'softint_disestablish_async',
] as const;

/**
 * Every call that may block (wait code w, one of the first seven) checks
 * this first: on a thread that cannot block (a browser's main thread) it
 * throws, always, rather than only on the day it would have had to wait.
 */
export function block_check(w: number): void {
  if (md.can_block) return;
  const fn = wait_name(w);
  throw new IpiError(`${fn}: this thread cannot block (Atomics.wait is not allowed here, as on a browser's main thread): ` +
    `use ${fn}_async(), which returns a promise`);
}

/** The name of wait code w. */
export const wait_name = (w: number): string => WAIT_NAMES[w] ?? 'a wait';

/**
 * Poll the doorbell for ci's window; true if it rang (a hit).  A clock read
 * costs more than a spin, so the clock is read once per POLL_CLOCK_SPINS
 * + 1 spins.
 */
function doorbell_poll(ci: cpu_info, bell: number, seen: number): boolean {
  const window = ci.ci_pollwin;
  if (window === 0) return false;
  let deadline = 0;
  for (let spins = 1; ; spins++) {
    if (Atomics.load(i32, bell) !== seen) {
      poll_hit(ci);
      return true;
    }
    if ((spins & POLL_CLOCK_SPINS) !== 0) continue;
    const now = md.now();
    if (deadline === 0) deadline = now + window;
    else if (now >= deadline) {
      poll_miss(ci);
      return false;
    }
  }
}

/** Sleep on the doorbell (blocking), counted, and learn from how long it took. */
function doorbell_sleep(ci: cpu_info, bell: number, seen: number, ms: number): void {
  f64[evcnt_index(ci.ci_index, EV_SLEEP)]++;
  const t = md.now();
  md.sleep(bell, seen, ms);
  poll_slept(ci, md.now() - t);
}

/** The same without blocking. */
async function doorbell_sleep_async(ci: cpu_info, bell: number, seen: number, ms: number): Promise<void> {
  f64[evcnt_index(ci.ci_index, EV_SLEEP)]++;
  const p = md.sleep_async(bell, seen, ms);
  if (p === undefined) return;
  const t = md.now();
  await p;
  poll_slept(ci, md.now() - t);
}

/** Take everything a waiting or idle CPU must take; true if anything ran. */
export function intr_wait_service(ci: cpu_info): boolean {
  return intr_point_service(ci, true);
}

/**
 * The service of an interrupt point: hard interrupts (at any IPL if
 * `hardAnyIpl`, as in a wait or idle; below IPL_HIGH otherwise), soft ones
 * above the IPL, thread work in thread context unless `thread` is false.
 * True if anything ran.
 */
export function intr_point_service(ci: cpu_info, hardAnyIpl: boolean, thread = true): boolean {
  let ran = intr_service(ci, hardAnyIpl);
  if (thread && thread_work_p(ci)) ran = thread_run(ci) || ran;
  return ran;
}

/** True if intr_point_service(ci, hardAnyIpl, thread) would run something now. */
export function intr_pending(ci: cpu_info, hardAnyIpl: boolean, thread = true): boolean {
  if ((hardAnyIpl || ci.ci_ilevel < IPL_HIGH) && (Atomics.load(i32, ci.ci_ipipend) | Atomics.load(i32, ci.ci_mdipi)) !== 0) return true;
  return (ci.ci_softpending !== 0 && vec_soft_pending(ci)) || (thread && thread_work_p(ci));
}

function halted_error(w: number): IpiError {
  return new IpiError(`${wait_name(w)}: the machine was shut down while waiting`);
}

/** What CPU c is doing, in words (symbols named as CPU self numbers them: alike on every CPU). */
export function act_text(self: cpu_info, c: number): string {
  const st = Atomics.load(i32, cpu_word(c, C_STATE));
  if (st === CPUST_DEAD) return `dead (${cpu_death_record(c).reason})`;
  if (st === CPUST_HALTED) return 'halted';
  const [kind, arg] = act_read(c);
  switch (kind) {
    case ACT_THREAD: return 'running thread code that reaches no interrupt point';
    case ACT_IDLE: return 'in its event loop (asleep, or running tasks that reach no interrupt point)';
    case ACT_WAIT: return `waiting in ${wait_name(arg)}`;
    case ACT_IPI: return `in IPI handler ${sym_name(self, arg)}`;
    case ACT_MSG: return `in cross-call function ${sym_name(self, arg)}`;
    case ACT_SOFT: return `in soft interrupt handler ${sym_name(self, arg)}`;
    case ACT_XCALL: return `in xcall function ${sym_name(self, arg)}`;
    default: return 'in an unknown state';
  }
}

/**
 * What the CPUs a wait still waits for are doing, sampled each time it
 * wakes without being done (made then, so the fast path never allocates):
 * for each, its activity and when it was first seen doing it, so that a
 * report can say "for at least" that long.  It also makes the timeout
 * error and the stall report.
 */
class wait_watch {
  readonly seen = new Map<number, { act: string; since: number }>();
  #last = -Infinity;
  /** The stall report has been printed. */
  stalled = false;

  constructor(readonly ci: cpu_info, readonly chan: wait_chan, readonly x: number, readonly start: number) {}

  /** Look at the CPUs still owed again (at most once a millisecond: a polling wait comes here often). */
  #sample(now: number): void {
    if (now - this.#last < 1) return;
    this.#last = now;
    const cpus: number[] = [];
    this.chan.owing(this.x, cpus);
    for (const c of cpus) {
      const act = act_read(c).join();
      if (this.seen.get(c)?.act !== act) this.seen.set(c, { act, since: now });
    }
  }

  /** The CPUs still owed and what each is doing. */
  #report(now: number): IpiCpuState[] {
    this.#last = -Infinity;
    this.#sample(now);
    const cpus: number[] = [];
    this.chan.owing(this.x, cpus);
    return cpus.map((cpu) => {
      const since = this.seen.get(cpu)!.since;
      return { cpu, doing: act_text(this.ci, cpu), forMs: since < now ? Math.round(now - since) : undefined };
    });
  }

  /** Sample; throw the timeout error once past `timeout`; print the stall report once past stall_ms. */
  check(w: number, now: number, timeout: number): void {
    const ci = this.ci;
    this.#sample(now);
    const waited = now - this.start;
    if (waited >= timeout) {
      f64[evcnt_index(ci.ci_index, EV_TIMEOUT)]++;
      throw timeout_error(w, timeout, this.#report(now));
    }
    if (!this.stalled && diagnostic && timeout === Infinity && waited >= stall_ms) {
      this.stalled = true;
      stall_report(ci, w, this.#report(now), waited);
    }
  }
}

/**
 * Samples a wait takes before its deadline or stall report (its sleeps are
 * cut in this many slices at least), so that a report can say how long a
 * CPU has been doing what it does.
 */
const WAIT_SAMPLES = 8;

/** How long a wait may sleep now (ms): to its next sample, deadline or stall report, at most SLEEP_MS. */
function sleep_ms(timeout: number, waited: number, watch: wait_watch | undefined): number {
  const stall = watch?.stalled || !diagnostic ? Infinity : stall_ms;
  const horizon = Math.min(timeout, stall);
  return Math.max(0, Math.min(SLEEP_MS, horizon / WAIT_SAMPLES, timeout - waited, stall - waited));
}

function states_text(states: readonly IpiCpuState[]): string {
  if (states.length === 0) return 'no CPU is named as owing it';
  return states.map((s) => `cpu${s.cpu} ${s.doing}${s.forMs !== undefined ? ` (for at least ${s.forMs} ms)` : ''}`).join('; ');
}

function cpus_text(states: readonly IpiCpuState[]): string {
  return states.length === 0 ? '' : ` for ${states.map((s) => `cpu${s.cpu}`).join(', ')}`;
}

function timeout_error(w: number, timeout: number, states: IpiCpuState[]): IpiTimeoutError {
  return new IpiTimeoutError(`${wait_name(w)}: timed out after ${timeout} ms waiting${cpus_text(states)}: ${states_text(states)}`,
    timeout, states);
}

/** A diagnostic wait with no timeout has waited stall_ms: say once which CPUs it waits for. */
function stall_report(ci: cpu_info, w: number, states: IpiCpuState[], waited: number): void {
  console.warn(`ipi: ${wait_name(w)} on cpu${ci.ci_index} has waited ${Math.round(waited)} ms${cpus_text(states)}: ` +
    `${states_text(states)}; still waiting (boot option stallReport)`);
}

/** Validate a wait's options: undefined, or an object with only the keys allowed. */
export function wait_options(fn: string, options: unknown, allowed: readonly string[]): { timeout?: unknown; signal?: unknown } {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) throw typeError(fn, 'options', 'an object', options);
  for (const k of Object.keys(options)) {
    if (!allowed.includes(k)) throw new TypeError(`${fn}: unknown option ${JSON.stringify(k)} (options are ${allowed.join(', ')})`);
  }
  return options as { timeout?: unknown; signal?: unknown };
}

/** Validate options.signal. */
export function signal_check(fn: string, signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw typeError(fn, 'options.signal', 'an AbortSignal', signal);
  return signal;
}

/** Validate a wait's timeout (milliseconds; undefined for none). */
export function timeout_check(fn: string, timeout: unknown): number {
  if (timeout === undefined) return Infinity;
  if (typeof timeout !== 'number') throw new TypeError(`${fn}: options.timeout must be a number of milliseconds, got ${typeof timeout}`);
  if (!(timeout >= 0)) throw new RangeError(`${fn}: options.timeout must be a number of milliseconds >= 0, got ${timeout}`);
  return timeout;
}

/**
 * Block until chan.done(x), servicing this CPU's interrupts meanwhile.
 * `w` is the wait code of the caller.  After `timeout` ms it throws an
 * IpiTimeoutError naming the CPUs that have not answered; what it waited
 * for is untouched, so a later wait can take it up.
 */
export function intr_wait(w: number, chan: wait_chan, x: number, timeout: number): void {
  const ci = cpu_self(wait_name(w));
  const bell = ci.ci_doorbell;
  const act = act_enter(ci, ACT_WAIT, w);
  try {
    const window = ci.ci_pollwin;
    let spins = 0;
    let start = 0;
    let polling = window > 0;
    let watch: wait_watch | undefined;
    for (;;) {
      const seen = Atomics.load(i32, bell);
      if (chan.done(x)) {
        if (polling && spins !== 0) poll_hit(ci);
        return;
      }
      if (intr_wait_service(ci)) continue;
      if (machine_halted()) throw halted_error(w);
      /* Poll done(x) itself, not only the doorbell: the ring comes after the change, a little later. */
      if (polling && (++spins & POLL_CLOCK_SPINS) !== 0) continue;
      const now = md.now();
      if (start === 0) start = now;
      const waited = now - start;
      if (watch !== undefined || waited >= timeout) {
        watch ??= new wait_watch(ci, chan, x, start);
        watch.check(w, now, timeout);
      }
      if (polling) {
        if (waited < window) continue;
        polling = false;
        poll_miss(ci);
      }
      block_check(w);
      doorbell_sleep(ci, bell, seen, sleep_ms(timeout, waited, watch));
      /* Woken and not done: from now on, watch who owes it (the fast path never gets here). */
      watch ??= new wait_watch(ci, chan, x, start);
    }
  } finally {
    act_leave(ci, act);
  }
}

/**
 * intr_wait as a promise: works on any thread and keeps its event loop
 * running.  `signal` aborts it: it rejects with the signal's reason.
 * Its loop is intr_wait's, step for step, written out again rather than
 * shared: the state a shared step would carry (spins, start, polling,
 * watch) would be an object per wait, and ipi_wait's fast path allocates
 * nothing.  Change both together.
 */
export async function intr_wait_async(w: number, chan: wait_chan, x: number, timeout: number, signal: AbortSignal | undefined): Promise<void> {
  const ci = cpu_self(wait_name(w));
  const bell = ci.ci_doorbell;
  signal?.throwIfAborted();
  /* An abort rings our own doorbell: the sleep below returns and sees it. */
  const onAbort = (): void => cpu_ring(ci.ci_index);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const window = ci.ci_pollwin;
    let spins = 0;
    let start = 0;
    let polling = window > 0;
    let watch: wait_watch | undefined;
    for (;;) {
      if (machine_halted()) throw halted_error(w);
      const seen = Atomics.load(i32, bell);
      /* Again after reading the doorbell: a halt after this point rings it, so the sleep below returns. */
      if (machine_halted()) throw halted_error(w);
      if (chan.done(x)) {
        if (polling && spins !== 0) poll_hit(ci);
        return;
      }
      signal?.throwIfAborted();
      if (intr_wait_service(ci)) continue;
      /* Poll before the first sleep, as the blocking wait does: this thread's event loop waits meanwhile. */
      if (polling && (++spins & POLL_CLOCK_SPINS) !== 0) continue;
      const now = md.now();
      if (start === 0) start = now;
      const waited = now - start;
      if (watch !== undefined || waited >= timeout) {
        watch ??= new wait_watch(ci, chan, x, start);
        watch.check(w, now, timeout);
      }
      if (polling) {
        if (waited < window) continue;
        polling = false;
        poll_miss(ci);
      }
      await doorbell_sleep_async(ci, bell, seen, sleep_ms(timeout, waited, watch));
      watch ??= new wait_watch(ci, chan, x, start);
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/* ----------------------------------------------------------------- idle */

function yield_task(): Promise<void> {
  return new Promise((resolve) => md.defer(resolve));
}

/**
 * The idle loop: service interrupts whenever the doorbell rings, poll it for
 * the poll window after activity (halt-polling), then sleep on it without
 * blocking the event loop.  Returns when the machine halts.
 */
export async function cpu_idle(ci: cpu_info, poll: boolean): Promise<void> {
  const bell = ci.ci_doorbell;
  let burst = 0;
  act_enter(ci, ACT_IDLE, 0);
  for (;;) {
    if (machine_halted()) return;
    const seen = Atomics.load(i32, bell);
    /* Again after reading the doorbell: a halt after this point rings it, so the sleep below returns. */
    if (machine_halted()) return;
    if (intr_wait_service(ci)) {
      if (++burst < IDLE_BURST) continue;
      burst = 0;
      await yield_task();
      continue;
    }
    if (burst !== 0 && poll && doorbell_poll(ci, bell, seen)) continue;
    burst = 0;
    await doorbell_sleep_async(ci, bell, seen, Infinity);
  }
}
