/*
 * xcall(9): cross-calls with tickets, built on ipi(9) and softint(9).
 *
 * Background.  xc_broadcast() runs a function on every CPU, xc_unicast() on
 * one; each returns a ticket, and xc_wait(ticket) returns once the call has
 * completed everywhere.  Low priority runs the function in thread context on
 * each target (a task of its event loop); XC_HIGHPRI runs it in interrupt
 * context, as a soft interrupt at the level XC_HIGHPRI_IPL() names
 * (IPL_SOFTSERIAL by default), reached through an IPI.
 *
 * Implementation, as NetBSD's.  Each priority class has one state in kernel
 * memory: a lock, the function and its two arguments, and two counters:
 * headp (runs requested) and donep (runs completed).  One call per class is
 * in flight at a time: a caller takes the lock, waits until donep == headp,
 * fills in the call, adds its number of targets to headp and marks each
 * target pending; the ticket is the new headp.  Each target runs the call
 * once and increments donep; xc_wait(ticket) waits for donep >= ticket.
 * Targets are told through the machine-dependent vectors of intr.ts (as
 * NetBSD's x86 has an IPI of its own for xcalls), so xcalls take no id from
 * ipi_register().
 *
 * Counters are 32-bit and compared with wrap-around arithmetic.  The
 * ticket's lowest bit tells the class.
 *
 * Where a caller may be.  Issuing and waiting both wait until every target,
 * the caller included, has run its part: in thread context for low
 * priority, in a soft interrupt for high priority.  So neither may be done
 * in interrupt context or at a raised IPL (the caller's own part could not
 * run), nor from an xcall function of the same class (it would wait for
 * itself): each is asserted.
 */
import { arg_check, arg_decode, arg_encode } from './arg.js';
import { ci_check, cpu_info, cpu_intr_p, cpu_softintr_p, curcpu, diagnostic, IPL_NONE, IPL_SOFTBIO, IPL_SOFTCLOCK, IPL_SOFTNET, IPL_SOFTSERIAL, ncpu } from './cpu.js';
import { KASSERT, rangeError, typeError } from './errors.js';
import { cpu_ring, intr_send_vector, intr_wait, intr_wait_async, thread_defer, VEC_XCALL_HIGH, VEC_XCALL_LOW } from './intr.js';
import { C_XCPEND, cell_xcall, cpu_word, EV_INTR_ERROR, EV_XC_HIGH, EV_XC_LOW, evcnt_index, f64, i32, X_DONEP, X_FUNC, X_HEADP, X_IPL, X_LOCK, XC_HIGHPRI as PRI_HIGH, XC_LOWPRI as PRI_LOW, xcall_word } from './layout.js';
import { md } from './md.js';
import { SOFTINT_BIO, SOFTINT_CLOCK, SOFTINT_NET, SOFTINT_SERIAL, softint_establish_reserved, softint_schedule_reserved } from './softint.js';
import { sym_func, sym_id } from './symbol.js';

/** An xcall function: a kernel symbol taking two arguments. */
export type xcfunc_t<A1 = unknown, A2 = unknown> = (arg1: A1, arg2: A2) => void;

/** Run in interrupt context (a soft interrupt reached through an IPI). */
export const XC_HIGHPRI = 0x01;
const XC_IPL_SHIFT = 8;
const XC_IPL_MASK = 0xff00;

/**
 * XC_HIGHPRI_IPL: high priority at a given soft IPL.
 * => ipl must be IPL_SOFTCLOCK, IPL_SOFTBIO, IPL_SOFTNET or IPL_SOFTSERIAL
 *    (NetBSD panics "Invalid IPL" for anything else).
 */
export function XC_HIGHPRI_IPL(ipl: number): number {
  const fn = 'XC_HIGHPRI_IPL';
  if (typeof ipl !== 'number') throw typeError(fn, 'ipl', 'a number', ipl);
  if (ipl === 0 || xc_level(ipl) < 0) throw rangeError(fn, 'ipl', 'IPL_SOFTCLOCK, IPL_SOFTBIO, IPL_SOFTNET or IPL_SOFTSERIAL', ipl);
  return XC_HIGHPRI | ((ipl << XC_IPL_SHIFT) & XC_IPL_MASK);
}

/** The softint level for the IPL field of flags (0 means the default, IPL_SOFTSERIAL); -1 if invalid. */
function xc_level(ipl: number): number {
  switch (ipl) {
    case 0: case IPL_SOFTSERIAL: return SOFTINT_SERIAL;
    case IPL_SOFTNET: return SOFTINT_NET;
    case IPL_SOFTBIO: return SOFTINT_BIO;
    case IPL_SOFTCLOCK: return SOFTINT_CLOCK;
    default: return -1;
  }
}

/** Set up the reserved soft interrupts (boot, CPU 0). @internal */
export function xc_init(): void {
  for (const level of [SOFTINT_CLOCK, SOFTINT_BIO, SOFTINT_NET, SOFTINT_SERIAL]) softint_establish_reserved(level, xc_highpri_softint);
}

/* ---------------------------------------------------------- the lock */

const LOCK_FREE = 0, LOCK_HELD = 1, LOCK_CONTENDED = 2;

function xc_trylock(pri: number): boolean {
  const w = xcall_word(pri, X_LOCK);
  if (Atomics.compareExchange(i32, w, LOCK_FREE, LOCK_HELD) === LOCK_FREE) return true;
  /* Tell the holder someone waits, so the unlock rings everyone. */
  Atomics.compareExchange(i32, w, LOCK_HELD, LOCK_CONTENDED);
  return Atomics.compareExchange(i32, w, LOCK_FREE, LOCK_CONTENDED) === LOCK_FREE;
}

function xc_unlock(pri: number): void {
  if (Atomics.exchange(i32, xcall_word(pri, X_LOCK), LOCK_FREE) === LOCK_CONTENDED) xc_ring_all();
}

function xc_ring_all(): void {
  const me = curcpu().ci_index;
  for (let c = 0; c < ncpu; c++) if (c !== me) cpu_ring(c);
}

/** Wait predicate: the class has no call in flight. */
function xc_idle(pri: number): boolean {
  return Atomics.load(i32, xcall_word(pri, X_HEADP)) === Atomics.load(i32, xcall_word(pri, X_DONEP));
}

/* ---------------------------------------------------------- issuing */

/*
 * Per CPU: xcall functions of each class running on this CPU now.  An
 * xcall function that issued an xcall of its own class would wait for a
 * call that cannot complete before it returns.
 */
const xc_active = new Int32Array(2);

/** What every caller that waits for an xcall must be: thread context, at IPL_NONE. */
function xc_wait_check(fn: string, self: cpu_info, what: string): void {
  KASSERT(!cpu_intr_p() && !cpu_softintr_p(), fn, '!cpu_intr_p() && !cpu_softintr_p()', what);
  KASSERT(self.ci_ilevel === IPL_NONE, fn, 'curcpu()->ci_ilevel == IPL_NONE',
    "xcalls wait for every CPU's part, this one's included, which cannot run at a raised IPL: splx() first", self.ci_ilevel);
}

function xc_issue(fn: string, flags: number, func: unknown, arg1: unknown, arg2: unknown, target: cpu_info | null): number {
  if (typeof flags !== 'number') throw typeError(fn, 'flags', 'a number', flags);
  const level = xc_level((flags & XC_IPL_MASK) >> XC_IPL_SHIFT);
  if (!Number.isInteger(flags) || (flags & ~(XC_HIGHPRI | XC_IPL_MASK)) !== 0 || ((flags & XC_IPL_MASK) !== 0 && !(flags & XC_HIGHPRI)) ||
      level < 0) {
    throw rangeError(fn, 'flags', '0, XC_HIGHPRI or XC_HIGHPRI_IPL(ipl)', flags);
  }
  const self = curcpu();
  const pri = flags & XC_HIGHPRI ? PRI_HIGH : PRI_LOW;
  if (diagnostic) {
    xc_wait_check(fn, self, 'xcalls cannot be issued from interrupt context');
    KASSERT(xc_active[pri] === 0, fn, pri === PRI_HIGH ? 'xc_active[XC_HIGHPRI] == 0' : 'xc_active[XC_LOWPRI] == 0',
      'an xcall function cannot issue an xcall of its own priority: it would wait for itself');
  }
  const sym = sym_id(fn, 'func', func);
  arg_check(fn, 'arg1', arg1);
  arg_check(fn, 'arg2', arg2);
  const t = target === null ? -1 : ci_check(fn, 'ci', target);

  intr_wait(fn, `${fn} on a thread that can block`, xc_trylock, pri);
  let where: number;
  try {
    /* One call per class in flight: wait for the previous one (servicing, so our part of it runs). */
    intr_wait(fn, `${fn} on a thread that can block`, xc_idle, pri);
    arg_encode(fn, 'arg1', cell_xcall(pri, 0), arg1);
    arg_encode(fn, 'arg2', cell_xcall(pri, 1), arg2);
    i32[xcall_word(pri, X_FUNC)] = sym;
    i32[xcall_word(pri, X_IPL)] = pri === PRI_HIGH ? level : 0;
    for (let c = 0; c < ncpu; c++) if (t < 0 || c === t) Atomics.store(i32, cpu_word(c, C_XCPEND + pri), 1);
    /* Publish: targets read the call after they see the new headp or their pending flag. */
    where = Atomics.add(i32, xcall_word(pri, X_HEADP), t < 0 ? ncpu : 1) + (t < 0 ? ncpu : 1) | 0;
  } finally {
    xc_unlock(pri);
  }
  f64[evcnt_index(self.ci_index, pri === PRI_HIGH ? EV_XC_HIGH : EV_XC_LOW)]!++;
  const vec = pri === PRI_HIGH ? VEC_XCALL_HIGH : VEC_XCALL_LOW;
  for (let c = 0; c < ncpu; c++) {
    if (t >= 0 && c !== t) continue;
    if (c === self.ci_index) xc_vector(pri);
    else intr_send_vector(self, c, vec);
  }
  return where * 2 + pri;
}

/**
 * xc_broadcast: run func(arg1, arg2) on every CPU, the caller's included.
 * Returns a ticket for xc_wait().
 * => flags: 0 (low priority, thread context) or XC_HIGHPRI / XC_HIGHPRI_IPL(ipl).
 * => Not from interrupt context, at IPL_NONE, nor from an xcall function of
 *    the same priority; func a kernel symbol; args sendable.
 */
export function xc_broadcast<A1, A2>(flags: number, func: xcfunc_t<A1, A2>, arg1: A1, arg2: A2): number {
  return xc_issue('xc_broadcast', flags, func, arg1, arg2, null);
}

/**
 * xc_unicast: run func(arg1, arg2) on CPU ci (which may be the caller).
 * Returns a ticket for xc_wait().
 * => As xc_broadcast.
 */
export function xc_unicast<A1, A2>(flags: number, func: xcfunc_t<A1, A2>, arg1: A1, arg2: A2, ci: cpu_info): number {
  if (!(ci instanceof cpu_info)) throw typeError('xc_unicast', 'ci', 'a cpu_info (curcpu(), cpu_lookup())', ci);
  return xc_issue('xc_unicast', flags, func, arg1, arg2, ci);
}

function ticket_check(fn: string, ticket: unknown): void {
  if (typeof ticket !== 'number') throw typeError(fn, 'ticket', 'a number from xc_broadcast or xc_unicast', ticket);
  /* A ticket is a 32-bit count times 2 plus the class. */
  if (!Number.isSafeInteger(ticket) || ticket < -(2 ** 32) || ticket >= 2 ** 32) {
    throw rangeError(fn, 'ticket', 'a ticket from xc_broadcast or xc_unicast', ticket);
  }
}

/** Wait predicate: the call with this ticket has completed (donep has reached it). */
function xc_done(ticket: number): boolean {
  const pri = ticket & 1;
  const where = (ticket - pri) / 2;
  return ((Atomics.load(i32, xcall_word(pri, X_DONEP)) - where) | 0) >= 0;
}

/**
 * xc_wait: wait until the call with this ticket has completed on every
 * target.  Runs this CPU's own part meanwhile.
 * => Not from interrupt context, at IPL_NONE; blocks (use xc_wait_async
 *    where a thread cannot).
 */
export function xc_wait(ticket: number): void {
  ticket_check('xc_wait', ticket);
  if (diagnostic) xc_wait_check('xc_wait', curcpu(), 'xc_wait cannot wait in interrupt context');
  intr_wait('xc_wait', 'xc_wait_async()', xc_done, ticket);
}

/** xc_wait as a promise, for any thread; rejects rather than throws. */
export async function xc_wait_async(ticket: number): Promise<void> {
  ticket_check('xc_wait_async', ticket);
  await intr_wait_async('xc_wait_async', xc_done, ticket);
}

/**
 * xc_barrier: a broadcast of nothing, waited for: every CPU has passed a
 * point of the given priority, so what this CPU wrote before it is seen by
 * every CPU after it.
 * => As xc_broadcast and xc_wait.
 */
export function xc_barrier(flags: number): void {
  xc_wait(xc_issue('xc_barrier', flags, xc_nullop, undefined, undefined, null));
}

export function xc_nullop(): void {}

/* ---------------------------------------------------------- targets */

/** The vector handler (interrupt context): start this CPU's part of the call. @internal */
export function xc_vector(pri: number): void {
  if (pri === PRI_LOW) thread_defer(xc_lowpri_run);
  else softint_schedule_reserved(i32[xcall_word(PRI_HIGH, X_IPL)]!);
}

function xc_lowpri_run(): void {
  xc_run(PRI_LOW);
}

/** The reserved soft interrupt handler of high-priority xcalls. @internal */
export function xc_highpri_softint(): void {
  xc_run(PRI_HIGH);
}

/** Run this CPU's part of the call in flight, once. */
function xc_run(pri: number): void {
  const self = curcpu();
  if (Atomics.exchange(i32, cpu_word(self.ci_index, C_XCPEND + pri), 0) === 0) return;
  xc_active[pri]!++;
  try {
    const func = sym_func(i32[xcall_word(pri, X_FUNC)]!) as xcfunc_t;
    func(arg_decode(cell_xcall(pri, 0)), arg_decode(cell_xcall(pri, 1)));
  } catch (e) {
    f64[evcnt_index(self.ci_index, EV_INTR_ERROR)]!++;
    md.report(e);
  } finally {
    xc_active[pri]!--;
    /* Release: the function's effects are visible to whoever sees the new donep. */
    const done = Atomics.add(i32, xcall_word(pri, X_DONEP), 1) + 1;
    if (done === Atomics.load(i32, xcall_word(pri, X_HEADP))) xc_ring_all();
  }
}

