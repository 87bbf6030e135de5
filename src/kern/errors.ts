/*
 * The library's errors.  Wrong types are TypeError and bad values RangeError,
 * as the platform does; everything else is an IpiError.  A failed contract
 * assertion (NetBSD's KASSERT) is an IpiAssertionError, so a caller can tell
 * a programming error from a failure of the machine.  The failures of a call
 * on other CPUs are IpiRemoteError (the function threw there) and
 * IpiCpuDeadError (the CPU died first); a wait that gives up is an
 * IpiTimeoutError.
 */

export class IpiError extends Error {
  override name = 'IpiError';
}

/** A contract assertion failed: the message names the call, the condition and the values. */
export class IpiAssertionError extends IpiError {
  override name = 'IpiAssertionError';
}

function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'function') return `function ${v.name || '(anonymous)'}`;
  return String(v);
}

/**
 * KASSERT: throw if `cond` is false.  Fixed parameters rather than a rest
 * array or a message closure, so that a passing assertion allocates nothing.
 * The condition must have no side effect: callers skip some assertions when
 * the machine is not diagnostic.
 */
export function KASSERT(cond: boolean, fn: string, expr: string, detail?: string, a?: unknown, b?: unknown): void {
  if (cond) return;
  let msg = `${fn}: assertion "${expr}" failed`;
  if (detail !== undefined) msg += `: ${detail}`;
  if (a !== undefined) msg += ` (${show(a)}${b !== undefined ? `, ${show(b)}` : ''})`;
  throw new IpiAssertionError(msg);
}

export function typeError(fn: string, what: string, expected: string, got: unknown): TypeError {
  return new TypeError(`${fn}: ${what} must be ${expected}, got ${describe(got)}`);
}

export function rangeError(fn: string, what: string, expected: string, got: unknown): RangeError {
  return new RangeError(`${fn}: ${what} must be ${expected}, got ${describe(got)}`);
}

/** A short description of a value for error messages; never throws (a Proxy may). */
export function describe(v: unknown): string {
  try {
    if (v === null) return 'null';
    if (Array.isArray(v)) return 'an array';
    switch (typeof v) {
      case 'undefined': return 'undefined';
      case 'function': return `function ${v.name || '(anonymous)'}`;
      case 'object': {
        const proto: unknown = Object.getPrototypeOf(v);
        if (proto === null) return 'an object with a null prototype';
        const ctor = (proto as { constructor?: { name?: unknown } }).constructor?.name;
        return `an object (${typeof ctor === 'string' && ctor !== '' ? ctor : 'no constructor'})`;
      }
      case 'symbol': return `a symbol (${v.description ?? ''})`;
      default: return `${typeof v} ${show(v)}`;
    }
  } catch {
    return 'a value that cannot be inspected';
  }
}

/** What a CPU keeps of a thrown value, as plain strings. */
export interface error_record {
  readonly name: string;
  readonly message: string;
  readonly stack: string;
}

/** Read p of v as a string; undefined if it is missing, not a string, or its getter throws. */
function prop_string(v: object, p: string): string | undefined {
  try {
    const s: unknown = (v as Record<string, unknown>)[p];
    return typeof s === 'string' ? s : undefined;
  } catch {
    return undefined;
  }
}

/**
 * error_record: the name, message and stack of any thrown value.  It never
 * throws: an error whose getters throw, null, a null-prototype object, a
 * symbol or a Proxy each give a readable record.
 */
export function error_record(e: unknown): error_record {
  if ((typeof e === 'object' && e !== null) || typeof e === 'function') {
    const name = prop_string(e, 'name');
    const message = prop_string(e, 'message');
    if (name !== undefined || message !== undefined) {
      return { name: name ?? 'Error', message: message ?? '', stack: prop_string(e, 'stack') ?? '' };
    }
  }
  let text: string;
  try {
    text = typeof e === 'string' ? JSON.stringify(e) : typeof e === 'object' && e !== null ? describe(e) : show(e);
  } catch {
    text = describe(e);
  }
  return { name: 'Error', message: `a non-Error value was thrown: ${text}`, stack: '' };
}

/** Rebuild an Error from a record (for errors that crossed from another CPU). */
export function error_revive(r: error_record): Error {
  const err = new Error(r.message);
  err.name = r.name;
  if (r.stack !== '') err.stack = r.stack;
  return err;
}

/** One CPU's failure in a call: it threw there, or it died before it answered. */
export type IpiCpuFailure = IpiRemoteError | IpiCpuDeadError;

function failures_text(errors: readonly IpiCpuFailure[]): string {
  return errors.map((e) => e instanceof IpiRemoteError ? `cpu${e.cpu} threw ${e.remoteName}: ${e.remoteMessage}` :
    `cpu${e.cpu} died (${e.reason})`).join('; ');
}

/**
 * A function run on another CPU threw.  A wait throws this on the waiting
 * CPU: the remote error's name, message and stack, and the CPU.  When the
 * call failed on several CPUs, one error carries them all: `errors` lists
 * each CPU's failure in CPU order (as AggregateError does), and `cpu` and
 * the remote fields are the first thrower's.  For one failure, `errors` is
 * `[this]`.
 */
export class IpiRemoteError extends IpiError {
  override name = 'IpiRemoteError';
  /** The index of the CPU whose run threw (the first, if several did). */
  readonly cpu: number;
  /** The name of the remote error (`TypeError`, ...). */
  readonly remoteName: string;
  /** The message of the remote error. */
  readonly remoteMessage: string;
  /** The remote stack, as text. */
  readonly remoteStack: string;
  /** Every CPU's failure in this call, in CPU order. */
  readonly errors: readonly IpiCpuFailure[];

  constructor(fn: string, cpu: number, remoteName: string, remoteMessage: string, remoteStack: string,
    errors?: readonly IpiCpuFailure[], options?: ErrorOptions) {
    super(errors !== undefined && errors.length > 1
      ? `${fn}: the call failed on ${errors.length} CPUs: ${failures_text(errors)}`
      : `${fn}: the function threw on cpu${cpu}: ${remoteName}: ${remoteMessage}`, options);
    this.cpu = cpu;
    this.remoteName = remoteName;
    this.remoteMessage = remoteMessage;
    this.remoteStack = remoteStack;
    this.errors = errors !== undefined && errors.length > 1 ? errors : [this];
  }
}

/**
 * A CPU of the machine died (its worker exited, crashed or was
 * terminated): a wait for it, or a call to it, fails with this.  `reason`
 * says why, `exitCode` is the worker's exit code when it exited.  When
 * several CPUs of one call died, `errors` lists each, as in IpiRemoteError.
 */
export class IpiCpuDeadError extends IpiError {
  override name = 'IpiCpuDeadError';
  /** The index of the dead CPU (the first, if several). */
  readonly cpu: number;
  /** Why it died: "process.exit(3)", "uncaught TypeError: ...", "terminated". */
  readonly reason: string;
  /** Its exit code, if it exited. */
  readonly exitCode: number | undefined;
  /** Every CPU's failure in this call, in CPU order. */
  readonly errors: readonly IpiCpuFailure[];

  constructor(message: string, cpu: number, reason: string, exitCode: number | undefined, errors?: readonly IpiCpuFailure[]) {
    super(message);
    this.cpu = cpu;
    this.reason = reason;
    this.exitCode = exitCode;
    this.errors = errors !== undefined && errors.length > 1 ? errors : [this];
  }
}

/**
 * One error for the failures of one call, in CPU order: the failure itself
 * when there is one; otherwise an IpiRemoteError (if any CPU threw) or an
 * IpiCpuDeadError carrying them all in `errors`.
 */
export function failures_error(fn: string, failures: readonly IpiCpuFailure[]): IpiCpuFailure {
  if (failures.length === 1) return failures[0];
  const threw = failures.find((f): f is IpiRemoteError => f instanceof IpiRemoteError);
  if (threw !== undefined) {
    return new IpiRemoteError(fn, threw.cpu, threw.remoteName, threw.remoteMessage, threw.remoteStack, failures);
  }
  const first = failures[0] as IpiCpuDeadError;
  return new IpiCpuDeadError(`${fn}: the call failed on ${failures.length} CPUs: ${failures_text(failures)}`,
    first.cpu, first.reason, first.exitCode, failures);
}

/** What a CPU that has not answered a wait was doing. */
export interface IpiCpuState {
  readonly cpu: number;
  /** In words: "in cross-call function spin", "idle in its event loop", "dead (process.exit(3))", ... */
  readonly doing: string;
  /** How long it has been doing that, at least, in milliseconds; undefined if it changed during the wait. */
  readonly forMs: number | undefined;
}

/**
 * A wait passed its timeout.  It names the CPUs that have not answered and
 * what each was doing, as Linux's CSD-lock debugging does.  What was waited
 * for is still in flight: a later wait for it works.
 */
export class IpiTimeoutError extends IpiError {
  override name = 'IpiTimeoutError';
  /** The timeout, in milliseconds. */
  readonly timeout: number;
  /** The CPUs that had not answered, in order. */
  readonly cpus: readonly number[];
  /** What each of them was doing. */
  readonly states: readonly IpiCpuState[];

  constructor(message: string, timeout: number, states: readonly IpiCpuState[]) {
    super(message);
    this.timeout = timeout;
    this.cpus = states.map((s) => s.cpu);
    this.states = states;
  }
}
