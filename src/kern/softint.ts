/*
 * softint(9): soft interrupts, built on ipi(9).
 *
 * Overview.  A soft interrupt is a handler established machine-wide, at one
 * of four levels, and scheduled on one CPU at a time: on the current CPU
 * with softint_schedule(), on any CPU with softint_schedule_cpu().  It runs
 * later on that CPU, once, however often it was scheduled meanwhile.
 *
 * Per-CPU operation.  Each CPU keeps, in its own thread, a FIFO queue per
 * level of (handler, generation) entries and, per handler, the generation
 * it is queued for; ci_softpending has a bit per level with work queued.
 * The service pass (intr.ts) runs soft interrupts after the hard handlers,
 * highest level first, each at its IPL (below IPL_HIGH), with
 * cpu_softintr_p() true, and only levels above the interrupted IPL.  A
 * handler that schedules one of a higher level has it run before the pass
 * goes on to lower levels.
 *
 * Remote scheduling.  As NetBSD does for SOFTINT_RCPU, establishing such a
 * handler registers an asynchronous IPI whose handler is softint_schedule()
 * with the cookie as argument; softint_schedule_cpu() to a remote CPU
 * triggers it there.
 *
 * The handler table is in kernel memory; a cookie names a slot and the
 * generation it was established with, so a stale cookie is recognised and a
 * queued run of a handler disestablished since is dropped.  A slot is free
 * (function word 0), claimed (-1: being established or freed), or
 * established (symbol + 1).  The library's xcall(9) owns the first
 * SOFTINT_RESERVED slots, one per level; no cookie names them.
 *
 * Disestablishing, against racing schedules.  softint_disestablish():
 *   1. marks the handler dying (SOFTINT_DYING in its flags): from then on a
 *      schedule of it, local or remote, does nothing, and a queued run of
 *      it is dropped;
 *   2. runs a high-priority xcall at the handler's own level on every CPU:
 *      the dispatch has passed any entry of the handler queued there before
 *      (same level, FIFO) and dropped it for dying.  A soft interrupt at one
 *      level never runs inside another handler of that level, so when the
 *      xcall has run everywhere, no CPU is running the handler, even one
 *      that took interrupts inside it; and no CPU is inside a schedule
 *      that saw it alive (schedules have no interrupt point);
 *   3. unregisters its IPI (SOFTINT_RCPU): no trigger is made any more, and
 *      ipi_unregister() drops those still pending;
 *   4. bumps the generation and only then frees the slot, so a handler
 *      established in it later is never hit by the old one's cleanup.
 * Scheduling re-reads the generation after it has read the flags and the
 * IPI id, so a schedule that raced steps 1-4 and a new establishment in
 * the slot never acts on the new handler's flags or id; and it queues the
 * cookie's own generation, which a new handler in the slot does not match.
 */
import { arg_check, arg_decode_gen, arg_encode } from './arg.js';
import {
  ci_check, cpu_dead_p, cpu_info, cpu_intr_p, cpu_self, cpu_softintr_p, diagnostic, IPL_NONE, IPL_SOFTBIO, IPL_SOFTCLOCK, IPL_SOFTNET,
  IPL_SOFTSERIAL, kpreempt_disabled, SOFTINT_COUNT,
} from './cpu.js';
import { cpu_dead_error, handler_run } from './failure.js';
import { IpiError, KASSERT, rangeError, typeError } from './errors.js';
import { block_check, cpu_ring, intr_establish_soft, W_SOFTINT_DISESTABLISH } from './intr.js';
import { ipi_register, ipi_slot_release, ipi_trigger, ipi_unregister, ipi_unregister_async, slot_claimed } from './ipi.js';
import {
  ACT_SOFT, cell_softint, EV_SOFT_REMOTE, EV_SOFT_RUN, EV_SOFT_SCHED, evcnt_index, f64, i32, S_FLAGS, S_FUNC, S_GEN, S_IPIID, softreg_word,
} from './layout.js';
import { SOFTINT_MAXHANDLERS } from './param.js';
import { sym_id } from './symbol.js';

/* Levels, lowest priority first (NetBSD's order), and flags. */
export const SOFTINT_CLOCK = 0;
export const SOFTINT_BIO = 1;
export const SOFTINT_NET = 2;
export const SOFTINT_SERIAL = 3;
export { SOFTINT_COUNT };
export const SOFTINT_LVLMASK = 0x00ff;
/** The handler needs no big lock (all handlers here are MP-safe; accepted for compatibility). */
export const SOFTINT_MPSAFE = 0x0100;
/** The handler may be scheduled on a remote CPU with softint_schedule_cpu(). */
export const SOFTINT_RCPU = 0x0200;
/** Internal: softint_disestablish() has begun; schedules do nothing, queued runs are dropped. */
const SOFTINT_DYING = 0x10000;

/** The IPL each level runs at. */
const SOFTINT_IPL = [IPL_SOFTCLOCK, IPL_SOFTBIO, IPL_SOFTNET, IPL_SOFTSERIAL] as const;

/** The IPL soft interrupt level `level` runs at. */
export const softint_ipl = (level: number): number => SOFTINT_IPL[level];

/** Slots the library reserves for itself: one per level, for xcall(9) at high priority. */
export const SOFTINT_RESERVED = SOFTINT_COUNT;

/** A soft interrupt handle, from softint_establish(); a number, so it can be sent to other CPUs. */
export type softint_cookie_t = number & { readonly __brand: 'softint_cookie_t' };

const cookie_of = (h: number, gen: number): softint_cookie_t => (gen * SOFTINT_MAXHANDLERS + h + 1) as softint_cookie_t;
/** The generation a cookie of slot h names. */
const cookie_gen = (cookie: number, h: number): number => (cookie - 1 - h) / SOFTINT_MAXHANDLERS;

/**
 * The slot a valid cookie names; throws for anything else.  Only a check:
 * the slot may be freed right after it, so callers compare the generation
 * again after reading what they need (see softint_schedule).
 */
function cookie_slot(fn: string, cookie: unknown): number {
  if (typeof cookie !== 'number') throw typeError(fn, 'cookie', 'a softint cookie (a number from softint_establish)', cookie);
  if (!Number.isSafeInteger(cookie) || cookie <= 0) throw rangeError(fn, 'cookie', 'a cookie from softint_establish', cookie);
  const h = (cookie - 1) % SOFTINT_MAXHANDLERS;
  if (h < SOFTINT_RESERVED || Atomics.load(i32, softreg_word(h, S_FUNC)) <= 0 ||
      Atomics.load(i32, softreg_word(h, S_GEN)) !== cookie_gen(cookie, h)) {
    throw stale(fn, cookie);
  }
  return h;
}

function stale(fn: string, cookie: number): IpiError {
  return new IpiError(`${fn}: cookie ${cookie} is not an established soft interrupt (disestablished already?)`);
}

/* ------------------------------------------------------ per-CPU queues */

/*
 * Each CPU's queues, in its cpu_info: a ring per level of (handler,
 * generation) entries (ci_softq, ci_softqgen, ci_softqhead, ci_softqlen),
 * and per handler the generation it is queued for (ci_softqueued).  An
 * entry leaves its ring only when the dispatch reaches it, which marks the
 * handler not queued before it checks anything; so at most one entry per
 * handler is in a ring, and a ring of SOFTINT_MAXHANDLERS entries never
 * fills.  (An entry of a handler disestablished meanwhile is reached by
 * the dispatch before softint_disestablish returns: its barrier runs at
 * the handler's level, after the entry, in the same FIFO.)
 */

/** Queue handler h, generation gen, at `level` on CPU ci unless it is queued already. */
function softint_mark(ci: cpu_info, h: number, gen: number, level: number): void {
  if (ci.ci_softqueued[h] === gen) return; // pending already: coalesce
  ci.ci_softqueued[h] = gen;
  KASSERT(ci.ci_softqlen[level] < SOFTINT_MAXHANDLERS, 'softint_schedule', 'queue not full', 'internal error: soft interrupt queue overflow');
  const at = (ci.ci_softqhead[level] + ci.ci_softqlen[level]) % SOFTINT_MAXHANDLERS;
  ci.ci_softq[level][at] = h;
  ci.ci_softqgen[level][at] = gen;
  ci.ci_softqlen[level]++;
  ci.ci_softpending |= 1 << level;
  f64[evcnt_index(ci.ci_index, EV_SOFT_SCHED)]++;
  /*
   * Inside a soft interrupt the dispatch loop under us takes it.  Anywhere
   * else ring our own doorbell: thread context has no pass coming, and a
   * hard handler may have been run outside a service pass (the local part
   * of ipi_trigger_multi/broadcast, a full mailbox's spin).
   */
  if (ci.ci_softdepth === 0) cpu_ring(ci.ci_index);
}

/** Queue reserved handler `level` (xcall) on this CPU. @internal */
export function softint_schedule_reserved(ci: cpu_info, level: number): void {
  softint_mark(ci, level, Atomics.load(i32, softreg_word(level, S_GEN)), level);
}

/** Levels whose IPL is above `ipl`, as a mask of bits 1 << level. */
function softint_levels_above(ipl: number): number {
  let mask = 0;
  for (let level = 0; level < SOFTINT_COUNT; level++) if (SOFTINT_IPL[level] > ipl) mask |= 1 << level;
  return mask;
}

/**
 * Run queued soft interrupts above the current IPL, highest level first,
 * FIFO within a level; a level that a handler makes pending meanwhile runs
 * in its turn, a higher one included.  Called by the service pass.  True if
 * any ran.
 */
export function softint_dispatch(ci: cpu_info): boolean {
  let ran = false;
  const allowed = softint_levels_above(ci.ci_ilevel);
  for (let level = SOFTINT_COUNT - 1; level >= 0; level--) {
    const bit = 1 << level;
    if ((ci.ci_softpending & allowed & bit) === 0) continue;
    const ipl = SOFTINT_IPL[level];
    const q = ci.ci_softq[level], g = ci.ci_softqgen[level], head = ci.ci_softqhead, len = ci.ci_softqlen;
    /* Ring state is re-read every time: a handler may queue meanwhile. */
    while (len[level] > 0) {
      const h = q[head[level]], gen = g[head[level]];
      head[level] = (head[level] + 1) % SOFTINT_MAXHANDLERS;
      len[level]--;
      if (ci.ci_softqueued[h] !== gen) continue; // dead: dropped or superseded
      ci.ci_softqueued[h] = -1; // before running: a handler may schedule itself again
      /* Acquire: the atomic loads make the establishing CPU's writes of the slot visible. */
      const f = Atomics.load(i32, softreg_word(h, S_FUNC));
      if (f <= 0 || Atomics.load(i32, softreg_word(h, S_GEN)) !== gen ||
          (Atomics.load(i32, softreg_word(h, S_FLAGS)) & SOFTINT_DYING) !== 0) {
        continue; // disestablished, or being disestablished: dropped
      }
      const s = ci.ci_ilevel;
      ci.ci_ilevel = ipl;
      ci.ci_softdepth++;
      f64[evcnt_index(ci.ci_index, EV_SOFT_RUN)]++;
      try {
        handler_run(ci, ACT_SOFT, f - 1, arg_decode_gen(ci, cell_softint(h), gen));
      } finally {
        ci.ci_softdepth--;
        ci.ci_ilevel = s;
      }
      ran = true;
    }
    ci.ci_softpending &= ~bit;
    /* A handler made a higher level pending: go back up for it. */
    if ((ci.ci_softpending & allowed & ~((bit << 1) - 1)) !== 0) level = SOFTINT_COUNT;
  }
  return ran;
}

/* ------------------------------------------------------------ interface */

/** Fill in slot h (claimed) and publish it; returns its cookie, or 0 when no IPI id is left. */
function softint_publish(h: number, flags: number, sym: number, arg: unknown, fn: string): softint_cookie_t {
  try {
    arg_encode(fn, 'arg', cell_softint(h), arg);
  } catch (e) {
    Atomics.store(i32, softreg_word(h, S_FUNC), 0);
    throw e;
  }
  const gen = Atomics.add(i32, softreg_word(h, S_GEN), 1) + 1;
  const cookie = cookie_of(h, gen);
  Atomics.store(i32, softreg_word(h, S_FLAGS), flags);
  Atomics.store(i32, softreg_word(h, S_IPIID), 0);
  if (flags & SOFTINT_RCPU) {
    const id = ipi_register(softint_schedule, cookie);
    if (id === 0) {
      Atomics.store(i32, softreg_word(h, S_FUNC), 0);
      return 0 as softint_cookie_t;
    }
    Atomics.store(i32, softreg_word(h, S_IPIID), id);
  }
  /* Publish: the slot's writes are visible to whoever loads the function word. */
  Atomics.store(i32, softreg_word(h, S_FUNC), sym + 1);
  return cookie;
}

/**
 * softint_establish: establish a soft interrupt handler, machine-wide.
 * => flags: a level (SOFTINT_CLOCK .. SOFTINT_SERIAL), optionally with
 *    SOFTINT_MPSAFE and SOFTINT_RCPU.
 * => func must be a kernel symbol, arg sendable.
 * => Returns a cookie, or null when the table is full (SOFTINT_MAXHANDLERS
 *    less the SOFTINT_RESERVED slots of xcall(9), or IPI_MAXREG ids for
 *    SOFTINT_RCPU).
 */
export function softint_establish<A>(flags: number, func: (arg: A) => void, arg: A): softint_cookie_t | null {
  const fn = 'softint_establish';
  const self = cpu_self(fn);
  if (typeof flags !== 'number') throw typeError(fn, 'flags', 'a number', flags);
  if (!Number.isInteger(flags) || (flags & ~(SOFTINT_LVLMASK | SOFTINT_MPSAFE | SOFTINT_RCPU)) !== 0 ||
      (flags & SOFTINT_LVLMASK) >= SOFTINT_COUNT) {
    throw rangeError(fn, 'flags', 'a SOFTINT_* level, optionally | SOFTINT_MPSAFE | SOFTINT_RCPU', flags);
  }
  const sym = sym_id(self, fn, 'func', func);
  arg_check(fn, 'arg', arg);
  for (let h = SOFTINT_RESERVED; h < SOFTINT_MAXHANDLERS; h++) {
    if (Atomics.compareExchange(i32, softreg_word(h, S_FUNC), 0, slot_claimed(self.ci_index)) !== 0) continue;
    const cookie = softint_publish(h, flags, sym, arg, fn);
    return cookie === 0 ? null : cookie;
  }
  return null;
}

/** Establish the library's reserved handler for `level` (boot, the booting CPU ci). @internal */
export function softint_establish_reserved(ci: cpu_info, level: number, func: (arg: number) => void): void {
  Atomics.store(i32, softreg_word(level, S_FUNC), slot_claimed(ci.ci_index));
  softint_publish(level, level | SOFTINT_MPSAFE, sym_id(ci, 'softint_establish', 'func', func), level, 'softint_establish');
}

/**
 * softint_disestablish: remove a soft interrupt handler.  Returns only when
 * the handler can no longer run anywhere: no CPU is running it or has it
 * queued.  A schedule that races it does nothing; one made after it throws.
 * => cookie must be established, and not being disestablished.
 * => Not from interrupt context, at IPL_NONE: it waits for every CPU (an
 *    xcall at the handler's level, and ipi_unregister for SOFTINT_RCPU), so
 *    it blocks: on a thread that cannot block, use softint_disestablish_async().
 */
export function softint_disestablish(cookie: softint_cookie_t): void {
  const self = cpu_self('softint_disestablish');
  block_check(W_SOFTINT_DISESTABLISH);
  const h = disestablish_begin(self, 'softint_disestablish', cookie);
  /* 2. Every CPU forgets it, at a point where it runs no handler of its level. */
  softint_barrier(Atomics.load(i32, softreg_word(h, S_FLAGS)) & SOFTINT_LVLMASK);
  /* 3. No trigger for it is made any more (all schedules that saw it alive are done): release the id. */
  const id = Atomics.load(i32, softreg_word(h, S_IPIID));
  if (id !== 0) ipi_unregister(id);
  disestablish_end(self, 'softint_disestablish', cookie, h);
}

/** softint_disestablish() as a promise, for any thread: resolves when the handler can run nowhere. */
export async function softint_disestablish_async(cookie: softint_cookie_t): Promise<void> {
  const self = cpu_self('softint_disestablish_async');
  const h = disestablish_begin(self, 'softint_disestablish_async', cookie);
  await softint_barrier_async(Atomics.load(i32, softreg_word(h, S_FLAGS)) & SOFTINT_LVLMASK);
  const id = Atomics.load(i32, softreg_word(h, S_IPIID));
  if (id !== 0) await ipi_unregister_async(id);
  disestablish_end(self, 'softint_disestablish_async', cookie, h);
}

/** Step 1 of softint_disestablish, after its checks: mark it dying (schedules become no-ops, queued runs are dropped). */
function disestablish_begin(self: cpu_info, fn: string, cookie: softint_cookie_t): number {
  const h = cookie_slot(fn, cookie);
  /* Checked before anything changes: a refused call leaves the handler as it was. */
  if (diagnostic) {
    KASSERT(!cpu_intr_p() && !cpu_softintr_p(), fn, '!cpu_intr_p() && !cpu_softintr_p()', 'it waits for every CPU: call it from thread context');
    KASSERT(self.ci_ilevel === IPL_NONE, fn, 'curcpu()->ci_ilevel == IPL_NONE', 'it waits for every CPU, this one included: splx() first',
      self.ci_ilevel);
  }
  const flags = Atomics.or(i32, softreg_word(h, S_FLAGS), SOFTINT_DYING);
  /*
   * Already dying: another call is disestablishing it (the bit was set
   * already, so this call changed nothing).  It cannot have freed the slot
   * since our cookie_slot(): that takes an interrupt point of ours.
   */
  KASSERT((flags & SOFTINT_DYING) === 0, fn, 'sh->sh_func != NULL', 'disestablished concurrently', cookie);
  return h;
}

/** Step 4: stale from now on (the generation first), then free for softint_establish. */
function disestablish_end(self: cpu_info, fn: string, cookie: softint_cookie_t, h: number): void {
  const f = Atomics.load(i32, softreg_word(h, S_FUNC));
  const claimed = f > 0 && Atomics.compareExchange(i32, softreg_word(h, S_FUNC), f, slot_claimed(self.ci_index)) === f;
  KASSERT(claimed, fn, 'sh->sh_func != NULL', 'disestablished concurrently', cookie);
  Atomics.add(i32, softreg_word(h, S_GEN), 1);
  Atomics.store(i32, softreg_word(h, S_FUNC), 0);
}

/*
 * Step 2 of softint_disestablish: a soft interrupt at `level` has run on
 * every running CPU since, which xcall(9) does (a high-priority xcall of
 * nothing at that level), blocking or as a promise.  xcall is built on
 * softint, so it fills these entries when it attaches, rather than softint
 * importing it.
 */
let softint_barrier: (level: number) => void = barrier_missing;
let softint_barrier_async: (level: number) => Promise<void> = barrier_missing;

function barrier_missing(): never {
  throw new IpiError('softint_disestablish: xcall(9) is not attached');
}

/** Fill in the barrier entries (xcall, when it attaches). @internal */
export function softint_establish_barrier(sync: (level: number) => void, async: (level: number) => Promise<void>): void {
  softint_barrier = sync;
  softint_barrier_async = async;
}

/** Fill in the vector table (each thread, once its machine is attached). @internal */
export function softint_attach(): void {
  intr_establish_soft(softint_dispatch, (ci) => (ci.ci_softpending & softint_levels_above(ci.ci_ilevel)) !== 0);
}

/**
 * The flags of established slot h for a caller holding generation gen.
 * Throws if the slot was freed or re-established since the caller's
 * cookie_slot(): the generation is read again after the flags, so the
 * flags, and an IPI id read before this, are the cookie's own.
 */
function softint_flags(fn: string, cookie: number, h: number, gen: number): number {
  const flags = Atomics.load(i32, softreg_word(h, S_FLAGS));
  if (Atomics.load(i32, softreg_word(h, S_GEN)) !== gen) throw stale(fn, cookie);
  return flags;
}

/**
 * softint_schedule: make the handler pending on the current CPU.  A no-op
 * if it is pending there already, or being disestablished.
 * => Preemption must be disabled (true in interrupt context).
 */
export function softint_schedule(cookie: softint_cookie_t): void {
  const fn = 'softint_schedule';
  const self = cpu_self(fn);
  const h = cookie_slot(fn, cookie);
  if (diagnostic) KASSERT(kpreempt_disabled(), fn, 'kpreempt_disabled()', 'call it with preemption disabled (kpreempt_disable())');
  const gen = cookie_gen(cookie, h);
  const flags = softint_flags(fn, cookie, h, gen);
  if ((flags & SOFTINT_DYING) === 0) softint_mark(self, h, gen, flags & SOFTINT_LVLMASK);
}

/**
 * softint_schedule_cpu: make the handler pending on CPU ci; for a remote
 * CPU, through ipi_trigger().  A no-op while it is being disestablished.
 * => Preemption must be disabled.
 * => A remote ci requires a handler established with SOFTINT_RCPU.
 */
export function softint_schedule_cpu(cookie: softint_cookie_t, ci: cpu_info): void {
  const fn = 'softint_schedule_cpu';
  const self = cpu_self(fn);
  const h = cookie_slot(fn, cookie);
  const target = ci_check(fn, 'ci', ci);
  if (diagnostic) KASSERT(kpreempt_disabled(), fn, 'kpreempt_disabled()', 'call it with preemption disabled (kpreempt_disable())');
  const gen = cookie_gen(cookie, h);
  const id = Atomics.load(i32, softreg_word(h, S_IPIID));
  const flags = softint_flags(fn, cookie, h, gen);
  if (target === self.ci_index) {
    if ((flags & SOFTINT_DYING) === 0) softint_mark(self, h, gen, flags & SOFTINT_LVLMASK);
    return;
  }
  KASSERT((flags & SOFTINT_RCPU) !== 0, fn, 'sh->sh_flags & SOFTINT_RCPU',
    'establish the handler with SOFTINT_RCPU to schedule it on a remote CPU', cookie);
  if ((flags & SOFTINT_DYING) !== 0) return;
  if (cpu_dead_p(target)) throw cpu_dead_error(fn, target, true);
  f64[evcnt_index(self.ci_index, EV_SOFT_REMOTE)]++;
  /* No interrupt point since the checks: disestablish's xcall cannot have passed this CPU, so the id is still ours. */
  ipi_trigger(id, ci);
}

/**
 * CPU c has died (marked dead already): free the handler slots it was
 * establishing or disestablishing, with the IPI id of such a handler.
 * @internal
 */
export function softint_cpu_dead(c: number): void {
  for (let h = SOFTINT_RESERVED; h < SOFTINT_MAXHANDLERS; h++) {
    if (Atomics.load(i32, softreg_word(h, S_FUNC)) !== slot_claimed(c)) continue;
    Atomics.add(i32, softreg_word(h, S_GEN), 1);
    const id = Atomics.exchange(i32, softreg_word(h, S_IPIID), 0);
    if (id !== 0) ipi_slot_release(id);
    Atomics.store(i32, softreg_word(h, S_FUNC), 0);
  }
}
