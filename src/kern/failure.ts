/*
 * Failures of a call on other CPUs, for its waiter.
 *
 * Which CPUs failed is a set owned by the call (a message descriptor's
 * failed set, an xcall record's): a target whose run threw adds itself,
 * and so does whoever writes off the part of a CPU that died.  The details
 * of a throw (name, message, stack) are kept by the CPU that threw, in one
 * of its IPI_ERR_RECORDS error records, tagged with the call (kind, id,
 * seq); the waiter finds them there and frees the record.  Records whose
 * call has moved on (stale, per kind) are reclaimed when a CPU runs out.
 *
 * A function may fail by throwing or by returning a promise that rejects
 * (thenable_p, rejected_failure); an asynchronous handler has no waiter, so
 * its failure is counted and reported (handler_run).
 *
 * Why a CPU died is kept in its death cell, written before it is marked
 * dead (init_main.ts's cpu_die), for every error and report that names it.
 *
 * Ordering: a failing CPU writes its record, publishes it with the atomic
 * store of its state, then adds itself to the failed set, then
 * acknowledges the call; the waiter reads the set after it has seen the
 * acknowledgement, so the record is visible to it.
 */
import { arg_decode_record, arg_encode, arg_encode_text } from './arg.js';
import { act_enter, act_leave, cpu_dead_p, type cpu_info } from './cpu.js';
import { error_record, error_revive, IpiCpuDeadError, IpiRemoteError, type IpiCpuFailure } from './errors.js';
import { cell_death, cell_err, E_ID, E_KIND, E_SEQ, E_STATE, err_word, EV_ERR_LOST, EV_INTR_ERROR, evcnt_index, f64, i32, NW } from './layout.js';
import { md } from './md.js';
import { IPI_ERR_RECORDS } from './param.js';
import { sym_func } from './symbol.js';

/** Why a CPU died, as kept in its death cell. */
export interface cpu_death {
  /** In words: "process.exit(3)", "uncaught TypeError: boom", "terminated". */
  readonly reason: string;
  /** Its exit code, if it exited. */
  readonly exitCode: number | null;
  /** The error that killed it, if one did. */
  readonly error: error_record | null;
}

/** Record why CPU c dies, before it is marked dead (whoever marks it). @internal */
export function cpu_death_write(c: number, death: cpu_death): void {
  arg_encode('cpu_death', 'death', cell_death(c), { reason: death.reason.slice(0, 300), exitCode: death.exitCode,
    error: death.error && { name: death.error.name.slice(0, 100), message: death.error.message.slice(0, 300), stack: death.error.stack.slice(0, 400) } });
}

/** Why dead CPU c died. */
export function cpu_death_record(c: number): cpu_death {
  return arg_decode_record(cell_death(c)) as cpu_death;
}

/**
 * The error of `fn` for dead CPU c: a wait it had not answered (`sending`
 * false), or a call to it (`sending` true).
 */
export function cpu_dead_error(fn: string, c: number, sending: boolean): IpiCpuDeadError {
  const d = cpu_death_record(c);
  const msg = sending ? `${fn}: cpu${c} is dead (${d.reason}): nothing can be sent to it`
    : `${fn}: cpu${c} died (${d.reason}) before it answered`;
  return new IpiCpuDeadError(msg, c, d.reason, d.exitCode ?? undefined);
}

/* ------------------------------------------------ functions that fail */

/** True if v is a thenable (a function that returns one did not finish its work synchronously). */
export function thenable_p(v: unknown): v is PromiseLike<unknown> {
  if (v === undefined || v === null || (typeof v !== 'object' && typeof v !== 'function')) return false;
  try {
    return typeof (v as { then?: unknown }).then === 'function';
  } catch {
    return false;
  }
}

/**
 * The failure of a `what` (say "cross-call function") that returned a
 * promise which rejected with `reason`, as an Error whose message says so.
 */
export function rejected_failure(reason: unknown, what: string): Error {
  const r = error_record(reason);
  return error_revive({ name: r.name, message: `${r.message} (the promise returned by the ${what} rejected)`, stack: r.stack });
}

/** An asynchronous handler failed (threw, or its promise rejected): count it and report it. */
function handler_failed(me: number, e: unknown): void {
  f64[evcnt_index(me, EV_INTR_ERROR)]++;
  md.report(e);
}

/**
 * Run an asynchronous handler (IPI or soft interrupt) with no waiter: a
 * throw, or a rejection of a promise it returns, is counted and reported;
 * the CPU goes on.
 */
export function handler_run(ci: cpu_info, kind: number, sym: number, arg: unknown): void {
  const act = act_enter(ci, kind, sym);
  try {
    const r = (sym_func(ci, sym) as (arg: unknown) => unknown)(arg);
    if (thenable_p(r)) {
      const me = ci.ci_index;
      Promise.resolve(r).then(undefined, (e: unknown) => handler_failed(me, rejected_failure(e, 'interrupt handler')));
    }
  } catch (e) {
    handler_failed(ci.ci_index, e);
  } finally {
    act_leave(ci, act);
  }
}


/* ------------------------------------------------------ calls */

/** Per kind (ERR_MSG, ERR_XCALL): has the call (id, seq) moved on, so its record can be reclaimed? */
const stale_p: ((id: number, seq: number) => boolean)[] = [];

/** Fill in kind's staleness check (each facility at its initialisation). */
export function fail_kind(kind: number, stale: (id: number, seq: number) => boolean): void {
  stale_p[kind] = stale;
}

/** A record of CPU cpu to use: a free one, or a stale one; -1 if none. */
function err_alloc(cpu: number): number {
  for (let r = 0; r < IPI_ERR_RECORDS; r++) {
    if (Atomics.compareExchange(i32, err_word(cpu, r, E_STATE), 0, 1) === 0) return r;
  }
  for (let r = 0; r < IPI_ERR_RECORDS; r++) {
    const kind = Atomics.load(i32, err_word(cpu, r, E_KIND));
    if (stale_p[kind]?.(Atomics.load(i32, err_word(cpu, r, E_ID)), Atomics.load(i32, err_word(cpu, r, E_SEQ)))) return r;
  }
  return -1;
}

/**
 * The current CPU `cpu` failed its part of call (kind, id, seq) with `e`:
 * keep the details for the waiter.  The caller then adds cpu to the call's
 * failed set.
 */
export function fail_note(cpu: number, kind: number, id: number, seq: number, e: unknown): void {
  const r = err_alloc(cpu);
  if (r < 0) {
    f64[evcnt_index(cpu, EV_ERR_LOST)]++;
    return;
  }
  arg_encode_text(cell_err(cpu, r), JSON.stringify(error_fit(error_record(e))));
  i32[err_word(cpu, r, E_KIND)] = kind;
  i32[err_word(cpu, r, E_ID)] = id;
  i32[err_word(cpu, r, E_SEQ)] = seq;
  /* Publish: the atomic store orders the writes above before the caller's update of the failed set. */
  Atomics.store(i32, err_word(cpu, r, E_STATE), 1);
}

/** A record shortened to fit a cell (IPI_ARG_MAXBYTES of JSON). */
function error_fit(rec: error_record): error_record {
  for (let budget = 480; ; budget >>= 1) {
    const fit = { name: rec.name.slice(0, 64), message: rec.message.slice(0, budget), stack: rec.stack.slice(0, budget) };
    if (budget < 16 || new TextEncoder().encode(JSON.stringify(fit)).length <= 1000) return fit;
  }
}

/** Find, take and free the details CPU cpu kept for call (kind, id, seq). */
function fail_take(cpu: number, kind: number, id: number, seq: number): error_record | undefined {
  for (let r = 0; r < IPI_ERR_RECORDS; r++) {
    if (Atomics.load(i32, err_word(cpu, r, E_STATE)) !== 1 || Atomics.load(i32, err_word(cpu, r, E_KIND)) !== kind ||
        Atomics.load(i32, err_word(cpu, r, E_ID)) !== id || Atomics.load(i32, err_word(cpu, r, E_SEQ)) !== seq) {
      continue;
    }
    const rec = arg_decode_record(cell_err(cpu, r)) as error_record;
    Atomics.store(i32, err_word(cpu, r, E_STATE), 0);
    return rec;
  }
  return undefined;
}

/**
 * Collect the failures of call (kind, id, seq) whose failed set starts at
 * kernel word `set`: empty the set and turn each member into an error, in
 * CPU order.  A member that kept details threw; one that kept none and is
 * dead died before it answered.
 */
export function fail_collect(fn: string, kind: number, id: number, seq: number, set: number): IpiCpuFailure[] {
  const out: IpiCpuFailure[] = [];
  for (let w = 0; w < NW; w++) {
    if (Atomics.load(i32, set + w) === 0) continue;
    for (let bits = Atomics.exchange(i32, set + w, 0); bits !== 0; bits &= bits - 1) {
      const c = w * 32 + 31 - Math.clz32(bits & -bits);
      const rec = fail_take(c, kind, id, seq);
      if (rec === undefined && cpu_dead_p(c)) out.push(cpu_dead_error(fn, c, false));
      else {
        out.push(new IpiRemoteError(fn, c, rec?.name ?? 'Error',
          rec?.message ?? `(the details were not kept: cpu${c}'s IPI_ERR_RECORDS error records were all in use)`, rec?.stack ?? ''));
      }
    }
  }
  return out;
}

/** Add CPU c to the set at kernel word `set`. */
export function set_add(set: number, c: number): void {
  Atomics.or(i32, set + (c >> 5), 1 << (c & 31));
}

/** Remove CPU c from the set at `set`; true if it was a member (this caller removed it). */
export function set_take(set: number, c: number): boolean {
  const bit = 1 << (c & 31);
  return (Atomics.and(i32, set + (c >> 5), ~bit) & bit) !== 0;
}

/** True if the set at `set` is empty. */
export function set_empty(set: number): boolean {
  for (let w = 0; w < NW; w++) if (Atomics.load(i32, set + w) !== 0) return false;
  return true;
}

/** The number of members of the set at `set`. */
export function set_count(set: number): number {
  let n = 0;
  for (let w = 0; w < NW; w++) for (let bits = Atomics.load(i32, set + w); bits !== 0; bits &= bits - 1) n++;
  return n;
}

/** Append the members of the set at `set` to out. */
export function set_members(set: number, out: number[]): void {
  for (let w = 0; w < NW; w++) {
    for (let bits = Atomics.load(i32, set + w); bits !== 0; bits &= bits - 1) out.push(w * 32 + 31 - Math.clz32(bits & -bits));
  }
}
