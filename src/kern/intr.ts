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
import { cpu_info, curcpu, ipl_check, IPL_HIGH, IPL_NONE } from './cpu.js';
import { IpiError } from './errors.js';
import { ipi_cpu_handler } from './ipi.js';
import { C_DOORBELL, C_MDIPI, cpu_word, EV_DOORBELL, EV_POLL_HIT, EV_SLEEP, evcnt_index, f64, H_HALT, i32, XC_HIGHPRI, XC_LOWPRI } from './layout.js';
import { md } from './md.js';
import { softint_dispatch } from './softint.js';
import { xc_vector } from './xcall.js';

/** Longest single sleep of a wait; waits re-check the machine's state after it. */
const SLEEP_MS = 1000;
/** Service passes an idle CPU runs back to back before it lets its event loop run other tasks (a yield allocates). */
const IDLE_BURST = 1024;

/** Polls read the clock once per this many spins + 1 (a power of two less one). */
const POLL_CLOCK_SPINS = 255;

/** How long (ms) an idle or waiting CPU polls before it sleeps; set at boot. */
let poll_ms = 0;

export function intr_init(pollMicros: number): void {
  poll_ms = pollMicros / 1000;
}

/** Ring CPU `target`'s doorbell: it re-examines its state. */
export function cpu_ring(target: number): void {
  const bell = cpu_word(target, C_DOORBELL);
  Atomics.add(i32, bell, 1);
  md.wake(bell);
}

/** Count a doorbell rung by `ci`. */
export function cpu_ring_counted(ci: cpu_info, target: number): void {
  f64[evcnt_index(ci.ci_index, EV_DOORBELL)]!++;
  cpu_ring(target);
}

/** True once the machine halts (or this CPU has already left it). */
export function machine_halted(): boolean {
  return i32.length === 0 || Atomics.load(i32, H_HALT) !== 0;
}

/**
 * The service pass: hard handlers at IPL_HIGH, then soft interrupts above
 * the interrupted level.  `hardAnyIpl` lets a wait take hard interrupts even
 * at IPL_HIGH.  Returns true if it ran anything.
 */
export function intr_service(ci: cpu_info, hardAnyIpl: boolean): boolean {
  let ran = (hardAnyIpl || ci.ci_ilevel < IPL_HIGH) && intr_hard(ci);
  if (ci.ci_softpending !== 0 && softint_dispatch(ci)) ran = true;
  return ran;
}

/*
 * Machine-dependent vectors: interrupts of the library's own, beside the
 * registered IPIs (NetBSD's x86 has its own IPI for xcalls the same way), so
 * they take no id from ipi_register().
 */
export const VEC_XCALL_LOW = 1 << XC_LOWPRI;
export const VEC_XCALL_HIGH = 1 << XC_HIGHPRI;

/** Raise vector `vec` on CPU `target`; ring it if the vector was not pending. */
export function intr_send_vector(self: cpu_info, target: number, vec: number): void {
  if ((Atomics.or(i32, cpu_word(target, C_MDIPI), vec) & vec) === 0) cpu_ring_counted(self, target);
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
    const vec = Atomics.exchange(i32, ci.ci_mdipi, 0);
    if (vec & VEC_XCALL_LOW) xc_vector(XC_LOWPRI);
    if (vec & VEC_XCALL_HIGH) xc_vector(XC_HIGHPRI);
    ipi_cpu_handler(ci);
  } finally {
    ci.ci_idepth--;
    ci.ci_ilevel = s;
  }
  return true;
}

/* ---------------------------------------------------------------- spl(9) */

/** splhigh: raise the IPL to IPL_HIGH; returns the previous level for splx(). */
export function splhigh(): number {
  return splraiseipl(IPL_HIGH);
}

/**
 * splraiseipl: raise the IPL to at least `ipl`; returns the previous level.
 * => ipl must be an IPL_* level.
 */
export function splraiseipl(ipl: number): number {
  ipl_check('splraiseipl', ipl);
  const ci = curcpu();
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
  ipl_check('splx', s);
  const ci = curcpu();
  const old = ci.ci_ilevel;
  ci.ci_ilevel = s;
  if (s < old) intr_service(ci, false);
}

/** spl0: lower the IPL to IPL_NONE, taking pending interrupts. */
export function spl0(): void {
  splx(IPL_NONE);
}

/**
 * preempt_point: an explicit interrupt point for long computations: takes the
 * interrupts the current IPL admits and, in thread context, deferred thread
 * work (low-priority cross-calls).
 */
export function preempt_point(): void {
  const ci = curcpu();
  intr_service(ci, false);
  if (thread_context_p(ci)) thread_run();
}

/* ---------------------------------------------------------- thread work */

/*
 * Work that must run in thread context on this CPU (xcall(9) at low
 * priority): a task of the event loop, or earlier, inside a wait or
 * preempt_point() that this CPU reaches in thread context.
 */
const threadq: (() => void)[] = [];
let threadq_scheduled = false;

function thread_context_p(ci: cpu_info): boolean {
  return ci.ci_idepth === 0 && ci.ci_softdepth === 0 && ci.ci_ilevel === IPL_NONE;
}

/** Queue fn to run in thread context on this CPU. */
export function thread_defer(fn: () => void): void {
  threadq.push(fn);
  if (!threadq_scheduled) {
    threadq_scheduled = true;
    md.defer(thread_task);
  }
}

function thread_task(): void {
  threadq_scheduled = false;
  thread_run();
}

/** Run the queued thread work; returns true if there was any. */
function thread_run(): boolean {
  if (threadq.length === 0) return false;
  for (const fn of threadq.splice(0)) {
    try {
      fn();
    } catch (e) {
      md.report(e);
    }
  }
  return true;
}

export function thread_reset(): void {
  threadq.length = 0;
  threadq_scheduled = false;
}

/* ---------------------------------------------------------------- waits */

/**
 * Poll the doorbell for the poll window (halt-polling); true, counted, if it
 * rang.  A clock read allocates and a spin does not, so the clock is read
 * only now and then (poll_deadline).
 */
function doorbell_poll(ci: cpu_info, bell: number, seen: number): boolean {
  let deadline = 0;
  for (let spins = 1; ; spins++) {
    if (Atomics.load(i32, bell) !== seen) {
      f64[evcnt_index(ci.ci_index, EV_POLL_HIT)]!++;
      return true;
    }
    if ((spins & POLL_CLOCK_SPINS) === 0 && (deadline = poll_deadline(deadline)) === 0) return false;
  }
}

/**
 * The poll window's clock, read once per POLL_CLOCK_SPINS + 1 spins: the
 * deadline (started at the first call, deadline 0), or 0 once it has passed.
 */
function poll_deadline(deadline: number): number {
  const now = md.now();
  if (deadline === 0) return now + poll_ms;
  return now < deadline ? deadline : 0;
}

/** Take everything a waiting CPU must take; true if anything ran. */
function intr_wait_service(ci: cpu_info): boolean {
  let ran = intr_service(ci, true);
  if (threadq.length !== 0 && thread_context_p(ci)) ran = thread_run() || ran;
  return ran;
}

/**
 * Block until done(x) is true, servicing this CPU's interrupts meanwhile.
 * `done` is a top-level function and x its argument, so that a wait
 * allocates nothing.  `fn` names the caller and `alt` its non-blocking
 * alternative, for the error on a thread that cannot block.
 */
export function intr_wait(fn: string, alt: string, done: (x: number) => boolean, x: number): void {
  const ci = curcpu();
  const bell = cpu_word(ci.ci_index, C_DOORBELL);
  let spins = 0;
  let deadline = 0;
  for (;;) {
    const seen = Atomics.load(i32, bell);
    if (done(x)) return;
    if (intr_wait_service(ci)) continue;
    if (machine_halted()) throw new IpiError(`${fn}: the machine was shut down while waiting`);
    /* Poll done(x) itself, not only the doorbell: the ring comes after the change, a little later. */
    if (poll_ms > 0 && (++spins & POLL_CLOCK_SPINS) !== 0) continue;
    if (poll_ms > 0 && (deadline = poll_deadline(deadline)) > 0) continue;
    if (!md.can_block) {
      throw new IpiError(`${fn}: this thread cannot block (Atomics.wait is not allowed here, as on a browser's main thread); use ${alt}`);
    }
    f64[evcnt_index(ci.ci_index, EV_SLEEP)]!++;
    md.sleep(bell, seen, SLEEP_MS);
  }
}

/** The same wait as a promise: works on any thread and keeps its event loop running. */
export async function intr_wait_async(fn: string, done: (x: number) => boolean, x: number): Promise<void> {
  const ci = curcpu();
  const bell = cpu_word(ci.ci_index, C_DOORBELL);
  for (;;) {
    if (machine_halted()) throw new IpiError(`${fn}: the machine was shut down while waiting`);
    const seen = Atomics.load(i32, bell);
    /* Again after reading the doorbell: a halt after this point rings it, so the sleep below returns. */
    if (machine_halted()) throw new IpiError(`${fn}: the machine was shut down while waiting`);
    if (done(x)) return;
    if (intr_wait_service(ci)) continue;
    f64[evcnt_index(ci.ci_index, EV_SLEEP)]!++;
    const p = md.sleep_async(bell, seen, SLEEP_MS);
    if (p !== undefined) await p;
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
  const bell = cpu_word(ci.ci_index, C_DOORBELL);
  let burst = 0;
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
    if (burst !== 0 && poll && poll_ms > 0 && doorbell_poll(ci, bell, seen)) continue;
    burst = 0;
    f64[evcnt_index(ci.ci_index, EV_SLEEP)]!++;
    const p = md.sleep_async(bell, seen, Infinity);
    if (p !== undefined) await p;
  }
}

