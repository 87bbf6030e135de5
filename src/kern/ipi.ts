/*
 * ipi(9): the machine-independent IPI interface.
 *
 * Background.  There are two mechanisms.  Asynchronous IPIs invoke a
 * registered handler, with the constant argument it was registered with, on
 * a remote CPU.  Synchronous IPIs (cross-calls) run a message's function on
 * remote CPUs; the sender waits for completion with ipi_wait().  Cross-calls
 * are built on the asynchronous mechanism: a message is put into the
 * target's mailbox, then IPI_SYNCH_ID is triggered there.
 *
 * Implementation.  Each CPU has, in kernel memory (layout.ts):
 *   - a pending bitmap, one bit per registered id (IPI_MAXREG = 32 fits in
 *     one word).  A trigger sets the bit; only a sender that found it clear
 *     rings the target's doorbell, so triggers arriving while the bit is set
 *     coalesce into one handler run;
 *   - a mailbox of IPI_MSG_SLOTS words, each 0 or a message descriptor + 1.
 * Messages are objects in the sender's heap ({ func, arg }), which no other
 * thread can read.  Sending one takes a descriptor from the sender's own
 * pool in kernel memory (the symbol of func, the encoded arg, the pending
 * count and an error slot) and ipi_wait() gives it back.
 *
 * Invariants.
 *   - A pending bit is cleared only by its CPU's handler (an atomic swap of
 *     the whole word) and by ipi_unregister() for a freed id.
 *   - A mailbox slot goes from 0 to a descriptor by the sender's
 *     compare-and-swap, and back to 0 by the target, before the function
 *     runs.  After decrementing _pending the target never touches the
 *     descriptor again; the sender reuses it only after _pending is 0.
 *   - _pending of an in-flight message is in [0, ncpu).
 *   - Every handler slot has a generation, bumped at every register and
 *     unregister.  A CPU reads the generation of each pending id right after
 *     taking its pending word, and runs the handler only if the generation
 *     has not moved since: a trigger that was pending when its id was
 *     unregistered never runs the old handler, nor one registered later.
 *
 * Memory ordering.  Atomics are sequentially consistent.  A sender writes
 * the descriptor with plain stores, then publishes it with the atomic store
 * of _pending and the compare-and-swap into the mailbox; the target's atomic
 * load of the slot makes those writes visible.  The target's atomic
 * decrement of _pending publishes the function's effects, and the waiter's
 * atomic load that sees 0 acquires them.  An asynchronous trigger orders the
 * caller's earlier writes before the handler only if it set the bit: a
 * coalesced trigger orders nothing (the handler may already be running).
 *
 * Waits service the waiting CPU's own interrupts (intr.ts), so CPUs that
 * cross-call each other never deadlock.
 */
import { arg_check, arg_decode, arg_decode_error, arg_decode_gen, arg_encode, arg_encode_error } from './arg.js';
import { ci_check, cpu_info, curcpu, diagnostic, kcpuset_attached, kpreempt_disable, kpreempt_disabled, kpreempt_enable, ncpu } from './cpu.js';
import { IpiAssertionError, IpiError, KASSERT, typeError } from './errors.js';
import { cpu_ring, cpu_ring_counted, intr_hard, intr_service, intr_wait, intr_wait_async, machine_halted } from './intr.js';
import { kcpuset_countset, kcpuset_isset, kcpuset_t, KCPUSET_NWORDS } from './kcpuset.js';
import {
  C_DOORBELL, C_IPIPEND, C_MBOX, cell_ipireg, cell_msg, cell_msgerr, cpu_word, EV_INTR, EV_INTR_ERROR, EV_MBOX_FULL,
  EV_MSG_HANDLED, EV_MSG_SENT, evcnt_id_index, evcnt_index, EVI_COALESCED, EVI_RUN, EVI_SENT, f64, i32,
  ipireg_word, M_ERROR, M_FUNC, M_PENDING, msg_word, R_FUNC, R_GEN,
} from './layout.js';
import { md } from './md.js';
import { IPI_MAXREG, IPI_MSG_MAXINFLIGHT, IPI_MSG_SLOTS, IPI_SYNCH_ID } from './param.js';
import { sym_func, sym_id } from './symbol.js';

/** An IPI handler or cross-call function: a kernel symbol taking one argument. */
export type ipi_func_t<A = unknown> = (arg: A) => void;

/**
 * A cross-call message.  func and arg are public; a plain object literal
 * `{ func, arg }` is a valid message.  Everything else lives in kernel memory.
 * => A message must be waited for (ipi_wait) before it is sent again.
 */
export interface ipi_msg_t<A = unknown> {
  func: ipi_func_t<A>;
  arg: A;
}

type call1 = (arg: unknown) => void;

/** How long a sender blocked on a full mailbox naps between polls (ms); its own interrupts end the nap. */
const MBOX_FULL_NAP_MS = 0.05;

/* ------------------------------------------------------- asynchronous */

function id_check(fn: string, id: unknown): number {
  if (typeof id !== 'number') throw typeError(fn, 'ipi_id', 'a number', id);
  if (!Number.isInteger(id) || id < 0 || id >= IPI_MAXREG) {
    throw new IpiAssertionError(`${fn}: assertion "ipi_id < IPI_MAXREG" failed: ipi_id ${id} is not in [0, ${IPI_MAXREG})`);
  }
  return id;
}

/**
 * ipi_register: register an asynchronous IPI handler.  Machine-wide: once it
 * returns, any CPU may trigger the id on any CPU.
 * => func must be a kernel symbol and arg sendable to another CPU.
 * => Returns a non-zero id, or 0 when all IPI_MAXREG - 1 slots are taken.
 */
export function ipi_register<A>(func: ipi_func_t<A>, arg: A): number {
  const fn = 'ipi_register';
  const sym = sym_id(fn, 'func', func);
  arg_check(fn, 'arg', arg);
  for (let id = 1; id < IPI_MAXREG; id++) {
    /* Claim a free slot (-1: being filled in); handlers skip it until published. */
    if (Atomics.compareExchange(i32, ipireg_word(id, R_FUNC), 0, -1) !== 0) continue;
    try {
      arg_encode(fn, 'arg', cell_ipireg(id), arg);
    } catch (e) {
      Atomics.store(i32, ipireg_word(id, R_FUNC), 0);
      throw e;
    }
    Atomics.add(i32, ipireg_word(id, R_GEN), 1);
    /* Publish: the argument cell is visible to whoever loads the function word. */
    Atomics.store(i32, ipireg_word(id, R_FUNC), sym + 1);
    return id;
  }
  return 0;
}

/**
 * ipi_unregister: release the handler registered as ipi_id.  When it
 * returns, the handler runs nowhere and will not run again, even for
 * triggers that were still pending.
 * => ipi_id must not be IPI_SYNCH_ID, must be < IPI_MAXREG, must be registered.
 * => Waits for every CPU (a broadcast barrier), so it blocks.
 */
export function ipi_unregister(ipi_id: number): void {
  const fn = 'ipi_unregister';
  id_check(fn, ipi_id);
  KASSERT(ipi_id !== IPI_SYNCH_ID, fn, 'ipi_id != IPI_SYNCH_ID', 'the synchronous IPI id cannot be unregistered');
  /* Mark the slot busy (-1), not free: it cannot be registered again before the stale triggers are gone. */
  const f = Atomics.load(i32, ipireg_word(ipi_id, R_FUNC));
  KASSERT(f > 0 && Atomics.compareExchange(i32, ipireg_word(ipi_id, R_FUNC), f, -1) === f, fn,
    'ipi_intrs[ipi_id].func != NULL', 'ipi_id is not registered', ipi_id);
  Atomics.add(i32, ipireg_word(ipi_id, R_GEN), 1);

  /*
   * Every CPU, this one included, passes an interrupt point.  A trigger
   * cannot be interrupted, so every trigger that found the id registered
   * has completed when this returns.
   */
  const barrier: ipi_msg_t<undefined> = { func: ipi_nullop, arg: undefined };
  kpreempt_disable();
  try {
    ipi_broadcast(barrier, false);
    ipi_wait(barrier);
  } finally {
    kpreempt_enable();
  }
  /* Now drop the triggers that are still pending for the old handler, then free the slot. */
  const keep = ~(1 << ipi_id);
  for (let c = 0; c < ncpu; c++) Atomics.and(i32, cpu_word(c, C_IPIPEND), keep);
  Atomics.store(i32, ipireg_word(ipi_id, R_FUNC), 0);
}

/** The no-op function of the unregister barrier. */
export function ipi_nullop(): void {}

/** Set ipi_id pending on CPU `target`; true if it was clear (the doorbell must ring). */
function ipi_mark_pending(self: number, ipi_id: number, target: number): boolean {
  const w = cpu_word(target, C_IPIPEND);
  const bit = 1 << ipi_id;
  f64[evcnt_id_index(self, ipi_id, EVI_SENT)]!++;
  /* The check alone: a trigger that finds the bit set writes nothing shared. */
  if ((Atomics.load(i32, w) & bit) === 0 && (Atomics.or(i32, w, bit) & bit) === 0) return true;
  f64[evcnt_id_index(self, ipi_id, EVI_COALESCED)]!++;
  return false;
}

/** Trigger ipi_id on CPU target from self: mark it pending, ring only if it was clear. */
function ipi_trigger_cpu(self: cpu_info, ipi_id: number, target: number): void {
  if (ipi_mark_pending(self.ci_index, ipi_id, target)) cpu_ring_counted(self, target);
}

function trigger_check(fn: string, ipi_id: number): void {
  id_check(fn, ipi_id);
  if (!diagnostic) return;
  KASSERT(kpreempt_disabled(), fn, 'kpreempt_disabled()', 'call it with preemption disabled (kpreempt_disable())');
  KASSERT(Atomics.load(i32, ipireg_word(ipi_id, R_FUNC)) > 0, fn, 'ipi_intrs[ipi_id].func != NULL',
    'ipi_id is not registered', ipi_id);
}

/**
 * ipi_trigger: trigger the IPI ipi_id on the remote CPU ci.  Triggers that
 * find it still pending coalesce into one run, and order nothing.
 * => Preemption must be disabled.
 * => ci must be remote; ipi_id must be registered.
 */
export function ipi_trigger(ipi_id: number, ci: cpu_info): void {
  const fn = 'ipi_trigger';
  const self = curcpu();
  const target = ci_check(fn, 'ci', ci);
  trigger_check(fn, ipi_id);
  if (diagnostic) KASSERT(target !== self.ci_index, fn, 'curcpu() != ci', 'the target must be a remote CPU', ci);
  ipi_trigger_cpu(self, ipi_id, target);
}

function target_check(fn: string, target: unknown): kcpuset_t {
  if (!(target instanceof kcpuset_t)) throw typeError(fn, 'target', 'a kcpuset_t', target);
  /* Always checked: a member that is no CPU of this machine would never answer. */
  for (let w = 0; w < KCPUSET_NWORDS; w++) {
    const extra = target.bits[w]! & ~kcpuset_attached.bits[w]!;
    if (extra !== 0) {
      throw new IpiAssertionError(`${fn}: assertion "kcpuset_match(target ∩ kcpuset_attached, target)" failed: ` +
        `the set holds cpu${w * 32 + 31 - Math.clz32(extra & -extra)}, which is not attached (ncpu ${ncpu})`);
    }
  }
  return target;
}

function ipi_trigger_multi_internal(fn: string, ipi_id: number, target: kcpuset_t, skip_self: boolean): void {
  const self = curcpu();
  trigger_check(fn, ipi_id);
  const me = self.ci_index;
  let local = false;
  for (let w = 0; w < KCPUSET_NWORDS; w++) {
    for (let bits = target.bits[w]!; bits !== 0; bits &= bits - 1) {
      const c = w * 32 + 31 - Math.clz32(bits & -bits);
      if (c === me) {
        local = true;
        continue;
      }
      ipi_trigger_cpu(self, ipi_id, c);
    }
  }
  if (local && !skip_self) {
    /* As NetBSD's splhigh(); ipi_cpu_handler(); splx(s): then the soft interrupts the handler scheduled. */
    ipi_mark_pending(me, ipi_id, me);
    intr_service(self, true);
  }
}

/**
 * ipi_trigger_multi: trigger ipi_id on every CPU of target.  If the calling
 * CPU is a member, its handler runs here, at IPL_HIGH, before this returns.
 * => Preemption must be disabled; target must hold attached CPUs only.
 */
export function ipi_trigger_multi(ipi_id: number, target: kcpuset_t): void {
  ipi_trigger_multi_internal('ipi_trigger_multi', ipi_id, target_check('ipi_trigger_multi', target), false);
}

/**
 * ipi_trigger_broadcast: trigger ipi_id on every attached CPU; on this one
 * too (synchronously, at IPL_HIGH) unless skip_self.
 * => Preemption must be disabled.
 */
export function ipi_trigger_broadcast(ipi_id: number, skip_self: boolean): void {
  if (typeof skip_self !== 'boolean') throw typeError('ipi_trigger_broadcast', 'skip_self', 'a boolean', skip_self);
  ipi_trigger_multi_internal('ipi_trigger_broadcast', ipi_id, kcpuset_attached, skip_self);
}

/* Per-CPU: the generations seen when a pending word was taken, one array per nesting depth. */
const genSnap: Int32Array[] = [];
let handlerDepth = 0;
/**
 * ipi_cpu_handler: the hard interrupt handler of the current CPU: take the
 * pending bitmap and run each pending id's handler, lowest id first.  An
 * asynchronous handler that throws is counted and reported; the CPU goes on.
 * => Called by the service pass at IPL_HIGH (intr.ts). @internal
 */
export function ipi_cpu_handler(ci: cpu_info): void {
  const me = ci.ci_index;
  const pending = Atomics.exchange(i32, ci.ci_ipipend, 0);
  if (pending === 0) return;
  f64[evcnt_index(me, EV_INTR)]!++;
  /* Acquire: the swap above makes the triggering CPUs' earlier writes visible. */
  const snap = genSnap[handlerDepth] ?? (genSnap[handlerDepth] = new Int32Array(IPI_MAXREG));
  for (let p = pending; p !== 0; p &= p - 1) {
    const id = 31 - Math.clz32(p & -p);
    snap[id] = Atomics.load(i32, ipireg_word(id, R_GEN));
  }
  handlerDepth++;
  try {
    for (let p = pending; p !== 0; p &= p - 1) {
      const id = 31 - Math.clz32(p & -p);
      if (id === IPI_SYNCH_ID) {
        ipi_msg_cpu_handler(ci);
        continue;
      }
      const gen = snap[id]!;
      const f = Atomics.load(i32, ipireg_word(id, R_FUNC));
      /* Unregistered, re-registered or being registered since the bit was taken: stale. */
      if (f <= 0 || Atomics.load(i32, ipireg_word(id, R_GEN)) !== gen) continue;
      f64[evcnt_id_index(me, id, EVI_RUN)]!++;
      try {
        (sym_func(f - 1) as call1)(arg_decode_gen(cell_ipireg(id), gen));
      } catch (e) {
        f64[evcnt_index(me, EV_INTR_ERROR)]!++;
        md.report(e);
      }
    }
  } finally {
    handlerDepth--;
  }
}

/* -------------------------------------------------------- synchronous */

/*
 * The sending CPU's descriptors: a stack of free ones, and for each one in
 * flight the message it carries (a strong reference until ipi_wait) and the
 * error of a local run.  A WeakMap finds a message's descriptor; the entry
 * is valid only while descMsg agrees, so a reused message updates it in
 * place and sending allocates nothing.
 */
let descBase = 0;
const descFree = new Int32Array(IPI_MSG_MAXINFLIGHT);
let descTop = 0;
const descMsg: (object | undefined)[] = new Array(IPI_MSG_MAXINFLIGHT).fill(undefined);
const descLocalError: unknown[] = new Array(IPI_MSG_MAXINFLIGHT).fill(undefined);
let msgDesc = new WeakMap<object, number>();

/** Reset this CPU's descriptor pool. @internal */
export function ipi_msg_init(cpu: number): void {
  descBase = cpu * IPI_MSG_MAXINFLIGHT;
  descTop = 0;
  for (let i = IPI_MSG_MAXINFLIGHT - 1; i >= 0; i--) descFree[descTop++] = descBase + i;
  descMsg.fill(undefined);
  descLocalError.fill(undefined);
  msgDesc = new WeakMap();
}

/** The in-flight descriptor of msg on this CPU, or -1. */
function msg_desc(msg: object): number {
  const d = msgDesc.get(msg);
  return d !== undefined && descMsg[d - descBase] === msg ? d : -1;
}

function desc_release(d: number): void {
  descMsg[d - descBase] = undefined;
  descLocalError[d - descBase] = undefined;
  descFree[descTop++] = d;
}

/**
 * Validate msg, take a descriptor and fill it in.  The caller sets
 * _pending, which publishes it.
 */
function msg_prepare(fn: string, msg: ipi_msg_t<unknown>): number {
  if (typeof msg !== 'object' || msg === null) throw typeError(fn, 'msg', 'an ipi_msg_t ({ func, arg })', msg);
  const func = msg.func;
  if (diagnostic) KASSERT(func != null, fn, 'msg->func != NULL', 'set msg.func to a kernel symbol');
  const sym = sym_id(fn, 'msg.func', func);
  const old = msg_desc(msg);
  if (old >= 0) {
    KASSERT(Atomics.load(i32, msg_word(old, M_PENDING)) === 0, fn, 'msg->_pending == 0',
      'the message is still pending: ipi_wait() for it before sending it again');
    /* Completed but never waited for: collect it so that nothing is lost. */
    try {
      msg_finish(fn, old);
    } catch (e) {
      md.report(e);
    }
  }
  if (descTop === 0) {
    throw new IpiError(`${fn}: cpu${curcpu().ci_index} has IPI_MSG_MAXINFLIGHT (${IPI_MSG_MAXINFLIGHT}) messages ` +
      'in flight: ipi_wait() for a message before sending more');
  }
  const d = descFree[--descTop]!;
  try {
    arg_encode(fn, 'msg.arg', cell_msg(d), msg.arg);
  } catch (e) {
    descFree[descTop++] = d;
    throw e;
  }
  i32[msg_word(d, M_FUNC)] = sym;
  i32[msg_word(d, M_ERROR)] = 0;
  descMsg[d - descBase] = msg;
  msgDesc.set(msg, d);
  return d;
}

/** Send descriptor d to CPU target: its mailbox, then IPI_SYNCH_ID. */
function msg_send(self: cpu_info, target: number, d: number): void {
  put_msg(self, target, d);
  ipi_trigger_cpu(self, IPI_SYNCH_ID, target);
}

/** Put descriptor d into CPU target's mailbox, spinning (and servicing) while it is full. */
function put_msg(self: cpu_info, target: number, d: number): void {
  const mbox = cpu_word(target, C_MBOX);
  f64[evcnt_index(self.ci_index, EV_MSG_SENT)]!++;
  for (let full = 0; ; full++) {
    for (let i = 0; i < IPI_MSG_SLOTS; i++) {
      /* Publish: the descriptor's plain writes are ordered before this CAS. */
      if (Atomics.compareExchange(i32, mbox + i, 0, d + 1) === 0) return;
    }
    /* All slots full: the target is busy.  Take our own interrupts while we spin. */
    if (full === 0) f64[evcnt_index(self.ci_index, EV_MBOX_FULL)]!++;
    mbox_full_wait(self, target, full);
  }
}

function mbox_full_wait(self: cpu_info, target: number, spins: number): void {
  intr_hard(self);
  if (machine_halted()) throw new IpiError(`ipi: the machine was shut down while cpu${target}'s mailbox was full`);
  /* Every so often, make sure the target looks at its mailbox and give it the core for a moment. */
  if ((spins & 63) === 63) {
    cpu_ring(target);
    const bell = cpu_word(self.ci_index, C_DOORBELL);
    if (md.can_block) md.sleep(bell, Atomics.load(i32, bell), MBOX_FULL_NAP_MS);
  }
}

/** The IPI_SYNCH_ID handler: run every message in this CPU's mailbox. */
function ipi_msg_cpu_handler(ci: cpu_info): void {
  const me = ci.ci_index;
  const mbox = cpu_word(me, C_MBOX);
  for (let i = 0; i < IPI_MSG_SLOTS; i++) {
    /* Acquire: the load that finds the descriptor makes its contents visible. */
    const slot = Atomics.load(i32, mbox + i);
    if (slot === 0) continue;
    const d = slot - 1;
    /* Clear the slot before running, so the sender can use it again at once. */
    Atomics.store(i32, mbox + i, 0);
    f64[evcnt_index(me, EV_MSG_HANDLED)]!++;
    try {
      (sym_func(i32[msg_word(d, M_FUNC)]!) as call1)(arg_decode(cell_msg(d)));
    } catch (e) {
      if (Atomics.compareExchange(i32, msg_word(d, M_ERROR), 0, -1) === 0) {
        arg_encode_error(cell_msgerr(d), me, e);
        Atomics.store(i32, msg_word(d, M_ERROR), me + 1);
      }
    }
    /* Acknowledge (release): after this the descriptor belongs to its sender again. */
    if (Atomics.sub(i32, msg_word(d, M_PENDING), 1) === 1) cpu_ring((d / IPI_MSG_MAXINFLIGHT) | 0);
  }
}

/** Run a message's function on this CPU, in the caller's context; an error is kept for ipi_wait. */
function msg_run_local(d: number, msg: ipi_msg_t<unknown>): void {
  try {
    msg.func(msg.arg);
  } catch (e) {
    descLocalError[d - descBase] = e;
  }
}

function send_check(fn: string): cpu_info {
  const self = curcpu();
  if (diagnostic) KASSERT(kpreempt_disabled(), fn, 'kpreempt_disabled()', 'call it with preemption disabled (kpreempt_disable())');
  return self;
}

/**
 * ipi_unicast: send msg to the remote CPU ci.
 * => Preemption must be disabled; ci must be remote.
 * => msg.func must be a kernel symbol; msg must not be pending.
 */
export function ipi_unicast<A>(msg: ipi_msg_t<A>, ci: cpu_info): void {
  const fn = 'ipi_unicast';
  const self = send_check(fn);
  const target = ci_check(fn, 'ci', ci);
  if (diagnostic) KASSERT(target !== self.ci_index, fn, 'curcpu() != ci', 'the target must be a remote CPU', ci);
  const d = msg_prepare(fn, msg as ipi_msg_t<unknown>);
  Atomics.store(i32, msg_word(d, M_PENDING), 1);
  msg_send(self, target, d);
}

/**
 * ipi_multicast: send msg to every CPU of target.  If the calling CPU is a
 * member, it runs the function itself, after sending, in its own context;
 * that run is not counted in _pending.
 * => Preemption must be disabled; target must hold attached CPUs only.
 */
export function ipi_multicast<A>(msg: ipi_msg_t<A>, target: kcpuset_t): void {
  const fn = 'ipi_multicast';
  const self = send_check(fn);
  target_check(fn, target);
  const me = self.ci_index;
  const d = msg_prepare(fn, msg as ipi_msg_t<unknown>);
  const local = kcpuset_isset(target, me);
  Atomics.store(i32, msg_word(d, M_PENDING), kcpuset_countset(target) - (local ? 1 : 0));
  for (let w = 0; w < KCPUSET_NWORDS; w++) {
    for (let bits = target.bits[w]!; bits !== 0; bits &= bits - 1) {
      const c = w * 32 + 31 - Math.clz32(bits & -bits);
      if (c !== me) msg_send(self, c, d);
    }
  }
  if (local) msg_run_local(d, msg as ipi_msg_t<unknown>);
}

/**
 * ipi_broadcast: send msg to every other CPU, then run it on this one unless
 * skip_self (NetBSD 7's one-argument form: skip_self = false).
 * => Preemption must be disabled.
 */
export function ipi_broadcast<A>(msg: ipi_msg_t<A>, skip_self = false): void {
  const fn = 'ipi_broadcast';
  if (typeof skip_self !== 'boolean') throw typeError(fn, 'skip_self', 'a boolean', skip_self);
  const self = send_check(fn);
  const me = self.ci_index;
  const d = msg_prepare(fn, msg as ipi_msg_t<unknown>);
  Atomics.store(i32, msg_word(d, M_PENDING), ncpu - 1);
  for (let c = 0; c < ncpu; c++) if (c !== me) msg_send(self, c, d);
  if (!skip_self) msg_run_local(d, msg as ipi_msg_t<unknown>);
}

/** Wait predicate: all remote runs of descriptor d have acknowledged. */
function msg_done(d: number): boolean {
  const p = Atomics.load(i32, msg_word(d, M_PENDING));
  if (diagnostic) KASSERT(p >= 0 && p < ncpu, 'ipi_wait', 'msg->_pending < ncpu', 'the pending count is out of range', p);
  return p === 0;
}

/** Give d back to the pool; throw the error of a run, if any. */
function msg_finish(fn: string, d: number): void {
  const local = descLocalError[d - descBase];
  const remote = Atomics.load(i32, msg_word(d, M_ERROR)) > 0 ? arg_decode_error(fn, cell_msgerr(d)) : undefined;
  desc_release(d);
  if (local !== undefined) throw local;
  if (remote !== undefined) throw remote;
}

function wait_lookup(fn: string, msg: unknown): number {
  if (typeof msg !== 'object' || msg === null) throw typeError(fn, 'msg', 'an ipi_msg_t ({ func, arg })', msg);
  return msg_desc(msg);
}

/**
 * ipi_wait: wait until every remote run of msg has completed; their
 * effects are visible when it returns.  Services this CPU's interrupts
 * while it waits.  If a run threw, throws that error (IpiRemoteError for a
 * remote run).  Returns at once for a message not in flight.
 * => Blocks: on a thread that cannot block, use ipi_wait_async().
 */
export function ipi_wait<A>(msg: ipi_msg_t<A>): void {
  const fn = 'ipi_wait';
  const d = wait_lookup(fn, msg);
  if (d < 0) return;
  if (!msg_done(d)) intr_wait(fn, 'ipi_wait_async()', msg_done, d);
  msg_finish(fn, d);
}

/**
 * ipi_wait_async: ipi_wait() as a promise, for any thread: the caller's
 * event loop, and so its interrupts, keep running.  Rejects rather than throws.
 */
export async function ipi_wait_async<A>(msg: ipi_msg_t<A>): Promise<void> {
  const fn = 'ipi_wait_async';
  const d = wait_lookup(fn, msg);
  if (d < 0) return;
  if (!msg_done(d)) await intr_wait_async(fn, msg_done, d);
  msg_finish(fn, d);
}

