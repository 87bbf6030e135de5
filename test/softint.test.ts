/*
 * softint(9) with real worker threads: where and in which context a soft
 * interrupt runs, coalescing, level order within a service pass,
 * softint_disestablish against racing schedules and establishments, the
 * handler table's bound, the counters, every contract assertion and bad
 * input.  Handlers are kernel symbols of fixtures/kern_image.ts; they
 * record into the shared 'log' buffer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cpu_lookup, ipi_register, ipi_trigger, ipi_trigger_broadcast, ipi_unicast, ipi_unregister, ipi_wait, 
  IpiAssertionError, IpiError, IpiRemoteError, IPI_MAXREG, IPL_HIGH, IPL_SOFTBIO, IPL_SOFTCLOCK, IPL_SOFTNET,
  IPL_SOFTSERIAL, kpreempt_disable, kpreempt_enable,  softint_disestablish, softint_establish,
  softint_schedule, softint_schedule_cpu, splhigh, splraiseipl, splx, xc_broadcast, xc_wait, SOFTINT_BIO, SOFTINT_CLOCK,
  SOFTINT_MAXHANDLERS, SOFTINT_MPSAFE, SOFTINT_NET, SOFTINT_RCPU, SOFTINT_SERIAL, XC_HIGHPRI,
  type ipi_msg_t, type softint_cookie_t,
} from 'ipi';
import { bootKern as boot, bad, errorsOf, noteOf, preempt, ROW, sleep, startOn, until } from './helpers.js';
import { hold_and_act, type act_step } from './fixtures/image.js';
import {
  hard_sched, intr_disestablish,  si_chain, si_count, si_ctx,  si_tag,  xc_count,
} from './fixtures/kern_image.js';

const T = { timeout: 60_000 };

/** Entries of a sequence row recorded by kern_image: tag, IPL, softintr, intr. */
const tagOf = (e: number): number => e & 0xff;
const iplOf = (e: number): number => (e >> 8) & 0xf;
const softOf = (e: number): boolean => (e & (1 << 12)) !== 0;
const intrOf = (e: number): boolean => (e & (1 << 13)) !== 0;

test('a remote softint_schedule_cpu runs the handler once on that CPU, in soft interrupt context below IPL_HIGH', T, async () => {
  const t = await boot(3);
  try {
    const ROWN = 1; // runs per CPU; ROWN + 1: context of the run
    const before = t.machine.counters();
    const c = softint_establish(SOFTINT_NET | SOFTINT_RCPU | SOFTINT_MPSAFE, si_ctx, ROWN)!;
    assert.notEqual(c, null);
    for (let k = 0; k < 3; k++) {
      preempt(() => softint_schedule_cpu(c, cpu_lookup(k)));
      await until(`the run on cpu${k}`, () => t.row(ROWN)[k] === 1);
    }
    await sleep(30);
    assert.deepEqual(t.row(ROWN), [1, 1, 1], 'once on each CPU, nowhere else');
    /* softintr, preemption disabled, ran, at IPL_SOFTNET; not intr. */
    const soft = 2 | 4 | 8 | (IPL_SOFTNET << 4);
    assert.deepEqual(t.row(ROWN + 1), [soft, soft, soft]);
    assert.ok(IPL_SOFTNET < IPL_HIGH);

    const after = t.machine.counters();
    const d = (cpu: number, k: 'softint_scheduled' | 'softint_remote' | 'softint_run'): number => after[cpu]![k] - before[cpu]![k];
    assert.equal(d(0, 'softint_remote'), 2, 'two remote schedules from cpu0');
    assert.deepEqual([0, 1, 2].map((k) => d(k, 'softint_scheduled')), [1, 1, 1]);
    assert.deepEqual([0, 1, 2].map((k) => d(k, 'softint_run')), [1, 1, 1]);
    assert.deepEqual([1, 2].map((k) => d(k, 'softint_remote')), [0, 0]);
    softint_disestablish(c);
  } finally {
    await t.machine.shutdown();
  }
});

test('soft interrupts run after the hard handlers of their pass, highest level first, FIFO within a level', T, async () => {
  const t = await boot(2);
  try {
    const ROWS = 2;
    const levels = [SOFTINT_CLOCK, SOFTINT_BIO, SOFTINT_SERIAL, SOFTINT_NET, SOFTINT_CLOCK, SOFTINT_SERIAL, SOFTINT_BIO, SOFTINT_NET];
    const cookies = levels.map((lv, i) => softint_establish(lv, si_tag, (ROWS << 8) | (i + 1))!);
    const expected = [3, 6, 4, 8, 2, 7, 1, 5]; // SERIAL, NET, BIO, CLOCK; each in scheduling order
    const ipl = [IPL_SOFTCLOCK, IPL_SOFTBIO, IPL_SOFTNET, IPL_SOFTSERIAL];

    /* On cpu1: a hard IPI handler schedules all eight, recording before and after. */
    const id = ipi_register(hard_sched, { row: ROWS, tag: 100, cookies });
    preempt(() => ipi_trigger(id, cpu_lookup(1)));
    await until('ten entries', () => t.seq(ROWS).length === 10);
    await sleep(20);
    const seq = t.seq(ROWS);
    assert.deepEqual(seq.map(tagOf), [100, 101, ...expected]);
    for (const e of seq.slice(0, 2)) assert.ok(intrOf(e) && !softOf(e) && iplOf(e) === IPL_HIGH, 'the hard handler: intr, IPL_HIGH');
    seq.slice(2).forEach((e, i) => {
      assert.ok(softOf(e) && !intrOf(e), `entry ${i}: soft interrupt context`);
      assert.equal(iplOf(e), ipl[levels[expected[i]! - 1]!], `entry ${i}: at its level's IPL`);
    });
    ipi_unregister(id);

    /* On cpu0, scheduled from thread context: the same order. */
    t.log.fill(0, ROWS * ROW, (ROWS + 1) * ROW);
    preempt(() => cookies.forEach((c) => softint_schedule(c)));
    await until('eight entries', () => t.seq(ROWS).length === 8);
    assert.deepEqual(t.seq(ROWS).map(tagOf), expected);

    /* The same pass on cpu1: a hard handler and a remote schedule taken together while cpu1 was busy. */
    const ROWP = 3;
    const cr = softint_establish(SOFTINT_SERIAL | SOFTINT_RCPU, si_tag, (ROWP << 8) | 9)!;
    const idh = ipi_register(hard_sched, { row: ROWP, tag: 100, cookies: [] });
    const release = 30 * ROW;
    /* cpu1 busy; meanwhile cpu0 schedules the soft interrupt there and triggers the hard one, then releases it. */
    const steps: act_step[] = [{ schedule: cr, cpu: 1 }, { trigger: idh, cpu: 1 }, { set: release }];
    const hold = { func: hold_and_act, arg: { release, cpu: 0, steps } };
    preempt(() => ipi_unicast(hold, cpu_lookup(1)));
    ipi_wait(hold);
    await until('three entries', () => t.seq(ROWP).length === 3);
    assert.deepEqual(t.seq(ROWP).map(tagOf), [100, 101, 9]);
    ipi_unregister(idh);
    softint_disestablish(cr);
    for (const c of cookies) softint_disestablish(c);
  } finally {
    await t.machine.shutdown();
  }
});

test('a pending soft interrupt coalesces: scheduled several times before it can run, it runs once', T, async () => {
  const t = await boot(2);
  try {
    const ROWN = 4;
    const c = softint_establish(SOFTINT_BIO | SOFTINT_RCPU, si_count, ROWN)!;
    let before = t.machine.counters();

    /* Locally, from thread context: nothing runs before an interrupt point. */
    preempt(() => {
      for (let i = 0; i < 5; i++) softint_schedule(c);
    });
    assert.equal(t.row(ROWN)[0], 0, 'not run inside softint_schedule');
    await until('the run on cpu0', () => t.row(ROWN)[0] >= 1);
    await sleep(30);
    assert.deepEqual(t.row(ROWN), [1, 0]);
    let after = t.machine.counters();
    assert.equal(after[0]!.softint_scheduled - before[0]!.softint_scheduled, 1, 'queued once');
    assert.equal(after[0]!.softint_run - before[0]!.softint_run, 1);

    /* Once it has run, scheduling it again runs it again. */
    preempt(() => softint_schedule(c));
    await until('the second run', () => t.row(ROWN)[0] === 2);

    /* On cpu1, by a hard handler that schedules it five times in one pass. */
    const id = ipi_register(hard_sched, { row: ROWN + 1, tag: 1, cookies: [c, c, c, c, c] });
    preempt(() => ipi_trigger(id, cpu_lookup(1)));
    await until('the run on cpu1', () => t.row(ROWN)[1] === 1);
    ipi_unregister(id);

    /* Remotely, five times while cpu1 is busy: one trigger, four coalesced, one run. */
    before = t.machine.counters();
    const release = 30 * ROW;
    const hold = { func: hold_and_act, arg: { release, cpu: 0, steps: [{ schedule: c, cpu: 1, n: 5 }, { set: release }] satisfies act_step[] } };
    preempt(() => ipi_unicast(hold, cpu_lookup(1)));
    ipi_wait(hold);
    await until('the second run on cpu1', () => t.row(ROWN)[1] === 2);
    await sleep(30);
    assert.deepEqual(t.row(ROWN), [2, 2]);
    after = t.machine.counters();
    assert.equal(after[0]!.softint_remote - before[0]!.softint_remote, 5);
    assert.equal(after[1]!.softint_scheduled - before[1]!.softint_scheduled, 1);
    assert.equal(after[1]!.softint_run - before[1]!.softint_run, 1);
    const sent = (cs: typeof after, k: 'sent' | 'coalesced'): number => cs[0]!.ipi.reduce((s, e) => s + (e.id === 0 ? 0 : e[k]), 0);
    assert.equal(sent(after, 'sent') - sent(before, 'sent'), 5);
    assert.equal(sent(after, 'coalesced') - sent(before, 'coalesced'), 4);
    softint_disestablish(c);
  } finally {
    await t.machine.shutdown();
  }
});

test('a soft interrupt scheduled from a lower level, or from a hard handler run locally, is not left pending', T, async () => {
  const t = await boot(2);
  try {
    const ROWS = 5;
    const serial = softint_establish(SOFTINT_SERIAL, si_tag, (ROWS << 8) | 9)!;
    const clock = softint_establish(SOFTINT_CLOCK, si_chain, { row: ROWS, tag: 1, cookie: serial })!;
    /* Scheduled at IPL_HIGH; splx() is the interrupt point that runs them, all of them. */
    kpreempt_disable();
    const s = splhigh();
    softint_schedule(clock);
    kpreempt_enable();
    splx(s);
    const seq = t.seq(ROWS);
    assert.deepEqual(seq.map(tagOf), [1, 2, 9], 'the SERIAL handler the CLOCK handler scheduled ran before splx returned');
    assert.equal(iplOf(seq[2]!), IPL_SOFTSERIAL);

    /*
     * ipi_trigger_broadcast runs the calling CPU's handler at once, in the
     * caller's thread; the soft interrupt that handler schedules must still run.
     */
    const ROWB = 6;
    const c = softint_establish(SOFTINT_NET, si_count, ROWB)!;
    const id = ipi_register(hard_sched, { row: ROWB + 1, tag: 1, cookies: [c] });
    preempt(() => ipi_trigger_broadcast(id, false));
    await until('the run on both CPUs', () => t.row(ROWB)[0] === 1 && t.row(ROWB)[1] === 1, 5000);
    ipi_unregister(id);
    for (const h of [c, clock, serial]) softint_disestablish(h);
  } finally {
    await t.machine.shutdown();
  }
});

test('establishing and disestablishing on several CPUs at once never loses or duplicates a run', T, async () => {
  const t = await boot(3);
  const errors = errorsOf(t);
  try {
    const ROWE = 20; // runs, lost, table full
    const done = 19 * ROW;
    const ERR = 23;
    const iters = 150;
    for (let k = 1; k < 3; k++) startOn(k, 'establish_loop', { iters, level: SOFTINT_BIO, row: ROWE }, done, ERR);
    await until('both loops done', () => Atomics.load(t.log, done) === 2, 40_000);
    for (let k = 1; k < 3; k++) assert.equal(t.row(ERR)[k], 0, `cpu${k}: ${noteOf(t.log, k)}`);
    assert.deepEqual(t.row(ROWE + 1), [0, 0, 0], 'no run lost or doubled');
    assert.deepEqual(t.row(ROWE + 2), [0, 0, 0], 'the table never full');
    assert.deepEqual(t.row(ROWE), [0, iters, iters]);
    assert.deepEqual(errors, []);
  } finally {
    await t.machine.shutdown();
  }
});

test('remote schedules of SOFTINT_RCPU handlers are not lost while other CPUs disestablish theirs', T, async () => {
  const t = await boot(4);
  const errors = errorsOf(t);
  try {
    const done = 29 * ROW;
    const ROWL = 30; // row + 1: lost runs; row + 2 + cpu: runs of that CPU's handlers, per target
    for (const k of [1, 3]) startOn(k, 'rcpu_loop', { iters: 150, target: 2, row: ROWL }, done, 40);
    await until('both loops done', () => Atomics.load(t.log, done) === 2, 40_000);
    assert.deepEqual(t.row(40), [0, 0, 0, 0]);
    assert.deepEqual(t.row(ROWL + 1), [0, 0, 0, 0], 'no remote schedule lost');
    assert.equal(t.row(ROWL + 3)[2], 150);
    assert.equal(t.row(ROWL + 5)[2], 150);
    assert.deepEqual(errors, []);
  } finally {
    await t.machine.shutdown();
  }
});

test('contract assertions: preemption disabled, SOFTINT_RCPU for a remote CPU, thread context to disestablish', T, async () => {
  const t = await boot(2);
  try {
    const local = softint_establish(SOFTINT_NET, si_count, 24)!;
    assert.throws(() => softint_schedule(local), {
      name: 'IpiAssertionError',
      message: 'softint_schedule: assertion "kpreempt_disabled()" failed: call it with preemption disabled (kpreempt_disable())',
    });
    assert.throws(() => softint_schedule_cpu(local, cpu_lookup(0)), {
      name: 'IpiAssertionError',
      message: 'softint_schedule_cpu: assertion "kpreempt_disabled()" failed: call it with preemption disabled (kpreempt_disable())',
    });
    assert.throws(() => softint_schedule_cpu(local, cpu_lookup(1)), IpiAssertionError);
    assert.throws(() => preempt(() => softint_schedule_cpu(local, cpu_lookup(1))), {
      name: 'IpiAssertionError',
      message: 'softint_schedule_cpu: assertion "sh->sh_flags & SOFTINT_RCPU" failed: ' +
        `establish the handler with SOFTINT_RCPU to schedule it on a remote CPU (${local})`,
    });
    /* Without SOFTINT_RCPU the current CPU is still fine, through either call. */
    preempt(() => softint_schedule_cpu(local, cpu_lookup(0)));
    await until('the local run', () => t.row(24)[0] === 1);

    /* softint_disestablish waits: not from interrupt context. */
    const msg: ipi_msg_t<number> = { func: intr_disestablish, arg: local };
    preempt(() => ipi_unicast(msg, cpu_lookup(1)));
    assert.throws(() => ipi_wait(msg), (e: unknown) => {
      assert.ok(e instanceof IpiRemoteError);
      assert.equal(e.remoteName, 'IpiAssertionError');
      assert.match(e.message, /softint_disestablish: assertion "!cpu_intr_p\(\) && !cpu_softintr_p\(\)" failed/);
      return true;
    });
    /* Nor at a raised IPL. */
    const s = splraiseipl(IPL_SOFTCLOCK);
    try {
      assert.throws(() => softint_disestablish(local), {
        name: 'IpiAssertionError',
        message: /^softint_disestablish: assertion "curcpu\(\)->ci_ilevel == IPL_NONE" failed: it waits for every CPU, this one included: splx\(\) first/,
      });
    } finally {
      splx(s);
    }
    /* The refused calls left it established and working; it is disestablished once only. */
    preempt(() => softint_schedule(local));
    await until('a run after the refused calls', () => t.row(24)[0] === 2);
    softint_disestablish(local);
    assert.throws(() => softint_disestablish(local), {
      name: 'IpiError',
      message: `softint_disestablish: cookie ${local} is not an established soft interrupt (disestablished already?)`,
    });
  } finally {
    await t.machine.shutdown();
  }
});

test('without diagnostic, the preemption assertion is not checked', T, async () => {
  const t = await boot(2, { diagnostic: false });
  try {
    const c = softint_establish(SOFTINT_NET, si_count, 24)!;
    softint_schedule(c);
    await until('the run', () => t.row(24)[0] === 1);
    softint_disestablish(c);
  } finally {
    await t.machine.shutdown();
  }
});

test('bad input: TypeError or RangeError naming the parameter; forged and stale cookies refused', T, async () => {
  const t = await boot(2);
  try {
    const lvl = 'a SOFTINT_* level, optionally | SOFTINT_MPSAFE | SOFTINT_RCPU';
    assert.throws(() => softint_establish(bad('1'), si_count, 0), {
      name: 'TypeError', message: 'softint_establish: flags must be a number, got string "1"',
    });
    for (const f of [4, 0x400, 1.5, -1, SOFTINT_NET | 0x10000, NaN]) {
      assert.throws(() => softint_establish(f, si_count, 0), { name: 'RangeError', message: `softint_establish: flags must be ${lvl}, got number ${f}` });
    }
    assert.throws(() => softint_establish(SOFTINT_NET, bad(42), 0), {
      name: 'TypeError', message: 'softint_establish: func must be a function exported by an image module, got number 42',
    });
    assert.throws(() => softint_establish(SOFTINT_NET, (x: number) => void x, 0), (e: unknown) =>
      e instanceof IpiError && /^softint_establish: func \(function [\w(). ]*\) is not a kernel symbol/.test(e.message));
    assert.throws(() => softint_establish(SOFTINT_NET, si_count, bad(new Map())), { name: 'TypeError', message: /^softint_establish: arg must be sendable/ });
    assert.throws(() => softint_establish(SOFTINT_NET, si_count, bad(() => 0)), { name: 'TypeError', message: /^softint_establish: arg must be sendable/ });

    const cookieType = 'a softint cookie (a number from softint_establish)';
    for (const fn of [softint_schedule, softint_disestablish] as const) {
      assert.throws(() => preempt(() => fn(bad('x'))), { name: 'TypeError', message: `${fn.name}: cookie must be ${cookieType}, got string "x"` });
      for (const v of [0, -3, 1.5, NaN, 2 ** 60]) {
        assert.throws(() => preempt(() => fn(bad(v))), { name: 'RangeError', message: `${fn.name}: cookie must be a cookie from softint_establish, got number ${v}` });
      }
    }
    const c = softint_establish(SOFTINT_NET | SOFTINT_RCPU, si_count, 25)!;
    assert.throws(() => preempt(() => softint_schedule_cpu(c, bad(1))), {
      name: 'TypeError', message: 'softint_schedule_cpu: ci must be a cpu_info (curcpu(), cpu_lookup()), got number 1',
    });
    assert.throws(() => preempt(() => softint_schedule_cpu(bad(null), cpu_lookup(1))), { name: 'TypeError', message: /^softint_schedule_cpu: cookie must be/ });

    /* No number other than an established cookie is one, the library's own handlers' included. */
    for (let k = 1; k <= 6 * SOFTINT_MAXHANDLERS; k++) {
      if (k === c) continue;
      const forged = k as softint_cookie_t;
      assert.throws(() => preempt(() => softint_schedule(forged)), { name: 'IpiError', message: /is not an established soft interrupt/ }, `cookie ${k}`);
      assert.throws(() => softint_disestablish(forged), { name: 'IpiError', message: /is not an established soft interrupt/ }, `cookie ${k}`);
    }
    softint_disestablish(c);
    assert.throws(() => preempt(() => softint_schedule_cpu(c, cpu_lookup(1))), {
      name: 'IpiError', message: `softint_schedule_cpu: cookie ${c} is not an established soft interrupt (disestablished already?)`,
    });
    /* xcalls at high priority (the library's soft interrupts) still work. */
    xc_wait(xc_broadcast(XC_HIGHPRI, xc_count, 26, 1));
    assert.deepEqual(t.row(26), [1, 1]);
  } finally {
    await t.machine.shutdown();
  }
});

test('the handler table holds SOFTINT_MAXHANDLERS - 4 handlers; SOFTINT_RCPU ones also take an IPI id', T, async () => {
  const t = await boot(2);
  try {
    const all: softint_cookie_t[] = [];
    for (;;) {
      const c = softint_establish(SOFTINT_CLOCK, si_count, 27);
      if (c === null) break;
      all.push(c);
    }
    assert.equal(all.length, SOFTINT_MAXHANDLERS - 4);
    assert.equal(softint_establish(SOFTINT_SERIAL, si_count, 27), null, 'still full');
    softint_disestablish(all.pop()!);
    const again = softint_establish(SOFTINT_SERIAL, si_count, 27);
    assert.notEqual(again, null, 'a freed slot is usable again');
    all.push(again!);
    /* Every one of them works. */
    preempt(() => all.forEach((c) => softint_schedule(c)));
    await until('every handler ran', () => t.row(27)[0] === SOFTINT_MAXHANDLERS - 4);
    for (const c of all.splice(0)) softint_disestablish(c);

    /* SOFTINT_RCPU: bounded by the IPI ids too (IPI_MAXREG - 1 usable); a refused one leaks no slot. */
    const rcpu: softint_cookie_t[] = [];
    for (;;) {
      const c = softint_establish(SOFTINT_NET | SOFTINT_RCPU, si_count, 28);
      if (c === null) break;
      rcpu.push(c);
    }
    assert.equal(rcpu.length, IPI_MAXREG - 1);
    const plain: softint_cookie_t[] = [];
    for (;;) {
      const c = softint_establish(SOFTINT_NET, si_count, 28);
      if (c === null) break;
      plain.push(c);
    }
    assert.equal(plain.length, SOFTINT_MAXHANDLERS - 4 - (IPI_MAXREG - 1));
    for (const c of rcpu) preempt(() => softint_schedule_cpu(c, cpu_lookup(1)));
    await until('every remote run', () => t.row(28)[1] === IPI_MAXREG - 1);
    for (const c of [...rcpu, ...plain]) softint_disestablish(c);
    /* Their IPI ids are free again. */
    const id = ipi_register(si_count, 0);
    assert.equal(id, 1);
    ipi_unregister(id);
  } finally {
    await t.machine.shutdown();
  }
});

test('SOFTINT_MPSAFE and the levels have NetBSD\'s values and order', () => {
  assert.ok(SOFTINT_CLOCK < SOFTINT_BIO && SOFTINT_BIO < SOFTINT_NET && SOFTINT_NET < SOFTINT_SERIAL);
  assert.equal(SOFTINT_CLOCK, 0);
  assert.equal(SOFTINT_SERIAL, 3);
  assert.equal(SOFTINT_MPSAFE & 0xff, 0);
  assert.equal(SOFTINT_RCPU & 0xff, 0);
  assert.equal(SOFTINT_MAXHANDLERS, 64);
});
