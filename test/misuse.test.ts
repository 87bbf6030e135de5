/*
 * Misuse gets an error that names the call and the fix: before boot(),
 * after shutdown(), bad messages, ids, tickets, options and handlers.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  boot, cpu_lookup, curcpu, IPI_ARG_MAXBYTES, ipi_register, ipi_trigger, ipi_unicast, ipi_unregister, ipi_wait, IPI_MAXREG, kcpuset_create,
  kcpuset_isset, kcpuset_set, kcpuset_shared, KCPUSET_NWORDS, ncpu, shared, softint_establish, SOFTINT_MAXHANDLERS, SOFTINT_NET, SOFTINT_RCPU,
  xc_broadcast, xc_wait, XC_HIGHPRI,
} from 'ipi';
import * as fail from './fixtures/fail_image.js';
import * as image from './fixtures/image.js';
import { bad, bootTest, imageUrl, preempt, ROW } from './helpers.js';

const T = { timeout: 60_000 };

/* First in this file (each test file runs in a process of its own): no machine has been booted yet. */
test('before boot(): every call says to boot first, not something misleading', T, () => {
  assert.equal(ncpu, 0);
  const first = /^IpiError: (\w+): this thread is not a CPU of a running machine \(call boot\(\) first\)$/;
  const calls: [string, () => unknown][] = [
    ['cpu_lookup', () => cpu_lookup(0)], ['curcpu', () => curcpu()], ['shared', () => shared('log')],
    ['ipi_register', () => ipi_register(image.count, 1)], ['ipi_trigger', () => ipi_trigger(1, bad({}))],
    ['ipi_unicast', () => ipi_unicast({ func: image.count, arg: 1 }, bad({}))], ['ipi_wait', () => ipi_wait({ func: image.count, arg: 1 })],
    ['softint_establish', () => softint_establish(SOFTINT_NET, image.count, 1)], ['xc_broadcast', () => xc_broadcast(0, image.count, 1, 1)],
    ['xc_wait', () => xc_wait(2)],
  ];
  for (const [name, call] of calls) {
    assert.throws(call, (e: unknown) => {
      const m = first.exec(String(e));
      assert.ok(m, String(e));
      assert.equal(m[1], name);
      return true;
    });
  }
});

test('after shutdown(): every call says the machine was shut down', T, async () => {
  const t = await bootTest(2);
  const one = cpu_lookup(1);
  await t.machine.shutdown();
  const calls: [string, () => unknown][] = [
    ['cpu_lookup', () => cpu_lookup(1)], ['shared', () => shared('log')], ['ipi_register', () => ipi_register(image.count, 1)],
    ['ipi_unicast', () => ipi_unicast({ func: image.count, arg: 1 }, one)], ['xc_broadcast', () => xc_broadcast(0, image.count, 1, 1)],
    ['ipi_trigger', () => ipi_trigger(1, one)],
  ];
  for (const [name, call] of calls) assert.throws(call, { name: 'IpiError', message: `${name}: the machine this thread was a CPU of has been shut down` });
  assert.throws(() => t.machine.counters(), { name: 'IpiError', message: 'machine.counters: the machine has been shut down' });
  assert.throws(() => t.machine.unref(), /machine\.unref: the machine has been shut down/);
});

test('boot: unknown options are refused, with the nearest known one', T, async () => {
  await assert.rejects(boot(bad({ ncpus: 4 })), { name: 'TypeError', message: /^boot: unknown option "ncpus" \(did you mean "ncpu"\?\); the options are ncpu, image, shared/ });
  await assert.rejects(boot(bad({ diagnostics: false })), { message: /did you mean "diagnostic"/ });
  await assert.rejects(boot(bad({ frobnicate: 1 })), { name: 'TypeError', message: /^boot: unknown option "frobnicate"; the options are/ });
  await assert.rejects(boot({ stallReport: -1 }), { name: 'RangeError', message: /options\.stallReport must be milliseconds >= 0/ });
});

test('messages, ids, tickets and handlers that cannot work are refused, naming the fix', T, async () => {
  const t = await bootTest(2, { image: [imageUrl, new URL('./fixtures/fail_image.js', import.meta.url)] });
  try {
    /* Not a message. */
    assert.throws(() => ipi_wait(bad({})), { name: 'IpiAssertionError', message: /ipi_wait: assertion "msg->func != NULL" failed/ });
    assert.throws(() => ipi_wait(bad(null)), { name: 'TypeError', message: /ipi_wait: msg must be an ipi_msg_t/ });
    assert.throws(() => ipi_wait(bad({ func: 3 })), { name: 'TypeError', message: /ipi_wait: msg must be an ipi_msg_t/ });
    /* A full handler table makes ipi_register return 0, NetBSD's contract; triggering 0 is refused. */
    const ids: number[] = [];
    for (let id = ipi_register(image.count, 1); id !== 0; id = ipi_register(image.count, 1)) ids.push(id);
    assert.equal(ids.length, IPI_MAXREG - 1);
    assert.throws(() => preempt(() => ipi_trigger(0, cpu_lookup(1))), {
      name: 'IpiAssertionError',
      message: /ipi_trigger: assertion "ipi_id != IPI_SYNCH_ID" failed: id 0 is reserved for cross-calls \(ipi_register returns 0 when its table is full: check its result\)/,
    });
    /* A class is no handler. */
    assert.throws(() => preempt(() => ipi_unicast({ func: bad(fail.NotAHandler), arg: 1 }, cpu_lookup(1))), {
      name: 'TypeError', message: /ipi_unicast: msg\.func \(class NotAHandler\) is a class, not a function/,
    });
    assert.throws(() => xc_broadcast(0, bad(fail.NotAHandler), 1, 1), { name: 'TypeError', message: /xc_broadcast: func \(class NotAHandler\) is a class/ });
    /* A ticket never issued would wait forever. */
    const ticket = xc_broadcast(XC_HIGHPRI, image.count, 1, undefined);
    xc_wait(ticket);
    assert.throws(() => xc_wait(ticket + 2 * 1000), { name: 'RangeError', message: /^xc_wait: ticket \d+ was never issued \(the last high priority call has ticket \d+\)/ });
    assert.throws(() => xc_wait(2 * 1000), { name: 'RangeError', message: /the last low priority call has ticket 0/ });
    /* A CPU is a number. */
    await assert.rejects(t.machine.terminate(bad('1')), { name: 'TypeError', message: /^machine\.terminate: cpu must be an integer in \[1, 2\), got string "1"/ });
    await assert.rejects(t.machine.terminate(0), { name: 'RangeError', message: /cpu0 is this thread; shut the machine down instead/ });
  } finally {
    await t.machine.shutdown();
  }
});

test('views and kcpuset_t nested in plain data go by reference, zero copy', T, async () => {
  const data = new SharedArrayBuffer(4096);
  const t = await bootTest(3, { shared: { data } });
  try {
    const view = new Int32Array(data, 64, 4);
    const set = kcpuset_shared(new Int32Array(data, 0, KCPUSET_NWORDS));
    const msg = { func: image.fill_nested, arg: { label: 'x', views: [view, new Float64Array(data, 128, 2)], set } };
    preempt(() => ipi_unicast(msg, cpu_lookup(2)));
    ipi_wait(msg);
    assert.deepEqual(Array.from(view), [102, 102, 102, 102]);
    assert.deepEqual(Array.from(new Float64Array(data, 128, 2)), [2.5, 2.5]);
    assert.ok(kcpuset_isset(set, 2));
    /* A view of memory the other CPUs cannot reach is still refused, naming where it is. */
    const local = new Int32Array(4);
    assert.throws(() => preempt(() => ipi_unicast({ func: image.fill_nested, arg: { views: [local] } }, cpu_lookup(1))),
      { name: 'TypeError', message: /ipi_unicast: msg\.arg\.views\[0\] is a view of memory other CPUs cannot reach/ });
    const priv = kcpuset_create(true);
    kcpuset_set(priv, 1);
    assert.throws(() => preempt(() => ipi_unicast({ func: image.fill_nested, arg: { views: [], set: priv } }, cpu_lookup(1))), /msg\.arg\.set is a view of memory other CPUs cannot reach/);
    assert.equal(t.log[ROW * 0], 0);
  } finally {
    await t.machine.shutdown();
  }
});

function run(args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: 30_000 }, (err, stdout) => resolve({ code: err ? (err.code as number | null) ?? -1 : 0, stdout }));
  });
}

test('machine.unref() lets a program that never shuts down exit; ref() keeps it alive again', T, async () => {
  const program = fileURLToPath(new URL('./fixtures/unref_program.js', import.meta.url));
  const unref = await run([program, 'unref']);
  assert.deepEqual(unref, { code: 0, stdout: 'booted\n' });
  const ref = await run([program, 'ref']);
  assert.deepEqual(ref, { code: 0, stdout: 'booted\nstill alive\n' });
});

test('a registration refused half-way leaves no slot taken: ipi_register and softint_establish roll back', T, async () => {
  const t = await bootTest(2);
  try {
    /* Too long to encode: refused after the slot was claimed; the slot is free again. */
    const long = 'x'.repeat(IPI_ARG_MAXBYTES + 1);
    assert.throws(() => ipi_register(image.count, bad(long)), { name: 'RangeError', message: /ipi_register: arg is a string longer than IPI_ARG_MAXBYTES/ });
    assert.equal(ipi_register(image.count, 1), 1, 'slot 1 was given back');
    assert.throws(() => softint_establish(SOFTINT_NET, image.count, bad(long)), { name: 'RangeError', message: /softint_establish: arg is a string longer/ });
    const first = softint_establish(SOFTINT_NET, image.count, 1)!;
    assert.equal((first - 1) % SOFTINT_MAXHANDLERS, 4, 'the first slot after the 4 reserved ones was given back');
    /* SOFTINT_RCPU takes an IPI id too: with none left it returns null, and gives its handler slot back. */
    const ids: number[] = [];
    for (let id = ipi_register(image.count, 2); id !== 0; id = ipi_register(image.count, 2)) ids.push(id);
    assert.equal(softint_establish(SOFTINT_NET | SOFTINT_RCPU, image.count, 3), null);
    ipi_unregister(ids.pop()!);
    const rcpu = softint_establish(SOFTINT_NET | SOFTINT_RCPU, image.count, 3)!;
    assert.equal((rcpu - 1) % SOFTINT_MAXHANDLERS, 5, 'the slot the refused one had claimed was given back');
  } finally {
    await t.machine.shutdown();
  }
});
