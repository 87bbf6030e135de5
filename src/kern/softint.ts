/*
 * softint(9): soft interrupts, built on ipi(9).
 *
 * Overview.  A soft interrupt is a handler established machine-wide, at one
 * of four levels, and scheduled on one CPU at a time: on the current CPU
 * with softint_schedule(), on any CPU with softint_schedule_cpu().  It runs
 * later on that CPU, once, however often it was scheduled meanwhile.
 *
 * Per-CPU operation.  Each CPU keeps, in its own thread, a FIFO queue per
 * level and a pending flag per handler; ci_softpending has a bit per level
 * with work queued.  The service pass (intr.ts) runs soft interrupts after
 * the hard handlers, highest level first, each at its IPL (below IPL_HIGH),
 * with cpu_softintr_p() true, and only levels above the interrupted IPL.
 *
 * Remote scheduling.  As NetBSD does for SOFTINT_RCPU, establishing such a
 * handler registers an asynchronous IPI whose handler is softint_schedule()
 * with the cookie as argument; softint_schedule_cpu() to a remote CPU
 * triggers it there.
 *
 * The handler table is in kernel memory; a cookie names a slot and the
 * generation it was established with, so a stale cookie is recognised and a
 * queued run of a handler disestablished since is dropped.
 */
import { arg_check, arg_decode_gen, arg_encode } from './arg.js';
import { ci_check, cpu_info, curcpu, diagnostic, IPL_SOFTBIO, IPL_SOFTCLOCK, IPL_SOFTNET, IPL_SOFTSERIAL, kpreempt_disable, kpreempt_disabled, kpreempt_enable } from './cpu.js';
import { IpiError, KASSERT, rangeError, typeError } from './errors.js';
import { cpu_ring } from './intr.js';
import { ipi_broadcast, ipi_register, ipi_trigger, ipi_unregister, ipi_wait } from './ipi.js';
import { cell_softint, EV_INTR_ERROR, EV_SOFT_REMOTE, EV_SOFT_RUN, EV_SOFT_SCHED, evcnt_index, f64, i32, S_FLAGS, S_FUNC, S_GEN, S_IPIID, softreg_word } from './layout.js';
import { md } from './md.js';
import { SOFTINT_MAXHANDLERS } from './param.js';
import { sym_func, sym_id } from './symbol.js';

/* Levels, lowest priority first (NetBSD's order), and flags. */
export const SOFTINT_CLOCK = 0;
export const SOFTINT_BIO = 1;
export const SOFTINT_NET = 2;
export const SOFTINT_SERIAL = 3;
export const SOFTINT_COUNT = 4;
export const SOFTINT_LVLMASK = 0x00ff;
/** The handler needs no big lock (all handlers here are MP-safe; accepted for compatibility). */
export const SOFTINT_MPSAFE = 0x0100;
/** The handler may be scheduled on a remote CPU with softint_schedule_cpu(). */
export const SOFTINT_RCPU = 0x0200;

/** The IPL each level runs at. */
const SOFTINT_IPL = [IPL_SOFTCLOCK, IPL_SOFTBIO, IPL_SOFTNET, IPL_SOFTSERIAL] as const;

/** Slots the library reserves for itself: one per level, for xcall(9) at high priority. */
export const SOFTINT_RESERVED = SOFTINT_COUNT;

/** A soft interrupt handle, from softint_establish(); a number, so it can be sent to other CPUs. */
export type softint_cookie_t = number & { readonly __brand: 'softint_cookie_t' };

const cookie_of = (h: number, gen: number): softint_cookie_t => (gen * SOFTINT_MAXHANDLERS + h + 1) as softint_cookie_t;

/** The slot a valid cookie names; throws for anything else. */
function cookie_slot(fn: string, cookie: unknown): number {
  if (typeof cookie !== 'number') throw typeError(fn, 'cookie', 'a softint cookie (a number from softint_establish)', cookie);
  if (!Number.isSafeInteger(cookie) || cookie <= 0) throw rangeError(fn, 'cookie', 'a cookie from softint_establish', cookie);
  const h = (cookie - 1) % SOFTINT_MAXHANDLERS;
  const gen = (cookie - 1 - h) / SOFTINT_MAXHANDLERS;
  if (Atomics.load(i32, softreg_word(h, S_FUNC)) <= 0 || Atomics.load(i32, softreg_word(h, S_GEN)) !== gen) {
    throw new IpiError(`${fn}: cookie ${cookie} is not an established soft interrupt (disestablished already?)`);
  }
  return h;
}

/* ------------------------------------------------------ per-CPU queues */

const queue = Array.from({ length: SOFTINT_COUNT }, () => new Int32Array(SOFTINT_MAXHANDLERS));
const qhead = new Int32Array(SOFTINT_COUNT);
const qlen = new Int32Array(SOFTINT_COUNT);
/** Per handler: the generation it was queued for, or -1 when not queued on this CPU. */
const queuedGen = new Int32Array(SOFTINT_MAXHANDLERS).fill(-1);

export function softint_cpu_init(): void {
  qhead.fill(0);
  qlen.fill(0);
  queuedGen.fill(-1);
}

/** Queue handler h on this CPU unless it is queued already. */
function softint_mark(ci: cpu_info, h: number): void {
  if (queuedGen[h] !== -1) return;
  const gen = Atomics.load(i32, softreg_word(h, S_GEN));
  const level = i32[softreg_word(h, S_FLAGS)]! & SOFTINT_LVLMASK;
  queuedGen[h] = gen;
  queue[level]![(qhead[level]! + qlen[level]!) % SOFTINT_MAXHANDLERS] = h;
  qlen[level]!++;
  ci.ci_softpending |= 1 << level;
  f64[evcnt_index(ci.ci_index, EV_SOFT_SCHED)]!++;
  /* From thread context nothing else will look soon: ring our own doorbell. */
  if (ci.ci_idepth === 0 && ci.ci_softdepth === 0) cpu_ring(ci.ci_index);
}

/** Queue reserved handler h (xcall) on this CPU. @internal */
export function softint_schedule_reserved(level: number): void {
  softint_mark(curcpu(), level);
}

/**
 * Run queued soft interrupts above the current IPL, highest level first,
 * FIFO within a level.  Called by the service pass.  True if any ran.
 */
export function softint_dispatch(ci: cpu_info): boolean {
  let ran = false;
  for (let level = SOFTINT_COUNT - 1; level >= 0; level--) {
    const ipl = SOFTINT_IPL[level]!;
    if ((ci.ci_softpending & (1 << level)) === 0 || ipl <= ci.ci_ilevel) continue;
    const q = queue[level]!;
    while (qlen[level]! > 0) {
      const h = q[qhead[level]!]!;
      qhead[level] = (qhead[level]! + 1) % SOFTINT_MAXHANDLERS;
      qlen[level]!--;
      const gen = queuedGen[h]!;
      if (gen === -1) continue; // dropped by softint_disestablish
      queuedGen[h] = -1; // before running: a handler may schedule itself again
      const f = Atomics.load(i32, softreg_word(h, S_FUNC));
      if (f <= 0 || Atomics.load(i32, softreg_word(h, S_GEN)) !== gen) continue;
      const s = ci.ci_ilevel;
      ci.ci_ilevel = ipl;
      ci.ci_softdepth++;
      f64[evcnt_index(ci.ci_index, EV_SOFT_RUN)]!++;
      try {
        (sym_func(f - 1) as (arg: unknown) => void)(arg_decode_gen(cell_softint(h), gen));
      } catch (e) {
        f64[evcnt_index(ci.ci_index, EV_INTR_ERROR)]!++;
        md.report(e);
      } finally {
        ci.ci_softdepth--;
        ci.ci_ilevel = s;
      }
      ran = true;
    }
    ci.ci_softpending &= ~(1 << level);
  }
  return ran;
}

/* ------------------------------------------------------------ interface */

/** Fill in slot h and publish it; returns its cookie. */
function softint_publish(h: number, flags: number, sym: number, arg: unknown, fn: string): softint_cookie_t {
  try {
    arg_encode(fn, 'arg', cell_softint(h), arg);
  } catch (e) {
    Atomics.store(i32, softreg_word(h, S_FUNC), 0);
    throw e;
  }
  const gen = Atomics.add(i32, softreg_word(h, S_GEN), 1) + 1;
  const cookie = cookie_of(h, gen);
  i32[softreg_word(h, S_FLAGS)] = flags;
  i32[softreg_word(h, S_IPIID)] = 0;
  if (flags & SOFTINT_RCPU) {
    const id = ipi_register(softint_schedule, cookie);
    if (id === 0) {
      Atomics.store(i32, softreg_word(h, S_FUNC), 0);
      return 0 as softint_cookie_t;
    }
    i32[softreg_word(h, S_IPIID)] = id;
  }
  /* Publish: the slot's plain writes are visible to whoever loads the function word. */
  Atomics.store(i32, softreg_word(h, S_FUNC), sym + 1);
  return cookie;
}

/**
 * softint_establish: establish a soft interrupt handler, machine-wide.
 * => flags: a level (SOFTINT_CLOCK .. SOFTINT_SERIAL), optionally with
 *    SOFTINT_MPSAFE and SOFTINT_RCPU.
 * => func must be a kernel symbol, arg sendable.
 * => Returns a cookie, or null when the table is full (SOFTINT_MAXHANDLERS,
 *    or IPI_MAXREG ids for SOFTINT_RCPU).
 */
export function softint_establish<A>(flags: number, func: (arg: A) => void, arg: A): softint_cookie_t | null {
  const fn = 'softint_establish';
  if (typeof flags !== 'number') throw typeError(fn, 'flags', 'a number', flags);
  if (!Number.isInteger(flags) || (flags & ~(SOFTINT_LVLMASK | SOFTINT_MPSAFE | SOFTINT_RCPU)) !== 0 ||
      (flags & SOFTINT_LVLMASK) >= SOFTINT_COUNT) {
    throw rangeError(fn, 'flags', 'a SOFTINT_* level, optionally | SOFTINT_MPSAFE | SOFTINT_RCPU', flags);
  }
  const sym = sym_id(fn, 'func', func);
  arg_check(fn, 'arg', arg);
  for (let h = SOFTINT_RESERVED; h < SOFTINT_MAXHANDLERS; h++) {
    if (Atomics.compareExchange(i32, softreg_word(h, S_FUNC), 0, -1) !== 0) continue;
    const cookie = softint_publish(h, flags, sym, arg, fn);
    return cookie === 0 ? null : cookie;
  }
  return null;
}

/** Establish the library's reserved handler for `level` (boot, CPU 0). @internal */
export function softint_establish_reserved(level: number, func: (arg: number) => void): void {
  Atomics.store(i32, softreg_word(level, S_FUNC), -1);
  softint_publish(level, level | SOFTINT_MPSAFE, sym_id('softint_establish', 'func', func), level, 'softint_establish');
}

/**
 * softint_disestablish: remove a soft interrupt handler.  Returns only when
 * the handler can no longer run anywhere: it is dequeued on every CPU and
 * none is running it.
 * => cookie must be established; blocks (a broadcast barrier).
 */
export function softint_disestablish(cookie: softint_cookie_t): void {
  const fn = 'softint_disestablish';
  const h = cookie_slot(fn, cookie);
  const id = i32[softreg_word(h, S_IPIID)]!;
  /* No remote schedule is delivered after this (ipi_unregister drops pending ones). */
  if (id !== 0) ipi_unregister(id);
  const f = Atomics.load(i32, softreg_word(h, S_FUNC));
  KASSERT(f > 0 && Atomics.compareExchange(i32, softreg_word(h, S_FUNC), f, 0) === f, fn, 'sh->sh_func != NULL',
    'disestablished concurrently', cookie);
  Atomics.add(i32, softreg_word(h, S_GEN), 1);
  /* Every CPU drops h from its queue, at a point where it is not running it. */
  const barrier = { func: softint_drop, arg: h };
  kpreempt_disable();
  try {
    ipi_broadcast(barrier, false);
    ipi_wait(barrier);
  } finally {
    kpreempt_enable();
  }
}

/** Barrier function of softint_disestablish: forget handler h on this CPU. @internal */
export function softint_drop(h: number): void {
  queuedGen[h] = -1;
}

/**
 * softint_schedule: make the handler pending on the current CPU.  A no-op
 * if it is pending there already.
 * => Preemption must be disabled (true in interrupt context).
 */
export function softint_schedule(cookie: softint_cookie_t): void {
  const fn = 'softint_schedule';
  const h = cookie_slot(fn, cookie);
  if (diagnostic) KASSERT(kpreempt_disabled(), fn, 'kpreempt_disabled()', 'call it with preemption disabled (kpreempt_disable())');
  softint_mark(curcpu(), h);
}

/**
 * softint_schedule_cpu: make the handler pending on CPU ci; for a remote
 * CPU, through ipi_trigger().
 * => Preemption must be disabled.
 * => A remote ci requires a handler established with SOFTINT_RCPU.
 */
export function softint_schedule_cpu(cookie: softint_cookie_t, ci: cpu_info): void {
  const fn = 'softint_schedule_cpu';
  const h = cookie_slot(fn, cookie);
  const target = ci_check(fn, 'ci', ci);
  const self = curcpu();
  if (diagnostic) KASSERT(kpreempt_disabled(), fn, 'kpreempt_disabled()', 'call it with preemption disabled (kpreempt_disable())');
  if (target === self.ci_index) {
    softint_mark(self, h);
    return;
  }
  KASSERT((i32[softreg_word(h, S_FLAGS)]! & SOFTINT_RCPU) !== 0, fn, 'sh->sh_flags & SOFTINT_RCPU',
    'establish the handler with SOFTINT_RCPU to schedule it on a remote CPU', cookie);
  f64[evcnt_index(self.ci_index, EV_SOFT_REMOTE)]!++;
  ipi_trigger(i32[softreg_word(h, S_IPIID)]!, ci);
}
