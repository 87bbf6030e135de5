/* Asynchronous IPIs: ipi_register, ipi_unregister, ipi_trigger*, delivery, assertions, counters. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cpu_lookup, cpu_relax, curcpu, IPI_MAXREG, IPI_SYNCH_ID, ipi_register, ipi_trigger, ipi_trigger_broadcast, ipi_trigger_multi,
  ipi_unicast, ipi_unregister, ipi_wait, kcpuset_create, kcpuset_set, preempt_point, splhigh, splx, xc_unicast, xc_wait,
} from 'ipi';
import * as image from './fixtures/image.js';
import { bootTest, ROW, sleep, until, preempt } from './helpers.js';

const T = { timeout: 60_000 };

test('ipi_trigger runs the handler on exactly its target, at IPL_HIGH in interrupt context', T, async () => {
  const t = await bootTest(3);
  try {
    const id = ipi_register(image.count, 1);
    const ctx = ipi_register(image.context, 2);
    assert.ok(id > 0 && ctx > 0);
    preempt(() => ipi_trigger(id, cpu_lookup(2)));
    await until('the handler on cpu2', () => t.row(1)[2] === 1);
    await sleep(50);
    assert.deepEqual(t.row(1), [0, 0, 1]);
    preempt(() => ipi_trigger(ctx, cpu_lookup(1)));
    await until('the context handler on cpu1', () => t.row(2)[1] !== 0);
    assert.equal(t.row(2)[1], 1 | 4 | 8, 'cpu_intr_p() and kpreempt_disabled() inside the handler');
  } finally {
    await t.machine.shutdown();
  }
});

test('triggers before service coalesce into one run; a trigger after service runs again', T, async () => {
  const t = await bootTest(3);
  try {
    const id = ipi_register(image.count, 1);
    const release = 60 * ROW, seen = 60 * ROW + 1;
    /* cpu1 busy away from any interrupt point, while cpu2 triggers it five times, notes its count, and releases it. */
    const steps: image.act_step[] = [{ trigger: id, cpu: 1, n: 5 }, { copy: 1 * ROW + 1, to: seen }, { set: release }];
    const hold = { func: image.hold_and_act, arg: { release, cpu: 2, steps } };
    preempt(() => ipi_unicast(hold, cpu_lookup(1)));
    ipi_wait(hold);
    assert.equal(t.log[seen], 0, 'nothing runs while the CPU is busy');
    await until('the coalesced run', () => t.row(1)[1] === 1);
    await sleep(50);
    assert.equal(t.row(1)[1], 1, 'five triggers, one run');
    preempt(() => ipi_trigger(id, cpu_lookup(1)));
    await until('the run after service', () => t.row(1)[1] === 2);
    const sent = (cpu: number) => t.machine.counters()[cpu]!.ipi.find((e) => e.id === id)!;
    assert.deepEqual({ sent: sent(2).sent, coalesced: sent(2).coalesced, doorbells: sent(2).doorbells }, { sent: 5, coalesced: 4, doorbells: 1 });
    assert.deepEqual({ sent: sent(0).sent, coalesced: sent(0).coalesced, doorbells: sent(0).doorbells }, { sent: 1, coalesced: 0, doorbells: 1 });
    assert.equal(t.machine.counters()[1]!.ipi.find((e) => e.id === id)!.runs, 2);
  } finally {
    await t.machine.shutdown();
  }
});

test('ipi_trigger_multi and ipi_trigger_broadcast, with and without the sender', T, async () => {
  const t = await bootTest(4);
  try {
    const id = ipi_register(image.count, 1);
    const ctx = ipi_register(image.context, 2);
    const set = kcpuset_create(true);
    kcpuset_set(set, 0);
    kcpuset_set(set, 2);
    preempt(() => ipi_trigger_multi(id, set));
    assert.equal(t.row(1)[0], 1, "the sender's own handler ran before ipi_trigger_multi returned");
    await until('cpu2', () => t.row(1)[2] === 1);
    await sleep(30);
    assert.deepEqual(t.row(1), [1, 0, 1, 0]);

    preempt(() => ipi_trigger_multi(ctx, set));
    assert.equal(t.row(2)[0], 1 | 4 | 8, 'the local run is at IPL_HIGH in interrupt context');

    preempt(() => ipi_trigger_broadcast(id, true));
    await until('broadcast, skipping self', () => t.row(1).join() === '1,1,2,1');
    preempt(() => ipi_trigger_broadcast(id, false));
    assert.equal(t.row(1)[0], 2);
    await until('broadcast with self', () => t.row(1).join() === '2,2,3,2');
    await sleep(30);
    assert.deepEqual(t.row(1), [2, 2, 3, 2]);
    assert.throws(() => preempt(() => ipi_trigger_broadcast(id, 0 as never)), TypeError);
    assert.throws(() => preempt(() => ipi_trigger_multi(id, [0] as never)), { name: 'TypeError', message: /ipi_trigger_multi: target must be a kcpuset_t/ });
    const outside = kcpuset_create(true);
    kcpuset_set(outside, 4);
    assert.throws(() => preempt(() => ipi_trigger_multi(id, outside)), /holds cpu4, which is not attached \(ncpu 4\)/);
  } finally {
    await t.machine.shutdown();
  }
});

test('ipi_register returns 1 .. IPI_MAXREG-1, then 0; unregister frees a slot', T, async () => {
  const t = await bootTest(2);
  try {
    assert.equal(IPI_MAXREG, 32);
    assert.equal(IPI_SYNCH_ID, 0);
    const ids: number[] = [];
    for (let i = 1; i < IPI_MAXREG; i++) ids.push(ipi_register(image.count, i));
    assert.deepEqual(ids, Array.from({ length: 31 }, (_, i) => i + 1));
    assert.equal(ipi_register(image.count, 0), 0);
    ipi_unregister(17);
    assert.equal(ipi_register(image.nothing, 0), 17);
    assert.equal(ipi_register(image.nothing, 0), 0);
    /* The highest id works. */
    preempt(() => ipi_trigger(31, cpu_lookup(1)));
    await until('id 31 on cpu1', () => t.row(31)[1] === 1);
  } finally {
    await t.machine.shutdown();
  }
});

test('after ipi_unregister returns no handler runs for the id, even with triggers pending; re-registration never runs the old one', T, async () => {
  const t = await bootTest(3);
  try {
    const id = ipi_register(image.count, 1);
    /* On cpu1 in thread context: cpu2 triggers the id there; with the trigger pending, cpu1 unregisters it. */
    xc_wait(xc_unicast(0, image.unregister_pending, { id, from: 2, flag: 61 * ROW }, undefined, cpu_lookup(1)));
    const again = ipi_register(image.count, 2);
    assert.equal(again, id, 'the same slot is reused');
    await sleep(50);
    assert.deepEqual(t.row(1), [0, 0, 0], 'the old handler never ran');
    assert.deepEqual(t.row(2), [0, 0, 0], 'the new handler did not run for the old trigger');
    preempt(() => ipi_trigger(again, cpu_lookup(1)));
    await until('the new handler', () => t.row(2)[1] === 1);
    assert.deepEqual(t.row(1), [0, 0, 0]);
  } finally {
    await t.machine.shutdown();
  }
});

test('unregister racing with triggers from another CPU never runs a stale handler', T, async () => {
  /* Not diagnostic: triggers that race past the unregister must not be refused, only never run. */
  const t = await bootTest(3, { diagnostic: false });
  try {
    for (let round = 0; round < 20; round++) {
      const id = ipi_register(image.count, 1);
      const flag = 61 * ROW;
      Atomics.store(t.log, flag, 0);
      const storm = { func: image.trigger_many, arg: { id, cpu: 2, n: 20_000, flag } };
      ipi_unicast(storm, cpu_lookup(1));
      await until('cpu1 to start triggering', () => Atomics.load(t.log, flag) === 1);
      ipi_unregister(id);
      const after = t.row(1)[2]!;
      const reused = ipi_register(image.count, 2);
      assert.equal(reused, id);
      await sleep(5);
      assert.equal(t.row(1)[2], after, `round ${round}: the old handler ran after unregister returned`);
      assert.equal(t.row(2)[2], 0, `round ${round}: the new handler ran for an old trigger`);
      ipi_wait(storm);
      ipi_unregister(reused);
    }
  } finally {
    await t.machine.shutdown();
  }
});

test('interrupt points: a busy CPU takes interrupts only at preempt_point() or when lowering its IPL', T, async () => {
  const t = await bootTest(2);
  try {
    const id = ipi_register(image.count, 1);
    const flag = 62 * ROW;
    /* cpu1 triggers id on cpu0 (this thread) while it is busy here. */
    const msg = { func: image.trigger_on, arg: { id, cpu: 0, flag } };
    preempt(() => ipi_unicast(msg, cpu_lookup(1)));
    while (Atomics.load(t.log, flag) === 0) cpu_relax(); // busy: no interrupt point
    assert.equal(t.row(1)[0], 0, 'not taken while busy');
    preempt_point();
    assert.equal(t.row(1)[0], 1, 'taken at preempt_point()');
    ipi_wait(msg);

    Atomics.store(t.log, flag, 0);
    const s = splhigh();
    preempt(() => ipi_unicast(msg, cpu_lookup(1)));
    while (Atomics.load(t.log, flag) === 0) cpu_relax();
    preempt_point();
    assert.equal(t.row(1)[0], 1, 'blocked at IPL_HIGH');
    splx(s);
    assert.equal(t.row(1)[0], 2, 'taken when splx() lowered the IPL');
    ipi_wait(msg);
    assert.equal(curcpu().ci_index, 0);
  } finally {
    await t.machine.shutdown();
  }
});

test('contract assertions name the call, the condition and the values', T, async () => {
  const t = await bootTest(2);
  try {
    const id = ipi_register(image.count, 1);
    assert.throws(() => ipi_trigger(id, cpu_lookup(1)), {
      name: 'IpiAssertionError',
      message: /ipi_trigger: assertion "kpreempt_disabled\(\)" failed/,
    });
    preempt(() => {
      assert.throws(() => ipi_trigger(id, curcpu()), /ipi_trigger: assertion "curcpu\(\) != ci" failed: the target must be a remote CPU \(cpu0\)/);
      assert.throws(() => ipi_trigger(32, cpu_lookup(1)), /ipi_trigger: assertion "ipi_id < IPI_MAXREG" failed: ipi_id 32/);
      assert.throws(() => ipi_trigger(-1, cpu_lookup(1)), /ipi_id -1 is not in \[0, 32\)/);
      assert.throws(() => ipi_trigger(9, cpu_lookup(1)), /ipi_trigger: assertion "ipi_intrs\[ipi_id\]\.func != NULL" failed: ipi_id is not registered \(9\)/);
      assert.throws(() => ipi_trigger('1' as never, cpu_lookup(1)), { name: 'TypeError', message: /ipi_id must be a number/ });
      assert.throws(() => ipi_trigger(id, 1 as never), { name: 'TypeError', message: /ipi_trigger: ci must be a cpu_info/ });
    });
    assert.throws(() => ipi_unregister(0), /ipi_unregister: assertion "ipi_id != IPI_SYNCH_ID" failed/);
    assert.throws(() => ipi_unregister(5), /ipi_unregister: assertion "ipi_intrs\[ipi_id\]\.func != NULL" failed: ipi_id is not registered \(5\)/);
    assert.throws(() => ipi_unregister(40), /ipi_id < IPI_MAXREG/);
    assert.throws(() => ipi_register(image.count, (() => 1) as never), { name: 'TypeError', message: /ipi_register: arg must be sendable to another CPU/ });
    assert.throws(() => ipi_register(image.count, new Map() as never), /ipi_register: arg must be sendable.*got an object \(Map\)/);
    assert.throws(() => ipi_register(image.count, new Int32Array(2) as never), /arg is a view of memory other CPUs cannot reach/);
    assert.throws(() => ipi_register(image.count, kcpuset_create(true) as never), /arg is a view of memory other CPUs cannot reach/);
    assert.throws(() => ipi_register(image.count, { a: [1, { f: Symbol('x') }] } as never), /arg\.a\[1\]\.f must be sendable/);
  } finally {
    await t.machine.shutdown();
  }
});

test('diagnostic: false turns the contract assertions off, not the checks of bad input', T, async () => {
  const t = await bootTest(2, { diagnostic: false });
  try {
    const id = ipi_register(image.count, 1);
    ipi_trigger(id, cpu_lookup(1)); // preemption enabled: not checked
    await until('the handler', () => t.row(1)[1] === 1);
    assert.throws(() => ipi_trigger(id, {} as never), TypeError);
    assert.throws(() => ipi_register((() => {}) as never, 0), /not a kernel symbol/);
  } finally {
    await t.machine.shutdown();
  }
});

test('an asynchronous handler that throws is counted and reported; the CPU goes on', T, async () => {
  const t = await bootTest(2);
  try {
    const errors: unknown[] = [];
    t.machine.addEventListener('error', (e) => {
      errors.push((e as unknown as { error: unknown; cpu: number }).error);
      e.preventDefault();
    });
    const bad = ipi_register(image.thrower, 'async handler');
    const good = ipi_register(image.count, 1);
    preempt(() => {
      ipi_trigger(bad, cpu_lookup(1));
      ipi_trigger(good, cpu_lookup(1));
    });
    await until('the error to be reported', () => errors.length === 1);
    await until('the next handler to run', () => t.row(1)[1] === 1);
    assert.match(String((errors[0] as Error).message), /async handler on cpu1/);
    assert.equal(t.machine.counters()[1]!.handler_errors, 1);
  } finally {
    await t.machine.shutdown();
  }
});
