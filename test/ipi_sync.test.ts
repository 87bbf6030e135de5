/* Synchronous IPIs: ipi_unicast, ipi_multicast, ipi_broadcast, ipi_wait, ipi_wait_async. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cpu_lookup, curcpu, IPI_ARG_MAXBYTES, IPI_MSG_MAXINFLIGHT, ipi_broadcast, ipi_multicast, ipi_register, ipi_trigger, ipi_unregister,
  ipi_unicast, ipi_wait, ipi_wait_async, IpiRemoteError, kcpuset_countset, kcpuset_create, kcpuset_isset, kcpuset_set, kcpuset_shared, KCPUSET_NWORDS,
  kpreempt_disable, kpreempt_enable, type ipi_msg_t,
} from 'ipi';
import * as image from './fixtures/image.js';
import { bootTest, preempt, ROW } from './helpers.js';

const T = { timeout: 120_000 };

test('ipi_unicast runs the function exactly once on the target; ipi_wait returns after it, its writes visible', T, async () => {
  const t = await bootTest(3);
  try {
    for (const c of [1, 2]) {
      const msg: ipi_msg_t<number> = { func: image.count, arg: 1 };
      preempt(() => ipi_unicast(msg, cpu_lookup(c)));
      ipi_wait(msg);
      const expect = [0, 0, 0];
      expect[1] = c >= 1 ? 1 : 0;
      expect[2] = c === 2 ? 1 : 0;
      assert.deepEqual(t.row(1), expect);
    }
    /* A plain (non-atomic) store on the target is visible once ipi_wait returns, every time. */
    const msg = { func: image.plain_store, arg: { index: 3 * ROW, value: 0 } };
    for (let i = 1; i <= 500; i++) {
      msg.arg.value = i;
      preempt(() => ipi_unicast(msg, cpu_lookup(1 + (i % 2))));
      ipi_wait(msg);
      assert.equal(t.log[3 * ROW], i);
    }
    const ev = t.machine.counters();
    assert.equal(ev[0]!.msg_sent, 502);
    assert.equal(ev[1]!.msg_handled + ev[2]!.msg_handled, 502);
  } finally {
    await t.machine.shutdown();
  }
});

test('ipi_multicast over every subset of a 4-CPU machine runs exactly on the members', T, async () => {
  const t = await bootTest(4); // more CPUs than this machine's 2 cores
  try {
    const expect = [0, 0, 0, 0];
    for (let mask = 0; mask < 16; mask++) {
      const set = kcpuset_create(true);
      for (let c = 0; c < 4; c++) if (mask & (1 << c)) kcpuset_set(set, c);
      const msg = { func: image.count, arg: 1 };
      preempt(() => ipi_multicast(msg, set));
      if (mask & 1) assert.equal(t.row(1)[0], expect[0]! + 1, 'the sender ran its own part before ipi_multicast returned');
      ipi_wait(msg);
      for (let c = 0; c < 4; c++) if (mask & (1 << c)) expect[c]!++;
      assert.deepEqual(t.row(1), expect, `subset ${mask.toString(2)}`);
    }
    assert.deepEqual(expect, [8, 8, 8, 8]);
  } finally {
    await t.machine.shutdown();
  }
});

test('ipi_broadcast with and without skip_self, and the one-argument form', T, async () => {
  const t = await bootTest(3);
  try {
    const msg = { func: image.count, arg: 1 };
    preempt(() => ipi_broadcast(msg));
    ipi_wait(msg);
    assert.deepEqual(t.row(1), [1, 1, 1]);
    preempt(() => ipi_broadcast(msg, true));
    ipi_wait(msg);
    assert.deepEqual(t.row(1), [1, 2, 2]);
    preempt(() => ipi_broadcast(msg, false));
    ipi_wait(msg);
    assert.deepEqual(t.row(1), [2, 3, 3]);
    assert.throws(() => preempt(() => ipi_broadcast(msg, 1 as never)), { name: 'TypeError', message: /skip_self must be a boolean/ });
  } finally {
    await t.machine.shutdown();
  }
});

test('every CPU cross-calls every other at once, thousands of times, without deadlock', T, async () => {
  for (const n of [3, 4]) {
    const t = await bootTest(n);
    try {
      const rounds = n === 3 ? 1000 : 300;
      const msg = { func: image.storm, arg: { rounds, row: 5 } };
      /* The broadcast reaches the workers in interrupt context; this CPU runs its part inline. */
      preempt(() => ipi_broadcast(msg));
      ipi_wait(msg);
      assert.deepEqual(t.row(5), Array(n).fill(rounds * (n - 1)));
    } finally {
      await t.machine.shutdown();
    }
  }
});

test('IPI_MSG_MAXINFLIGHT messages per CPU; one more is refused until one is waited for', T, async () => {
  const t = await bootTest(2);
  try {
    const msgs = Array.from({ length: IPI_MSG_MAXINFLIGHT }, () => ({ func: image.count, arg: 9 }));
    kpreempt_disable();
    for (const m of msgs) ipi_unicast(m, cpu_lookup(1));
    assert.throws(() => ipi_unicast({ func: image.count, arg: 9 }, cpu_lookup(1)), {
      name: 'IpiError',
      message: /ipi_unicast: cpu0 has IPI_MSG_MAXINFLIGHT \(64\) messages in flight/,
    });
    /* ipi_unregister's barrier is a message too: refused, it leaves the id registered. */
    const id = ipi_register(image.count, 10);
    kpreempt_enable();
    assert.throws(() => ipi_unregister(id), {
      name: 'IpiError',
      message: new RegExp(`^ipi_unregister: the barrier could not be sent, so ipi_id ${id} is still registered: ipi_broadcast: cpu0 has IPI_MSG_MAXINFLIGHT`),
    });
    kpreempt_disable();
    ipi_trigger(id, cpu_lookup(1));
    ipi_wait(msgs[0]!);
    const extra = { func: image.count, arg: 9 };
    ipi_unicast(extra, cpu_lookup(1));
    kpreempt_enable();
    for (const m of msgs) ipi_wait(m);
    ipi_wait(extra);
    assert.deepEqual(t.row(9), [0, 65]);
    ipi_unregister(id);
    assert.deepEqual(t.row(10), [0, 1], 'the handler ran for the trigger after the refused unregister, before the one that worked');
  } finally {
    await t.machine.shutdown();
  }
});

test('contract assertions: reuse while pending, preemption, self, unattached targets, func unset', T, async () => {
  const t = await bootTest(3);
  try {
    const msg = { func: image.count, arg: 1 };
    assert.throws(() => ipi_unicast(msg, cpu_lookup(1)), { name: 'IpiAssertionError', message: /ipi_unicast: assertion "kpreempt_disabled\(\)" failed/ });
    assert.throws(() => ipi_broadcast(msg), /ipi_broadcast: assertion "kpreempt_disabled\(\)" failed/);
    assert.throws(() => ipi_multicast(msg, kcpuset_create(true)), /ipi_multicast: assertion "kpreempt_disabled\(\)" failed/);
    kpreempt_disable();
    try {
      assert.throws(() => ipi_unicast(msg, curcpu()), /ipi_unicast: assertion "curcpu\(\) != ci" failed: the target must be a remote CPU \(cpu0\)/);
      const release = 10 * ROW;
      const hold = { func: image.hold_until, arg: release };
      ipi_unicast(hold, cpu_lookup(1));
      assert.throws(() => ipi_unicast(hold, cpu_lookup(2)), /ipi_unicast: assertion "msg->_pending == 0" failed: the message is still pending: ipi_wait\(\) for it/);
      Atomics.store(t.log, release, 1);
      ipi_wait(hold);
      const outside = kcpuset_create(true);
      kcpuset_set(outside, 1);
      kcpuset_set(outside, 7);
      assert.throws(() => ipi_multicast(msg, outside), /ipi_multicast: assertion .* failed: the set holds cpu7, which is not attached \(ncpu 3\)/);
      assert.throws(() => ipi_unicast({ func: undefined as never, arg: 1 }, cpu_lookup(1)), /ipi_unicast: assertion "msg->func != NULL" failed/);
      assert.throws(() => ipi_unicast(null as never, cpu_lookup(1)), { name: 'TypeError', message: /ipi_unicast: msg must be an ipi_msg_t/ });
      assert.throws(() => ipi_unicast(msg, 2 as never), { name: 'TypeError', message: /ipi_unicast: ci must be a cpu_info/ });
      assert.throws(() => ipi_multicast(msg, 3 as never), { name: 'TypeError', message: /ipi_multicast: target must be a kcpuset_t/ });
      assert.throws(() => ipi_unicast({ func: image.echo, arg: () => 1 }, cpu_lookup(1)), { name: 'TypeError', message: /ipi_unicast: msg\.arg must be sendable/ });
    } finally {
      kpreempt_enable();
    }
    assert.doesNotThrow(() => ipi_wait({ func: image.count, arg: 0 }), 'a message never sent is not waited for');
  } finally {
    await t.machine.shutdown();
  }
});

test('a function that throws on a target: the target acknowledges, ipi_wait throws the remote error', T, async () => {
  const t = await bootTest(3);
  try {
    const msg = { func: image.thrower, arg: 'boom' };
    preempt(() => ipi_unicast(msg, cpu_lookup(2)));
    assert.throws(() => ipi_wait(msg), (e: unknown) => {
      assert.ok(e instanceof IpiRemoteError);
      assert.equal(e.cpu, 2);
      assert.equal(e.remoteName, 'TypeError');
      assert.match(e.message, /ipi_wait: the function threw on cpu2: TypeError: boom on cpu2/);
      assert.match(e.remoteStack, /thrower/);
      return true;
    });
    /* Every failing CPU is reported, the local run's error included (as its cause). */
    preempt(() => ipi_broadcast(msg));
    assert.throws(() => ipi_wait(msg), (e: unknown) => {
      assert.ok(e instanceof IpiRemoteError);
      assert.deepEqual(e.errors.map((x) => x.cpu), [0, 1, 2]);
      assert.equal(e.message, 'ipi_wait: the call failed on 3 CPUs: cpu0 threw TypeError: boom on cpu0; ' +
        'cpu1 threw TypeError: boom on cpu1; cpu2 threw TypeError: boom on cpu2');
      assert.ok(e.errors[0]!.cause instanceof TypeError);
      return true;
    });
    /* A local run alone that fails: its error is the caller's own. */
    const set = kcpuset_create(true);
    kcpuset_set(set, 0);
    preempt(() => ipi_multicast(msg, set));
    assert.throws(() => ipi_wait(msg), { name: 'TypeError', message: 'boom on cpu0' });
    /* The CPUs carry on. */
    const ok = { func: image.count, arg: 1 };
    preempt(() => ipi_broadcast(ok, true));
    ipi_wait(ok);
    assert.deepEqual(t.row(1), [0, 1, 1]);
  } finally {
    await t.machine.shutdown();
  }
});

test('arguments: inline values, copies, and views of shared memory by reference', T, async () => {
  const data = new SharedArrayBuffer(64);
  const t = await bootTest(2, { shared: { data } });
  try {
    const decoder = new TextDecoder();
    const echoed = (): string => {
      const n = t.log[40 * ROW]!;
      return decoder.decode(Uint8Array.from(t.log.subarray(40 * ROW + 1, 40 * ROW + 1 + n)));
    };
    const cases: [unknown, string][] = [
      [42.5, '42.5'], [true, 'true'], [null, 'null'], [-(2n ** 63n), '-9223372036854775808n'],
      [2n ** 200n, `${2n ** 200n}n`], ['héllo', '"héllo"'], [{ a: [1, 'x', null], b: { c: false } }, '{"a":[1,"x",null],"b":{"c":false}}'],
    ];
    for (const [arg, text] of cases) {
      const msg = { func: image.echo, arg };
      preempt(() => ipi_unicast(msg, cpu_lookup(1)));
      ipi_wait(msg);
      assert.equal(echoed(), text);
    }
    /* IPI_ARG_MAXBYTES bytes of UTF-8 go through whole, in one-byte and two-byte characters; one byte more is refused. */
    for (const edge of ['x'.repeat(IPI_ARG_MAXBYTES), 'é'.repeat(IPI_ARG_MAXBYTES / 2)]) {
      assert.equal(new TextEncoder().encode(edge).length, IPI_ARG_MAXBYTES);
      const m = { func: image.echo, arg: edge };
      preempt(() => ipi_unicast(m, cpu_lookup(1)));
      ipi_wait(m);
      assert.equal(echoed(), JSON.stringify(edge));
    }
    for (const over of ['x'.repeat(IPI_ARG_MAXBYTES + 1), 'é'.repeat(IPI_ARG_MAXBYTES / 2) + 'x']) {
      assert.throws(() => preempt(() => ipi_unicast({ func: image.echo, arg: over }, cpu_lookup(1))),
        { name: 'RangeError', message: /msg\.arg is a string longer than IPI_ARG_MAXBYTES \(1024\) bytes/ });
    }
    assert.throws(() => preempt(() => ipi_unicast({ func: image.echo, arg: { n: NaN } }, cpu_lookup(1))), /msg\.arg\.n is NaN/);

    /* A view of a shared buffer goes by reference: the target writes into our memory. */
    const view = new Int32Array(data, 16, 4);
    const msg = { func: image.fill_view, arg: view };
    preempt(() => ipi_unicast(msg, cpu_lookup(1)));
    ipi_wait(msg);
    assert.deepEqual(Array.from(new Int32Array(data)), [0, 0, 0, 0, 101, 101, 101, 101, 0, 0, 0, 0, 0, 0, 0, 0]);

    /* A kcpuset_t in shared memory too: the target reads our set and joins it, in our memory. */
    const set = kcpuset_shared(new Int32Array(data, 32, KCPUSET_NWORDS)); // past the view above
    kcpuset_set(set, 0);
    kcpuset_set(set, 5);
    const join = { func: image.read_set, arg: set };
    preempt(() => ipi_unicast(join, cpu_lookup(1)));
    ipi_wait(join);
    assert.equal(t.log[50 * ROW + 1], 2, 'the target counted the members it was given');
    assert.deepEqual([0, 1, 5].map((c) => kcpuset_isset(set, c)), [true, true, true], 'and joined the very same set');
    assert.equal(kcpuset_countset(set), 3);
  } finally {
    await t.machine.shutdown();
  }
});

test('ipi_wait_async: the booting thread waits without blocking and keeps taking its interrupts', T, async () => {
  const t = await bootTest(3);
  try {
    const id = ipi_register(image.set_flag, 11 * ROW);
    /* cpu1 triggers an IPI on cpu0 and does not finish until cpu0 has run it. */
    const msg = { func: image.trigger_and_await, arg: { id, cpu: 0, flag: 11 * ROW } };
    preempt(() => ipi_unicast(msg, cpu_lookup(1)));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    await ipi_wait_async(msg);
    clearInterval(timer);
    assert.equal(t.log[11 * ROW], 1);
    /* And a plain wait of many messages at once. */
    const many = [1, 2].map((c) => {
      const m = { func: image.count, arg: 12 };
      preempt(() => ipi_unicast(m, cpu_lookup(c)));
      return m;
    });
    await Promise.all(many.map((m) => ipi_wait_async(m)));
    assert.deepEqual(t.row(12), [0, 1, 1]);
    await assert.rejects(ipi_wait_async(null as never), TypeError);
    const bad = { func: image.thrower, arg: 'async' };
    preempt(() => ipi_unicast(bad, cpu_lookup(2)));
    await assert.rejects(ipi_wait_async(bad), IpiRemoteError);
  } finally {
    await t.machine.shutdown();
  }
});

test('shutdown fails a wait still in progress instead of hanging', T, async () => {
  const t = await bootTest(2);
  const msg = { func: image.hold, arg: 300 };
  preempt(() => ipi_unicast(msg, cpu_lookup(1)));
  const waiting = ipi_wait_async(msg);
  const down = t.machine.shutdown();
  await assert.rejects(waiting, /ipi_wait_async: the machine was shut down while waiting/);
  await down;
});
