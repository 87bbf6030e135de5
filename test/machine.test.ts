/* The machine: boot, CPUs, shared memory, symbols, idle CPUs, shutdown. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  boot, cpu_index, cpu_info, cpu_lookup, cpu_number, curcpu, IpiError, ipi_register, ipi_trigger, ipi_unicast, ipi_wait,
  kcpuset_countset, kcpuset_isset, kcpuset_attached, kcpuset_running, kpreempt_disable, kpreempt_enable, kpreempt_disabled,
  MAXCPUS, ncpu, shared, ipi_broadcast, KCPUSET_BYTES, kcpuset_match, kcpuset_set, kcpuset_shared, spl0, splhigh, splx, IPL_HIGH, IPL_NONE, cpu_intr_p,
} from 'ipi';
import * as image from './fixtures/image.js';
import { bootTest, imageUrl, ROW, sleep, until } from './helpers.js';

const T = { timeout: 60_000 };

test('boot: CPU 0 is this thread, the others are running workers; shutdown leaves nothing behind', T, async () => {
  const before = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout').length;
  const t = await bootTest(3);
  try {
    assert.equal(ncpu, 3);
    assert.equal(t.machine.ncpu, 3);
    assert.equal(cpu_number(), 0);
    assert.equal(curcpu(), cpu_lookup(0));
    assert.equal(cpu_index(cpu_lookup(2)), 2);
    assert.equal(String(cpu_lookup(1)), 'cpu1');
    assert.equal(kcpuset_countset(kcpuset_attached), 3);
    assert.equal(kcpuset_countset(kcpuset_running), 3);
    for (const c of [0, 1, 2]) assert.ok(kcpuset_isset(kcpuset_running, c));
    assert.throws(() => cpu_lookup(3), RangeError);
    assert.throws(() => cpu_lookup(-1), RangeError);
    assert.throws(() => cpu_lookup('1' as never), TypeError);
  } finally {
    await t.machine.shutdown();
  }
  assert.equal(ncpu, 0);
  assert.throws(() => curcpu(), /curcpu: the machine this thread was a CPU of has been shut down/);
  assert.throws(() => t.machine.counters(), /has been shut down/);
  assert.throws(() => kpreempt_disable(), IpiError);
  assert.throws(() => shared('log'), /shared: the machine this thread was a CPU of has been shut down/);
  await t.machine.shutdown(); // idempotent
  await until('workers to be released', () => process.getActiveResourcesInfo().filter((r) => r !== 'Timeout').length <= before);
});

test('boot: one machine per thread; bad options name what is wrong', T, async () => {
  await assert.rejects(boot({ ncpu: 0 }), { name: 'RangeError', message: /options\.ncpu must be an integer in \[1, MAXCPUS = 256\]/ });
  await assert.rejects(boot({ ncpu: MAXCPUS + 1 }), RangeError);
  await assert.rejects(boot({ ncpu: '2' as never }), { name: 'TypeError', message: /options\.ncpu must be a number/ });
  await assert.rejects(boot({ ncpu: 1, shared: { x: new ArrayBuffer(8) as never } }), /options\.shared\.x must be a SharedArrayBuffer/);
  await assert.rejects(boot({ ncpu: 1, diagnostic: 1 as never }), /options\.diagnostic must be a boolean/);
  await assert.rejects(boot({ ncpu: 1, poll: -1 }), RangeError);
  await assert.rejects(boot({ ncpu: 1, image: 42 as never }), TypeError);
  const t = await bootTest(2);
  try {
    await assert.rejects(boot({ ncpu: 2 }), /already a CPU of a running machine/);
  } finally {
    await t.machine.shutdown();
  }
  /* A machine can be booted again after shutdown, and ncpu 1 has no workers. */
  const one = await bootTest(1);
  try {
    assert.equal(ncpu, 1);
  } finally {
    await one.machine.shutdown();
  }
});

test('boot: a module that fails to load on a worker fails boot, naming the CPU', T, async () => {
  await assert.rejects(boot({ ncpu: 2, image: new URL('./fixtures/missing.js', import.meta.url) }), (e: Error) => {
    assert.match(e.message, /boot: cpu1 failed to start|Cannot find module/);
    return true;
  });
  assert.equal(ncpu, 0);
});

test('boot: CPUs whose symbol tables differ fail boot, naming the module', T, async () => {
  const bad = new URL('./fixtures/uneven_image.js', import.meta.url);
  await assert.rejects(boot({ ncpu: 2, image: [imageUrl, bad] }), (e: Error) => {
    assert.ok(e instanceof IpiError);
    assert.match(e.message, /different symbol tables.*uneven_image\.js/);
    return true;
  });
  assert.equal(ncpu, 0);
});

test('shared(name) is the same memory on every CPU; an unknown name is an error', T, async () => {
  const extra = new SharedArrayBuffer(64);
  const t = await bootTest(3, { shared: { extra } });
  try {
    assert.equal(shared('extra'), extra);
    assert.equal(t.machine.shared('extra'), extra);
    assert.throws(() => shared('nope'), { name: 'IpiError', message: /no shared buffer named "nope" \(this machine has: extra, log\)/ });
    assert.throws(() => shared(3 as never), TypeError);
    /* A worker's plain write into shared memory is visible here once ipi_wait returns. */
    kpreempt_disable();
    for (const c of [1, 2]) {
      const msg = { func: image.plain_store, arg: { index: 50 * ROW + c, value: 1000 + c } };
      ipi_unicast(msg, cpu_lookup(c));
      ipi_wait(msg);
      assert.equal(t.log[50 * ROW + c], 1000 + c);
    }
    kpreempt_enable();
  } finally {
    await t.machine.shutdown();
  }
});

test('a kcpuset_t in shared memory is one set for every CPU', T, async () => {
  const sets = new SharedArrayBuffer(KCPUSET_BYTES);
  const t = await bootTest(4, { shared: { sets } });
  try {
    const set = kcpuset_shared(new Int32Array(sets));
    kcpuset_set(set, 0);
    const msg = { func: image.join_set, arg: set };
    kpreempt_disable();
    ipi_broadcast(msg, true);
    ipi_wait(msg);
    kpreempt_enable();
    assert.equal(kcpuset_countset(set), 4);
    assert.ok(kcpuset_match(set, kcpuset_attached));
  } finally {
    await t.machine.shutdown();
  }
});

test('kernel symbols: closures and non-exported functions are refused with a fix', T, async () => {
  const t = await bootTest(2);
  try {
    const local = (): void => {};
    assert.throws(() => ipi_register(local, 0), {
      name: 'IpiError',
      message: /ipi_register: func \(function local\) is not a kernel symbol: only functions exported by the machine's image modules/,
    });
    assert.throws(() => ipi_register(42 as never, 0), { name: 'TypeError', message: /ipi_register: func must be a function exported by an image module, got number 42/ });
    kpreempt_disable();
    assert.throws(() => ipi_unicast({ func: () => {}, arg: 0 }, cpu_lookup(1)), /msg\.func \(function func\) is not a kernel symbol/);
    kpreempt_enable();
  } finally {
    await t.machine.shutdown();
  }
});

test('cpu(9) and spl(9) basics: preemption nesting, IPL, cpu_info validation', T, async () => {
  const t = await bootTest(2);
  try {
    assert.equal(kpreempt_disabled(), false);
    kpreempt_disable();
    kpreempt_disable();
    assert.equal(kpreempt_disabled(), true);
    kpreempt_enable();
    assert.equal(kpreempt_disabled(), true);
    kpreempt_enable();
    assert.equal(kpreempt_disabled(), false);
    assert.throws(() => kpreempt_enable(), { name: 'IpiAssertionError', message: /^kpreempt_enable: assertion "l->l_nopreempt != 0" failed: preemption is not disabled/ });
    const s = splhigh();
    assert.equal(s, IPL_NONE);
    assert.equal(kpreempt_disabled(), true); // a raised IPL counts, as in NetBSD
    assert.equal(splhigh(), IPL_HIGH);
    splx(s);
    assert.equal(kpreempt_disabled(), false);
    spl0();
    assert.throws(() => splx(8), RangeError);
    assert.throws(() => splx('0' as never), TypeError);
    assert.equal(cpu_intr_p(), false);
    assert.throws(() => cpu_index({} as cpu_info), { name: 'TypeError', message: /cpu_index: ci must be a cpu_info/ });
    const stale = cpu_lookup(1);
    await t.machine.shutdown();
    const again = await bootTest(2);
    try {
      assert.throws(() => cpu_index(stale), /cpu_index: ci \(cpu1\) is not a CPU of the running machine/);
      kpreempt_disable();
      assert.throws(() => ipi_trigger(1, stale), /is not a CPU of the running machine/);
      kpreempt_enable();
    } finally {
      await again.machine.shutdown();
    }
  } finally {
    await t.machine.shutdown();
  }
});

test('an idle CPU uses no measurable CPU time and stays up until shutdown', T, async () => {
  const t = await bootTest(3);
  try {
    const id = ipi_register(image.count, 1);
    kpreempt_disable();
    ipi_trigger(id, cpu_lookup(1));
    kpreempt_enable();
    await until('the first trigger to run', () => t.row(1)[1] === 1);
    await sleep(100); // past any poll window
    const u0 = process.cpuUsage();
    await sleep(1000);
    const u = process.cpuUsage(u0);
    /* Three CPUs idle for a second: a polling one would use about 1e6 µs. */
    assert.ok(u.user + u.system < 100_000, `idle machine used ${u.user + u.system} µs of CPU in 1 s`);
    kpreempt_disable();
    ipi_trigger(id, cpu_lookup(1));
    ipi_trigger(id, cpu_lookup(2));
    kpreempt_enable();
    await until('triggers after an idle second', () => t.row(1)[1] === 2 && t.row(1)[2] === 1);
  } finally {
    await t.machine.shutdown();
  }
});
