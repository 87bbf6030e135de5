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
