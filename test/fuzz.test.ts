/*
 * Model-based fuzzing (fast-check's fc.commands): random sequences of
 * register / unregister / trigger / unicast / multicast / broadcast /
 * softint / xcall calls, valid and invalid, issued from every CPU of a
 * real machine, checked against a model after each call: every valid
 * call's effect happened exactly once on exactly its targets (a ledger in
 * shared memory), every invalid one threw the typed error the model
 * expects, and the machine stays usable.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { cpu_lookup, IPI_MAXREG, ipi_unregister, softint_disestablish, xc_unicast, xc_wait, type softint_cookie_t } from 'ipi';
import {
  FZ_BYTES, FZ_EASSERT, FZ_EIPI, FZ_ERANGE, FZ_ETYPE, FZ_OK, FZ_RESULT, FZ_ROW, FZ_SLOTS, FZ_VIOL, fz_exec, type fz_op,
} from './fixtures/fuzz_image.js';
import { bootTest, imageUrl, SIMULATED, type TestMachine } from './helpers.js';

const NCPU = 3;
/**
 * Command sequences to try.  On workers one machine runs them all; on the
 * simulated machine each runs on a new machine with a seed fast-check
 * draws, so a counterexample names its seed too, and many more are cheap.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? (SIMULATED ? 1500 : 150));

interface Model {
  /** Registered IPI ids and their ledger slots. */
  ids: Map<number, number>;
  /** Established soft interrupts and their ledger slots. */
  cookies: Map<number, number>;
  /** What each ledger slot must hold, per CPU. */
  ledger: Map<number, number[]>;
  nextSlot: number;
}

interface Real {
  t: TestMachine;
  fz: Int32Array;
}

/** What one call must do: its outcome and the runs it adds to the ledger. */
interface Expect {
  code: number;
  runs?: { slot: number; cpus: number[] };
}

function fresh_slot(m: Model): number {
  assert.ok(m.nextSlot < FZ_SLOTS, 'ledger full: lower maxCommands');
  return m.nextSlot++;
}

function expect_runs(m: Model, slot: number, cpus: number[]): void {
  const row = m.ledger.get(slot) ?? Array<number>(NCPU).fill(0);
  for (const c of cpus) row[c]!++;
  m.ledger.set(slot, row);
}

const mask_cpus = (mask: number): number[] => Array.from({ length: NCPU }, (_, c) => c).filter((c) => mask & (1 << c));
const pick = <K>(keys: Iterable<K>, k: number): K | undefined => {
  const all = [...keys].sort();
  return all.length === 0 ? undefined : all[k % all.length];
};

/** Run op on CPU src: directly on the booting thread, as a low-priority xcall function on a worker. */
function exec(r: Real, src: number, op: fz_op): { code: number; value: number } {
  Atomics.store(r.fz, FZ_RESULT, -1);
  if (src === 0) fz_exec(op);
  else xc_wait(xc_unicast(0, fz_exec, op, undefined, cpu_lookup(src)));
  return { code: Atomics.load(r.fz, FZ_RESULT), value: Atomics.load(r.fz, FZ_RESULT + 1) };
}

/** A command: what it means for the model (computed from it), and the check against the machine. */
class Call implements fc.Command<Model, Real> {
  constructor(readonly label: string, readonly src: number, readonly plan: (m: Model) => { op: fz_op; expect: Expect; apply?: (value: number) => void }) {}

  check(): boolean {
    return true;
  }

  run(m: Model, r: Real): void {
    const { op, expect, apply } = this.plan(m);
    const got = exec(r, this.src, op);
    assert.equal(got.code, expect.code, `${this.toString()}: ${JSON.stringify(op)} gave outcome ${got.code}, the model expects ${expect.code}`);
    if (expect.runs) expect_runs(m, expect.runs.slot, expect.runs.cpus);
    apply?.(got.value);
    assert.deepEqual(Array.from(r.fz.subarray(FZ_VIOL, FZ_VIOL + 3)), [0, 0, 0],
      `${this.toString()}: violations seen by the functions (ordering of the sender's writes, xcall context, a run after unregister)`);
    for (const [slot, want] of m.ledger) {
      const have = Array.from(r.fz.subarray(slot * FZ_ROW, slot * FZ_ROW + NCPU));
      assert.deepEqual(have, want, `${this.toString()}: ledger slot ${slot}`);
    }
  }

  toString(): string {
    return `cpu${this.src}.${this.label}`;
  }
}

const src = fc.integer({ min: 0, max: NCPU - 1 });
const cpu = fc.integer({ min: 0, max: NCPU - 1 });
const k = fc.nat(64);
const mask = fc.integer({ min: 0, max: (1 << NCPU) - 1 });

const commands = [
  src.map((s) => new Call('register', s, (m) => {
    const slot = fresh_slot(m);
    const full = m.ids.size + m.cookies.size >= IPI_MAXREG - 1;
    return {
      op: { op: 'register', slot }, expect: { code: FZ_OK },
      apply: (id) => {
        if (full) assert.equal(id, 0, 'a full table returns 0');
        else {
          assert.ok(id > 0 && id < IPI_MAXREG && !m.ids.has(id), `a fresh id, got ${id}`);
          m.ids.set(id, slot);
        }
      },
    };
  })),
  fc.tuple(src, k).map(([s, i]) => new Call(`unregister#${i}`, s, (m) => {
    const id = pick(m.ids.keys(), i);
    if (id === undefined) return { op: { op: 'unregister', id: 0 }, expect: { code: FZ_EASSERT } };
    return { op: { op: 'unregister', id }, expect: { code: FZ_OK }, apply: () => m.ids.delete(id) };
  })),
  fc.tuple(src, k, cpu).map(([s, i, t]) => new Call(`trigger#${i}->cpu${t}`, s, (m) => {
    const id = pick(m.ids.keys(), i);
    if (id === undefined || t === s) return { op: { op: 'trigger', id: id ?? 0, target: t, slot: 0 }, expect: { code: FZ_EASSERT } };
    const slot = m.ids.get(id)!;
    return { op: { op: 'trigger', id, target: t, slot }, expect: { code: FZ_OK, runs: { slot, cpus: [t] } } };
  })),
  fc.tuple(src, k, mask).map(([s, i, set]) => new Call(`trigger_multi#${i}:${set}`, s, (m) => {
    const id = pick(m.ids.keys(), i);
    if (id === undefined) return { op: { op: 'trigger_multi', id: 0, targets: mask_cpus(set), slot: 0 }, expect: { code: FZ_EASSERT } };
    const slot = m.ids.get(id)!;
    return { op: { op: 'trigger_multi', id, targets: mask_cpus(set), slot }, expect: { code: FZ_OK, runs: { slot, cpus: mask_cpus(set) } } };
  })),
  fc.tuple(src, k, fc.boolean()).map(([s, i, skip]) => new Call(`trigger_broadcast#${i}${skip ? ':skip' : ''}`, s, (m) => {
    const id = pick(m.ids.keys(), i);
    if (id === undefined) return { op: { op: 'trigger_broadcast', id: 0, skip, slot: 0 }, expect: { code: FZ_EASSERT } };
    const slot = m.ids.get(id)!;
    const cpus = mask_cpus((1 << NCPU) - 1).filter((c) => !skip || c !== s);
    return { op: { op: 'trigger_broadcast', id, skip, slot }, expect: { code: FZ_OK, runs: { slot, cpus } } };
  })),
  fc.tuple(src, cpu).map(([s, t]) => new Call(`unicast->cpu${t}`, s, (m) => {
    const slot = fresh_slot(m);
    return { op: { op: 'unicast', target: t, slot }, expect: t === s ? { code: FZ_EASSERT } : { code: FZ_OK, runs: { slot, cpus: [t] } } };
  })),
  fc.tuple(src, mask).map(([s, set]) => new Call(`multicast:${set}`, s, (m) => {
    const slot = fresh_slot(m);
    return { op: { op: 'multicast', targets: mask_cpus(set), slot }, expect: { code: FZ_OK, runs: { slot, cpus: mask_cpus(set) } } };
  })),
  fc.tuple(src, fc.boolean()).map(([s, skip]) => new Call(`broadcast${skip ? ':skip' : ''}`, s, (m) => {
    const slot = fresh_slot(m);
    const cpus = mask_cpus((1 << NCPU) - 1).filter((c) => !skip || c !== s);
    return { op: { op: 'broadcast', skip, slot }, expect: { code: FZ_OK, runs: { slot, cpus } } };
  })),
  src.map((s) => new Call('softint_establish', s, (m) => {
    const slot = fresh_slot(m);
    const full = m.ids.size + m.cookies.size >= IPI_MAXREG - 1;
    return {
      op: { op: 'softint_establish', slot }, expect: { code: FZ_OK },
      apply: (cookie) => {
        if (full) assert.equal(cookie, 0, 'no IPI id left: null');
        else m.cookies.set(cookie, slot);
      },
    };
  })),
  fc.tuple(src, k, cpu).map(([s, i, t]) => new Call(`softint_schedule#${i}->cpu${t}`, s, (m) => {
    const cookie = pick(m.cookies.keys(), i);
    if (cookie === undefined) return { op: { op: 'softint_schedule', cookie: 64 * 9 + 10, target: t, slot: 0 }, expect: { code: FZ_EIPI } };
    const slot = m.cookies.get(cookie)!;
    return { op: { op: 'softint_schedule', cookie, target: t, slot }, expect: { code: FZ_OK, runs: { slot, cpus: [t] } } };
  })),
  fc.tuple(src, k).map(([s, i]) => new Call(`softint_disestablish#${i}`, s, (m) => {
    const cookie = pick(m.cookies.keys(), i);
    if (cookie === undefined) return { op: { op: 'softint_disestablish', cookie: 64 * 9 + 10 }, expect: { code: FZ_EIPI } };
    return { op: { op: 'softint_disestablish', cookie }, expect: { code: FZ_OK }, apply: () => m.cookies.delete(cookie) };
  })),
  fc.tuple(src, fc.boolean(), fc.integer({ min: -1, max: NCPU - 1 })).map(([s, high, t]) => new Call(`xcall${high ? ':high' : ''}->${t}`, s, (m) => {
    const slot = fresh_slot(m);
    /* On a worker the call runs inside a low-priority xcall function, which cannot issue one of its own class. */
    if (s !== 0 && !high) return { op: { op: 'xcall', high, target: t, slot }, expect: { code: FZ_EASSERT } };
    const cpus = t < 0 ? mask_cpus((1 << NCPU) - 1) : [t];
    return { op: { op: 'xcall', high, target: t, slot }, expect: { code: FZ_OK, runs: { slot, cpus } } };
  })),
  fc.tuple(src, k, cpu, fc.integer({ min: 1, max: 6 })).map(([s, i, t, n]) => new Call(`coalesce#${i}->cpu${t}x${n}`, s, (m) => {
    const id = pick(m.ids.keys(), i);
    if (id === undefined || t === s) return { op: { op: 'coalesce', id: id ?? 0, target: t, n, slot: 0 }, expect: { code: FZ_EASSERT } };
    const slot = m.ids.get(id)!;
    /* n triggers with no interrupt point between coalesce: at least one run, at most n. */
    return {
      op: { op: 'coalesce', id, target: t, n, slot }, expect: { code: FZ_OK },
      apply: (runs) => {
        assert.ok(runs >= 1 && runs <= n, `coalesce: ${runs} runs for ${n} triggers`);
        expect_runs(m, slot, Array<number>(runs).fill(t));
      },
    };
  })),
  fc.tuple(src, cpu, cpu).map(([s, a, t]) => [s, a, t === a ? (a + 1) % NCPU : t] as const).map(([s, a, b]) => new Call(`race_unregister:cpu${a}->cpu${b}`, s, (m) => {
    const slot = fresh_slot(m);
    if (a === s) return { op: { op: 'race_unregister', trigger_cpu: a, target: b, slot }, expect: { code: FZ_EASSERT } };
    /* How many triggers ran before the unregister depends on the interleaving: what the model keeps is that none ran after. */
    return {
      op: { op: 'race_unregister', trigger_cpu: a, target: b, slot }, expect: { code: FZ_OK },
      apply: () => m.ledger.delete(slot),
    };
  })),
  src.map((s) => new Call('closure', s, () => ({ op: { op: 'closure' }, expect: { code: FZ_EIPI } }))),
  fc.tuple(src, cpu).map(([s, t]) => new Call(`bad_arg->cpu${t}`, s, () => ({ op: { op: 'bad_arg', target: t }, expect: { code: t === s ? FZ_EASSERT : FZ_ETYPE } }))),
  src.map((s) => new Call('bad_ticket', s, () => ({ op: { op: 'bad_ticket' }, expect: { code: FZ_ERANGE } }))),
];

test('model-based fuzzing: random valid and invalid calls from every CPU match the model', { timeout: 600_000 }, async () => {
  const fz = new Int32Array(new SharedArrayBuffer(FZ_BYTES));
  const options = { image: [imageUrl, new URL('./fixtures/fuzz_image.js', import.meta.url)], shared: { fz: fz.buffer as SharedArrayBuffer } };
  /* Workers: one machine for every run (each boot starts threads); simulated: one per run, with the run's seed. */
  const shared = SIMULATED ? undefined : await bootTest(NCPU, options);
  let runs = 0, calls = 0;
  const start = performance.now();
  try {
    await fc.assert(fc.asyncProperty(fc.commands(commands, { maxCommands: 40, size: 'large' }), fc.integer({ min: 1, max: 2 ** 31 - 1 }), async (cmds, seed) => {
      const model: Model = { ids: new Map(), cookies: new Map(), ledger: new Map(), nextSlot: 1 };
      fz.fill(0);
      const t = shared ?? await bootTest(NCPU, { ...options, simulate: { seed } });
      try {
        fc.modelRun(() => ({ model, real: { t, fz } }), cmds);
        calls += [...cmds].length;
      } finally {
        /* Leave the machine as found: the next run starts from an empty table. */
        if (shared) {
          for (const id of model.ids.keys()) ipi_unregister(id);
          for (const c of model.cookies.keys()) softint_disestablish(c as softint_cookie_t);
        } else {
          await t.machine.shutdown();
        }
      }
      runs++;
    }), { numRuns: RUNS });
    if (shared) assert.equal(exec({ t: shared, fz }, 1, { op: 'broadcast', skip: false, slot: 1 }).code, FZ_OK, 'usable after all of it');
  } finally {
    await shared?.machine.shutdown();
  }
  assert.equal(runs, RUNS);
  assert.ok(calls > RUNS, `${calls} calls`);
  const s = (performance.now() - start) / 1000;
  console.log(`fuzz (${SIMULATED ? 'simulated machine, a seed per run' : 'workers'}): ${runs} runs, ${calls} calls, ${Math.round(runs / s)} runs/s, ${Math.round(calls / s)} calls/s`);
});
