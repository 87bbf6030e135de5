/*
 * kcpuset(9): every operation checked against a plain model (an array of
 * NBITS booleans), singly and in random sequences; the word boundaries;
 * argument validation with exact messages; sets wrapping shared memory.
 * Cross-thread behaviour is tested elsewhere.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  KCPUSET_BYTES,
  KCPUSET_NWORDS,
  kcpuset_atomic_clear,
  kcpuset_atomic_set,
  kcpuset_atomicly_intersect,
  kcpuset_atomicly_merge,
  kcpuset_atomicly_remove,
  kcpuset_clear,
  kcpuset_clone,
  kcpuset_copy,
  kcpuset_countset,
  kcpuset_create,
  kcpuset_destroy,
  kcpuset_export_u32,
  kcpuset_ffs,
  kcpuset_ffs_intersecting,
  kcpuset_fill,
  kcpuset_intersect,
  kcpuset_intersecting_p,
  kcpuset_isotherset,
  kcpuset_isset,
  kcpuset_iszero,
  kcpuset_match,
  kcpuset_merge,
  kcpuset_remove,
  kcpuset_set,
  kcpuset_shared,
  kcpuset_t,
  kcpuset_zero,
} from 'ipi';

const NWORDS = KCPUSET_NWORDS;
const NBITS = KCPUSET_NWORDS * 32;
const RUNS = 300;

/* For passing deliberately wrong arguments past the type checker. */
const bad = (v: unknown): never => v as never;

/* ------------------------------------------------------------------ */
/* The model and its helpers.                                          */

/** The model: m[i] says whether CPU i is in the set. */
type Model = boolean[];

function emptyModel(): Model {
  return new Array<boolean>(NBITS).fill(false);
}

function modelOfList(cpus: Iterable<number>): Model {
  const m = emptyModel();
  for (const c of cpus) m[c] = true;
  return m;
}

/** Read a set's raw words into a model, without using the API under test. */
function toModel(kcp: kcpuset_t): Model {
  const m: Model = [];
  for (let i = 0; i < NBITS; i++) m.push(((kcp.bits[Math.floor(i / 32)]! >>> (i % 32)) & 1) === 1);
  return m;
}

/** The raw words (as int32 values) that hold a model. */
function wordsOf(m: Model): number[] {
  const w = new Array<number>(NWORDS).fill(0);
  for (let i = 0; i < NBITS; i++) if (m[i]) w[Math.floor(i / 32)]! |= 1 << (i % 32);
  return w;
}

/** A fresh private set holding the given words (never aliases the generated array). */
function setOf(words: readonly number[]): kcpuset_t {
  return kcpuset_shared(Int32Array.from(words));
}

/* Model operations, written over booleans and independent of any bit arithmetic. */
const mCount = (m: Model): number => m.filter((b) => b).length;
const mFfs = (m: Model): number => m.indexOf(true) + 1;
const mIsOther = (m: Model, c: number): boolean => m.some((b, i) => b && i !== c);
const mEqual = (a: Model, b: Model): boolean => a.every((x, i) => x === b[i]);
const mAnd = (a: Model, b: Model): Model => a.map((x, i) => x && b[i]!);
const mOr = (a: Model, b: Model): Model => a.map((x, i) => x || b[i]!);
const mAndNot = (a: Model, b: Model): Model => a.map((x, i) => x && !b[i]);
const mFfsAnd = (a: Model, b: Model): number => mFfs(mAnd(a, b));
const mIntersecting = (a: Model, b: Model): boolean => a.some((x, i) => x && b[i]);

/** Replace a model's contents in place (aliased models stay aliased). */
function assign(dst: Model, src: Model): void {
  const copy = src.slice();
  for (let i = 0; i < NBITS; i++) dst[i] = copy[i]!;
}

/* ------------------------------------------------------------------ */
/* Arbitraries.                                                         */

const BOUNDARY_CPUS = [0, 1, 30, 31, 32, 33, 63, 64, 65, 127, 128, 223, 224, NBITS - 2, NBITS - 1];

const cpuidArb = fc.oneof(fc.integer({ min: 0, max: NBITS - 1 }), fc.constantFrom(...BOUNDARY_CPUS));

const wordArb = fc.oneof(
  { arbitrary: fc.constant(0), weight: 3 },
  { arbitrary: fc.integer({ min: -0x80000000, max: 0x7fffffff }), weight: 3 },
  { arbitrary: fc.constantFrom(-1, 1, -0x80000000, 0x7fffffff), weight: 2 },
  { arbitrary: fc.integer({ min: 0, max: 31 }).map((b) => 1 << b), weight: 2 },
);

/** The words of a set: random words, sparse lists of CPUs, empty and full. */
const wordsArb: fc.Arbitrary<number[]> = fc.oneof(
  { arbitrary: fc.array(wordArb, { minLength: NWORDS, maxLength: NWORDS }), weight: 8 },
  { arbitrary: fc.uniqueArray(cpuidArb, { maxLength: 4 }).map((l) => wordsOf(modelOfList(l))), weight: 3 },
  { arbitrary: fc.constant(new Array<number>(NWORDS).fill(0)), weight: 1 },
  { arbitrary: fc.constant(new Array<number>(NWORDS).fill(-1)), weight: 1 },
);

/* ------------------------------------------------------------------ */
/* The helpers first: a wrong helper would make every test below meaningless. */

test('model helpers: known words and bits', () => {
  const cases: [number[], number[]][] = [
    [[], new Array<number>(NWORDS).fill(0)],
    [[0], [1, 0, 0, 0, 0, 0, 0, 0]],
    [[31], [-0x80000000, 0, 0, 0, 0, 0, 0, 0]],
    [[32], [0, 1, 0, 0, 0, 0, 0, 0]],
    [[0, 33, 64, 95], [1, 2, -0x80000000 | 1, 0, 0, 0, 0, 0]],
    [[NBITS - 1], [0, 0, 0, 0, 0, 0, 0, -0x80000000]],
  ];
  assert.equal(NWORDS, 8, 'the literal words above assume MAXCPUS = 256');
  for (const [cpus, words] of cases) {
    assert.deepEqual(wordsOf(modelOfList(cpus)), words, `wordsOf ${cpus}`);
    const m = toModel(setOf(words));
    assert.deepEqual(
      m.flatMap((b, i) => (b ? [i] : [])),
      cpus,
      `toModel ${words}`,
    );
  }
  const top = toModel(setOf([0, 0, 0, 0, 0, 0, 0, -1]));
  assert.deepEqual(
    top.flatMap((b, i) => (b ? [i] : [])),
    Array.from({ length: 32 }, (_, k) => 224 + k),
  );
});

test('model helpers: toModel agrees with a binary-string reading; wordsOf inverts it', () => {
  fc.assert(
    fc.property(wordsArb, (words) => {
      // Independent reading: each word's binary digits, least significant first.
      const viaString = words.flatMap((w) =>
        [...(w >>> 0).toString(2).padStart(32, '0')].reverse().map((ch) => ch === '1'),
      );
      const m = toModel(setOf(words));
      assert.deepEqual(m, viaString);
      assert.deepEqual(wordsOf(m), words.map((w) => w | 0));
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.array(fc.boolean(), { minLength: NBITS, maxLength: NBITS }), (m) => {
      assert.deepEqual(toModel(setOf(wordsOf(m))), m);
    }),
    { numRuns: RUNS },
  );
});

test('model helpers: model operations on a small example', () => {
  const a = modelOfList([1, 5, 200]);
  const b = modelOfList([5, 7, 200, 255]);
  assert.equal(mCount(a), 3);
  assert.equal(mFfs(a), 2);
  assert.equal(mFfs(emptyModel()), 0);
  assert.equal(mIsOther(modelOfList([5]), 5), false);
  assert.equal(mIsOther(modelOfList([5]), 4), true);
  assert.deepEqual(mAnd(a, b), modelOfList([5, 200]));
  assert.deepEqual(mOr(a, b), modelOfList([1, 5, 7, 200, 255]));
  assert.deepEqual(mAndNot(a, b), modelOfList([1]));
  assert.equal(mFfsAnd(a, b), 6);
  assert.equal(mIntersecting(a, modelOfList([2])), false);
  assert.equal(mEqual(a, modelOfList([200, 5, 1])), true);
  assert.equal(mEqual(a, b), false);
  const alias = modelOfList([3]);
  assign(alias, mOr(alias, alias));
  assert.deepEqual(alias, modelOfList([3]));
});

/* ------------------------------------------------------------------ */
/* Constants and construction.                                          */

test('constants: MAXCPUS bits in 32-bit words', () => {
  assert.equal(NWORDS, 8);
  assert.equal(NBITS, 256);
  assert.equal(KCPUSET_BYTES, KCPUSET_NWORDS * 4);
  assert.equal(KCPUSET_BYTES, Int32Array.BYTES_PER_ELEMENT * NWORDS);
});

test('kcpuset_create: an empty private set of KCPUSET_NWORDS words, each call new memory', () => {
  for (const zero of [true, false]) {
    const kcp = kcpuset_create(zero);
    assert.ok(kcp instanceof kcpuset_t);
    assert.ok(kcp.bits instanceof Int32Array);
    assert.equal(kcp.bits.length, NWORDS);
    assert.ok(kcpuset_iszero(kcp));
  }
  const a = kcpuset_create(true);
  const b = kcpuset_create(true);
  assert.notEqual(a.bits.buffer, b.bits.buffer);
  kcpuset_set(a, 3);
  assert.ok(kcpuset_iszero(b));
});

test('kcpuset_t constructor and kcpuset_shared use the given words without copying', () => {
  const words = new Int32Array(NWORDS);
  const kcp = new kcpuset_t(words);
  assert.equal(kcp.bits, words);
  const sh = kcpuset_shared(words);
  assert.equal(sh.bits, words);
  words[2] = 1;
  assert.ok(kcpuset_isset(kcp, 64) && kcpuset_isset(sh, 64));
});

test('kcpuset_clone: an independent private copy', () => {
  fc.assert(
    fc.property(wordsArb, cpuidArb, (words, c) => {
      const src = setOf(words);
      const before = toModel(src);
      const cl = kcpuset_clone(src);
      assert.deepEqual(toModel(cl), before);
      assert.notEqual(cl.bits.buffer, src.bits.buffer);
      kcpuset_fill(cl);
      kcpuset_clear(cl, c);
      assert.deepEqual(toModel(src), before);
    }),
    { numRuns: RUNS },
  );
  const sab = new SharedArrayBuffer(KCPUSET_BYTES);
  const cl = kcpuset_clone(kcpuset_shared(new Int32Array(sab)));
  assert.ok(!(cl.bits.buffer instanceof SharedArrayBuffer), 'a clone of a shared set is private');
});

test('kcpuset_destroy: validates and returns nothing; the set is left usable', () => {
  const kcp = kcpuset_create(true);
  kcpuset_set(kcp, 7);
  assert.equal(kcpuset_destroy(kcp), undefined);
  assert.ok(kcpuset_isset(kcp, 7));
});

/* ------------------------------------------------------------------ */
/* Each operation against the model.                                    */

test('set, clear, atomic_set, atomic_clear change exactly one bit', () => {
  fc.assert(
    fc.property(wordsArb, cpuidArb, (words, c) => {
      const cases: [(k: kcpuset_t, c: number) => void, boolean][] = [
        [kcpuset_set, true],
        [kcpuset_atomic_set, true],
        [kcpuset_clear, false],
        [kcpuset_atomic_clear, false],
      ];
      for (const [op, value] of cases) {
        const kcp = setOf(words);
        const m = toModel(kcp);
        op(kcp, c);
        m[c] = value;
        assert.deepEqual(toModel(kcp), m, op.name);
      }
    }),
    { numRuns: RUNS },
  );
});

test('queries of one set: isset, isotherset, iszero, countset, ffs', () => {
  fc.assert(
    fc.property(wordsArb, cpuidArb, (words, c) => {
      const kcp = setOf(words);
      const m = toModel(kcp);
      assert.equal(kcpuset_isset(kcp, c), m[c]);
      assert.equal(kcpuset_isotherset(kcp, c), mIsOther(m, c));
      assert.equal(kcpuset_iszero(kcp), mCount(m) === 0);
      assert.equal(kcpuset_countset(kcp), mCount(m));
      assert.equal(kcpuset_ffs(kcp), mFfs(m));
      assert.deepEqual(toModel(kcp), m, 'queries do not change the set');
    }),
    { numRuns: RUNS },
  );
});

test('isset and isotherset at every cpuid of one random set', () => {
  fc.assert(
    fc.property(wordsArb, (words) => {
      const kcp = setOf(words);
      const m = toModel(kcp);
      for (let c = 0; c < NBITS; c++) {
        assert.equal(kcpuset_isset(kcp, c), m[c]);
        assert.equal(kcpuset_isotherset(kcp, c), mIsOther(m, c));
      }
    }),
    { numRuns: 50 },
  );
});

test('queries of two sets: match, intersecting_p, ffs_intersecting', () => {
  fc.assert(
    fc.property(wordsArb, wordsArb, fc.boolean(), (w1, w2, same) => {
      const a = setOf(w1);
      const b = setOf(same ? w1 : w2);
      const ma = toModel(a);
      const mb = toModel(b);
      assert.equal(kcpuset_match(a, b), mEqual(ma, mb));
      assert.equal(kcpuset_match(b, a), mEqual(ma, mb));
      assert.equal(kcpuset_match(a, a), true);
      assert.equal(kcpuset_intersecting_p(a, b), mIntersecting(ma, mb));
      assert.equal(kcpuset_ffs_intersecting(a, b), mFfsAnd(ma, mb));
      assert.equal(kcpuset_ffs_intersecting(a, a), mFfs(ma));
      assert.deepEqual(toModel(a), ma);
      assert.deepEqual(toModel(b), mb);
    }),
    { numRuns: RUNS },
  );
});

test('match sees a difference in any single bit', () => {
  fc.assert(
    fc.property(wordsArb, cpuidArb, (words, c) => {
      const a = setOf(words);
      const b = setOf(words);
      assert.ok(kcpuset_match(a, b));
      if (kcpuset_isset(b, c)) kcpuset_clear(b, c);
      else kcpuset_set(b, c);
      assert.ok(!kcpuset_match(a, b));
    }),
    { numRuns: RUNS },
  );
});

type Binary = (a: kcpuset_t, b: kcpuset_t) => void;
const BINARY: [Binary, (a: Model, b: Model) => Model][] = [
  [kcpuset_copy, (_a, b) => b],
  [kcpuset_intersect, mAnd],
  [kcpuset_merge, mOr],
  [kcpuset_remove, mAndNot],
  [kcpuset_atomicly_intersect, mAnd],
  [kcpuset_atomicly_merge, mOr],
  [kcpuset_atomicly_remove, mAndNot],
];

test('copy, intersect, merge, remove and their atomic forms write the first set only', () => {
  fc.assert(
    fc.property(wordsArb, wordsArb, (w1, w2) => {
      for (const [op, model] of BINARY) {
        const a = setOf(w1);
        const b = setOf(w2);
        const ma = toModel(a);
        const mb = toModel(b);
        op(a, b);
        assert.deepEqual(toModel(a), model(ma, mb), op.name);
        assert.deepEqual(toModel(b), mb, `${op.name} leaves its second argument alone`);
      }
    }),
    { numRuns: RUNS },
  );
});

test('binary operations with both arguments the same set, or the same memory', () => {
  fc.assert(
    fc.property(wordsArb, (words) => {
      for (const [op, model] of BINARY) {
        const a = setOf(words);
        const m = toModel(a);
        op(a, a);
        assert.deepEqual(toModel(a), model(m, m), `${op.name}(a, a)`);
        const mem = Int32Array.from(words);
        const x = kcpuset_shared(mem);
        const y = kcpuset_shared(mem);
        op(x, y);
        assert.deepEqual(toModel(x), model(m, m), `${op.name}(x, y) on one memory`);
      }
    }),
    { numRuns: 100 },
  );
});

test('zero and fill', () => {
  fc.assert(
    fc.property(wordsArb, (words) => {
      const a = setOf(words);
      kcpuset_zero(a);
      assert.deepEqual(toModel(a), emptyModel());
      assert.deepEqual([...a.bits], new Array<number>(NWORDS).fill(0));
      kcpuset_fill(a);
      assert.deepEqual(toModel(a), new Array<boolean>(NBITS).fill(true));
      assert.deepEqual([...a.bits], new Array<number>(NWORDS).fill(-1));
    }),
    { numRuns: 100 },
  );
});

test('kcpuset_export_u32 copies min(out.length, KCPUSET_NWORDS) words as unsigned, leaves the rest', () => {
  const SENTINEL = 0xdeadbeef;
  fc.assert(
    fc.property(wordsArb, fc.integer({ min: 0, max: NWORDS + 4 }), (words, len) => {
      const kcp = setOf(words);
      const out = new Uint32Array(len).fill(SENTINEL);
      kcpuset_export_u32(kcp, out);
      for (let j = 0; j < len; j++) {
        assert.equal(out[j], j < NWORDS ? words[j]! >>> 0 : SENTINEL, `word ${j}`);
      }
    }),
    { numRuns: RUNS },
  );
  const kcp = kcpuset_create(true);
  kcpuset_set(kcp, 31);
  kcpuset_set(kcp, NBITS - 1);
  const out = new Uint32Array(NWORDS);
  kcpuset_export_u32(kcp, out);
  assert.equal(out[0], 0x80000000);
  assert.equal(out[NWORDS - 1], 0x80000000);
});

/* ------------------------------------------------------------------ */
/* Random sequences of operations.                                      */

type Op =
  | { kind: 'set' | 'clear' | 'atomic_set' | 'atomic_clear'; i: number; j: number; c: number; q: number }
  | { kind: 'zero' | 'fill'; i: number; j: number; q: number }
  | { kind: 'binary'; op: number; i: number; j: number; q: number }
  | { kind: 'clone'; i: number; j: number; q: number };

/*
 * Four sets: 0 and 1 private, 2 and 3 two kcpuset_t wrapping the same
 * shared memory (so their models are one array).
 */
const NSETS = 4;
const setIdx = fc.integer({ min: 0, max: NSETS - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('set', 'clear', 'atomic_set', 'atomic_clear'), i: setIdx, j: setIdx, c: cpuidArb, q: cpuidArb }),
  fc.record({ kind: fc.constantFrom('zero', 'fill'), i: setIdx, j: setIdx, q: cpuidArb }),
  fc.record({ kind: fc.constant('binary'), op: fc.integer({ min: 0, max: BINARY.length - 1 }), i: setIdx, j: setIdx, q: cpuidArb }),
  fc.record({ kind: fc.constant('clone'), i: fc.integer({ min: 0, max: 1 }), j: setIdx, q: cpuidArb }),
);

test('random sequences of operations agree with the model after every step', () => {
  fc.assert(
    fc.property(wordsArb, wordsArb, wordsArb, fc.array(opArb, { maxLength: 40, size: 'max' }), (w0, w1, w2, ops) => {
      const sab = new SharedArrayBuffer(KCPUSET_BYTES);
      new Int32Array(sab).set(w2);
      const sets: kcpuset_t[] = [
        setOf(w0),
        setOf(w1),
        kcpuset_shared(new Int32Array(sab)),
        kcpuset_shared(new Int32Array(sab)),
      ];
      const shared = toModel(sets[2]!);
      const models: Model[] = [toModel(sets[0]!), toModel(sets[1]!), shared, shared];

      for (const [step, o] of ops.entries()) {
        const s = sets[o.i]!;
        const m = models[o.i]!;
        switch (o.kind) {
          case 'set': kcpuset_set(s, o.c); m[o.c] = true; break;
          case 'atomic_set': kcpuset_atomic_set(s, o.c); m[o.c] = true; break;
          case 'clear': kcpuset_clear(s, o.c); m[o.c] = false; break;
          case 'atomic_clear': kcpuset_atomic_clear(s, o.c); m[o.c] = false; break;
          case 'zero': kcpuset_zero(s); assign(m, emptyModel()); break;
          case 'fill': kcpuset_fill(s); assign(m, new Array<boolean>(NBITS).fill(true)); break;
          case 'binary': {
            const [op, model] = BINARY[o.op]!;
            op(s, sets[o.j]!);
            assign(m, model(m, models[o.j]!));
            break;
          }
          case 'clone':
            sets[o.i] = kcpuset_clone(sets[o.j]!);
            models[o.i] = models[o.j]!.slice();
            break;
        }
        const where = `step ${step}: ${JSON.stringify(o)}`;
        for (let k = 0; k < NSETS; k++) assert.deepEqual(toModel(sets[k]!), models[k], `${where}, set ${k}`);

        const a = sets[o.i]!;
        const ma = models[o.i]!;
        const b = sets[o.j]!;
        const mb = models[o.j]!;
        assert.equal(kcpuset_isset(a, o.q), ma[o.q], where);
        assert.equal(kcpuset_isotherset(a, o.q), mIsOther(ma, o.q), where);
        assert.equal(kcpuset_iszero(a), mCount(ma) === 0, where);
        assert.equal(kcpuset_countset(a), mCount(ma), where);
        assert.equal(kcpuset_ffs(a), mFfs(ma), where);
        assert.equal(kcpuset_match(a, b), mEqual(ma, mb), where);
        assert.equal(kcpuset_intersecting_p(a, b), mIntersecting(ma, mb), where);
        assert.equal(kcpuset_ffs_intersecting(a, b), mFfsAnd(ma, mb), where);
      }
    }),
    { numRuns: 200 },
  );
});

/* ------------------------------------------------------------------ */
/* Word boundaries.                                                     */

for (const n of [1, 31, 32, 33, 64, 256]) {
  test(`edges: CPUs 0..${n - 1} (${n} CPUs' worth of bits)`, () => {
    const kcp = kcpuset_create(true);
    for (let c = 0; c < n; c++) kcpuset_set(kcp, c);

    // Exact words: full words of ones, then a partial word.
    const expected = new Array<number>(NWORDS).fill(0);
    for (let j = 0; j < NWORDS; j++) {
      const inWord = Math.max(0, Math.min(32, n - 32 * j));
      expected[j] = inWord === 32 ? -1 : 2 ** inWord - 1; // as int32
    }
    assert.deepEqual([...kcp.bits], expected);
    const out = new Uint32Array(NWORDS);
    kcpuset_export_u32(kcp, out);
    assert.deepEqual([...out], expected.map((w) => w >>> 0));
    assert.ok(kcpuset_match(kcp, setOf(expected)));

    assert.equal(kcpuset_countset(kcp), n);
    assert.equal(kcpuset_ffs(kcp), 1);
    assert.equal(kcpuset_iszero(kcp), false);
    assert.equal(kcpuset_isset(kcp, n - 1), true);
    assert.equal(kcpuset_isotherset(kcp, 0), n > 1);
    assert.equal(kcpuset_isotherset(kcp, n - 1), n > 1);
    if (n < NBITS) {
      assert.equal(kcpuset_isset(kcp, n), false);
      assert.equal(kcpuset_isotherset(kcp, n), true);
    }

    // Only the highest CPU of the range.
    const high = kcpuset_create(true);
    kcpuset_set(high, n - 1);
    assert.equal(kcpuset_countset(high), 1);
    assert.equal(kcpuset_ffs(high), n);
    assert.equal(kcpuset_isotherset(high, n - 1), false);
    assert.equal(kcpuset_isotherset(high, 0), n - 1 !== 0);
    assert.equal(kcpuset_intersecting_p(kcp, high), true);
    assert.equal(kcpuset_ffs_intersecting(kcp, high), n);
    assert.equal(kcpuset_match(kcp, high), n === 1);

    // The complement: every CPU from n up.
    const rest = kcpuset_create(true);
    kcpuset_fill(rest);
    kcpuset_remove(rest, kcp);
    assert.equal(kcpuset_countset(rest), NBITS - n);
    assert.equal(kcpuset_ffs(rest), n < NBITS ? n + 1 : 0);
    assert.equal(kcpuset_iszero(rest), n === NBITS);
    assert.equal(kcpuset_intersecting_p(rest, kcp), false);
    assert.equal(kcpuset_ffs_intersecting(rest, kcp), 0);
    kcpuset_merge(rest, kcp);
    assert.equal(kcpuset_countset(rest), NBITS);

    // The atomic forms at the same boundary.
    const at = kcpuset_create(true);
    kcpuset_atomicly_merge(at, kcp);
    assert.ok(kcpuset_match(at, kcp));
    kcpuset_atomic_clear(at, n - 1);
    assert.equal(kcpuset_countset(at), n - 1);
    assert.equal(kcpuset_ffs(at), n > 1 ? 1 : 0);
    kcpuset_atomic_set(at, n - 1);
    assert.ok(kcpuset_match(at, kcp));
    kcpuset_atomicly_intersect(at, high);
    assert.ok(kcpuset_match(at, high));
    kcpuset_atomicly_remove(at, high);
    assert.ok(kcpuset_iszero(at));

    // Clearing back down to empty, one CPU at a time from the top.
    for (let c = n - 1; c >= 0; c--) {
      kcpuset_clear(kcp, c);
      assert.equal(kcpuset_countset(kcp), c);
      assert.equal(kcpuset_ffs(kcp), c > 0 ? 1 : 0);
    }
    assert.ok(kcpuset_iszero(kcp));
  });
}

test('kcpuset_fill sets all MAXCPUS bits', () => {
  const kcp = kcpuset_create(true);
  kcpuset_fill(kcp);
  assert.equal(kcpuset_countset(kcp), NBITS);
  assert.equal(kcpuset_ffs(kcp), 1);
  assert.equal(kcpuset_isset(kcp, NBITS - 1), true);
  assert.equal(kcpuset_isotherset(kcp, 0), true);
});

test('cpuid 255 (the last) works with every cpuid operation', () => {
  const kcp = kcpuset_create(true);
  kcpuset_set(kcp, 255);
  assert.equal(kcp.bits[NWORDS - 1], -0x80000000);
  assert.ok(kcpuset_isset(kcp, 255));
  assert.equal(kcpuset_isotherset(kcp, 255), false);
  assert.equal(kcpuset_isotherset(kcp, 254), true);
  assert.equal(kcpuset_ffs(kcp), 256);
  kcpuset_clear(kcp, 255);
  assert.ok(kcpuset_iszero(kcp));
  kcpuset_atomic_set(kcp, 255);
  assert.ok(kcpuset_isset(kcp, 255));
  kcpuset_atomic_clear(kcp, 255);
  assert.ok(kcpuset_iszero(kcp));
});

/* ------------------------------------------------------------------ */
/* Validation.                                                          */

const CPUID_FUNCTIONS: [string, (k: kcpuset_t, c: number) => unknown][] = [
  ['kcpuset_set', kcpuset_set],
  ['kcpuset_clear', kcpuset_clear],
  ['kcpuset_isset', kcpuset_isset],
  ['kcpuset_isotherset', kcpuset_isotherset],
  ['kcpuset_atomic_set', kcpuset_atomic_set],
  ['kcpuset_atomic_clear', kcpuset_atomic_clear],
];

test('a cpuid outside [0, MAXCPUS) is a RangeError; a non-number a TypeError; the set is unchanged', () => {
  const outOfRange = [NBITS, -1, 1.5, -0.5, NaN, Infinity, -Infinity, 2 ** 32, 2 ** 32 + 3, 1e300];
  const notNumbers: unknown[] = ['3', 3n, undefined, null, {}, true, new Number(3), [3]];
  for (const [name, fn] of CPUID_FUNCTIONS) {
    const kcp = kcpuset_create(true);
    kcpuset_set(kcp, 3);
    for (const c of outOfRange) {
      assert.throws(() => fn(kcp, c), (e: unknown) => e instanceof RangeError && e.message.startsWith(`${name}: cpuid must be an integer in [0, ${NBITS}), got `), `${name}(${c})`);
    }
    for (const c of notNumbers) {
      assert.throws(() => fn(kcp, bad(c)), (e: unknown) => e instanceof TypeError && e.message.startsWith(`${name}: cpuid must be a number, got `), `${name}(${String(c)})`);
    }
    assert.deepEqual(toModel(kcp), modelOfList([3]), `${name}: a rejected call changes nothing`);
    fn(kcp, -0); // -0 is the integer 0
  }
});

test('cpuid error messages, exactly', () => {
  const kcp = kcpuset_create(true);
  assert.throws(() => kcpuset_set(kcp, 256), { name: 'RangeError', message: 'kcpuset_set: cpuid must be an integer in [0, 256), got number 256' });
  assert.throws(() => kcpuset_clear(kcp, -1), { name: 'RangeError', message: 'kcpuset_clear: cpuid must be an integer in [0, 256), got number -1' });
  assert.throws(() => kcpuset_isset(kcp, 1.5), { name: 'RangeError', message: 'kcpuset_isset: cpuid must be an integer in [0, 256), got number 1.5' });
  assert.throws(() => kcpuset_isset(kcp, bad('3')), { name: 'TypeError', message: 'kcpuset_isset: cpuid must be a number, got string "3"' });
});

/* Every function taking a set, with a call that has a good argument in every position. */
const SET_FUNCTIONS: [string, string[], (args: unknown[]) => unknown][] = [
  ['kcpuset_clone', ['skcp'], (a) => kcpuset_clone(bad(a[0]))],
  ['kcpuset_destroy', ['kcp'], (a) => kcpuset_destroy(bad(a[0]))],
  ['kcpuset_copy', ['dkcp', 'skcp'], (a) => kcpuset_copy(bad(a[0]), bad(a[1]))],
  ['kcpuset_zero', ['kcp'], (a) => kcpuset_zero(bad(a[0]))],
  ['kcpuset_fill', ['kcp'], (a) => kcpuset_fill(bad(a[0]))],
  ['kcpuset_set', ['kcp'], (a) => kcpuset_set(bad(a[0]), 1)],
  ['kcpuset_clear', ['kcp'], (a) => kcpuset_clear(bad(a[0]), 1)],
  ['kcpuset_isset', ['kcp'], (a) => kcpuset_isset(bad(a[0]), 1)],
  ['kcpuset_isotherset', ['kcp'], (a) => kcpuset_isotherset(bad(a[0]), 1)],
  ['kcpuset_iszero', ['kcp'], (a) => kcpuset_iszero(bad(a[0]))],
  ['kcpuset_match', ['kcp1', 'kcp2'], (a) => kcpuset_match(bad(a[0]), bad(a[1]))],
  ['kcpuset_intersecting_p', ['kcp1', 'kcp2'], (a) => kcpuset_intersecting_p(bad(a[0]), bad(a[1]))],
  ['kcpuset_intersect', ['kcp1', 'kcp2'], (a) => kcpuset_intersect(bad(a[0]), bad(a[1]))],
  ['kcpuset_merge', ['kcp1', 'kcp2'], (a) => kcpuset_merge(bad(a[0]), bad(a[1]))],
  ['kcpuset_remove', ['kcp1', 'kcp2'], (a) => kcpuset_remove(bad(a[0]), bad(a[1]))],
  ['kcpuset_countset', ['kcp'], (a) => kcpuset_countset(bad(a[0]))],
  ['kcpuset_ffs', ['kcp'], (a) => kcpuset_ffs(bad(a[0]))],
  ['kcpuset_ffs_intersecting', ['kcp1', 'kcp2'], (a) => kcpuset_ffs_intersecting(bad(a[0]), bad(a[1]))],
  ['kcpuset_export_u32', ['kcp'], (a) => kcpuset_export_u32(bad(a[0]), new Uint32Array(NWORDS))],
  ['kcpuset_atomic_set', ['kcp'], (a) => kcpuset_atomic_set(bad(a[0]), 1)],
  ['kcpuset_atomic_clear', ['kcp'], (a) => kcpuset_atomic_clear(bad(a[0]), 1)],
  ['kcpuset_atomicly_intersect', ['kcp1', 'kcp2'], (a) => kcpuset_atomicly_intersect(bad(a[0]), bad(a[1]))],
  ['kcpuset_atomicly_merge', ['kcp1', 'kcp2'], (a) => kcpuset_atomicly_merge(bad(a[0]), bad(a[1]))],
  ['kcpuset_atomicly_remove', ['kcp1', 'kcp2'], (a) => kcpuset_atomicly_remove(bad(a[0]), bad(a[1]))],
];

test('a non-set argument is a TypeError naming the function and parameter', () => {
  const notSets: unknown[] = [undefined, null, 0, 'kcp', {}, { bits: new Int32Array(NWORDS) }, new Int32Array(NWORDS), [0, 0, 0, 0, 0, 0, 0, 0]];
  for (const [name, params, call] of SET_FUNCTIONS) {
    for (const [p, param] of params.entries()) {
      for (const v of notSets) {
        const good = kcpuset_create(true);
        const args: unknown[] = params.map(() => good);
        args[p] = v;
        assert.throws(() => call(args), (e: unknown) => e instanceof TypeError && e.message.startsWith(`${name}: ${param} must be a kcpuset_t, got `), `${name} ${param}=${String(v)}`);
        assert.ok(kcpuset_iszero(good), `${name}: a rejected call changes nothing`);
      }
    }
    // And the good call succeeds.
    const args = params.map(() => kcpuset_create(true));
    call(args);
  }
});

test('set argument error messages, exactly', () => {
  const kcp = kcpuset_create(true);
  assert.throws(() => kcpuset_set(bad(3), 1), { name: 'TypeError', message: 'kcpuset_set: kcp must be a kcpuset_t, got number 3' });
  assert.throws(() => kcpuset_merge(kcp, bad({})), { name: 'TypeError', message: 'kcpuset_merge: kcp2 must be a kcpuset_t, got an object (Object)' });
  assert.throws(() => kcpuset_copy(bad(null), kcp), { name: 'TypeError', message: 'kcpuset_copy: dkcp must be a kcpuset_t, got null' });
});

test('kcpuset_shared and the kcpuset_t constructor: TypeError for a non-Int32Array, RangeError for a wrong length', () => {
  const sab = new SharedArrayBuffer(KCPUSET_BYTES * 2);
  const wrongTypes: unknown[] = [undefined, null, sab, new ArrayBuffer(KCPUSET_BYTES), new Uint32Array(NWORDS), new Float64Array(NWORDS), new Array<number>(NWORDS).fill(0), kcpuset_create(true)];
  const wrongLengths = [0, 1, NWORDS - 1, NWORDS + 1, NWORDS * 2];
  const makers: [string, string, (w: Int32Array) => kcpuset_t][] = [
    ['kcpuset_shared', 'words', kcpuset_shared],
    ['kcpuset_t', 'bits', (w) => new kcpuset_t(w)],
  ];
  for (const [name, param, make] of makers) {
    for (const v of wrongTypes) {
      assert.throws(() => make(bad(v)), (e: unknown) => e instanceof TypeError && e.message.startsWith(`${name}: ${param} must be an Int32Array, got `), `${name}(${String(v)})`);
    }
    for (const len of wrongLengths) {
      assert.throws(() => make(new Int32Array(new SharedArrayBuffer(len * 4))), (e: unknown) => e instanceof RangeError && e.message === `${name}: ${param}.length must be KCPUSET_NWORDS (${NWORDS}), got number ${len}`);
    }
  }
  assert.throws(() => kcpuset_shared(new Int32Array(7)), { name: 'RangeError', message: 'kcpuset_shared: words.length must be KCPUSET_NWORDS (8), got number 7' });
  assert.throws(() => kcpuset_shared(bad(new Uint32Array(8))), { name: 'TypeError', message: 'kcpuset_shared: words must be an Int32Array, got an object (Uint32Array)' });
  assert.throws(() => kcpuset_shared(new Int32Array(sab)), RangeError, 'the whole buffer is two sets, not one');
});

test('kcpuset_create and kcpuset_export_u32 check their other arguments', () => {
  for (const v of [undefined, 0, 1, 'true', null]) {
    assert.throws(() => kcpuset_create(bad(v)), (e: unknown) => e instanceof TypeError && e.message.startsWith('kcpuset_create: zero must be a boolean, got '));
  }
  const kcp = kcpuset_create(true);
  for (const v of [undefined, null, new Int32Array(NWORDS), [0], new Uint8Array(32)]) {
    assert.throws(() => kcpuset_export_u32(kcp, bad(v)), (e: unknown) => e instanceof TypeError && e.message.startsWith('kcpuset_export_u32: out must be a Uint32Array, got '));
  }
});

/* ------------------------------------------------------------------ */
/* Shared memory (same thread; cross-thread tests live elsewhere).      */

test('two kcpuset_t wrapping the same SharedArrayBuffer memory are one set', () => {
  const sab = new SharedArrayBuffer(KCPUSET_BYTES * 3);
  // The middle set of three, to check offsets: the neighbours must not change.
  const a = kcpuset_shared(new Int32Array(sab, KCPUSET_BYTES, NWORDS));
  const b = kcpuset_shared(new Int32Array(sab, KCPUSET_BYTES, NWORDS));
  const before = kcpuset_shared(new Int32Array(sab, 0, NWORDS));
  const after = kcpuset_shared(new Int32Array(sab, 2 * KCPUSET_BYTES, NWORDS));
  assert.notEqual(a, b);
  assert.notEqual(a.bits, b.bits);

  kcpuset_set(a, 5);
  assert.ok(kcpuset_isset(b, 5));
  kcpuset_atomic_set(b, NBITS - 1);
  assert.ok(kcpuset_isset(a, NBITS - 1));
  assert.ok(kcpuset_match(a, b));
  assert.equal(kcpuset_countset(b), 2);

  kcpuset_fill(a);
  assert.equal(kcpuset_countset(b), NBITS);
  kcpuset_atomic_clear(b, 0);
  assert.equal(kcpuset_ffs(a), 2);
  kcpuset_zero(b);
  assert.ok(kcpuset_iszero(a));

  const other = kcpuset_create(true);
  kcpuset_set(other, 40);
  kcpuset_atomicly_merge(a, other);
  assert.ok(kcpuset_isset(b, 40));
  kcpuset_copy(b, kcpuset_clone(other));
  kcpuset_set(other, 41);
  assert.ok(!kcpuset_isset(a, 41), 'copy copies; it does not share');

  assert.ok(kcpuset_iszero(before) && kcpuset_iszero(after), 'neighbouring sets in the buffer are untouched');
});

test('random operations through one shared view are seen through the other', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom(0, 1, 2, 3), fc.boolean(), cpuidArb), { maxLength: 30 }), (steps) => {
      const sab = new SharedArrayBuffer(KCPUSET_BYTES);
      const views = [kcpuset_shared(new Int32Array(sab)), kcpuset_shared(new Int32Array(sab))];
      const m = emptyModel();
      for (const [op, which, c] of steps) {
        const s = views[which ? 1 : 0]!;
        const seen = views[which ? 0 : 1]!;
        if (op === 0) kcpuset_set(s, c);
        else if (op === 1) kcpuset_clear(s, c);
        else if (op === 2) kcpuset_atomic_set(s, c);
        else kcpuset_atomic_clear(s, c);
        m[c] = op === 0 || op === 2;
        assert.equal(kcpuset_isset(seen, c), m[c]);
        assert.deepEqual(toModel(seen), m);
      }
    }),
    { numRuns: RUNS },
  );
});
