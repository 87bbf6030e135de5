/*
 * Arguments that cross to another CPU, through an argument cell in kernel
 * memory (layout.ts) and never a postMessage:
 *   - undefined, null, booleans, numbers, and bigints that fit in 64 bits:
 *     inline, with no allocation on the sending side;
 *   - views (typed arrays, DataView) of the machine's shared buffers, and
 *     kcpuset_t in them: by reference, zero copy; the receiving CPU keeps
 *     the view it made per cell, so a message reused with the same view
 *     allocates nothing there either;
 *   - strings, larger bigints, and plain data (JSON: plain objects, arrays,
 *     strings, finite numbers, booleans, null): copied, at most
 *     IPI_ARG_MAXBYTES of text.  Views of shared buffers and kcpuset_t
 *     inside plain data still go by reference (a marker in the text);
 *     the receiving CPU makes new views for them at each run;
 *   - anything else is refused with a TypeError that says what to pass.
 *
 * The writer owns the cell until it publishes it with an atomic store (the
 * message in a mailbox slot, a handler's function word); the reader reads it
 * after the atomic load that found it.  Those atomics order the plain
 * accesses here.
 */
import type { cpu_info } from './cpu.js';
import { IpiError, rangeError, typeError } from './errors.js';
import { kcpuset_shared, kcpuset_t, KCPUSET_NWORDS } from './kcpuset.js';
import { CELL_A, CELL_B, CELL_BYTES_OFF, CELL_C, CELL_NUM, CELL_TAG, cell_offset, f64, i32, i64, u8 } from './layout.js';
import { IPI_ARG_MAXBYTES } from './param.js';
import { shared_buf, shared_id } from './shared.js';

const T_UNDEFINED = 0;
const T_NULL = 1;
const T_FALSE = 2;
const T_TRUE = 3;
const T_NUMBER = 4;
const T_BIGINT = 5;
const T_BIGSTR = 6;
const T_STRING = 7;
const T_JSON = 8;
const T_VIEW = 9;
const T_KCPUSET = 10;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

type ViewCtor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => ArrayBufferView;
const VIEW_KINDS: readonly ViewCtor[] = [
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView,
];
const viewKind = new Map<unknown, number>(VIEW_KINDS.map((c, i) => [c, i]));

const SENDABLE = 'numbers, booleans, null, undefined, bigints, strings, plain data (JSON), ' +
  'views of the machine\'s shared buffers (boot({ shared })), or kcpuset_t kept in them';

/** The key of a view's marker in plain data's JSON text: [tag, kind, buffer id, byte offset, length]. */
const VIEW_KEY = '\u0000ipi9:view';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Copy text into the cell's bytes; false if it does not fit. */
function put_text(off: number, tag: number, s: string): boolean {
  const dst = u8.subarray(off + CELL_BYTES_OFF, off + CELL_BYTES_OFF + IPI_ARG_MAXBYTES);
  const r = encoder.encodeInto(s, dst);
  if (r.read < s.length) return false;
  i32[(off + CELL_A) >> 2] = r.written;
  i32[(off + CELL_TAG) >> 2] = tag;
  return true;
}

function get_text(off: number): string {
  const n = i32[(off + CELL_A) >> 2];
  /* slice: a copy, since not every runtime decodes from shared memory. */
  return decoder.decode(u8.slice(off + CELL_BYTES_OFF, off + CELL_BYTES_OFF + n));
}

/** Refuse anything that is not plain data, naming where it is. */
function plain_check(fn: string, path: string, v: unknown, depth: number): void {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (Number.isFinite(v)) return;
    throw new TypeError(`${fn}: ${path} is ${v}, which plain data (JSON) cannot carry`);
  }
  if (depth > 64) throw new TypeError(`${fn}: ${path} nests too deeply (a cycle?) to be sent to another CPU`);
  if (typeof v === 'object') {
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) plain_check(fn, `${path}[${i}]`, v[i], depth + 1);
      return;
    }
    if (v instanceof kcpuset_t) {
      shared_ref_id(fn, path, v.bits);
      return;
    }
    if (ArrayBuffer.isView(v)) {
      view_kind(fn, path, v);
      shared_ref_id(fn, path, v);
      return;
    }
    const proto = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null) {
      for (const k of Object.keys(v)) plain_check(fn, `${path}.${k}`, (v as Record<string, unknown>)[k], depth + 1);
      return;
    }
  }
  throw typeError(fn, path, `sendable to another CPU (${SENDABLE})`, v);
}

/** JSON.stringify's replacer for plain data: views and sets of shared memory become markers. */
function json_replacer(_key: string, v: unknown): unknown {
  if (v instanceof kcpuset_t) return { [VIEW_KEY]: [T_KCPUSET, 0, shared_id(v.bits.buffer), v.bits.byteOffset, KCPUSET_NWORDS] };
  if (typeof v === 'object' && v !== null && ArrayBuffer.isView(v)) {
    const length = v instanceof DataView ? v.byteLength : (v as Uint8Array).length;
    return { [VIEW_KEY]: [T_VIEW, viewKind.get(v.constructor) ?? 0, shared_id(v.buffer), v.byteOffset, length] };
  }
  return v;
}

/** JSON.parse's reviver: markers become views of this CPU's shared buffers again. */
function json_reviver(_key: string, v: unknown): unknown {
  if (typeof v !== 'object' || v === null || !(VIEW_KEY in v)) return v;
  const [tag, kind, id, byteOffset, length] = (v as Record<string, number[]>)[VIEW_KEY];
  const buf = shared_buf(id);
  return tag === T_KCPUSET ? kcpuset_shared(new Int32Array(buf, byteOffset, length)) : new VIEW_KINDS[kind](buf, byteOffset, length);
}

/** The number of the machine shared buffer v views; throws if it views other memory. */
function shared_ref_id(fn: string, what: string, v: ArrayBufferView): number {
  const id = shared_id(v.buffer);
  if (id >= 0) return id;
  throw new TypeError(
    `${fn}: ${what} is a view of memory other CPUs cannot reach: only views of the machine's shared ` +
      `buffers (boot({ shared }), shared(name)) can be passed`,
  );
}

/** The view's kind (VIEW_KINDS index); throws for a non-standard view. */
function view_kind(fn: string, what: string, v: ArrayBufferView): number {
  const kind = viewKind.get(v.constructor);
  if (kind === undefined) throw typeError(fn, what, 'a standard typed array or DataView', v);
  return kind;
}

function put_shared_ref(fn: string, what: string, off: number, tag: number, kind: number, v: ArrayBufferView, length: number): void {
  const id = shared_ref_id(fn, what, v);
  i32[(off + CELL_A) >> 2] = kind;
  i32[(off + CELL_B) >> 2] = id;
  i32[(off + CELL_C) >> 2] = length;
  f64[(off + CELL_NUM) >> 3] = v.byteOffset;
  i32[(off + CELL_TAG) >> 2] = tag;
}

/**
 * Check that v can be sent, throwing the TypeError arg_encode would throw
 * for its type, without writing anything (for callers that must validate
 * before they commit).  Size limits are arg_encode's alone: they are known
 * only once the value is written, so a caller that must not fail after it
 * commits encodes first (as ipi_register does).
 */
export function arg_check(fn: string, what: string, v: unknown): void {
  switch (typeof v) {
    case 'undefined': case 'boolean': case 'number': case 'bigint': case 'string':
      return;
    case 'object':
      if (v === null) return;
      plain_check(fn, what, v, 0);
      return;
    default:
      throw typeError(fn, what, `sendable to another CPU (${SENDABLE})`, v);
  }
}

/** Write v into cell `cell`.  `fn` and `what` name the call and parameter for errors. */
export function arg_encode(fn: string, what: string, cell: number, v: unknown): void {
  const off = cell_offset(cell);
  const tagw = (off + CELL_TAG) >> 2;
  switch (typeof v) {
    case 'number':
      f64[(off + CELL_NUM) >> 3] = v;
      i32[tagw] = T_NUMBER;
      return;
    case 'boolean':
      i32[tagw] = v ? T_TRUE : T_FALSE;
      return;
    case 'undefined':
      i32[tagw] = T_UNDEFINED;
      return;
    case 'bigint':
      if (v >= INT64_MIN && v <= INT64_MAX) {
        i64[(off + CELL_NUM) >> 3] = v;
        i32[tagw] = T_BIGINT;
        return;
      }
      if (!put_text(off, T_BIGSTR, v.toString())) throw rangeError(fn, what, `a bigint of at most ${IPI_ARG_MAXBYTES} digits`, v);
      return;
    case 'string':
      if (!put_text(off, T_STRING, v)) {
        throw new RangeError(`${fn}: ${what} is a string longer than IPI_ARG_MAXBYTES (${IPI_ARG_MAXBYTES}) bytes of UTF-8: put it in a shared buffer and pass a view`);
      }
      return;
    case 'object': {
      if (v === null) {
        i32[tagw] = T_NULL;
        return;
      }
      if (v instanceof kcpuset_t) {
        put_shared_ref(fn, what, off, T_KCPUSET, 0, v.bits, KCPUSET_NWORDS);
        return;
      }
      if (ArrayBuffer.isView(v)) {
        const kind = view_kind(fn, what, v);
        const length = v instanceof DataView ? v.byteLength : (v as Uint8Array).length;
        put_shared_ref(fn, what, off, T_VIEW, kind, v, length);
        return;
      }
      plain_check(fn, what, v, 0);
      if (!put_text(off, T_JSON, JSON.stringify(v, json_replacer))) {
        throw new RangeError(`${fn}: ${what} is plain data longer than IPI_ARG_MAXBYTES (${IPI_ARG_MAXBYTES}) bytes as JSON: put it in a shared buffer and pass a view`);
      }
      return;
    }
    default:
      throw typeError(fn, what, `sendable to another CPU (${SENDABLE})`, v);
  }
}

/*
 * The receiving CPU's caches (in its cpu_info): the views it made per
 * cell, and their keys; the values of cells whose contents change only
 * with a generation (registered handlers).
 */
export function arg_init(ci: cpu_info, ncells: number): void {
  ci.ci_argview = new Array<unknown>(ncells).fill(undefined);
  ci.ci_argviewkey = new Float64Array(ncells * 4);
  ci.ci_argvalue = new Array<unknown>(ncells).fill(undefined);
  ci.ci_arggen = new Float64Array(ncells).fill(NaN);
}

/** arg_decode on CPU ci, decoding again only when `gen` differs from the last call's for this cell. */
export function arg_decode_gen(ci: cpu_info, cell: number, gen: number): unknown {
  if (ci.ci_arggen[cell] !== gen) {
    ci.ci_argvalue[cell] = arg_decode(ci, cell);
    ci.ci_arggen[cell] = gen;
  }
  return ci.ci_argvalue[cell];
}

function get_shared_ref(ci: cpu_info, cell: number, off: number, tag: number): unknown {
  const kind = i32[(off + CELL_A) >> 2], id = i32[(off + CELL_B) >> 2], length = i32[(off + CELL_C) >> 2];
  const byteOffset = f64[(off + CELL_NUM) >> 3];
  const k = cell * 4;
  const key = ci.ci_argviewkey;
  const hit = ci.ci_argview[cell];
  if (hit !== undefined && key[k] === tag * 64 + kind && key[k + 1] === id && key[k + 2] === length && key[k + 3] === byteOffset) {
    return hit;
  }
  const buf = shared_buf(id);
  const made = tag === T_KCPUSET
    ? kcpuset_shared(new Int32Array(buf, byteOffset, length))
    : new VIEW_KINDS[kind](buf, byteOffset, length);
  ci.ci_argview[cell] = made;
  key[k] = tag * 64 + kind;
  key[k + 1] = id;
  key[k + 2] = length;
  key[k + 3] = byteOffset;
  return made;
}

/** Read the value in cell `cell`, on CPU ci (its caches). */
export function arg_decode(ci: cpu_info, cell: number): unknown {
  const off = cell_offset(cell);
  const tag = i32[(off + CELL_TAG) >> 2];
  switch (tag) {
    case T_NUMBER: return f64[(off + CELL_NUM) >> 3];
    case T_UNDEFINED: return undefined;
    case T_NULL: return null;
    case T_FALSE: return false;
    case T_TRUE: return true;
    case T_BIGINT: return i64[(off + CELL_NUM) >> 3];
    case T_BIGSTR: return BigInt(get_text(off));
    case T_STRING: return get_text(off);
    case T_JSON: return JSON.parse(get_text(off), json_reviver);
    case T_VIEW: case T_KCPUSET: return get_shared_ref(ci, cell, off, tag);
    default: throw new IpiError(`arg_decode: corrupt argument cell ${cell} (tag ${tag})`);
  }
}

/** Read a cell that holds plain data with no view in it (a record): no CPU's caches are involved. */
export function arg_decode_record(cell: number): unknown {
  const off = cell_offset(cell);
  const tag = i32[(off + CELL_TAG) >> 2];
  if (tag !== T_JSON) throw new IpiError(`arg_decode_record: cell ${cell} holds no record (tag ${tag})`);
  return JSON.parse(get_text(off));
}

/** Write JSON text (which must fit: callers shorten it) into a cell, as plain data. */
export function arg_encode_text(cell: number, json: string): void {
  if (!put_text(cell_offset(cell), T_JSON, json)) throw new IpiError(`arg_encode_text: ${json.length} characters do not fit a cell`);
}
