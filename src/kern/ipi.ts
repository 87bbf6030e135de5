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
 * pool in kernel memory (the symbol of func, the encoded arg, the set of
 * targets that have not acknowledged, the set of targets that failed) and
 * ipi_wait() gives it back.  NetBSD's _pending is the size of the targets
 * set: a set rather than a count, so that the part of a CPU that dies can
 * be written off exactly once, and a wait that gives up can say who owes it.
 *
 * Invariants.
 *   - A pending bit is cleared only by its CPU's handler (an atomic swap of
 *     the whole word) and by ipi_unregister() for a freed id.
 *   - A mailbox slot goes from 0 to a descriptor by the sender's
 *     compare-and-swap, and back to 0 by the target, before the function
 *     runs.  After removing itself from the targets set the target never
 *     touches the descriptor again; the sender reuses it only once the set
 *     is empty.
 *   - The targets set of an in-flight message holds running CPUs other than
 *     its sender (so _pending < ncpu).  A free descriptor has both sets empty.
 *   - Every handler slot has a generation, bumped at every register and
 *     unregister.  A CPU reads the generation of each pending id right after
 *     taking its pending word, and runs the handler only if the generation
 *     has not moved since: a trigger that was pending when its id was
 *     unregistered never runs the old handler, nor one registered later.
 *
 * Memory ordering.  Atomics are sequentially consistent.  A sender writes
 * the descriptor with plain stores, then publishes it with the atomic
 * stores of its targets and the compare-and-swap into the mailbox; the
 * target's atomic load of the slot makes those writes visible.  The
 * target's atomic removal of itself from the targets set publishes the
 * function's effects (and its failure, recorded before), and the waiter's
 * atomic load that sees the set empty acquires them.  An asynchronous
 * trigger orders the caller's earlier writes before the handler only if it
 * set the bit: a coalesced trigger orders nothing (the handler may already
 * be running).
 *
 * Failure.  A function that throws, or returns a promise that rejects, is
 * a failure of its CPU's part: the target records it (failure.ts), then
 * acknowledges as usual.  A CPU that dies has its part of every message
 * written off (ipi_cpu_dead): whoever removes it from a targets set first,
 * the death handler or a sender that saw it die, adds it to the failed
 * set.  Sends to a CPU that is already dead throw at once.
 *
 * Waits service the waiting CPU's own interrupts (intr.ts), so CPUs that
 * cross-call each other never deadlock.
 */
import { arg_check, arg_decode, arg_decode_gen, arg_encode } from './arg.js';
import {
  act_enter, act_leave, ci_check, cpu_dead_p, cpu_info, cpu_self, diagnostic, kcpuset_attached, kcpuset_running, kpreempt_disable,
  kpreempt_disabled, kpreempt_enable, ncpu,
} from './cpu.js';
import { error_record, failures_error, IpiAssertionError, IpiCpuDeadError, IpiError, IpiRemoteError, KASSERT, typeError } from './errors.js';
import {
  cpu_dead_error, fail_collect, fail_kind, fail_note, handler_run, rejected_failure, set_add, set_count, set_empty, set_members, set_take,
  thenable_p,
} from './failure.js';
import {
  block_check, cpu_ring, cpu_ring_counted, intr_establish_ipi, intr_hard, intr_service, intr_wait, intr_wait_async, machine_halted, signal_check,
  timeout_check, W_IPI_UNREGISTER, W_IPI_UNREGISTER_ASYNC, W_IPI_WAIT, W_IPI_WAIT_ASYNC, wait_name, wait_options, type wait_chan,
} from './intr.js';
import { kcpuset_isset, kcpuset_t, KCPUSET_NWORDS } from './kcpuset.js';
import {
  ACT_IPI, ACT_MSG, C_IPIPEND, C_MBOX, cell_ipireg, cell_msg, cpu_word, ERR_MSG, EV_INTR, EV_MBOX_FULL, EV_MSG_HANDLED,
  EV_MSG_SENT, evcnt_id_index, evcnt_index, EVI_COALESCED, EVI_RUN, EVI_SENT, f64, H_DEADGEN, i32, ipireg_word, M_FUNC, M_SEQ,
  M_TARGETS, msg_failed, msg_word, NW, R_FUNC, R_GEN,
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

/** Options of ipi_wait(). */
export interface ipi_wait_options {
  /** Give up after this many milliseconds with an IpiTimeoutError; the message stays in flight. */
  timeout?: number;
}

/** Options of ipi_wait_async(). */
export interface ipi_wait_async_options extends ipi_wait_options {
  /** Give up when this signal aborts (the promise rejects with its reason); the message stays in flight. */
  signal?: AbortSignal;
}

type call1 = (arg: unknown) => unknown;

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

/** A slot value that says CPU `cpu` is filling it in or freeing it. */
export const slot_claimed = (cpu: number): number => -(cpu + 1);

/**
 * ipi_register: register an asynchronous IPI handler.  Machine-wide: once it
 * returns, any CPU may trigger the id on any CPU.
 * => func must be a kernel symbol and arg sendable to another CPU.
 * => Returns a non-zero id, or 0 when all IPI_MAXREG - 1 slots are taken.
 */
export function ipi_register<A>(func: ipi_func_t<A>, arg: A): number {
  const fn = 'ipi_register';
  const self = cpu_self(fn);
  const sym = sym_id(self, fn, 'func', func);
  arg_check(fn, 'arg', arg);
  for (let id = 1; id < IPI_MAXREG; id++) {
    /* Claim a free slot; handlers skip it until published. */
    if (Atomics.compareExchange(i32, ipireg_word(id, R_FUNC), 0, slot_claimed(self.ci_index)) !== 0) continue;
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
 * => Waits for every running CPU (a broadcast barrier), so it blocks: on a
 *    thread that cannot block, use ipi_unregister_async().
 */
export function ipi_unregister(ipi_id: number): void {
  const self = cpu_self('ipi_unregister');
  block_check(W_IPI_UNREGISTER);
  msg_wait_live(self, W_IPI_UNREGISTER, unregister_begin(self, 'ipi_unregister', ipi_id));
  ipi_slot_free(ipi_id);
}

/** ipi_unregister() as a promise, for any thread: resolves when the handler runs nowhere. */
export async function ipi_unregister_async(ipi_id: number): Promise<void> {
  const self = cpu_self('ipi_unregister_async');
  await msg_wait_live_async(self, W_IPI_UNREGISTER_ASYNC, unregister_begin(self, 'ipi_unregister_async', ipi_id));
  ipi_slot_free(ipi_id);
}

/** Claim ipi_id's slot and send the barrier every running CPU must pass; returns the barrier. */
function unregister_begin(self: cpu_info, fn: string, ipi_id: number): ipi_msg_t<undefined> {
  id_check(fn, ipi_id);
  KASSERT(ipi_id !== IPI_SYNCH_ID, fn, 'ipi_id != IPI_SYNCH_ID', 'the synchronous IPI id cannot be unregistered');
  /* Claim the slot, not free it: it cannot be registered again before the stale triggers are gone. */
  const f = Atomics.load(i32, ipireg_word(ipi_id, R_FUNC));
  const claimed = f > 0 && Atomics.compareExchange(i32, ipireg_word(ipi_id, R_FUNC), f, slot_claimed(self.ci_index)) === f;
  KASSERT(claimed, fn, 'ipi_intrs[ipi_id].func != NULL', 'ipi_id is not registered', ipi_id);
  Atomics.add(i32, ipireg_word(ipi_id, R_GEN), 1);

  /*
   * Every running CPU, this one included, passes an interrupt point.  A
   * trigger cannot be interrupted, so every trigger that found the id
   * registered has completed once the barrier has.  A CPU that dies
   * meanwhile runs nothing any more: the barrier counts only the living.
   */
  const barrier: ipi_msg_t<undefined> = { func: ipi_nullop, arg: undefined };
  kpreempt_disable();
  try {
    ipi_broadcast(barrier, false);
  } catch (e) {
    /* Not sent: the id stays registered (triggers taken meanwhile were skipped as for a claimed slot). */
    Atomics.store(i32, ipireg_word(ipi_id, R_FUNC), f);
    throw new IpiError(`${fn}: the barrier could not be sent, so ipi_id ${ipi_id} is still registered: ${error_record(e).message}`,
      { cause: e });
  } finally {
    kpreempt_enable();
  }
  return barrier;
}

/** Drop the triggers still pending for a freed id on every CPU, then free its slot. */
function ipi_slot_free(ipi_id: number): void {
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
  f64[evcnt_id_index(self, ipi_id, EVI_SENT)]++;
  /* The check alone: a trigger that finds the bit set writes nothing shared. */
  if ((Atomics.load(i32, w) & bit) === 0 && (Atomics.or(i32, w, bit) & bit) === 0) return true;
  f64[evcnt_id_index(self, ipi_id, EVI_COALESCED)]++;
  return false;
}

/** Trigger ipi_id on CPU target from self: mark it pending, ring only if it was clear. */
function ipi_trigger_cpu(self: cpu_info, ipi_id: number, target: number): void {
  if (ipi_mark_pending(self.ci_index, ipi_id, target)) cpu_ring_counted(self, target);
}

function trigger_check(fn: string, ipi_id: number): void {
  id_check(fn, ipi_id);
  if (ipi_id === IPI_SYNCH_ID) {
    throw new IpiAssertionError(`${fn}: assertion "ipi_id != IPI_SYNCH_ID" failed: id 0 is reserved for cross-calls ` +
      '(ipi_register returns 0 when its table is full: check its result)');
  }
  if (!diagnostic) return;
  KASSERT(kpreempt_disabled(), fn, 'kpreempt_disabled()', 'call it with preemption disabled (kpreempt_disable())');
  KASSERT(Atomics.load(i32, ipireg_word(ipi_id, R_FUNC)) > 0, fn, 'ipi_intrs[ipi_id].func != NULL',
    'ipi_id is not registered', ipi_id);
}

/**
 * ipi_trigger: trigger the IPI ipi_id on the remote CPU ci.  Triggers that
 * find it still pending coalesce into one run, and order nothing.
 * => Preemption must be disabled.
 * => ci must be remote and alive; ipi_id must be registered.
 */
export function ipi_trigger(ipi_id: number, ci: cpu_info): void {
  const fn = 'ipi_trigger';
  const self = cpu_self(fn);
  const target = ci_check(fn, 'ci', ci);
  trigger_check(fn, ipi_id);
  if (diagnostic) KASSERT(target !== self.ci_index, fn, 'curcpu() != ci', 'the target must be a remote CPU', ci);
  if (cpu_dead_p(target)) throw cpu_dead_error(fn, target, true);
  ipi_trigger_cpu(self, ipi_id, target);
}

/** Check a target set: attached CPUs only (always: a CPU that does not exist never answers) and none dead. */
function target_check(fn: string, target: unknown): kcpuset_t {
  if (!(target instanceof kcpuset_t)) throw typeError(fn, 'target', 'a kcpuset_t', target);
  for (let w = 0; w < KCPUSET_NWORDS; w++) {
    const extra = target.bits[w] & ~kcpuset_attached.bits[w];
    if (extra !== 0) {
      throw new IpiAssertionError(`${fn}: assertion "kcpuset_match(target ∩ kcpuset_attached, target)" failed: ` +
        `the set holds cpu${w * 32 + 31 - Math.clz32(extra & -extra)}, which is not attached (ncpu ${ncpu})`);
    }
  }
  for (let w = 0; w < NW; w++) {
    const dead = target.bits[w] & ~Atomics.load(kcpuset_running.bits, w);
    if (dead !== 0) {
      const c = w * 32 + 31 - Math.clz32(dead & -dead);
      if (cpu_dead_p(c)) throw cpu_dead_error(fn, c, true);
    }
  }
  return target;
}

function ipi_trigger_multi_internal(fn: string, ipi_id: number, target: kcpuset_t, skip_self: boolean): void {
  const self = cpu_self(fn);
  trigger_check(fn, ipi_id);
  const me = self.ci_index;
  let local = false;
  for (let w = 0; w < NW; w++) {
    for (let bits = target.bits[w]; bits !== 0; bits &= bits - 1) {
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
 * => Preemption must be disabled; target must hold attached, living CPUs only.
 */
export function ipi_trigger_multi(ipi_id: number, target: kcpuset_t): void {
  cpu_self('ipi_trigger_multi');
  ipi_trigger_multi_internal('ipi_trigger_multi', ipi_id, target_check('ipi_trigger_multi', target), false);
}

/**
 * ipi_trigger_broadcast: trigger ipi_id on every running CPU; on this one
 * too (synchronously, at IPL_HIGH) unless skip_self.  Dead CPUs are left out.
 * => Preemption must be disabled.
 */
export function ipi_trigger_broadcast(ipi_id: number, skip_self: boolean): void {
  cpu_self('ipi_trigger_broadcast');
  if (typeof skip_self !== 'boolean') throw typeError('ipi_trigger_broadcast', 'skip_self', 'a boolean', skip_self);
  ipi_trigger_multi_internal('ipi_trigger_broadcast', ipi_id, kcpuset_running, skip_self);
}

/**
 * ipi_cpu_handler: the hard interrupt handler of the current CPU: take the
 * pending bitmap and run each pending id's handler, lowest id first.  An
 * asynchronous handler that fails is counted and reported; the CPU goes on.
 * => Called by the service pass at IPL_HIGH (intr.ts). @internal
 */
export function ipi_cpu_handler(ci: cpu_info): void {
  const me = ci.ci_index;
  const pending = Atomics.exchange(i32, ci.ci_ipipend, 0);
  if (pending === 0) return;
  f64[evcnt_index(me, EV_INTR)]++;
  /* Acquire: the swap above makes the triggering CPUs' earlier writes visible. */
  const depth = ci.ci_ipidepth;
  const snap = ci.ci_ipigen[depth] ?? (ci.ci_ipigen[depth] = new Int32Array(IPI_MAXREG));
  for (let p = pending; p !== 0; p &= p - 1) {
    const id = 31 - Math.clz32(p & -p);
    snap[id] = Atomics.load(i32, ipireg_word(id, R_GEN));
  }
  ci.ci_ipidepth++;
  try {
    for (let p = pending; p !== 0; p &= p - 1) {
      const id = 31 - Math.clz32(p & -p);
      if (id === IPI_SYNCH_ID) {
        ipi_msg_cpu_handler(ci);
        continue;
      }
      const gen = snap[id];
      const f = Atomics.load(i32, ipireg_word(id, R_FUNC));
      /* Unregistered, re-registered or being registered since the bit was taken: stale. */
      if (f <= 0 || Atomics.load(i32, ipireg_word(id, R_GEN)) !== gen) continue;
      f64[evcnt_id_index(me, id, EVI_RUN)]++;
      handler_run(ci, ACT_IPI, f - 1, arg_decode_gen(ci, cell_ipireg(id), gen));
    }
  } finally {
    ci.ci_ipidepth--;
  }
}

/* -------------------------------------------------------- synchronous */

/*
 * The sending CPU's descriptors live in its cpu_info (ci_msg*): a stack of
 * free ones, and for each one in flight the message it carries (a strong
 * reference until ipi_wait) and the error of a local run.  A WeakMap finds
 * a message's descriptor; the entry is valid only while ci_msgobj agrees,
 * so a reused message updates it in place and sending allocates nothing.
 */

/** The error of the local run of a multicast or broadcast; NO_ERROR if none (undefined can be thrown). */
const NO_ERROR = Symbol('no error');

/** Fill in the vector table (each thread, once its machine is attached). @internal */
export function ipi_attach(): void {
  intr_establish_ipi(ipi_cpu_handler);
}

/** Has descriptor d been sent again since its failure records were written with `seq`? */
fail_kind(ERR_MSG, (d, seq) => Atomics.load(i32, msg_word(d, M_SEQ)) !== seq);

/** The in-flight descriptor of msg on CPU ci, or -1. */
function msg_desc(ci: cpu_info, msg: object): number {
  const d = ci.ci_msgof.get(msg);
  return d !== undefined && ci.ci_msgobj[d - ci.ci_msgbase] === msg ? d : -1;
}

function desc_release(ci: cpu_info, d: number): void {
  ci.ci_msgobj[d - ci.ci_msgbase] = undefined;
  ci.ci_msglocal[d - ci.ci_msgbase] = NO_ERROR;
  ci.ci_msgfree[ci.ci_msgtop++] = d;
}

/** Validate a message: an object with a function `func`. */
function msg_check(fn: string, msg: unknown): asserts msg is ipi_msg_t<unknown> {
  if (typeof msg !== 'object' || msg === null || typeof (msg as { func?: unknown }).func !== 'function') {
    if (typeof msg === 'object' && msg !== null && (msg as { func?: unknown }).func == null) {
      if (diagnostic) KASSERT(false, fn, 'msg->func != NULL', 'set msg.func to a kernel symbol');
    }
    throw typeError(fn, 'msg', 'an ipi_msg_t ({ func, arg } with func a kernel symbol)', msg);
  }
}

/**
 * Validate msg, take a descriptor and fill it in.  The caller adds the
 * targets, which publishes it.
 */
function msg_prepare(ci: cpu_info, fn: string, msg: ipi_msg_t<unknown>): number {
  msg_check(fn, msg);
  const sym = sym_id(ci, fn, 'msg.func', msg.func);
  const old = msg_desc(ci, msg);
  if (old >= 0) {
    KASSERT(set_empty(msg_word(old, M_TARGETS)), fn, 'msg->_pending == 0',
      'the message is still pending: ipi_wait() for it before sending it again');
    /* Completed but never waited for: collect it so that nothing is lost. */
    try {
      msg_finish(ci, fn, old);
    } catch (e) {
      md.report(e);
    }
  }
  if (ci.ci_msgtop === 0) {
    throw new IpiError(`${fn}: ${ci} has IPI_MSG_MAXINFLIGHT (${IPI_MSG_MAXINFLIGHT}) messages ` +
      'in flight: ipi_wait() for a message before sending more');
  }
  const d = ci.ci_msgfree[--ci.ci_msgtop];
  try {
    arg_encode(fn, 'msg.arg', cell_msg(d), msg.arg);
  } catch (e) {
    ci.ci_msgfree[ci.ci_msgtop++] = d;
    throw e;
  }
  i32[msg_word(d, M_FUNC)] = sym;
  i32[msg_word(d, M_SEQ)]++;
  ci.ci_msgobj[d - ci.ci_msgbase] = msg;
  ci.ci_msglocal[d - ci.ci_msgbase] = NO_ERROR;
  ci.ci_msgof.set(msg, d);
  return d;
}

/** The sending CPU of descriptor d. */
const desc_owner = (d: number): number => (d / IPI_MSG_MAXINFLIGHT) | 0;

/**
 * Write off CPU c's part of descriptor d (c died): if c still owes it, move
 * it to the failed set and tell the sender.  Exactly one caller does so.
 */
function msg_write_off(d: number, c: number): void {
  if (!set_take(msg_word(d, M_TARGETS), c)) return;
  set_add(msg_failed(d), c);
  cpu_ring(desc_owner(d));
}

/**
 * After sending d: if a CPU died since `gen` was read (before the targets
 * were checked), write off the parts of the dead that it still owes; the
 * death handler may have scanned before d held them.
 */
function msg_sent(d: number, gen: number): void {
  if (Atomics.load(i32, H_DEADGEN) === gen) return;
  const owed: number[] = [];
  set_members(msg_word(d, M_TARGETS), owed);
  for (const c of owed) if (cpu_dead_p(c)) msg_write_off(d, c);
}

/** Send descriptor d to CPU target: its mailbox, then IPI_SYNCH_ID. */
function msg_send(self: cpu_info, target: number, d: number): void {
  if (put_msg(self, target, d)) ipi_trigger_cpu(self, IPI_SYNCH_ID, target);
}

/**
 * Put descriptor d into CPU target's mailbox, spinning (and servicing) while
 * it is full.  False if the target died meanwhile (its part is written off).
 */
function put_msg(self: cpu_info, target: number, d: number): boolean {
  const mbox = cpu_word(target, C_MBOX);
  f64[evcnt_index(self.ci_index, EV_MSG_SENT)]++;
  for (let full = 0; ; full++) {
    for (let i = 0; i < IPI_MSG_SLOTS; i++) {
      /* Publish: the descriptor's plain writes are ordered before this CAS. */
      if (Atomics.compareExchange(i32, mbox + i, 0, d + 1) === 0) return true;
    }
    /* All slots full: the target is busy.  Take our own interrupts while we spin. */
    if (full === 0) f64[evcnt_index(self.ci_index, EV_MBOX_FULL)]++;
    if (cpu_dead_p(target)) {
      msg_write_off(d, target);
      return false;
    }
    mbox_full_wait(self, target, full);
  }
}

function mbox_full_wait(self: cpu_info, target: number, spins: number): void {
  md.preempt?.();
  intr_hard(self);
  if (machine_halted()) throw new IpiError(`ipi: the machine was shut down while cpu${target}'s mailbox was full`);
  /* Every so often, make sure the target looks at its mailbox and give it the core for a moment. */
  if ((spins & 63) === 63) {
    cpu_ring(target);
    const bell = self.ci_doorbell;
    if (md.can_block) md.sleep(bell, Atomics.load(i32, bell), MBOX_FULL_NAP_MS);
  }
}

/**
 * Acknowledge this CPU's part of descriptor d, recording its failure first
 * if it failed (`failure` is not NO_ERROR).  After this the descriptor
 * belongs to its sender again.
 */
function msg_ack(d: number, me: number, failure: unknown): void {
  if (failure !== NO_ERROR) {
    fail_note(me, ERR_MSG, d, i32[msg_word(d, M_SEQ)], failure);
    set_add(msg_failed(d), me);
  }
  /* Release: the function's effects and the failure are visible to whoever sees us leave the set. */
  const targets = msg_word(d, M_TARGETS);
  const bit = 1 << (me & 31);
  const left = Atomics.and(i32, targets + (me >> 5), ~bit) & ~bit;
  /* The last to leave rings the sender (of two leaving at once in different words, at least one sees the other gone). */
  if (left === 0 && set_empty(targets)) cpu_ring(desc_owner(d));
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
    f64[evcnt_index(me, EV_MSG_HANDLED)]++;
    const sym = i32[msg_word(d, M_FUNC)];
    const act = act_enter(ci, ACT_MSG, sym);
    let failure: unknown = NO_ERROR;
    try {
      const r = (sym_func(ci, sym) as call1)(arg_decode(ci, cell_msg(d)));
      if (thenable_p(r)) {
        /* Not synchronous: acknowledge once it settles, so a rejection reaches the waiter. */
        Promise.resolve(r).then(() => msg_ack(d, me, NO_ERROR), (e: unknown) => msg_ack(d, me, rejected_failure(e, 'cross-call function')));
        continue;
      }
    } catch (e) {
      failure = e;
    } finally {
      act_leave(ci, act);
    }
    msg_ack(d, me, failure);
  }
}

/**
 * A local run that returned a promise not yet settled.  ipi_wait_async
 * waits for it; ipi_wait cannot (the promise settles on this thread's event
 * loop), so a rejection after ipi_wait has returned goes to the 'error' event.
 */
class local_promise {
  constructor(readonly settled: Promise<void>) {}
}

/**
 * Run a message's function on CPU ci, in the caller's context; an error
 * (thrown, or a rejection while the message is in flight) is kept for the wait.
 */
function msg_run_local(ci: cpu_info, d: number, msg: ipi_msg_t<unknown>): void {
  const i = d - ci.ci_msgbase;
  try {
    const r = (msg.func as call1)(msg.arg);
    if (!thenable_p(r)) return;
    const pending: local_promise = new local_promise(Promise.resolve(r).then(
      () => { if (ci.ci_msglocal[i] === pending) ci.ci_msglocal[i] = NO_ERROR; },
      (e: unknown) => {
        const err = rejected_failure(e, 'cross-call function');
        if (ci.ci_msglocal[i] === pending) ci.ci_msglocal[i] = err;
        else md.report(err);
      }));
    ci.ci_msglocal[i] = pending;
  } catch (e) {
    ci.ci_msglocal[i] = e;
  }
}

function send_check(fn: string): cpu_info {
  const self = cpu_self(fn);
  if (diagnostic) KASSERT(kpreempt_disabled(), fn, 'kpreempt_disabled()', 'call it with preemption disabled (kpreempt_disable())');
  return self;
}

/**
 * ipi_unicast: send msg to the remote CPU ci.
 * => Preemption must be disabled; ci must be remote and alive.
 * => msg.func must be a kernel symbol; msg must not be pending.
 */
export function ipi_unicast<A>(msg: ipi_msg_t<A>, ci: cpu_info): void {
  const fn = 'ipi_unicast';
  const self = send_check(fn);
  const target = ci_check(fn, 'ci', ci);
  if (diagnostic) KASSERT(target !== self.ci_index, fn, 'curcpu() != ci', 'the target must be a remote CPU', ci);
  const gen = Atomics.load(i32, H_DEADGEN);
  if (cpu_dead_p(target)) throw cpu_dead_error(fn, target, true);
  const d = msg_prepare(self, fn, msg as ipi_msg_t<unknown>);
  Atomics.store(i32, msg_word(d, M_TARGETS) + (target >> 5), 1 << (target & 31));
  msg_send(self, target, d);
  msg_sent(d, gen);
}

/**
 * ipi_multicast: send msg to every CPU of target.  If the calling CPU is a
 * member, it runs the function itself, after sending, in its own context;
 * that run is not counted in _pending.
 * => Preemption must be disabled; target must hold attached, living CPUs only.
 */
export function ipi_multicast<A>(msg: ipi_msg_t<A>, target: kcpuset_t): void {
  const fn = 'ipi_multicast';
  const self = send_check(fn);
  const gen = Atomics.load(i32, H_DEADGEN);
  target_check(fn, target);
  ipi_send_set(fn, self, msg as ipi_msg_t<unknown>, target, gen, kcpuset_isset(target, self.ci_index));
}

/** Send msg to the members of set other than this CPU, then run it here if `local`. */
function ipi_send_set(fn: string, self: cpu_info, msg: ipi_msg_t<unknown>, set: kcpuset_t, gen: number, local: boolean): void {
  const me = self.ci_index;
  const d = msg_prepare(self, fn, msg);
  const targets = msg_word(d, M_TARGETS);
  for (let w = 0; w < NW; w++) {
    /* One read of each word (kcpuset_running changes when a CPU dies): its members are the targets, stored before any is sent to. */
    const bits = Atomics.load(set.bits, w) & (w === me >> 5 ? ~(1 << (me & 31)) : -1);
    Atomics.store(i32, targets + w, bits);
    /* Every mailbox first, then every doorbell: the targets start together (a machine of at most 32 CPUs is one word). */
    let ring = 0;
    for (let b = bits; b !== 0; b &= b - 1) {
      const c = w * 32 + 31 - Math.clz32(b & -b);
      if (put_msg(self, c, d) && ipi_mark_pending(me, IPI_SYNCH_ID, c)) ring |= b & -b;
    }
    for (; ring !== 0; ring &= ring - 1) cpu_ring_counted(self, w * 32 + 31 - Math.clz32(ring & -ring));
  }
  msg_sent(d, gen);
  /* The sender's own part runs while the others run theirs. */
  if (local) msg_run_local(self, d, msg);
}

/**
 * ipi_broadcast: send msg to every other running CPU, then run it on this
 * one unless skip_self (NetBSD 7's one-argument form: skip_self = false).
 * Dead CPUs are left out.
 * => Preemption must be disabled.
 */
export function ipi_broadcast<A>(msg: ipi_msg_t<A>, skip_self = false): void {
  const fn = 'ipi_broadcast';
  const self = send_check(fn);
  if (typeof skip_self !== 'boolean') throw typeError(fn, 'skip_self', 'a boolean', skip_self);
  ipi_send_set(fn, self, msg as ipi_msg_t<unknown>, kcpuset_running, Atomics.load(i32, H_DEADGEN), !skip_self);
}

/** Wait predicate: every remote target of descriptor d has acknowledged or been written off. */
function msg_done(d: number): boolean {
  return set_empty(msg_word(d, M_TARGETS));
}

const msg_chan: wait_chan = {
  done: msg_done,
  owing: (d, out) => set_members(msg_word(d, M_TARGETS), out),
};

/** Give d back to CPU ci's pool; throw its failures, if any. */
function msg_finish(ci: cpu_info, fn: string, d: number): void {
  const kept = ci.ci_msglocal[d - ci.ci_msgbase];
  const local = kept instanceof local_promise ? NO_ERROR : kept;
  const failures = fail_collect(fn, ERR_MSG, d, i32[msg_word(d, M_SEQ)], msg_failed(d));
  desc_release(ci, d);
  if (failures.length === 0) {
    if (local !== NO_ERROR) throw local;
    return;
  }
  if (local !== NO_ERROR) {
    const me = desc_owner(d), r = error_record(local);
    failures.push(new IpiRemoteError(fn, me, r.name, r.message, r.stack, undefined, { cause: local }));
    failures.sort((a, b) => a.cpu - b.cpu);
  }
  throw failures_error(fn, failures);
}

function wait_lookup(ci: cpu_info, fn: string, msg: unknown): number {
  msg_check(fn, msg);
  const d = msg_desc(ci, msg);
  if (d >= 0 && diagnostic) {
    const me = desc_owner(d);
    const mine = Atomics.load(i32, msg_word(d, M_TARGETS) + (me >> 5)) & (1 << (me & 31));
    KASSERT(mine === 0 && set_count(msg_word(d, M_TARGETS)) < ncpu, fn, 'msg->_pending < ncpu', 'the pending set is corrupt');
  }
  return d;
}

/** Wait for a barrier's message; a CPU that died meanwhile runs nothing any more, so it counts as done. */
function msg_wait_live<A>(ci: cpu_info, w: number, msg: ipi_msg_t<A>): void {
  const d = msg_desc(ci, msg);
  if (d < 0) return;
  intr_wait(w, msg_chan, d, Infinity);
  msg_finish_live(ci, w, d);
}

/** The same without blocking. */
async function msg_wait_live_async<A>(ci: cpu_info, w: number, msg: ipi_msg_t<A>): Promise<void> {
  const d = msg_desc(ci, msg);
  if (d < 0) return;
  await intr_wait_async(w, msg_chan, d, Infinity, undefined);
  msg_finish_live(ci, w, d);
}

function msg_finish_live(ci: cpu_info, w: number, d: number): void {
  try {
    msg_finish(ci, wait_name(w), d);
  } catch (e) {
    if (!(e instanceof IpiCpuDeadError)) throw e;
  }
}

/**
 * ipi_wait: wait until every remote run of msg has completed; their
 * effects are visible when it returns.  Services this CPU's interrupts
 * while it waits.  Returns at once for a message not in flight.
 * => If runs failed, throws once all have answered: the error itself for
 *    a local run; an IpiRemoteError (a function threw) or IpiCpuDeadError
 *    (a target died first) naming every failing CPU otherwise.
 * => options.timeout: after that many milliseconds, throws an
 *    IpiTimeoutError naming the CPUs that have not answered and what each
 *    is doing; the message stays in flight and can be waited for again.
 * => Blocks: on a thread that cannot block, use ipi_wait_async().
 */
export function ipi_wait<A>(msg: ipi_msg_t<A>, options?: ipi_wait_options): void {
  const fn = 'ipi_wait';
  const self = cpu_self(fn);
  block_check(W_IPI_WAIT);
  const d = wait_lookup(self, fn, msg);
  const timeout = options === undefined ? Infinity : timeout_check(fn, wait_options(fn, options, ['timeout']).timeout);
  if (d < 0) return;
  if (!msg_done(d)) intr_wait(W_IPI_WAIT, msg_chan, d, timeout);
  msg_finish(self, fn, d);
}

/**
 * ipi_wait_async: ipi_wait() as a promise, for any thread: the caller's
 * event loop, and so its interrupts, keep running.  Rejects rather than
 * throws.
 * => options.signal: an AbortSignal; aborting rejects with its reason and
 *    leaves the message in flight.
 */
export async function ipi_wait_async<A>(msg: ipi_msg_t<A>, options?: ipi_wait_async_options): Promise<void> {
  const fn = 'ipi_wait_async';
  const self = cpu_self(fn);
  const d = wait_lookup(self, fn, msg);
  const o = wait_options(fn, options, ['timeout', 'signal']);
  const timeout = timeout_check(fn, o.timeout);
  const signal = signal_check(fn, o.signal);
  if (d < 0) return;
  if (!msg_done(d)) await intr_wait_async(W_IPI_WAIT_ASYNC, msg_chan, d, timeout, signal);
  const local = self.ci_msglocal[d - self.ci_msgbase];
  if (local instanceof local_promise) await local.settled;
  if (msg_desc(self, msg) === d) msg_finish(self, fn, d);
}

/* -------------------------------------------------------------- death */

/**
 * CPU c has died (marked dead already): write off its part of every
 * message in flight, and free the handler slots it was filling in or
 * freeing.  Runs on any thread attached to the machine. @internal
 */
export function ipi_cpu_dead(c: number): void {
  const ndesc = ncpu * IPI_MSG_MAXINFLIGHT;
  const bit = 1 << (c & 31);
  for (let d = 0; d < ndesc; d++) {
    if ((Atomics.load(i32, msg_word(d, M_TARGETS) + (c >> 5)) & bit) !== 0) msg_write_off(d, c);
  }
  for (let id = 1; id < IPI_MAXREG; id++) {
    if (Atomics.load(i32, ipireg_word(id, R_FUNC)) === slot_claimed(c)) ipi_slot_release(id);
  }
}

/**
 * Free a slot without a barrier, for a handler no CPU can be running: its
 * owner died while filling it in or freeing it.  The new generation makes
 * its pending triggers stale. @internal
 */
export function ipi_slot_release(id: number): void {
  Atomics.add(i32, ipireg_word(id, R_GEN), 1);
  ipi_slot_free(id);
}
