/*
 * The library's errors.  Wrong types are TypeError and bad values RangeError,
 * as the platform does; everything else is an IpiError.  A failed contract
 * assertion (NetBSD's KASSERT) is an IpiAssertionError, so a caller can tell
 * a programming error from a failure of the machine.
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

/** A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'undefined': return 'undefined';
    case 'function': return `function ${v.name || '(anonymous)'}`;
    case 'object': return `an object (${Object.getPrototypeOf(v)?.constructor?.name ?? 'null prototype'})`;
    default: return `${typeof v} ${show(v)}`;
  }
}

/**
 * A function run on another CPU threw.  ipi_wait() throws this on the
 * waiting CPU: the remote error's name, message and stack, and the CPU.
 */
export class IpiRemoteError extends IpiError {
  override name = 'IpiRemoteError';
  /** The index of the CPU whose run threw. */
  readonly cpu: number;
  /** The name of the remote error (`TypeError`, ...). */
  readonly remoteName: string;
  /** The remote stack, as text. */
  readonly remoteStack: string;

  constructor(fn: string, cpu: number, remoteName: string, remoteMessage: string, remoteStack: string) {
    super(`${fn}: the function threw on cpu${cpu}: ${remoteName}: ${remoteMessage}`);
    this.cpu = cpu;
    this.remoteName = remoteName;
    this.remoteStack = remoteStack;
  }
}
