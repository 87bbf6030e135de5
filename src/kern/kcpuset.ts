/*
 * kcpuset(9): dynamic sets of CPUs, as NetBSD's sys/kern/subr_kcpuset.c
 * provides them, with the same names.
 *
 * Representation
 *
 *	A set is a fixed array of KCPUSET_NWORDS 32-bit words, MAXCPUS bits
 *	in all.  CPU i is bit (i & 31) of word (i >> 5), as in NetBSD
 *	(KC_SHIFT = 5, KC_MASK = 31).  The words are an Int32Array so that
 *	Atomics may operate on them; bit 31 of a word therefore reads as a
 *	negative number, which is why every test below is "!== 0" and never
 *	"> 0".
 *
 *	      word 0          word 1                word 7
 *	+---------------+---------------+ ... +---------------+
 *	| CPUs 31 ..  0 | CPUs 63 .. 32 |     | CPUs 255..224 |
 *	+---------------+---------------+ ... +---------------+
 *
 * Where a set lives
 *
 *	kcpuset_create() and kcpuset_clone() allocate private memory.
 *	kcpuset_shared() wraps memory the caller already has, typically
 *	KCPUSET_BYTES of a SharedArrayBuffer, without copying: every CPU
 *	(worker thread) that wraps the same bytes sees one set.  The
 *	kcpuset_t object itself is per thread; only its words are shared.
 *
 * Memory ordering
 *
 *	The plain operations read and write the words with ordinary typed
 *	array access: they are not atomic and not ordered against other
 *	CPUs, exactly as the plain operations are in NetBSD.  Use them on a
 *	set no other CPU writes concurrently.  The atomic operations
 *	(kcpuset_atomic_set/clear, kcpuset_atomicly_*) use Atomics, which
 *	are sequentially consistent, one word at a time; see the comment
 *	above them.
 *
 * Validation
 *
 *	Arguments are checked on every call, because a wrong argument is
 *	bad input, not a broken invariant: a non-set is a TypeError, a
 *	cpuid that is not an integer in [0, MAXCPUS) a RangeError (TypeError
 *	if it is not a number).  The checks are one instanceof and one
 *	integer comparison and allocate nothing when they pass, since these
 *	functions run on the hot paths of cross-calls.
 *
 * Not here: kcpuset_attached and kcpuset_running, which the machine code
 * owns, and NetBSD's reference counting (kcpuset_use/unuse), which the
 * garbage collector makes unnecessary.
 */

import { rangeError, typeError } from './errors.js';
import { MAXCPUS } from './param.js';

/** Words in a set: a kcpuset_t is a fixed array of 32-bit words holding MAXCPUS bits. */
export const KCPUSET_NWORDS = MAXCPUS / 32;

/** Bytes in a set's words: what kcpuset_shared() needs of a SharedArrayBuffer. */
export const KCPUSET_BYTES = KCPUSET_NWORDS * 4;

const KC_SHIFT = 5;
const KC_MASK = 31;

/**
 * kcpuset_t: a set of CPUs; its words are `bits`.
 * => bits must be an Int32Array of exactly KCPUSET_NWORDS elements; it is
 *    used as is, not copied.
 * The operations are the free functions below, as in C.
 */
export class kcpuset_t {
  readonly bits: Int32Array;

  constructor(bits: Int32Array) {
    checkwords('kcpuset_t', 'bits', bits);
    this.bits = bits;
  }
}

/* Argument checks: fixed string arguments, so a passing check allocates nothing. */

function checkset(fn: string, what: string, kcp: unknown): void {
  if (!(kcp instanceof kcpuset_t)) throw typeError(fn, what, 'a kcpuset_t', kcp);
}

function checkcpu(fn: string, cpuid: unknown): void {
  if (typeof cpuid !== 'number') throw typeError(fn, 'cpuid', 'a number', cpuid);
  // (x >>> 0) === x holds exactly for the integers in [0, 2^32).
  if (cpuid >>> 0 === cpuid && cpuid < MAXCPUS) return;
  throw rangeError(fn, 'cpuid', `an integer in [0, ${MAXCPUS})`, cpuid);
}

function checkwords(fn: string, what: string, words: unknown): void {
  if (!(words instanceof Int32Array)) throw typeError(fn, what, 'an Int32Array', words);
  if (words.length !== KCPUSET_NWORDS) {
    throw rangeError(fn, `${what}.length`, `KCPUSET_NWORDS (${KCPUSET_NWORDS})`, words.length);
  }
}

/** Set bits in a 32-bit word. */
function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** ffs(3): 1-based index of the lowest set bit of a nonzero word. */
function ffs32(v: number): number {
  return 32 - Math.clz32(v & -v);
}

/*
 * Creation and destruction.
 */

/**
 * kcpuset_create: allocate a new set in private memory.
 * => zero says whether to clear the set; JavaScript memory is always
 *    zeroed, so the set is empty either way.
 */
export function kcpuset_create(zero: boolean): kcpuset_t {
  if (typeof zero !== 'boolean') throw typeError('kcpuset_create', 'zero', 'a boolean', zero);
  return new kcpuset_t(new Int32Array(KCPUSET_NWORDS));
}

/**
 * kcpuset_clone: allocate a new set in private memory holding a copy of skcp.
 * => skcp must be a kcpuset_t; it is read with plain (unordered) loads.
 */
export function kcpuset_clone(skcp: kcpuset_t): kcpuset_t {
  checkset('kcpuset_clone', 'skcp', skcp);
  return new kcpuset_t(skcp.bits.slice());
}

/**
 * kcpuset_destroy: release a set.
 * => kcp must be a kcpuset_t.
 * Nothing to do beyond the check: the garbage collector reclaims private
 * memory, and the memory under a shared set belongs to whoever allocated it.
 */
export function kcpuset_destroy(kcp: kcpuset_t): void {
  checkset('kcpuset_destroy', 'kcp', kcp);
}

/**
 * kcpuset_shared: a set whose words are the given memory, not a copy.
 * => words must be an Int32Array of exactly KCPUSET_NWORDS elements, e.g. a
 *    view of KCPUSET_BYTES bytes of a SharedArrayBuffer.
 * => Every kcpuset_t wrapping the same memory, on any thread, is the same set.
 */
export function kcpuset_shared(words: Int32Array): kcpuset_t {
  checkwords('kcpuset_shared', 'words', words);
  return new kcpuset_t(words);
}

/*
 * Changing a set: zero, fill, copy, set, clear.  Plain stores.
 */

/**
 * kcpuset_copy: make dkcp equal to skcp.
 * => dkcp and skcp must be kcpuset_t; they may be the same set.
 */
export function kcpuset_copy(dkcp: kcpuset_t, skcp: kcpuset_t): void {
  checkset('kcpuset_copy', 'dkcp', dkcp);
  checkset('kcpuset_copy', 'skcp', skcp);
  dkcp.bits.set(skcp.bits);
}

/**
 * kcpuset_zero: remove every CPU from kcp.
 * => kcp must be a kcpuset_t.
 */
export function kcpuset_zero(kcp: kcpuset_t): void {
  checkset('kcpuset_zero', 'kcp', kcp);
  kcp.bits.fill(0);
}

/**
 * kcpuset_fill: add every CPU to kcp, all MAXCPUS bits, not only the
 * CPUs the machine has (as NetBSD fills every word).
 * => kcp must be a kcpuset_t.
 */
export function kcpuset_fill(kcp: kcpuset_t): void {
  checkset('kcpuset_fill', 'kcp', kcp);
  kcp.bits.fill(-1);
}

/**
 * kcpuset_set: add CPU cpuid to kcp.
 * => kcp must be a kcpuset_t.
 * => cpuid must be an integer in [0, MAXCPUS).
 */
export function kcpuset_set(kcp: kcpuset_t, cpuid: number): void {
  checkset('kcpuset_set', 'kcp', kcp);
  checkcpu('kcpuset_set', cpuid);
  kcp.bits[cpuid >> KC_SHIFT] |= 1 << (cpuid & KC_MASK);
}

/**
 * kcpuset_clear: remove CPU cpuid from kcp.
 * => kcp must be a kcpuset_t.
 * => cpuid must be an integer in [0, MAXCPUS).
 */
export function kcpuset_clear(kcp: kcpuset_t, cpuid: number): void {
  checkset('kcpuset_clear', 'kcp', kcp);
  checkcpu('kcpuset_clear', cpuid);
  kcp.bits[cpuid >> KC_SHIFT] &= ~(1 << (cpuid & KC_MASK));
}

/*
 * Queries.  Plain loads: a concurrent writer on another CPU may or may not
 * be seen, and a result spanning several words is not a snapshot.
 */

/**
 * kcpuset_isset: is CPU cpuid in kcp?
 * => kcp must be a kcpuset_t.
 * => cpuid must be an integer in [0, MAXCPUS).
 */
export function kcpuset_isset(kcp: kcpuset_t, cpuid: number): boolean {
  checkset('kcpuset_isset', 'kcp', kcp);
  checkcpu('kcpuset_isset', cpuid);
  return (kcp.bits[cpuid >> KC_SHIFT] & (1 << (cpuid & KC_MASK))) !== 0;
}

/**
 * kcpuset_isotherset: is any CPU other than cpuid in kcp?  (Whether cpuid
 * itself is in kcp does not matter.)
 * => kcp must be a kcpuset_t.
 * => cpuid must be an integer in [0, MAXCPUS).
 */
export function kcpuset_isotherset(kcp: kcpuset_t, cpuid: number): boolean {
  checkset('kcpuset_isotherset', 'kcp', kcp);
  checkcpu('kcpuset_isotherset', cpuid);
  const bits = kcp.bits;
  const self = cpuid >> KC_SHIFT;
  const others = ~(1 << (cpuid & KC_MASK));
  for (let j = 0; j < KCPUSET_NWORDS; j++) {
    const w = bits[j];
    if (w !== 0 && (j !== self || (w & others) !== 0)) return true;
  }
  return false;
}

/**
 * kcpuset_iszero: is kcp empty?
 * => kcp must be a kcpuset_t.
 */
export function kcpuset_iszero(kcp: kcpuset_t): boolean {
  checkset('kcpuset_iszero', 'kcp', kcp);
  const bits = kcp.bits;
  for (let j = 0; j < KCPUSET_NWORDS; j++) {
    if (bits[j] !== 0) return false;
  }
  return true;
}

/**
 * kcpuset_match: do kcp1 and kcp2 hold the same CPUs?
 * => kcp1 and kcp2 must be kcpuset_t.
 */
export function kcpuset_match(kcp1: kcpuset_t, kcp2: kcpuset_t): boolean {
  checkset('kcpuset_match', 'kcp1', kcp1);
  checkset('kcpuset_match', 'kcp2', kcp2);
  const a = kcp1.bits;
  const b = kcp2.bits;
  for (let j = 0; j < KCPUSET_NWORDS; j++) {
    if (a[j] !== b[j]) return false;
  }
  return true;
}

/**
 * kcpuset_intersecting_p: do kcp1 and kcp2 have a CPU in common?
 * => kcp1 and kcp2 must be kcpuset_t.
 */
export function kcpuset_intersecting_p(kcp1: kcpuset_t, kcp2: kcpuset_t): boolean {
  checkset('kcpuset_intersecting_p', 'kcp1', kcp1);
  checkset('kcpuset_intersecting_p', 'kcp2', kcp2);
  const a = kcp1.bits;
  const b = kcp2.bits;
  for (let j = 0; j < KCPUSET_NWORDS; j++) {
    if ((a[j] & b[j]) !== 0) return true;
  }
  return false;
}

/*
 * Set algebra, into the first argument.  Plain loads and stores; kcp1 and
 * kcp2 may be the same set (or wrap the same memory).
 */

/**
 * kcpuset_intersect: kcp1 &= kcp2, keeping only the CPUs also in kcp2.
 * => kcp1 and kcp2 must be kcpuset_t.
 */
export function kcpuset_intersect(kcp1: kcpuset_t, kcp2: kcpuset_t): void {
  checkset('kcpuset_intersect', 'kcp1', kcp1);
  checkset('kcpuset_intersect', 'kcp2', kcp2);
  const a = kcp1.bits;
  const b = kcp2.bits;
  for (let j = 0; j < KCPUSET_NWORDS; j++) a[j] &= b[j];
}

/**
 * kcpuset_merge: kcp1 |= kcp2, adding the CPUs in kcp2.
 * => kcp1 and kcp2 must be kcpuset_t.
 */
export function kcpuset_merge(kcp1: kcpuset_t, kcp2: kcpuset_t): void {
  checkset('kcpuset_merge', 'kcp1', kcp1);
  checkset('kcpuset_merge', 'kcp2', kcp2);
  const a = kcp1.bits;
  const b = kcp2.bits;
  for (let j = 0; j < KCPUSET_NWORDS; j++) a[j] |= b[j];
}

/**
 * kcpuset_remove: kcp1 &= ~kcp2, removing the CPUs in kcp2.
 * => kcp1 and kcp2 must be kcpuset_t.
 */
export function kcpuset_remove(kcp1: kcpuset_t, kcp2: kcpuset_t): void {
  checkset('kcpuset_remove', 'kcp1', kcp1);
  checkset('kcpuset_remove', 'kcp2', kcp2);
  const a = kcp1.bits;
  const b = kcp2.bits;
  for (let j = 0; j < KCPUSET_NWORDS; j++) a[j] &= ~b[j];
}

/**
 * kcpuset_countset: the number of CPUs in kcp.
 * => kcp must be a kcpuset_t.
 */
export function kcpuset_countset(kcp: kcpuset_t): number {
  checkset('kcpuset_countset', 'kcp', kcp);
  const bits = kcp.bits;
  let count = 0;
  for (let j = 0; j < KCPUSET_NWORDS; j++) count += popcount32(bits[j]);
  return count;
}

/**
 * kcpuset_ffs: the lowest CPU in kcp plus one (ffs(3) numbering), or 0 if
 * kcp is empty.  The lowest CPU is kcpuset_ffs(kcp) - 1.
 * => kcp must be a kcpuset_t.
 */
export function kcpuset_ffs(kcp: kcpuset_t): number {
  checkset('kcpuset_ffs', 'kcp', kcp);
  const bits = kcp.bits;
  for (let j = 0; j < KCPUSET_NWORDS; j++) {
    const w = bits[j];
    if (w !== 0) return (j << KC_SHIFT) + ffs32(w);
  }
  return 0;
}

/**
 * kcpuset_ffs_intersecting: the lowest CPU in both kcp1 and kcp2 plus one,
 * or 0 if they have no CPU in common.
 * => kcp1 and kcp2 must be kcpuset_t.
 */
export function kcpuset_ffs_intersecting(kcp1: kcpuset_t, kcp2: kcpuset_t): number {
  checkset('kcpuset_ffs_intersecting', 'kcp1', kcp1);
  checkset('kcpuset_ffs_intersecting', 'kcp2', kcp2);
  const a = kcp1.bits;
  const b = kcp2.bits;
  for (let j = 0; j < KCPUSET_NWORDS; j++) {
    const w = a[j] & b[j];
    if (w !== 0) return (j << KC_SHIFT) + ffs32(w);
  }
  return 0;
}

/**
 * kcpuset_export_u32: copy kcp's words into out, word j holding CPUs
 * 32j .. 32j+31 with CPU 32j in bit 0.
 * => kcp must be a kcpuset_t; out must be a Uint32Array.
 * => Copies min(out.length, KCPUSET_NWORDS) words; as in NetBSD, any
 *    further words of out are left as they were.
 */
export function kcpuset_export_u32(kcp: kcpuset_t, out: Uint32Array): void {
  checkset('kcpuset_export_u32', 'kcp', kcp);
  if (!(out instanceof Uint32Array)) throw typeError('kcpuset_export_u32', 'out', 'a Uint32Array', out);
  const bits = kcp.bits;
  const n = Math.min(out.length, KCPUSET_NWORDS);
  for (let j = 0; j < n; j++) out[j] = bits[j]; // ToUint32: same bits, read as unsigned
}

/*
 * Atomic operations.
 *
 * Each of these changes the set with Atomics.or / Atomics.and, which are
 * sequentially consistent read-modify-writes of one word: concurrent
 * atomic updates from several CPUs are never lost, and an update is
 * ordered against every other Atomics operation on the same memory.
 *
 * kcpuset_atomic_set and kcpuset_atomic_clear touch one word and so are
 * atomic as a whole.  The kcpuset_atomicly_* operations are atomic word by
 * word only: another CPU may observe some words updated and others not,
 * and kcp2 is read with plain loads.
 *
 * Nothing else in this file is atomic or ordered: a plain operation racing
 * an atomic one on another CPU may lose the atomic update.
 */

/**
 * kcpuset_atomic_set: add CPU cpuid to kcp atomically.
 * => kcp must be a kcpuset_t.
 * => cpuid must be an integer in [0, MAXCPUS).
 */
export function kcpuset_atomic_set(kcp: kcpuset_t, cpuid: number): void {
  checkset('kcpuset_atomic_set', 'kcp', kcp);
  checkcpu('kcpuset_atomic_set', cpuid);
  Atomics.or(kcp.bits, cpuid >> KC_SHIFT, 1 << (cpuid & KC_MASK));
}

/**
 * kcpuset_atomic_clear: remove CPU cpuid from kcp atomically.
 * => kcp must be a kcpuset_t.
 * => cpuid must be an integer in [0, MAXCPUS).
 */
export function kcpuset_atomic_clear(kcp: kcpuset_t, cpuid: number): void {
  checkset('kcpuset_atomic_clear', 'kcp', kcp);
  checkcpu('kcpuset_atomic_clear', cpuid);
  Atomics.and(kcp.bits, cpuid >> KC_SHIFT, ~(1 << (cpuid & KC_MASK)));
}

/**
 * kcpuset_atomicly_intersect: kcp1 &= kcp2, each word of kcp1 atomically.
 * => kcp1 and kcp2 must be kcpuset_t.
 * Unlike NetBSD, which skips a word of kcp2 that is zero (leaving that word
 * of kcp1 as it was), this clears it: the result is the intersection.  Only
 * an all-ones word, which cannot change kcp1, is skipped.
 */
export function kcpuset_atomicly_intersect(kcp1: kcpuset_t, kcp2: kcpuset_t): void {
  checkset('kcpuset_atomicly_intersect', 'kcp1', kcp1);
  checkset('kcpuset_atomicly_intersect', 'kcp2', kcp2);
  const a = kcp1.bits;
  const b = kcp2.bits;
  for (let j = 0; j < KCPUSET_NWORDS; j++) {
    const w = b[j];
    if (w !== -1) Atomics.and(a, j, w);
  }
}

/**
 * kcpuset_atomicly_merge: kcp1 |= kcp2, each word of kcp1 atomically.
 * => kcp1 and kcp2 must be kcpuset_t.
 */
export function kcpuset_atomicly_merge(kcp1: kcpuset_t, kcp2: kcpuset_t): void {
  checkset('kcpuset_atomicly_merge', 'kcp1', kcp1);
  checkset('kcpuset_atomicly_merge', 'kcp2', kcp2);
  const a = kcp1.bits;
  const b = kcp2.bits;
  for (let j = 0; j < KCPUSET_NWORDS; j++) {
    const w = b[j];
    if (w !== 0) Atomics.or(a, j, w);
  }
}

/**
 * kcpuset_atomicly_remove: kcp1 &= ~kcp2, each word of kcp1 atomically.
 * => kcp1 and kcp2 must be kcpuset_t.
 */
export function kcpuset_atomicly_remove(kcp1: kcpuset_t, kcp2: kcpuset_t): void {
  checkset('kcpuset_atomicly_remove', 'kcp1', kcp1);
  checkset('kcpuset_atomicly_remove', 'kcp2', kcp2);
  const a = kcp1.bits;
  const b = kcp2.bits;
  for (let j = 0; j < KCPUSET_NWORDS; j++) {
    const w = b[j];
    if (w !== 0) Atomics.and(a, j, ~w);
  }
}
