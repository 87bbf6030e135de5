/*
 * xcall(9) with real worker threads: xc_broadcast and xc_unicast run
 * exactly once on exactly their targets and xc_wait returns after all of
 * them; the context of each priority; xc_barrier; several CPUs issuing at
 * once; xc_wait_async on the booting thread; errors of xcall functions;
 * every contract assertion and bad input.  xcall functions are kernel
 * symbols of fixtures/kern_image.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cpu_lookup, curcpu, ipi_register, ipi_trigger, ipi_unicast, ipi_unregister_async, ipi_wait, IpiRemoteError, IPL_HIGH, IPL_NONE, IPL_SOFTBIO, IPL_SOFTCLOCK, IPL_SOFTNET,
  IPL_SOFTSERIAL, IPL_VM, kpreempt_disable, kpreempt_enable,  softint_disestablish, softint_establish,
  softint_disestablish_async, softint_schedule, softint_schedule_cpu, SOFTINT_RCPU, splraiseipl, splx, xc_barrier, xc_barrier_async,
  xc_broadcast, xc_broadcast_async, xc_unicast, xc_unicast_async, xc_wait, xc_wait_async, XC_HIGHPRI,
  XC_HIGHPRI_IPL, SOFTINT_NET, type ipi_msg_t,
} from 'ipi';
import { bootKern as boot, bad, errorsOf, noteOf, preempt, PRIS, ROW, sleep, startOn, until } from './helpers.js';
import { thrower } from './fixtures/image.js';
import {
  intr_xc_broadcast, intr_xc_wait, si_count, si_xcall,  xc_count, xc_ctx, xc_nested, xc_nop,
} from './fixtures/kern_image.js';

const T = { timeout: 60_000 };


test('xc_broadcast runs on every CPU, the caller included, once per call; xc_wait returns after all', T, async () => {
  const t = await boot(4);
  try {
    for (const [name, flags] of PRIS) {
      const row = flags ? 2 : 1;
      const before = t.machine.counters()[0]!;
      let last = -Infinity;
      for (let i = 1; i <= 10; i++) {
        const ticket = xc_broadcast(flags, xc_count, row, 1);
        assert.ok(Number.isSafeInteger(ticket) && ticket > last, `${name}: tickets increase`);
        last = ticket;
        xc_wait(ticket);
        assert.deepEqual(t.row(row), [i, i, i, i], `${name}, call ${i}: done everywhere when xc_wait returns`);
      }
      const after = t.machine.counters()[0]!;
      assert.equal(after.xcall_low - before.xcall_low, flags ? 0 : 10);
      assert.equal(after.xcall_high - before.xcall_high, flags ? 10 : 0);
    }
    /* Waiting again for a completed ticket returns at once. */
    xc_wait(xc_broadcast(0, xc_nop, undefined, undefined));
    const old = xc_broadcast(XC_HIGHPRI, xc_count, 3, 1);
    xc_wait(old);
    xc_wait(old);
    assert.deepEqual(t.row(3), [1, 1, 1, 1]);

    /* Issued by a worker: the same counts. */
    const done = 4 * ROW;
    startOn(2, 'xc_loop', { n: 20, mode: 'broadcast', rowLow: 5, rowHigh: 6, seed: 1 }, done, 7);
    await until('the worker loop', () => Atomics.load(t.log, done) === 1);
    assert.equal(t.row(7)[2], 0, noteOf(t.log, 2));
    assert.deepEqual(t.row(5), [10, 10, 10, 10]);
    assert.deepEqual(t.row(6), [10, 10, 10, 10]);
  } finally {
    await t.machine.shutdown();
  }
});

test('xc_unicast runs on exactly its target, each CPU in turn, the caller included', T, async () => {
  const t = await boot(4);
  try {
    const variants = [0, XC_HIGHPRI, XC_HIGHPRI_IPL(IPL_SOFTCLOCK), XC_HIGHPRI_IPL(IPL_SOFTNET)];
    variants.forEach((flags, v) => {
      const row = 1 + v;
      for (let c = 0; c < 4; c++) {
        xc_wait(xc_unicast(flags, xc_count, row, 10 + c, cpu_lookup(c)));
        const expect = [0, 1, 2, 3].map((k) => (k <= c ? 10 + k : 0));
        assert.deepEqual(t.row(row), expect, `flags ${flags}, target cpu${c}`);
      }
    });
    const ev = t.machine.counters()[0]!;
    assert.equal(ev.xcall_low, 4);
    assert.equal(ev.xcall_high, 12);
  } finally {
    await t.machine.shutdown();
  }
});

test('low priority runs in thread context, high priority in soft interrupt context at the IPL asked for', T, async () => {
  const t = await boot(3);
  try {
    const cases: [string, number, number][] = [
      ['low', 0, 8 | (IPL_NONE << 4)],
      ['XC_HIGHPRI', XC_HIGHPRI, 2 | 4 | 8 | (IPL_SOFTSERIAL << 4)],
      ['XC_HIGHPRI_IPL(IPL_SOFTSERIAL)', XC_HIGHPRI_IPL(IPL_SOFTSERIAL), 2 | 4 | 8 | (IPL_SOFTSERIAL << 4)],
      ['XC_HIGHPRI_IPL(IPL_SOFTNET)', XC_HIGHPRI_IPL(IPL_SOFTNET), 2 | 4 | 8 | (IPL_SOFTNET << 4)],
      ['XC_HIGHPRI_IPL(IPL_SOFTBIO)', XC_HIGHPRI_IPL(IPL_SOFTBIO), 2 | 4 | 8 | (IPL_SOFTBIO << 4)],
      ['XC_HIGHPRI_IPL(IPL_SOFTCLOCK)', XC_HIGHPRI_IPL(IPL_SOFTCLOCK), 2 | 4 | 8 | (IPL_SOFTCLOCK << 4)],
    ];
    for (const [name, flags, want] of cases) {
      t.log.fill(0, 1 * ROW, 3 * ROW);
      xc_wait(xc_broadcast(flags, xc_ctx, 1, undefined));
      /* intr 1, softintr 2, preemption disabled 4, ran 8, IPL << 4 */
      assert.deepEqual(t.row(1), [want, want, want], name);
      assert.deepEqual(t.row(2), [1, 1, 1], name);
    }
    assert.equal(XC_HIGHPRI_IPL(IPL_SOFTSERIAL) & XC_HIGHPRI, XC_HIGHPRI);
    /*
     * Low priority runs in a thread of its own, as NetBSD's xc thread: never
     * inside code that has preemption disabled, even while it waits.
     */
    t.log.fill(0, 3 * ROW, 4 * ROW);
    kpreempt_disable();
    const ticket = xc_unicast(0, xc_count, 3, 1, curcpu());
    const m: ipi_msg_t<number> = { func: si_count, arg: 3 };
    ipi_unicast(m, cpu_lookup(1));
    ipi_wait(m);
    assert.deepEqual(t.row(3), [0, 1, 0], 'the low priority xcall to this CPU waited while preemption was disabled');
    kpreempt_enable();
    xc_wait(ticket);
    assert.deepEqual(t.row(3), [1, 1, 0]);
  } finally {
    await t.machine.shutdown();
  }
});

test('concurrent xcalls from four CPUs serialize without deadlock, with exact counts', T, async () => {
  const t = await boot(4);
  const errors = errorsOf(t);
  try {
    const n = 40;
    /* Phase 1: every CPU broadcasts, alternating priorities; cpu0 waits with xc_wait_async. */
    const done = 1 * ROW;
    for (let k = 1; k < 4; k++) startOn(k, 'xc_loop', { n, mode: 'broadcast', rowLow: 2, rowHigh: 3, seed: k }, done, 10);
    for (let i = 0; i < n; i++) {
      const high = (i & 1) === 1;
      await xc_wait_async(xc_broadcast(high ? XC_HIGHPRI : 0, xc_count, high ? 3 : 2, 1));
    }
    await until('the workers\' loops', () => Atomics.load(t.log, done) === 3, 40_000);
    for (let k = 1; k < 4; k++) assert.equal(t.row(10)[k], 0, `cpu${k}: ${noteOf(t.log, k)}`);
    const each = 4 * (n / 2);
    assert.deepEqual(t.row(2), [each, each, each, each], 'low priority runs');
    assert.deepEqual(t.row(3), [each, each, each, each], 'high priority runs');
    const ev = t.machine.counters();
    assert.deepEqual(ev.map((e) => e.xcall_low), [n / 2, n / 2, n / 2, n / 2]);
    assert.deepEqual(ev.map((e) => e.xcall_high), [n / 2, n / 2, n / 2, n / 2]);

    /* Phase 2: the workers unicast to random CPUs and issue barriers while cpu0 broadcasts. */
    const done2 = 1 * ROW + 1;
    startOn(1, 'xc_loop', { n, mode: 'unicast', rowLow: 4, rowHigh: 5, seed: 11 }, done2, 10);
    startOn(2, 'xc_loop', { n, mode: 'unicast', rowLow: 4, rowHigh: 5, seed: 12 }, done2, 10);
    startOn(3, 'xc_loop', { n, mode: 'barrier', rowLow: 0, rowHigh: 0, seed: 13 }, done2, 10);
    for (let i = 0; i < n; i++) xc_wait(xc_broadcast(i & 1 ? XC_HIGHPRI : 0, xc_count, 8, 1));
    await until('the workers\' second loops', () => Atomics.load(t.log, done2) === 3, 40_000);
    for (let k = 1; k < 4; k++) assert.equal(t.row(10)[k], 0, `cpu${k}: ${noteOf(t.log, k)}`);
    assert.deepEqual(t.row(4), t.row(6), 'low priority unicasts ran exactly where sent');
    assert.deepEqual(t.row(5), t.row(7), 'high priority unicasts ran exactly where sent');
    assert.equal(t.row(4).reduce((a, b) => a + b) + t.row(5).reduce((a, b) => a + b), 2 * n);
    assert.deepEqual(t.row(8), [n, n, n, n]);
    assert.deepEqual(errors, []);
  } finally {
    await t.machine.shutdown();
  }
});

test('xc_wait_async on the booting thread: resolves once done everywhere; rejects bad tickets', T, async () => {
  const t = await boot(3);
  try {
    for (const [, flags] of PRIS) {
      const row = flags ? 2 : 1;
      for (let i = 1; i <= 5; i++) {
        await xc_wait_async(xc_broadcast(flags, xc_count, row, 1));
        assert.deepEqual(t.row(row), [i, i, i]);
      }
      const u = xc_unicast(flags, xc_count, row, 1, cpu_lookup(2));
      await xc_wait_async(u);
      assert.deepEqual(t.row(row), [5, 5, 6]);
      await xc_wait_async(u); // completed: at once
    }
    await assert.rejects(xc_wait_async(bad('1')), { name: 'TypeError', message: /^xc_wait_async: ticket must be a number/ });
    await assert.rejects(xc_wait_async(0.5), { name: 'RangeError', message: /^xc_wait_async: ticket must be a ticket/ });
  } finally {
    await t.machine.shutdown();
  }
});

test('an xcall function that throws: xc_wait throws every CPU\'s error, and the call still completes', T, async () => {
  const t = await boot(3);
  const errors = errorsOf(t);
  try {
    for (const [name, flags] of PRIS) {
      assert.throws(() => xc_wait(xc_broadcast(flags, thrower, `boom ${name}`, undefined)), (e: unknown) => {
        assert.ok(e instanceof IpiRemoteError);
        assert.deepEqual(e.errors.map((x) => x.cpu), [0, 1, 2]);
        for (const x of e.errors) assert.ok(x instanceof IpiRemoteError && x.remoteMessage === `boom ${name} on cpu${x.cpu}`);
        assert.match(e.message, new RegExp(`^xc_wait: the call failed on 3 CPUs: cpu0 threw TypeError: boom ${name} on cpu0; cpu1 threw .*; cpu2 threw`));
        return true;
      });
      /* One target: its own error. */
      assert.throws(() => xc_wait(xc_unicast(flags, thrower, `one ${name}`, undefined, cpu_lookup(2))),
        { name: 'IpiRemoteError', message: `xc_wait: the function threw on cpu2: TypeError: one ${name} on cpu2` });
      /* The class is not stuck. */
      xc_wait(xc_broadcast(flags, xc_count, 1, 1));
    }
    assert.deepEqual(t.row(1), [2, 2, 2]);
    await sleep(20);
    assert.deepEqual(errors, [], 'errors that a waiter took are not also events');
  } finally {
    await t.machine.shutdown();
  }
});

test('contract assertions: no xcall from interrupt context, nor from an xcall of its class, nor at a raised IPL', T, async () => {
  const t = await boot(2);
  const errors = errorsOf(t);
  try {
    const remote = (func: () => void, msg: RegExp): void => {
      const m: ipi_msg_t<undefined> = { func, arg: undefined };
      kpreempt_disable();
      ipi_unicast(m, cpu_lookup(1));
      kpreempt_enable();
      assert.throws(() => ipi_wait(m), (e: unknown) => {
        assert.ok(e instanceof IpiRemoteError);
        assert.equal(e.remoteName, 'IpiAssertionError');
        assert.match(e.message, msg);
        return true;
      });
    };
    remote(intr_xc_broadcast, /xc_broadcast: assertion "!cpu_intr_p\(\) && !cpu_softintr_p\(\)" failed: xcalls cannot be issued from interrupt context/);
    remote(intr_xc_wait, /xc_wait: assertion "!cpu_intr_p\(\) && !cpu_softintr_p\(\)" failed/);

    /* From a soft interrupt handler on cpu0. */
    const c = softint_establish(SOFTINT_NET, si_xcall, undefined)!;
    kpreempt_disable();
    softint_schedule(c);
    kpreempt_enable();
    await until('the error event', () => errors.length === 1);
    assert.equal((errors[0]!.error as Error).name, 'IpiAssertionError');
    assert.match((errors[0]!.error as Error).message, /^xc_broadcast: assertion "!cpu_intr_p\(\) && !cpu_softintr_p\(\)" failed/);
    softint_disestablish(c);

    /* A low priority xcall function issuing a low priority xcall would wait for itself. */
    errors.length = 0;
    assert.throws(() => xc_wait(xc_unicast(0, xc_nested, 0, undefined, cpu_lookup(1))), (e: unknown) => {
      assert.ok(e instanceof IpiRemoteError);
      assert.equal(e.remoteName, 'IpiAssertionError');
      assert.match(e.remoteMessage, /^xc_broadcast: assertion .* failed: .*would wait for itself/);
      return true;
    });
    /* A high priority one from a low priority function is fine. */
    errors.length = 0;
    xc_wait(xc_unicast(0, xc_nested, XC_HIGHPRI, undefined, cpu_lookup(1)));
    xc_barrier(XC_HIGHPRI);
    await sleep(20);
    assert.deepEqual(errors, []);

    /* At a raised IPL this CPU's own part could never run: refused, and nothing is left behind. */
    const s = splraiseipl(IPL_SOFTNET);
    try {
      assert.throws(() => xc_broadcast(0, xc_count, 3, 1), {
        name: 'IpiAssertionError', message: /^xc_broadcast: assertion "curcpu\(\)->ci_ilevel == IPL_NONE" failed/,
      });
      assert.throws(() => xc_wait(0), { name: 'IpiAssertionError', message: /^xc_wait: assertion "curcpu\(\)->ci_ilevel == IPL_NONE" failed/ });
      assert.throws(() => xc_barrier(XC_HIGHPRI), { name: 'IpiAssertionError', message: /^xc_barrier: assertion/ });
    } finally {
      splx(s);
    }
    xc_wait(xc_broadcast(0, xc_count, 3, 1));
    assert.deepEqual(t.row(3), [1, 1]);

    /* XC_HIGHPRI_IPL: soft IPLs only. */
    const ipl = 'ipl must be IPL_SOFTCLOCK, IPL_SOFTBIO, IPL_SOFTNET or IPL_SOFTSERIAL';
    for (const v of [IPL_NONE, IPL_VM, IPL_HIGH, 99, -1, 2.5]) {
      assert.throws(() => XC_HIGHPRI_IPL(v), { name: 'RangeError', message: `XC_HIGHPRI_IPL: ${ipl}, got number ${v}` });
    }
    assert.throws(() => XC_HIGHPRI_IPL(bad('4')), { name: 'TypeError', message: 'XC_HIGHPRI_IPL: ipl must be a number, got string "4"' });
  } finally {
    await t.machine.shutdown();
  }
});

test('bad input: TypeError or RangeError naming the parameter; nothing is left locked', T, async () => {
  const t = await boot(2);
  try {
    const flagsMsg = (fn: string, v: number): string => `${fn}: flags must be 0, XC_HIGHPRI or XC_HIGHPRI_IPL(ipl), got number ${v}`;
    for (const fn of ['xc_broadcast', 'xc_unicast', 'xc_barrier'] as const) {
      const call = (flags: unknown): unknown =>
        fn === 'xc_broadcast' ? xc_broadcast(bad(flags), xc_nop, 0, 0)
          : fn === 'xc_unicast' ? xc_unicast(bad(flags), xc_nop, 0, 0, cpu_lookup(1))
            : xc_barrier(bad(flags));
      assert.throws(() => call('0'), { name: 'TypeError', message: `${fn}: flags must be a number, got string "0"` });
      for (const v of [2, 0x100, -1, 1.5, XC_HIGHPRI | (IPL_VM << 8), XC_HIGHPRI | (IPL_HIGH << 8)]) {
        assert.throws(() => call(v), { name: 'RangeError', message: flagsMsg(fn, v) });
      }
    }
    assert.throws(() => xc_broadcast(0, bad(7), 0, 0), {
      name: 'TypeError', message: 'xc_broadcast: func must be a function exported by an image module, got number 7',
    });
    assert.throws(() => xc_broadcast(0, () => {}, 0, 0), { name: 'IpiError', message: /^xc_broadcast: func \(function [\w(). ]*\) is not a kernel symbol/ });
    assert.throws(() => xc_broadcast(0, xc_nop, bad(new Map()), 0), { name: 'TypeError', message: /^xc_broadcast: arg1 must be sendable/ });
    assert.throws(() => xc_broadcast(0, xc_nop, 0, bad(Symbol('s'))), { name: 'TypeError', message: /^xc_broadcast: arg2 must be sendable/ });
    assert.throws(() => xc_broadcast(0, xc_nop, 'x'.repeat(5000), 0), { name: 'RangeError', message: /^xc_broadcast: arg1 is a string longer than IPI_ARG_MAXBYTES/ });
    assert.throws(() => xc_unicast(0, xc_nop, 0, 0, bad(1)), {
      name: 'TypeError', message: 'xc_unicast: ci must be a cpu_info (curcpu(), cpu_lookup()), got number 1',
    });
    assert.throws(() => xc_unicast(0, xc_nop, 0, 0, bad(undefined)), { name: 'TypeError', message: /^xc_unicast: ci must be a cpu_info/ });
    assert.throws(() => xc_wait(bad('1')), {
      name: 'TypeError', message: 'xc_wait: ticket must be a number from xc_broadcast or xc_unicast, got string "1"',
    });
    for (const v of [0.5, NaN, 2 ** 40, -(2 ** 40)]) {
      assert.throws(() => xc_wait(v), { name: 'RangeError', message: `xc_wait: ticket must be a ticket from xc_broadcast or xc_unicast, got number ${v}` });
    }
    /* None of that took a lock or left a call in flight. */
    for (const [, flags] of PRIS) {
      xc_wait(xc_broadcast(flags, xc_count, 1, 1));
      xc_wait(xc_unicast(flags, xc_count, 1, 1, cpu_lookup(1)));
    }
    assert.deepEqual(t.row(1), [2, 4]);
  } finally {
    await t.machine.shutdown();
  }
});

test('softint_disestablish, built on a high priority xcall, works while low priority xcalls are in flight', T, async () => {
  const t = await boot(3);
  try {
    const c = softint_establish(SOFTINT_NET, si_count, 1)!;
    const ticket = xc_broadcast(0, xc_count, 2, 1);
    softint_disestablish(c);
    xc_wait(ticket);
    assert.deepEqual(t.row(2), [1, 1, 1]);
  } finally {
    await t.machine.shutdown();
  }
});

test('the Promise forms of the calls that block: they wait for the call in flight without blocking, and do what the blocking ones do', T, async () => {
  const t = await boot(3);
  try {
    for (const [name, flags] of PRIS) {
      const row = flags ? 4 : 3;
      /* A call in flight whose part on this CPU runs only when this thread takes its interrupts. */
      const first = xc_broadcast(flags, xc_count, row, 1);
      const second = await xc_broadcast_async(flags, xc_count, row, 1);
      assert.ok(second > first, `${name}: issued after the call in flight`);
      await xc_wait_async(second);
      assert.deepEqual(t.row(row), [2, 2, 2], `${name}: both ran everywhere, once each`);
      await xc_wait_async(await xc_unicast_async(flags, xc_count, row, 1, cpu_lookup(2)));
      assert.deepEqual(t.row(row), [2, 2, 3], `${name}: the unicast ran on its target only`);
      /* A barrier follows every call issued before it. */
      xc_unicast(flags, xc_count, row, 1, cpu_lookup(1));
      await xc_barrier_async(flags);
      assert.deepEqual(t.row(row), [2, 3, 3], `${name}: the call before the barrier had completed when it resolved`);
    }
    await assert.rejects(xc_broadcast_async(0x4000, xc_count, 1, 1), { name: 'RangeError', message: /^xc_broadcast_async: flags must be/ });
    await assert.rejects(xc_unicast_async(0, xc_count, 1, 1, bad(1)), { name: 'TypeError', message: /^xc_unicast_async: ci must be a cpu_info/ });
    await assert.rejects(xc_barrier_async(bad('x')), { name: 'TypeError', message: /^xc_barrier_async: flags must be a number/ });

    /* softint_disestablish_async: a SOFTINT_RCPU handler (an IPI id too) scheduled remotely, then removed. */
    const c = softint_establish(SOFTINT_NET | SOFTINT_RCPU, si_count, 5)!;
    kpreempt_disable();
    softint_schedule_cpu(c, cpu_lookup(1));
    kpreempt_enable();
    await softint_disestablish_async(c);
    assert.ok(t.row(5)[1]! <= 1, 'ran at most once');
    assert.throws(() => preempt(() => softint_schedule(c)), { name: 'IpiError', message: /^softint_schedule: cookie \d+ is not an established soft interrupt/ });
    await assert.rejects(softint_disestablish_async(c), { name: 'IpiError', message: /^softint_disestablish_async: cookie \d+ is not an established/ });

    /* ipi_unregister_async: a trigger still pending is dropped or has run, and nothing runs after; the id is free again. */
    const id = ipi_register(si_count, 6);
    kpreempt_disable();
    ipi_trigger(id, cpu_lookup(2));
    kpreempt_enable();
    await ipi_unregister_async(id);
    const runs = t.row(6);
    assert.ok(runs[0] === 0 && runs[1] === 0 && runs[2]! <= 1, `ran at most once, on its target: ${runs.join(' ')}`);
    await xc_barrier_async(XC_HIGHPRI);
    assert.deepEqual(t.row(6), runs, 'no run after it resolved');
    await assert.rejects(ipi_unregister_async(id), { name: 'IpiAssertionError', message: /^ipi_unregister_async: assertion "ipi_intrs\[ipi_id\]\.func != NULL" failed/ });
    assert.equal(ipi_register(si_count, 6), id, 'its slot was freed');
  } finally {
    await t.machine.shutdown();
  }
});
