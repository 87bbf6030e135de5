/*
 * What only real workers can show: CPUs running thread code at the same
 * time (racing loops, a CPU busy while others block on it), a worker that
 * exits or crashes, a CPU stuck in a loop with no interrupt point, and the
 * deadlines and reports of waits on it.  The simulated machine runs one
 * CPU's thread code at a time on one thread (src/arch/sim/sim.ts), so
 * these run on the Node machine only; the interleavings they race for are
 * explored there by the model-based fuzzer instead.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cpu_lookup, ipi_broadcast, ipi_multicast, ipi_register, ipi_trigger, ipi_trigger_broadcast, ipi_unicast, ipi_unregister, ipi_wait,
  ipi_wait_async, IpiCpuDeadError, IpiError, IpiRemoteError, IpiTimeoutError, IPI_MSG_SLOTS, kcpuset_create, kcpuset_isset, kcpuset_running,
  kcpuset_set, softint_disestablish, softint_establish, softint_schedule, softint_schedule_cpu, SOFTINT_MAXHANDLERS, SOFTINT_NET, SOFTINT_RCPU,
  SOFTINT_SERIAL, XC_HIGHPRI, xc_barrier, xc_broadcast, xc_unicast, xc_wait, xc_wait_async, type ipi_msg_t,
} from 'ipi';
import * as fail from './fixtures/fail_image.js';
import * as image from './fixtures/image.js';
import { si_count, si_old, si_slow } from './fixtures/kern_image.js';
import { bootFail, bootKern as boot, bootTest, deaths, errorsOf, noteOf, preempt, PRIS, ROW, sleep, startOn, until } from './helpers.js';

const T = { timeout: 120_000 };

test('a CPU that calls process.exit: its waiters fail naming it and the exit code, calls to it are refused, the rest carry on', T, async () => {
  const t = await bootFail(4);
  const d = deaths(t.machine);
  try {
    /* cpu2 runs a message that holds it; a second message waits in its mailbox; then it exits. */
    const flag = 10 * ROW;
    const first: ipi_msg_t<{ flag: number; code: number }> = { func: fail.exit_when, arg: { flag, code: 3 } };
    const queued: ipi_msg_t<number> = { func: image.count, arg: 1 };
    preempt(() => ipi_unicast(first, cpu_lookup(2)));
    await until('cpu2 to run the first message', () => t.log[39 * ROW + 2] === 1);
    preempt(() => ipi_unicast(queued, cpu_lookup(2)));
    Atomics.store(t.log, flag, 1);
    for (const m of [first, queued] as ipi_msg_t[]) {
      assert.throws(() => ipi_wait(m), (e: unknown) => {
        assert.ok(e instanceof IpiCpuDeadError);
        assert.equal(e.cpu, 2);
        assert.equal(e.reason, 'process.exit(3)');
        assert.equal(e.exitCode, 3);
        assert.equal(e.message, 'ipi_wait: cpu2 died (process.exit(3)) before it answered');
        return true;
      });
    }
    assert.equal(t.row(1)[2], 0, 'the queued message never ran');
    const ev = await d.next();
    assert.equal(ev.cpu, 2);
    assert.equal(ev.reason, 'process.exit(3)');
    assert.equal(ev.exitCode, 3);
    assert.ok(d.errors.some((e) => e.cpu === 2 && e.error instanceof IpiCpuDeadError));
    assert.ok(!kcpuset_isset(kcpuset_running, 2));

    /* Every new call to it is refused at once, naming it. */
    const dead = { name: 'IpiCpuDeadError', message: /cpu2 is dead \(process\.exit\(3\)\): nothing can be sent to it/ };
    const id = ipi_register(image.count, 2);
    assert.throws(() => preempt(() => ipi_unicast({ func: image.count, arg: 1 }, cpu_lookup(2))), dead);
    assert.throws(() => preempt(() => ipi_trigger(id, cpu_lookup(2))), dead);
    const set = kcpuset_create(true);
    kcpuset_set(set, 1);
    kcpuset_set(set, 2);
    assert.throws(() => preempt(() => ipi_multicast({ func: image.count, arg: 1 }, set)), dead);
    assert.throws(() => xc_unicast(0, image.count, 1, undefined, cpu_lookup(2)), dead);
    const cookie = softint_establish(SOFTINT_NET | SOFTINT_RCPU, image.count, 3)!;
    assert.throws(() => preempt(() => softint_schedule_cpu(cookie, cpu_lookup(2))), dead);

    /* Broadcasts and barriers count the living only. */
    const all = { func: image.count, arg: 4 };
    preempt(() => ipi_broadcast(all));
    ipi_wait(all);
    assert.deepEqual(t.row(4), [1, 1, 0, 1]);
    preempt(() => ipi_trigger_broadcast(id, true));
    await until('the broadcast trigger', () => t.row(2)[1] === 1 && t.row(2)[3] === 1);
    xc_wait(xc_broadcast(0, image.count, 5, undefined));
    xc_wait(xc_broadcast(XC_HIGHPRI, image.count, 5, undefined));
    assert.deepEqual(t.row(5), [2, 2, 0, 2]);
    xc_barrier(0);
    xc_barrier(XC_HIGHPRI);
    ipi_unregister(id);
    softint_disestablish(cookie);
    assert.deepEqual(t.machine.counters().length, 4);
  } finally {
    await t.machine.shutdown();
  }
});

test('a CPU that dies of an uncaught error or an unhandled rejection: named with the error; its waiters fail at once', T, async () => {
  for (const [func, reason] of [[fail.throw_later, /^uncaught RangeError: late boom$/], [fail.reject_later, /^uncaught Error: late boom$/]] as const) {
    const t = await bootFail(3);
    const d = deaths(t.machine);
    try {
      const kill = { func, arg: 'late boom' };
      preempt(() => ipi_unicast(kill, cpu_lookup(1)));
      ipi_wait(kill); // it returned normally: the error comes later, from its event loop
      const ev = await d.next();
      assert.equal(ev.cpu, 1);
      assert.match(ev.reason, reason);
      assert.ok(ev.error instanceof Error && /late boom/.test(ev.error.message));
      /* A wait that began before the death learns it too. */
      const hold = { func: fail.spin_until, arg: 11 * ROW };
      preempt(() => ipi_unicast(hold, cpu_lookup(2)));
      const p = ipi_wait_async(hold);
      Atomics.store(t.log, 11 * ROW, 1);
      await p;
      /* cpu2 carries on. */
      const ok = { func: image.count, arg: 1 };
      preempt(() => ipi_broadcast(ok, true));
      ipi_wait(ok);
      assert.deepEqual(t.row(1), [0, 0, 1]);
    } finally {
      await t.machine.shutdown();
    }
  }
});

test('machine.terminate() ends a CPU stuck in a loop with no interrupt point; a timeout first names it and what it is doing', T, async () => {
  const t = await bootFail(3);
  const d = deaths(t.machine);
  try {
    const stuck = { func: fail.spin_forever, arg: undefined };
    preempt(() => ipi_unicast(stuck, cpu_lookup(2)));
    const started = Date.now();
    assert.throws(() => ipi_wait(stuck, { timeout: 150 }), (e: unknown) => {
      assert.ok(e instanceof IpiTimeoutError);
      assert.deepEqual(e.cpus, [2]);
      assert.equal(e.timeout, 150);
      assert.equal(e.states[0]!.doing, 'in cross-call function spin_forever');
      assert.ok(e.states[0]!.forMs !== undefined && e.states[0]!.forMs >= 100, `forMs ${e.states[0]!.forMs}`);
      assert.match(e.message, /^ipi_wait: timed out after 150 ms waiting for cpu2: cpu2 in cross-call function spin_forever \(for at least \d+ ms\)$/);
      return true;
    });
    assert.ok(Date.now() - started >= 150);
    /* The message stays in flight: a second wait takes it up, here from a promise. */
    const p = ipi_wait_async(stuck);
    p.catch(() => {});
    await t.machine.terminate(2);
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof IpiCpuDeadError);
      assert.equal(e.reason, 'terminated');
      assert.equal(e.exitCode, undefined);
      return true;
    });
    const ev = await d.next();
    assert.deepEqual([ev.cpu, ev.reason], [2, 'terminated']);
    await assert.rejects(t.machine.terminate(0), { name: 'RangeError', message: /cpu0 is this thread/ });
    await assert.rejects(t.machine.terminate(3), RangeError);
    const ok = { func: image.count, arg: 1 };
    preempt(() => ipi_unicast(ok, cpu_lookup(1)));
    ipi_wait(ok);
    assert.deepEqual(t.row(1), [0, 1, 0]);
  } finally {
    await t.machine.shutdown();
  }
});

test('a broadcast with a target that dies: the living complete, the error names the dead; the other failures come with it', T, async () => {
  const t = await bootFail(4);
  deaths(t.machine);
  try {
    /* cpu3 exits, cpu1 throws, cpu2 is fine. */
    const flag = 12 * ROW;
    const hold = { func: fail.exit_when, arg: { flag, code: 7 } };
    preempt(() => ipi_unicast(hold, cpu_lookup(3)));
    await until('cpu3 to hold', () => t.log[39 * ROW + 3] === 1);
    const set = kcpuset_create(true);
    for (const c of [1, 3]) kcpuset_set(set, c);
    const m = { func: fail.throw_value, arg: 'number' };
    preempt(() => ipi_multicast(m, set));
    Atomics.store(t.log, flag, 1);
    assert.throws(() => ipi_wait(m), (e: unknown) => {
      assert.ok(e instanceof IpiRemoteError, String(e));
      assert.deepEqual(e.errors.map((x) => [x.cpu, x.name]), [[1, 'IpiRemoteError'], [3, 'IpiCpuDeadError']]);
      assert.equal(e.message, 'ipi_wait: the call failed on 2 CPUs: cpu1 threw Error: a non-Error value was thrown: 42; cpu3 died (process.exit(7))');
      return true;
    });
    assert.throws(() => ipi_wait(hold), IpiCpuDeadError);
  } finally {
    await t.machine.shutdown();
  }
});

test('an xcall whose target dies: xc_wait names it, the class goes on; a dead holder of an xcall lock releases it', T, async () => {
  const t = await bootFail(4);
  deaths(t.machine);
  try {
    for (const flags of [0, XC_HIGHPRI]) {
      const victim = flags === 0 ? 3 : 2;
      assert.throws(() => xc_wait(xc_broadcast(flags, fail.exit_on, { cpu: victim, code: 5, row: 14 }, undefined)), (e: unknown) => {
        assert.ok(e instanceof IpiCpuDeadError, String(e));
        assert.equal(e.cpu, victim);
        assert.equal(e.message, `xc_wait: cpu${victim} died (process.exit(5)) before it answered`);
        return true;
      });
      xc_wait(xc_broadcast(flags, image.count, 15, undefined));
    }
    assert.deepEqual(t.row(14), [2, 2, 1, 0]);
    assert.deepEqual(t.row(15), [2, 2, 1, 0]);
  } finally {
    await t.machine.shutdown();
  }

  const u = await bootFail(4);
  deaths(u.machine);
  try {
    /* The high class is busy on cpu1; cpu2 takes its lock in a low-priority function and waits; then cpu2 dies there. */
    const slow = xc_unicast(XC_HIGHPRI, fail.slow, 400, undefined, cpu_lookup(1));
    const low = xc_unicast(0, fail.issue_high, 16, undefined, cpu_lookup(2));
    await sleep(100);
    const kill = { func: fail.exit_now, arg: 9 };
    preempt(() => ipi_unicast(kill, cpu_lookup(2)));
    assert.throws(() => ipi_wait(kill), { name: 'IpiCpuDeadError', message: /cpu2 died \(process\.exit\(9\)\)/ });
    assert.throws(() => xc_wait(low), IpiCpuDeadError);
    xc_wait(slow);
    xc_wait(xc_broadcast(XC_HIGHPRI, image.count, 17, undefined));
    assert.deepEqual(u.row(17), [1, 1, 0, 1]);
  } finally {
    await u.machine.shutdown();
  }
});

test('deadlines and cancellation: timeouts name who has not answered, signals abort, and the call stays in flight', T, async () => {
  const t = await bootFail(3);
  try {
    const release = 22 * ROW;
    const m = { func: fail.spin_until, arg: release };
    preempt(() => ipi_unicast(m, cpu_lookup(1)));
    await assert.rejects(ipi_wait_async(m, { timeout: 50 }), (e: unknown) => {
      assert.ok(e instanceof IpiTimeoutError);
      assert.match(e.message, /^ipi_wait_async: timed out after 50 ms waiting for cpu1: cpu1 in cross-call function spin_until/);
      return true;
    });
    const ac = new AbortController();
    const p = ipi_wait_async(m, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(p, { name: 'AbortError' });
    const reason = new Error('mine');
    await assert.rejects(ipi_wait_async(m, { signal: AbortSignal.abort(reason) }), (e) => e === reason);
    assert.throws(() => ipi_wait(m, { timeout: 0 }), IpiTimeoutError);
    Atomics.store(t.log, release, 1);
    ipi_wait(m, { timeout: 10_000 });
    ipi_wait(m); // waited for already: returns

    /* xc_wait, blocking and not. */
    const r2 = 23 * ROW;
    const ticket = xc_unicast(0, fail.spin_until, r2, undefined, cpu_lookup(2));
    assert.throws(() => xc_wait(ticket, { timeout: 50 }), (e: unknown) => {
      assert.ok(e instanceof IpiTimeoutError);
      assert.deepEqual(e.cpus, [2]);
      assert.equal(e.states[0]!.doing, 'in xcall function spin_until');
      return true;
    });
    const ac2 = new AbortController();
    const q = xc_wait_async(ticket, { signal: ac2.signal, timeout: 10_000 });
    ac2.abort();
    await assert.rejects(q, { name: 'AbortError' });
    await assert.rejects(xc_wait_async(ticket, { timeout: 30 }), IpiTimeoutError);
    Atomics.store(t.log, r2, 1);
    await xc_wait_async(ticket, { timeout: 10_000 });

    /* Bad options. */
    assert.throws(() => ipi_wait(m, { timeout: -1 }), { name: 'RangeError', message: /ipi_wait: options\.timeout must be a number of milliseconds >= 0, got -1/ });
    assert.throws(() => ipi_wait(m, { timeout: '5' as never }), { name: 'TypeError', message: /options\.timeout must be a number/ });
    assert.throws(() => ipi_wait(m, { timout: 5 } as never), { name: 'TypeError', message: /ipi_wait: unknown option "timout" \(options are timeout\)/ });
    await assert.rejects(ipi_wait_async(m, { signal: 'x' as never }), { name: 'TypeError', message: /options\.signal must be an AbortSignal/ });
    assert.throws(() => xc_wait(ticket, { timeout: NaN }), RangeError);
  } finally {
    await t.machine.shutdown();
  }
});

test('a diagnostic wait with no timeout reports once, after stallReport ms, whom it waits for; then goes on', T, async () => {
  const t = await bootFail(2, { stallReport: 100 });
  const warned: string[] = [];
  const warn = console.warn;
  console.warn = (...a: unknown[]) => void warned.push(a.join(' '));
  try {
    const m = { func: fail.slow, arg: 400 };
    preempt(() => ipi_unicast(m, cpu_lookup(1)));
    ipi_wait(m);
    assert.equal(warned.length, 1, warned.join('\n'));
    assert.match(warned[0]!, /^ipi: ipi_wait on cpu0 has waited \d+ ms for cpu1: cpu1 in cross-call function slow \(for at least \d+ ms\); still waiting \(boot option stallReport\)$/);
  } finally {
    console.warn = warn;
    await t.machine.shutdown();
  }
});

test('more than IPI_MSG_SLOTS messages in flight to a busy CPU from several senders: all complete, each once', T, async () => {
  assert.equal(IPI_MSG_SLOTS, 8);
  const t = await bootTest(4);
  try {
    const release = 7 * ROW + 200;
    const hold = { func: image.hold_until, arg: release };
    preempt(() => ipi_unicast(hold, cpu_lookup(3)));
    await until('cpu3 to be busy', () => t.log[39 * ROW + 3] === 1);
    /* cpu1 and cpu2 each send 6 to cpu3; so do we: 18 > 8 slots. */
    const bursts = [1, 2].map((c) => {
      const m = { func: image.burst, arg: { n: 6, cpu: 3, row: 8 } };
      preempt(() => ipi_unicast(m, cpu_lookup(c)));
      return m;
    });
    /* 12 messages for 8 slots: a sender spins on the full mailbox (servicing its own interrupts). */
    await until('a sender to find the mailbox full', () => t.machine.counters().some((c) => c.mbox_full > 0));
    Atomics.store(t.log, release, 1);
    const mine = Array.from({ length: 6 }, () => ({ func: image.count, arg: 8 }));
    preempt(() => {
      for (const m of mine) ipi_unicast(m, cpu_lookup(3));
    });
    for (const m of mine) ipi_wait(m);
    for (const m of bursts) ipi_wait(m);
    ipi_wait(hold);
    assert.deepEqual(t.row(8), [0, 0, 0, 18]);
  } finally {
    await t.machine.shutdown();
  }
});

test('xc_barrier: a plain write made before it is seen by every CPU after it, at either priority', T, async () => {
  const t = await boot(3);
  try {
    for (const [name, flags] of PRIS) {
      t.log.fill(0, 1 * ROW, 8 * ROW);
      const flag = 1 * ROW;
      const done = 1 * ROW + 1;
      const arg = { flag, inRow: 2, secRow: 3, exitRow: 4, ms: 2 };
      for (let k = 1; k < 3; k++) startOn(k, 'barrier_reader', arg, done, 5);
      await until(`${name}: the readers in their loops`, () => t.row(3)[1]! >= 3 && t.row(3)[2]! >= 3);
      t.log[flag] = 1; // a plain write
      xc_barrier(flags);
      const inSection = t.row(2);
      const sections = t.row(3);
      assert.deepEqual(inSection, [0, 0, 0], `${name}: no CPU is still in a section that read the old value`);
      await until(`${name}: the readers done`, () => Atomics.load(t.log, done) === 2);
      assert.deepEqual(t.row(3), sections, `${name}: no section entered after the barrier`);
      assert.deepEqual(t.row(4), [0, 1, 1]);
      assert.deepEqual(t.row(5), [0, 0, 0]);
    }
  } finally {
    await t.machine.shutdown();
  }
});

test('softint_disestablish returns only once a running handler has returned, even one with interrupt points', T, async () => {
  const t = await boot(2);
  try {
    const flag = 7 * ROW;
    const c = softint_establish(SOFTINT_SERIAL | SOFTINT_RCPU, si_slow, { flag, ms: 300 })!;
    preempt(() => softint_schedule_cpu(c, cpu_lookup(1)));
    await until('the handler running on cpu1', () => Atomics.load(t.log, flag) === 1);
    softint_disestablish(c);
    assert.equal(Atomics.load(t.log, flag), 2, 'the handler had returned');
    assert.throws(() => preempt(() => softint_schedule(c)), IpiError);
  } finally {
    await t.machine.shutdown();
  }
});

test('schedules racing softint_disestablish never run a freed handler, and the next handler in the slot never gets their runs', T, async () => {
  const t = await boot(4);
  const errors = errorsOf(t);
  const stop = 8 * ROW;
  try {
    const ROWR = 10; // racers: schedules made, then how they ended
    const ROWO = 12; // old handler: runs, then runs after it was freed
    const ROWN = 14; // new handler's runs
    const done = 9 * ROW;
    const freed = 9 * ROW + 1;
    const ERR = 16;
    for (let round = 0; round < 6; round++) {
      t.log.fill(0, 9 * ROW, 17 * ROW);
      const old = softint_establish(SOFTINT_NET | SOFTINT_RCPU, si_old, { row: ROWO, freed })!;
      for (let k = 1; k < 4; k++) startOn(k, 'race', { cookie: old, row: ROWR, stop, max: 1e7 }, done, ERR);
      await until('the racers racing', () => t.row(ROWR).slice(1).every((n) => n >= 20));

      softint_disestablish(old);
      Atomics.store(t.log, freed, 1);
      const next = softint_establish(SOFTINT_NET | SOFTINT_RCPU, si_count, ROWN)!;
      assert.equal((next - 1) % SOFTINT_MAXHANDLERS, (old - 1) % SOFTINT_MAXHANDLERS, 'the freed slot is reused');

      await until('the racers done', () => Atomics.load(t.log, done) === 3);
      for (let k = 1; k < 4; k++) {
        assert.equal(t.row(ROWR + 1)[k], 1, `cpu${k}'s race ended on "not an established soft interrupt", not: ${noteOf(t.log, k)}`);
      }
      assert.deepEqual(t.row(ERR), [0, 0, 0, 0]);
      assert.ok(t.row(ROWO).reduce((a, b) => a + b) > 0, 'the old handler ran while established');
      assert.deepEqual(t.row(ROWO + 1), [0, 0, 0, 0], 'no run of the freed handler');
      await sleep(10);
      assert.deepEqual(t.row(ROWN), [0, 0, 0, 0], 'the new handler got none of the old runs');

      /* The new handler is not disturbed: scheduled once on each CPU, it runs once on each. */
      for (let k = 0; k < 4; k++) preempt(() => softint_schedule_cpu(next, cpu_lookup(k)));
      await until('the new handler on every CPU', () => t.row(ROWN).every((n) => n === 1));
      await sleep(10);
      assert.deepEqual(t.row(ROWN), [1, 1, 1, 1]);
      softint_disestablish(next);
    }
    assert.deepEqual(errors, []);
  } finally {
    Atomics.store(t.log, stop, 1);
    await t.machine.shutdown();
  }
});

test('nested xcalls with a slow high-priority call in flight (issue 7\'s case, as it hung 5 times in 6): it finishes', T, async () => {
  for (let run = 0; run < 6; run++) {
    const t = await bootFail(3);
    try {
      const slow = xc_unicast(XC_HIGHPRI, fail.slow, 100, undefined, cpu_lookup(2));
      const low = xc_broadcast(0, fail.issue_high, 18, undefined);
      xc_wait(xc_broadcast(XC_HIGHPRI, fail.nop, undefined, undefined));
      xc_wait(low);
      xc_wait(slow);
      assert.deepEqual(t.row(18), [run + 1, run + 1, run + 1].map(() => 1));
    } finally {
      await t.machine.shutdown();
    }
  }
});

