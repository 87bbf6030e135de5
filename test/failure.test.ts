/*
 * The failure model on any machine: functions that fail in every way,
 * nested xcalls, a terminated CPU.  What only real workers can show (a
 * worker that exits or crashes, a CPU stuck in a loop, deadlines on it)
 * is in workers.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cpu_index, cpu_lookup, curcpu, ipi_broadcast, ipi_multicast, kcpuset_create, kcpuset_set, ipi_register, ipi_trigger, ipi_unicast, ipi_unregister, ipi_wait, ipi_wait_async, IpiCpuDeadError, IpiRemoteError,
  kcpuset_isset, kcpuset_running, XC_HIGHPRI, xc_barrier, xc_broadcast, xc_unicast, xc_wait, xc_wait_async,
} from 'ipi';
import * as fail from './fixtures/fail_image.js';
import * as image from './fixtures/image.js';
import { bootFail, deaths, preempt, ROW, until } from './helpers.js';

const T = { timeout: 60_000 };
/** Runs of the nested-xcall case: each is a new machine (on the simulated one, a new seed). */
const RUNS_NESTED = 50;
test('nested xcalls: a low-priority function that issues a high-priority xcall never deadlocks against its own CPU', T, async () => {
  /*
   * Issue 7's case: a high-priority call in flight, low-priority functions
   * that issue and wait for high-priority calls, and this CPU taking the
   * high-priority lock meanwhile.  Which CPU gets the lock, and whether the
   * previous call is still in flight then, is the interleaving: many runs
   * (on the simulated machine, many seeds) go through many of them.
   */
  for (let run = 0; run < RUNS_NESTED; run++) {
    const t = await bootFail(3);
    try {
      const first = xc_unicast(XC_HIGHPRI, fail.nop, undefined, undefined, cpu_lookup(2));
      const low = xc_broadcast(0, fail.issue_high, 18, undefined);
      xc_wait(xc_broadcast(XC_HIGHPRI, fail.nop, undefined, undefined));
      xc_wait(low);
      xc_wait(first);
      assert.deepEqual(t.row(18), [1, 1, 1]);
    } finally {
      await t.machine.shutdown();
    }
  }
});

test('a cross-call function that returns a promise: its rejection reaches the waiter and the CPU lives; a fulfilled one completes first', T, async () => {
  const t = await bootFail(2);
  const d = deaths(t.machine);
  try {
    /*
     * The promise settles in the target's event loop, so wait without
     * blocking: a blocking wait works on workers, but on the simulated
     * machine it would hold the one thread the promise needs.
     */
    const m = { func: fail.reject_async, arg: 'nope' };
    preempt(() => ipi_unicast(m, cpu_lookup(1)));
    await assert.rejects(ipi_wait_async(m), (e: unknown) => {
      assert.ok(e instanceof IpiRemoteError, String(e));
      assert.equal(e.remoteName, 'SyntaxError');
      assert.match(e.message, /^ipi_wait_async: the function threw on cpu1: SyntaxError: nope \(the promise returned by the cross-call function rejected\)$/);
      return true;
    });
    const f = { func: fail.fulfil_async, arg: 19 * ROW };
    preempt(() => ipi_unicast(f, cpu_lookup(1)));
    await ipi_wait_async(f);
    assert.equal(t.log[19 * ROW], 1, 'the work after the await is visible when the wait returns');
    /* xcalls too, at either priority. */
    for (const flags of [0, XC_HIGHPRI]) {
      await assert.rejects(xc_wait_async(xc_unicast(flags, fail.reject_async, 'xc nope', undefined, cpu_lookup(1))),
        { name: 'IpiRemoteError', message: /SyntaxError: xc nope \(the promise returned by the xcall function rejected\)$/ });
    }
    /* An asynchronous handler's rejection is an 'error' event, counted. */
    const id = ipi_register(fail.reject_async, 'handler nope');
    preempt(() => ipi_trigger(id, cpu_lookup(1)));
    await until('the error event', () => d.errors.length === 1);
    assert.ok(d.errors[0]!.error instanceof Error, 'the event carries an Error');
    assert.match(d.errors[0]!.error.message, /handler nope \(the promise returned by the interrupt handler rejected\)$/);
    assert.equal(t.machine.counters()[1]!.handler_errors, 1);
    assert.ok(kcpuset_isset(kcpuset_running, 1), 'cpu1 lives');
    ipi_unregister(id);
  } finally {
    await t.machine.shutdown();
  }
});

test("the sender's own run of a broadcast returns a promise: ipi_wait_async waits for it and its rejection joins the others", T, async () => {
  const t = await bootFail(2);
  const d = deaths(t.machine);
  try {
    const m = { func: fail.reject_async, arg: 'both' };
    preempt(() => ipi_broadcast(m));
    await assert.rejects(ipi_wait_async(m), (e: unknown) => {
      assert.ok(e instanceof IpiRemoteError, String(e));
      assert.deepEqual(e.errors.map((f) => f.cpu), [0, 1], 'cpu0 (the local run) and cpu1 both failed');
      assert.ok(e.errors.every((f) => f instanceof IpiRemoteError && /both \(the promise returned by the cross-call function rejected\)/.test(f.message)));
      return true;
    });
    const f = { func: fail.fulfil_async, arg: 20 * ROW };
    preempt(() => ipi_broadcast(f));
    await ipi_wait_async(f);
    assert.equal(t.log[20 * ROW], 2, 'both runs finished when the wait returned');
    /* ipi_wait cannot wait for a promise on its own thread: a later rejection is an 'error' event. */
    const late = { func: fail.reject_async, arg: 'late' };
    const self = kcpuset_create(true);
    kcpuset_set(self, cpu_index(curcpu()));
    preempt(() => ipi_multicast(late, self));
    ipi_wait(late);
    assert.equal(d.errors.length, 0, 'not yet rejected when ipi_wait returned');
    await until('the error event of the local run', () => d.errors.length === 1);
    assert.equal(d.errors[0]!.cpu, 0);
    assert.match(d.errors[0]!.error.message, /late \(the promise returned by the cross-call function rejected\)$/);
  } finally {
    await t.machine.shutdown();
  }
});

test('any thrown value becomes a readable error; the acknowledgement and the other pending messages are never lost', T, async () => {
  const t = await bootFail(2);
  deaths(t.machine);
  try {
    const kinds: [string, RegExp][] = [
      ['null', /a non-Error value was thrown: null$/], ['undefined', /a non-Error value was thrown: undefined$/],
      ['number', /a non-Error value was thrown: 42$/], ['null-prototype', /a non-Error value was thrown: an object with a null prototype$/],
      ['symbol', /a non-Error value was thrown: Symbol\(odd\)$/], ['getter', /a non-Error value was thrown: an object \(Error\)$/],
      ['proxy', /a non-Error value was thrown: a value that cannot be inspected$/],
    ];
    /* All at once while cpu1 is busy: they share its mailbox (and overflow it), with good messages between them. */
    const hold = { func: fail.slow, arg: 100 };
    preempt(() => ipi_unicast(hold, cpu_lookup(1)));
    const bad = kinds.map(([kind]) => ({ func: fail.throw_value, arg: kind }));
    const good = kinds.map(() => ({ func: fail.tally, arg: 21 }));
    preempt(() => {
      for (let i = 0; i < kinds.length; i++) {
        ipi_unicast(bad[i]!, cpu_lookup(1));
        ipi_unicast(good[i]!, cpu_lookup(1));
      }
    });
    ipi_wait(hold);
    for (let i = 0; i < kinds.length; i++) {
      assert.throws(() => ipi_wait(bad[i]!), (e: unknown) => {
        assert.ok(e instanceof IpiRemoteError);
        assert.equal(e.cpu, 1);
        assert.match(e.remoteMessage, kinds[i]![1], kinds[i]![0]);
        return true;
      });
      ipi_wait(good[i]!);
    }
    assert.equal(t.row(21)[1], kinds.length);
  } finally {
    await t.machine.shutdown();
  }
});


test('a terminated CPU: its waiters fail with IpiCpuDeadError, calls to it are refused, broadcasts and barriers count the living', T, async () => {
  const t = await bootFail(4);
  const d = deaths(t.machine);
  try {
    /* A message still pending at cpu2 (it spins until a flag nobody sets), then cpu2 is terminated. */
    const stuck = { func: fail.spin_until, arg: 20 * ROW };
    preempt(() => ipi_unicast(stuck, cpu_lookup(2)));
    await t.machine.terminate(2);
    assert.throws(() => ipi_wait(stuck), (e: unknown) => {
      assert.ok(e instanceof IpiCpuDeadError);
      assert.deepEqual([e.cpu, e.reason, e.exitCode], [2, 'terminated', undefined]);
      assert.equal(e.message, 'ipi_wait: cpu2 died (terminated) before it answered');
      return true;
    });
    const ev = await d.next();
    assert.deepEqual([ev.cpu, ev.reason], [2, 'terminated']);
    assert.ok(!kcpuset_isset(kcpuset_running, 2));
    const dead = { name: 'IpiCpuDeadError', message: /cpu2 is dead \(terminated\): nothing can be sent to it/ };
    const id = ipi_register(image.count, 2);
    assert.throws(() => preempt(() => ipi_unicast({ func: image.count, arg: 1 }, cpu_lookup(2))), dead);
    assert.throws(() => preempt(() => ipi_trigger(id, cpu_lookup(2))), dead);
    assert.throws(() => xc_unicast(0, image.count, 1, undefined, cpu_lookup(2)), dead);
    const all = { func: image.count, arg: 4 };
    preempt(() => ipi_broadcast(all));
    ipi_wait(all);
    assert.deepEqual(t.row(4), [1, 1, 0, 1]);
    xc_wait(xc_broadcast(XC_HIGHPRI, image.count, 5, undefined));
    xc_barrier(0);
    ipi_unregister(id);
    assert.deepEqual(t.row(5), [1, 1, 0, 1]);
  } finally {
    await t.machine.shutdown();
  }
});
