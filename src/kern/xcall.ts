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
 * fills in the call, and adds its number of targets to headp, which issues
 * it; the ticket is the new headp.  Each target runs the call once and
 * increments donep; xc_wait(ticket) waits for donep >= ticket.  Targets are
 * told through the machine-dependent vectors of intr.ts (as NetBSD's x86
 * has an IPI of its own for xcalls), so xcalls take no id from
 * ipi_register().  Counters are 32-bit and compared with wrap-around
 * arithmetic.  The ticket's lowest bit tells the class.
 *
 * Claims.  Each call has a record (one of XC_HISTORY per class, reused in
 * turn) holding its targets and the targets whose part failed.  A target's
 * part is claimed by a compare-and-swap of that CPU's "claimed" word from
 * an older headp to the call's, and completed by an exchange of its
 * "completed" word to the call's headp: only the exchange that changes it
 * counts the part done.  The target itself claims its part to run it.  If
 * the CPU dies, whoever writes it off (the death handler, or the issuer
 * that saw it die) completes its part as failed, claiming it first if the
 * CPU had not.  Either way each part completes exactly once, so a call
 * never waits for the dead.
 *
 * Failures.  A function that throws, or returns a promise that rejects, is
 * recorded (failure.ts) and xc_wait() throws it, as ipi_wait() does.  The
 * failures of a call nobody waited for are delivered as 'error' events when
 * its record is reused.
 *
 * Where a caller may be.  Issuing and waiting both wait until every target,
 * the caller included, has run its part: in thread context for low
 * priority, in a soft interrupt for high priority.  So neither may be done
 * in interrupt context or at a raised IPL (the caller's own part could not
 * run), nor from an xcall function of the same class (it would wait for
 * itself): each is asserted.  A low-priority function may issue and wait
 * for a high-priority call (NetBSD allows it: it runs in a thread), so a
 * CPU that holds the high-priority lock runs no thread work in its waits
 * (intr.ts): that work could be such a function, waiting for the lock its
 * own CPU holds.
 */
import { arg_check, arg_decode, arg_encode } from './arg.js';
import {
  act_enter, act_leave, ci_check, cpu_dead_p, cpu_info, cpu_intr_p, cpu_self, cpu_softintr_p, diagnostic, IPL_NONE, IPL_SOFTBIO, IPL_SOFTCLOCK,
  IPL_SOFTNET, IPL_SOFTSERIAL, kcpuset_running, ncpu,
} from './cpu.js';
import { failures_error, IpiCpuDeadError, KASSERT, rangeError, typeError } from './errors.js';
import { cpu_dead_error, fail_collect, fail_kind, fail_note, rejected_failure, set_add, thenable_p } from './failure.js';
import {
  block_check, cpu_ring, intr_establish_md, intr_send_vector, intr_wait, intr_wait_async, signal_check, thread_defer, thread_work_hold,
  timeout_check, VEC_XCALL_HIGH, VEC_XCALL_LOW, W_SOFTINT_DISESTABLISH, W_SOFTINT_DISESTABLISH_ASYNC, W_XC_BARRIER, W_XC_BARRIER_ASYNC,
  W_XC_BROADCAST, W_XC_BROADCAST_ASYNC, W_XC_UNICAST, W_XC_UNICAST_ASYNC, W_XC_WAIT, W_XC_WAIT_ASYNC, wait_name, wait_options,
  type wait_chan,
} from './intr.js';
import {
  ACT_XCALL, C_XCDONE, C_XCSEEN, cell_xcall, cpu_word, ERR_XCALL, EV_XC_HIGH, EV_XC_LOW, evcnt_index, f64, H_DEADGEN, i32, NW, X_CALLS, X_DONEP, X_FUNC,
  X_HEADP, X_LEVEL, X_LOCK, X_LOCK_CONTENDED, X_LOCK_HOLDER, X_REC, XC_CLASS_HIGH, XC_CLASS_LOW, xcall_word, xcrec_word, xr_failed, XR_TARGETS,
  XR_WHERE,
} from './layout.js';
import { md } from './md.js';
import { XC_HISTORY } from './param.js';
import {
  SOFTINT_BIO, SOFTINT_CLOCK, softint_establish_barrier, softint_establish_reserved, softint_ipl, SOFTINT_NET,
  softint_schedule_reserved, SOFTINT_SERIAL,
} from './softint.js';
import { sym_func, sym_id } from './symbol.js';

/** An xcall function: a kernel symbol taking two arguments. */
export type xcfunc_t<A1 = unknown, A2 = unknown> = (arg1: A1, arg2: A2) => void;

/** Options of xc_wait(). */
export interface xc_wait_options {
  /** Give up after this many milliseconds with an IpiTimeoutError; the call stays in flight. */
  timeout?: number;
}

/** Options of xc_wait_async(). */
export interface xc_wait_async_options extends xc_wait_options {
  /** Give up when this signal aborts (the promise rejects with its reason); the call stays in flight. */
  signal?: AbortSignal;
}

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

/** Set up the reserved soft interrupts (boot, the booting CPU ci). @internal */
export function xc_init(ci: cpu_info): void {
  for (const level of [SOFTINT_CLOCK, SOFTINT_BIO, SOFTINT_NET, SOFTINT_SERIAL]) softint_establish_reserved(ci, level, xc_highpri_softint);
}

/** Fill in the vector table and softint's barrier entry (each thread, once its machine is attached). @internal */
export function xc_attach(): void {
  intr_establish_md(VEC_XCALL_LOW, xc_vector_low);
  intr_establish_md(VEC_XCALL_HIGH, xc_vector_high);
  softint_establish_barrier(
    (level) => xc_wait_live(W_SOFTINT_DISESTABLISH, xc_issue(W_SOFTINT_DISESTABLISH, softint_barrier_call('softint_disestablish', level))),
    async (level) => {
      const w = W_SOFTINT_DISESTABLISH_ASYNC;
      await xc_wait_live_async(w, await xc_issue_async(w, softint_barrier_call('softint_disestablish_async', level)));
    });
}

/** softint_disestablish's barrier: a high-priority xcall of nothing at the handler's level. */
function softint_barrier_call(fn: string, level: number): xc_call {
  return xc_check(fn, XC_HIGHPRI_IPL(softint_ipl(level)), xc_nullop, undefined, undefined, null);
}

/** The global number of record r of class cls, for failure records. */
const rec_id = (cls: number, r: number): number => cls * XC_HISTORY + r;

/* A failure record of an xcall is stale once its call's record has been reused. */
fail_kind(ERR_XCALL, (id, where) => Atomics.load(i32, xcrec_word((id / XC_HISTORY) | 0, id % XC_HISTORY, XR_WHERE)) !== where);

/* ---------------------------------------------------------- the lock */

/*
 * The lock word holds its holder's index + 1, so that the death of a
 * holder can release it, and X_LOCK_CONTENDED while others wait, so that
 * the unlock rings them.  x = (cpu << 1) | class.
 */
function xc_trylock(x: number): boolean {
  const w = xcall_word(x & 1, X_LOCK);
  const me = (x >> 1) + 1;
  if (Atomics.compareExchange(i32, w, 0, me) === 0) return true;
  xc_lock_contend(w);
  /* Taken contended: others may still be waiting. */
  return Atomics.compareExchange(i32, w, 0, me | X_LOCK_CONTENDED) === 0;
}

/** Tell the holder of lock word w, if any, that someone waits, so that its unlock rings everyone. */
function xc_lock_contend(w: number): void {
  const held = Atomics.load(i32, w);
  if (held !== 0 && (held & X_LOCK_CONTENDED) === 0) Atomics.compareExchange(i32, w, held, held | X_LOCK_CONTENDED);
}

const lock_chan: wait_chan = {
  done: xc_trylock,
  owing: (x, out) => {
    const holder = Atomics.load(i32, xcall_word(x & 1, X_LOCK)) & X_LOCK_HOLDER;
    if (holder !== 0) out.push(holder - 1);
  },
};

/** Wait predicate for the async forms: class cls's lock is free (not taken: they never hold it across an await). */
const lock_free_chan: wait_chan = {
  done: (cls) => {
    const w = xcall_word(cls, X_LOCK);
    if (Atomics.load(i32, w) === 0) return true;
    xc_lock_contend(w);
    return Atomics.load(i32, w) === 0;
  },
  owing: (cls, out) => lock_chan.owing(cls, out),
};

function xc_unlock(cls: number): void {
  if ((Atomics.exchange(i32, xcall_word(cls, X_LOCK), 0) & X_LOCK_CONTENDED) !== 0) xc_ring_all();
}

function xc_ring_all(): void {
  const me = cpu_self('xcall').ci_index;
  for (let c = 0; c < ncpu; c++) if (c !== me) cpu_ring(c);
}

/** Wait predicate: the class has no call in flight. */
function xc_idle(cls: number): boolean {
  return Atomics.load(i32, xcall_word(cls, X_HEADP)) === Atomics.load(i32, xcall_word(cls, X_DONEP));
}

const idle_chan: wait_chan = { done: xc_idle, owing: (cls, out) => xc_owing(cls, out) };

/** The targets of class cls's call in flight that have not completed their part. */
function xc_owing(cls: number, out: number[]): void {
  const head = Atomics.load(i32, xcall_word(cls, X_HEADP));
  if (head === Atomics.load(i32, xcall_word(cls, X_DONEP))) return;
  const r = Atomics.load(i32, xcall_word(cls, X_REC));
  for (let c = 0; c < ncpu; c++) {
    if (xc_targeted(cls, r, c) && Atomics.load(i32, cpu_word(c, C_XCDONE + cls)) !== head) out.push(c);
  }
}

function xc_targeted(cls: number, r: number, c: number): boolean {
  return (Atomics.load(i32, xcrec_word(cls, r, XR_TARGETS) + (c >> 5)) & (1 << (c & 31))) !== 0;
}

/* ---------------------------------------------------------- issuing */

/*
 * Per CPU (ci_xcactive): xcall functions of each class running on it now.
 * An xcall function that issued an xcall of its own class would wait for
 * a call that cannot complete before it returns.
 */

/** What every caller that waits for an xcall must be: thread context, at IPL_NONE. */
function xc_wait_check(fn: string, self: cpu_info, what: string): void {
  KASSERT(!cpu_intr_p() && !cpu_softintr_p(), fn, '!cpu_intr_p() && !cpu_softintr_p()', what);
  KASSERT(self.ci_ilevel === IPL_NONE, fn, 'curcpu()->ci_ilevel == IPL_NONE',
    "xcalls wait for every CPU's part, this one's included, which cannot run at a raised IPL: splx() first", self.ci_ilevel);
}

function flags_check(fn: string, flags: unknown): number {
  if (typeof flags !== 'number') throw typeError(fn, 'flags', 'a number', flags);
  const level = xc_level((flags & XC_IPL_MASK) >> XC_IPL_SHIFT);
  if (!Number.isInteger(flags) || (flags & ~(XC_HIGHPRI | XC_IPL_MASK)) !== 0 || ((flags & XC_IPL_MASK) !== 0 && !(flags & XC_HIGHPRI)) ||
      level < 0) {
    throw rangeError(fn, 'flags', '0, XC_HIGHPRI or XC_HIGHPRI_IPL(ipl)', flags);
  }
  return level;
}

/**
 * Reuse the next record of class cls for a new call (lock held, class
 * idle): deliver the failures of the call it held if nobody collected
 * them, and mark it being reset.  Returns its number.
 */
function xc_record_take(cls: number): number {
  const calls = i32[xcall_word(cls, X_CALLS)] + 1;
  i32[xcall_word(cls, X_CALLS)] = calls;
  const r = calls % XC_HISTORY;
  const where = Atomics.exchange(i32, xcrec_word(cls, r, XR_WHERE), 0);
  const left = fail_collect('xc_wait', ERR_XCALL, rec_id(cls, r), where, xcrec_word(cls, r, xr_failed()));
  if (left.length > 0) md.report(failures_error('xc_wait', left));
  return r;
}

/** A call about to be issued, checked. */
interface xc_call {
  readonly fn: string;
  readonly self: cpu_info;
  readonly cls: number;
  readonly level: number;
  readonly sym: number;
  readonly arg1: unknown;
  readonly arg2: unknown;
  /** The target of xc_unicast, or -1 for a broadcast. */
  readonly t: number;
  /** Once published: its record, its headp, and the death generation before its targets were read. */
  r: number;
  where: number;
  gen: number;
}

/** Check a call before it waits for anything: its caller, flags, function, arguments and target. */
function xc_check(fn: string, flags: number, func: unknown, arg1: unknown, arg2: unknown, target: cpu_info | null): xc_call {
  const self = cpu_self(fn);
  const level = flags_check(fn, flags);
  const cls = flags & XC_HIGHPRI ? XC_CLASS_HIGH : XC_CLASS_LOW;
  if (diagnostic) {
    xc_wait_check(fn, self, 'xcalls cannot be issued from interrupt context');
    KASSERT(self.ci_xcactive[cls] === 0, fn, cls === XC_CLASS_HIGH ? 'xc_active[XC_HIGHPRI] == 0' : 'xc_active[XC_LOWPRI] == 0',
      'an xcall function cannot issue an xcall of its own priority: it would wait for itself');
  }
  const sym = sym_id(self, fn, 'func', func);
  arg_check(fn, 'arg1', arg1);
  arg_check(fn, 'arg2', arg2);
  const t = target === null ? -1 : ci_check(fn, 'ci', target);
  if (t >= 0 && cpu_dead_p(t)) throw cpu_dead_error(fn, t, true);
  return { fn, self, cls, level, sym, arg1, arg2, t, r: -1, where: 0, gen: 0 };
}

/** Issue call c: wait for the class lock, then for the class to be idle; returns the ticket. */
function xc_issue(w: number, c: xc_call): number {
  block_check(w);
  const x = (c.self.ci_index << 1) | c.cls;
  intr_wait(w, lock_chan, x, Infinity);
  if (c.cls === XC_CLASS_HIGH) thread_work_hold(c.self, 1);
  try {
    /* One call per class in flight: wait for the previous one (servicing, so our part of it runs). */
    intr_wait(w, idle_chan, c.cls, Infinity);
    xc_publish(c);
  } finally {
    if (c.cls === XC_CLASS_HIGH) thread_work_hold(c.self, -1);
    xc_unlock(c.cls);
  }
  return xc_send(c);
}

/**
 * The same without blocking.  The lock is never held across an await (code
 * of this thread that runs meanwhile could wait for it): wait until the
 * class is idle and the lock free, take it, and if the class is no longer
 * idle, let go and wait again.
 */
async function xc_issue_async(w: number, c: xc_call): Promise<number> {
  const x = (c.self.ci_index << 1) | c.cls;
  for (;;) {
    if (!xc_idle(c.cls)) await intr_wait_async(w, idle_chan, c.cls, Infinity, undefined);
    if (!xc_trylock(x)) {
      await intr_wait_async(w, lock_free_chan, c.cls, Infinity, undefined);
      continue;
    }
    if (!xc_idle(c.cls)) {
      xc_unlock(c.cls);
      continue;
    }
    try {
      xc_publish(c);
    } finally {
      xc_unlock(c.cls);
    }
    return xc_send(c);
  }
}

/** Fill in and publish call c (lock held, class idle). */
function xc_publish(c: xc_call): void {
  const { fn, cls, t } = c;
  arg_encode(fn, 'arg1', cell_xcall(cls, 0), c.arg1);
  arg_encode(fn, 'arg2', cell_xcall(cls, 1), c.arg2);
  const r = xc_record_take(cls);
  c.gen = Atomics.load(i32, H_DEADGEN);
  if (t >= 0 && cpu_dead_p(t)) throw cpu_dead_error(fn, t, true);
  /* The targets: one read of each word of kcpuset_running, which loses a CPU when it dies. */
  let n = 0;
  for (let k = 0; k < NW; k++) {
    const bits = t < 0 ? Atomics.load(kcpuset_running.bits, k) : k === t >> 5 ? 1 << (t & 31) : 0;
    Atomics.store(i32, xcrec_word(cls, r, XR_TARGETS) + k, bits);
    for (let b = bits; b !== 0; b &= b - 1) n++;
  }
  i32[xcall_word(cls, X_FUNC)] = c.sym;
  i32[xcall_word(cls, X_LEVEL)] = c.level;
  Atomics.store(i32, xcall_word(cls, X_REC), r);
  /* Publish (issue): targets read the call after they see the new headp. */
  const where = (Atomics.add(i32, xcall_word(cls, X_HEADP), n) + n) | 0;
  Atomics.store(i32, xcrec_word(cls, r, XR_WHERE), where);
  c.r = r;
  c.where = where;
}

/** Tell the targets of published call c; returns its ticket. */
function xc_send(c: xc_call): number {
  const { self, cls, r, where } = c;
  const me = self.ci_index;
  f64[evcnt_index(me, cls === XC_CLASS_HIGH ? EV_XC_HIGH : EV_XC_LOW)]++;
  const vec = cls === XC_CLASS_HIGH ? VEC_XCALL_HIGH : VEC_XCALL_LOW;
  for (let k = 0; k < ncpu; k++) {
    if (!xc_targeted(cls, r, k)) continue;
    if (k === me) xc_vector(self, cls);
    else intr_send_vector(self, k, vec);
  }
  /* A target that died since the call was published may have been missed by the death handler, which looks at the call in flight. */
  if (Atomics.load(i32, H_DEADGEN) !== c.gen) {
    for (let k = 0; k < ncpu; k++) if (cpu_dead_p(k)) xc_write_off(cls, k);
  }
  return where * 2 + cls;
}

/**
 * xc_broadcast: run func(arg1, arg2) on every running CPU, the caller's
 * included.  Returns a ticket for xc_wait().
 * => flags: 0 (low priority, thread context) or XC_HIGHPRI / XC_HIGHPRI_IPL(ipl).
 * => Not from interrupt context, at IPL_NONE, nor from an xcall function of
 *    the same priority; func a kernel symbol; args sendable.
 * => Waits for the call of its class in flight, if any, so it blocks: on a
 *    thread that cannot block, use xc_broadcast_async().
 */
export function xc_broadcast<A1, A2>(flags: number, func: xcfunc_t<A1, A2>, arg1: A1, arg2: A2): number {
  return xc_issue(W_XC_BROADCAST, xc_check('xc_broadcast', flags, func, arg1, arg2, null));
}

/** xc_broadcast() as a promise, for any thread: resolves to the ticket once the call is issued. */
export async function xc_broadcast_async<A1, A2>(flags: number, func: xcfunc_t<A1, A2>, arg1: A1, arg2: A2): Promise<number> {
  return xc_issue_async(W_XC_BROADCAST_ASYNC, xc_check('xc_broadcast_async', flags, func, arg1, arg2, null));
}

/**
 * xc_unicast: run func(arg1, arg2) on CPU ci (which may be the caller).
 * Returns a ticket for xc_wait().
 * => As xc_broadcast; ci must be alive.
 */
export function xc_unicast<A1, A2>(flags: number, func: xcfunc_t<A1, A2>, arg1: A1, arg2: A2, ci: cpu_info): number {
  return xc_issue(W_XC_UNICAST, xc_check('xc_unicast', flags, func, arg1, arg2, target_check('xc_unicast', ci)));
}

/** xc_unicast() as a promise, for any thread: resolves to the ticket once the call is issued. */
export async function xc_unicast_async<A1, A2>(flags: number, func: xcfunc_t<A1, A2>, arg1: A1, arg2: A2, ci: cpu_info): Promise<number> {
  return xc_issue_async(W_XC_UNICAST_ASYNC, xc_check('xc_unicast_async', flags, func, arg1, arg2, target_check('xc_unicast_async', ci)));
}

function target_check(fn: string, ci: unknown): cpu_info {
  cpu_self(fn);
  if (!(ci instanceof cpu_info)) throw typeError(fn, 'ci', 'a cpu_info (curcpu(), cpu_lookup())', ci);
  return ci;
}

/** Check a ticket: a number from xc_broadcast or xc_unicast of this machine, already issued. */
function ticket_check(fn: string, ticket: unknown): void {
  if (typeof ticket !== 'number') throw typeError(fn, 'ticket', 'a number from xc_broadcast or xc_unicast', ticket);
  /* A ticket is a 32-bit count times 2 plus the class. */
  if (!Number.isSafeInteger(ticket) || ticket < -(2 ** 32) || ticket >= 2 ** 32) {
    throw rangeError(fn, 'ticket', 'a ticket from xc_broadcast or xc_unicast', ticket);
  }
  const cls = ticket & 1;
  const head = Atomics.load(i32, xcall_word(cls, X_HEADP));
  if ((((ticket - cls) / 2 - head) | 0) > 0) {
    throw new RangeError(`${fn}: ticket ${ticket} was never issued (the last ${cls === XC_CLASS_HIGH ? 'high' : 'low'} priority ` +
      `call has ticket ${head * 2 + cls}): pass what xc_broadcast or xc_unicast returned`);
  }
}

/** Wait predicate: the call with this ticket has completed (donep has reached it). */
function xc_done(ticket: number): boolean {
  const cls = ticket & 1;
  const where = (ticket - cls) / 2;
  return ((Atomics.load(i32, xcall_word(cls, X_DONEP)) - where) | 0) >= 0;
}

const xc_chan: wait_chan = {
  done: xc_done,
  owing: (ticket, out) => {
    const cls = ticket & 1;
    if ((ticket - cls) / 2 === Atomics.load(i32, xcall_word(cls, X_HEADP))) xc_owing(cls, out);
  },
};

/** Collect the failures of a completed call and throw them, if any; unknown (older) calls have none left. */
function xc_finish(fn: string, ticket: number): void {
  const cls = ticket & 1;
  const where = (ticket - cls) / 2;
  for (let r = 0; r < XC_HISTORY; r++) {
    if (Atomics.load(i32, xcrec_word(cls, r, XR_WHERE)) !== where) continue;
    const failures = fail_collect(fn, ERR_XCALL, rec_id(cls, r), where, xcrec_word(cls, r, xr_failed()));
    if (failures.length > 0) throw failures_error(fn, failures);
    return;
  }
}

/**
 * xc_wait: wait until the call with this ticket has completed on every
 * target.  Runs this CPU's own part meanwhile.
 * => If parts failed, throws as ipi_wait() does: IpiRemoteError or
 *    IpiCpuDeadError, naming every failing CPU.
 * => options.timeout: after that many milliseconds, an IpiTimeoutError
 *    naming the CPUs that have not run their part; the call stays in flight.
 * => ticket must have been issued.  Not from interrupt context, at
 *    IPL_NONE; blocks (use xc_wait_async where a thread cannot).
 */
export function xc_wait(ticket: number, options?: xc_wait_options): void {
  const fn = 'xc_wait';
  const self = cpu_self(fn);
  block_check(W_XC_WAIT);
  ticket_check(fn, ticket);
  const timeout = options === undefined ? Infinity : timeout_check(fn, wait_options(fn, options, ['timeout']).timeout);
  if (diagnostic) xc_wait_check(fn, self, 'xc_wait cannot wait in interrupt context');
  if (!xc_done(ticket)) intr_wait(W_XC_WAIT, xc_chan, ticket, timeout);
  xc_finish(fn, ticket);
}

/** xc_wait as a promise, for any thread; rejects rather than throws. */
export async function xc_wait_async(ticket: number, options?: xc_wait_async_options): Promise<void> {
  const fn = 'xc_wait_async';
  cpu_self(fn);
  ticket_check(fn, ticket);
  const o = wait_options(fn, options, ['timeout', 'signal']);
  const timeout = timeout_check(fn, o.timeout);
  const signal = signal_check(fn, o.signal);
  if (!xc_done(ticket)) await intr_wait_async(W_XC_WAIT_ASYNC, xc_chan, ticket, timeout, signal);
  xc_finish(fn, ticket);
}

/**
 * Wait for an internal call (a barrier, softint_disestablish): a CPU that
 * died meanwhile runs nothing any more, so its part counts as done.
 * @internal
 */
export function xc_wait_live(w: number, ticket: number): void {
  intr_wait(w, xc_chan, ticket, Infinity);
  xc_finish_live(w, ticket);
}

/** The same without blocking. */
async function xc_wait_live_async(w: number, ticket: number): Promise<void> {
  await intr_wait_async(w, xc_chan, ticket, Infinity, undefined);
  xc_finish_live(w, ticket);
}

function xc_finish_live(w: number, ticket: number): void {
  try {
    xc_finish(wait_name(w), ticket);
  } catch (e) {
    if (!(e instanceof IpiCpuDeadError)) throw e;
  }
}

/**
 * xc_barrier: a broadcast of nothing, waited for: every running CPU has
 * passed a point of the given priority, so what this CPU wrote before it is
 * seen by every CPU after it.  CPUs that die meanwhile are not waited for.
 * => As xc_broadcast and xc_wait; on a thread that cannot block, use
 *    xc_barrier_async().
 */
export function xc_barrier(flags: number): void {
  xc_wait_live(W_XC_BARRIER, xc_issue(W_XC_BARRIER, xc_check('xc_barrier', flags, xc_nullop, undefined, undefined, null)));
}

/** xc_barrier() as a promise, for any thread. */
export async function xc_barrier_async(flags: number): Promise<void> {
  const w = W_XC_BARRIER_ASYNC;
  await xc_wait_live_async(w, await xc_issue_async(w, xc_check('xc_barrier_async', flags, xc_nullop, undefined, undefined, null)));
}

export function xc_nullop(): void {}

/* ---------------------------------------------------------- targets */

/** The vector handlers (interrupt context): start ci's part of the call in flight. */
function xc_vector(ci: cpu_info, cls: number): void {
  if (cls === XC_CLASS_LOW) thread_defer(ci, xc_lowpri_run);
  else softint_schedule_reserved(ci, i32[xcall_word(XC_CLASS_HIGH, X_LEVEL)]);
}

function xc_vector_low(ci: cpu_info): void {
  xc_vector(ci, XC_CLASS_LOW);
}

function xc_vector_high(ci: cpu_info): void {
  xc_vector(ci, XC_CLASS_HIGH);
}

function xc_lowpri_run(): void {
  xc_run(XC_CLASS_LOW);
}

/** The reserved soft interrupt handler of high-priority xcalls. @internal */
export function xc_highpri_softint(): void {
  xc_run(XC_CLASS_HIGH);
}

/**
 * Claim CPU c's part of class cls's call in flight; false if there is
 * nothing for c to claim (c is no target, has its part already, or another
 * claimer won).  Headp and record are read consistently: the record is
 * written before headp is published, so a headp read before and after it
 * vouches for it.  Once claimed, the call stays in flight (headp, record)
 * until the claimer completes the part.
 */
function xc_claim(cls: number, c: number): boolean {
  const seen = cpu_word(c, C_XCSEEN + cls);
  for (;;) {
    const head = Atomics.load(i32, xcall_word(cls, X_HEADP));
    if (head === Atomics.load(i32, xcall_word(cls, X_DONEP))) return false;
    const r = Atomics.load(i32, xcall_word(cls, X_REC));
    if (Atomics.load(i32, xcall_word(cls, X_HEADP)) !== head) continue;
    if (!xc_targeted(cls, r, c)) return false;
    const s = Atomics.load(i32, seen);
    return s !== head && Atomics.compareExchange(i32, seen, s, head) === s;
  }
}

/** CPU c's part of call `where` (record r) is over: note its failure, if any, then count it done, once. */
function xc_complete(cls: number, r: number, where: number, c: number, failure: unknown): void {
  if (Atomics.exchange(i32, cpu_word(c, C_XCDONE + cls), where) === where) return;
  if (failure !== NO_FAILURE) {
    if (failure !== DIED) fail_note(c, ERR_XCALL, rec_id(cls, r), where, failure);
    set_add(xcrec_word(cls, r, xr_failed()), c);
  }
  /* Release: the function's effects are visible to whoever sees the new donep. */
  const done = Atomics.add(i32, xcall_word(cls, X_DONEP), 1) + 1;
  if (done === Atomics.load(i32, xcall_word(cls, X_HEADP))) xc_ring_all();
}

const NO_FAILURE = Symbol('no failure');
const DIED = Symbol('died');

/** Run this CPU's part of the call in flight, once. */
function xc_run(cls: number): void {
  const self = cpu_self('xcall');
  if (!xc_claim(cls, self.ci_index)) return;
  const where = Atomics.load(i32, xcall_word(cls, X_HEADP));
  const r = Atomics.load(i32, xcall_word(cls, X_REC));
  const sym = i32[xcall_word(cls, X_FUNC)];
  const act = act_enter(self, ACT_XCALL, sym);
  let failure: unknown = NO_FAILURE;
  self.ci_xcactive[cls]++;
  try {
    const res = (sym_func(self, sym) as xcfunc_t)(arg_decode(self, cell_xcall(cls, 0)), arg_decode(self, cell_xcall(cls, 1)));
    if (thenable_p(res)) {
      /* Not synchronous: its part completes when it settles, so that a rejection reaches xc_wait. */
      const me = self.ci_index;
      Promise.resolve(res).then(() => xc_complete(cls, r, where, me, NO_FAILURE),
        (e: unknown) => xc_complete(cls, r, where, me, rejected_failure(e, 'xcall function')));
      return;
    }
  } catch (e) {
    failure = e;
  } finally {
    self.ci_xcactive[cls]--;
    act_leave(self, act);
  }
  xc_complete(cls, r, where, self.ci_index, failure);
}

/**
 * Write off dead CPU c's part of class cls's call in flight, if it still
 * owes it: claimed by c (it died running it) or not yet claimed.
 */
function xc_write_off(cls: number, c: number): void {
  const head = Atomics.load(i32, xcall_word(cls, X_HEADP));
  if (head === Atomics.load(i32, xcall_word(cls, X_DONEP))) return;
  const r = Atomics.load(i32, xcall_word(cls, X_REC));
  if (Atomics.load(i32, xcall_word(cls, X_HEADP)) !== head || !xc_targeted(cls, r, c)) return;
  if (Atomics.load(i32, cpu_word(c, C_XCSEEN + cls)) === head || xc_claim(cls, c)) xc_complete(cls, r, head, c, DIED);
}

/**
 * CPU c has died (marked dead already): release the locks it held, write
 * off its parts of the calls in flight, and make every running CPU look at
 * both classes again (c may have issued a call and died before telling its
 * targets). @internal
 */
export function xc_cpu_dead(c: number): void {
  const self = cpu_self('cpu_die');
  for (const cls of [XC_CLASS_LOW, XC_CLASS_HIGH]) {
    const w = xcall_word(cls, X_LOCK);
    const held = Atomics.load(i32, w);
    if ((held & X_LOCK_HOLDER) === c + 1 && Atomics.compareExchange(i32, w, held, 0) === held) xc_ring_all();
    xc_write_off(cls, c);
  }
  for (let t = 0; t < ncpu; t++) {
    if (t === c || cpu_dead_p(t)) continue;
    if (t === self.ci_index) {
      xc_vector(self, XC_CLASS_LOW);
      xc_vector(self, XC_CLASS_HIGH);
    } else {
      intr_send_vector(self, t, VEC_XCALL_LOW | VEC_XCALL_HIGH);
    }
  }
}
