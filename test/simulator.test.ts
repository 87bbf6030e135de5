/*
 * The simulated machine (boot({ simulate: { seed } })): the same seed
 * replays the same interleaving bit for bit, different seeds explore
 * different ones, and an interleaving bug planted in a test copy of a
 * facility (fixtures/workq.ts) is found by trying seeds and replayed
 * exactly from the one that failed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  boot, cpu_lookup, getmicrouptime, ipi_broadcast, ipi_register, ipi_trigger, ipi_wait, kpreempt_disable, kpreempt_enable, xc_barrier,
  xc_broadcast, xc_wait, XC_HIGHPRI, type Machine,
} from 'ipi';
import * as image from './fixtures/image.js';
import { WQ_BYTES, WQ_DONE, WQ_MAXCPUS, WQ_REQ, WQ_SENT, wq_burst, wq_handler } from './fixtures/workq.js';
import { imageUrl, ROW } from './helpers.js';

const T = { timeout: 120_000 };
const wqUrl = new URL('./fixtures/workq.js', import.meta.url);

/** Everything a run can observe: the log, the virtual time, the counters. */
async function workload(seed: number): Promise<string> {
  const log = new SharedArrayBuffer(64 * ROW * 4);
  const m = await boot({ ncpu: 4, image: imageUrl, shared: { log }, simulate: { seed } });
  try {
    /* Every CPU broadcasts from an interrupt handler, recording the order runs happen in; triggers; xcalls. */
    const st = { func: image.seq_storm, arg: { rounds: 10, row: 6 } };
    kpreempt_disable();
    ipi_broadcast(st);
    const id = ipi_register(image.sequence, 7);
    for (let c = 1; c < 4; c++) ipi_trigger(id, cpu_lookup(c));
    kpreempt_enable();
    ipi_wait(st);
    xc_wait(xc_broadcast(XC_HIGHPRI, image.sequence, 8, undefined));
    xc_wait(xc_broadcast(0, image.sequence, 8, undefined));
    xc_barrier(0);
    const counters = m.counters().map((c) => [c.doorbells, c.interrupts, c.sleeps, c.msg_handled]);
    return JSON.stringify({ log: Array.from(new Int32Array(log)), time: getmicrouptime(), counters });
  } finally {
    await m.shutdown();
  }
}

test('the same seed replays the same interleaving, bit for bit; other seeds give others', T, async () => {
  const a = await workload(7), b = await workload(7);
  assert.equal(a, b, 'the same seed: the same log, time and counters');
  const others = new Set<string>();
  for (let seed = 100; seed < 110; seed++) others.add(await workload(seed));
  assert.ok(others.size >= 8, `10 seeds gave only ${others.size} different runs`);
  assert.ok(!others.has(a));
});

interface wq_run { lost: number; trace: string }

/** One run of the work queue copy on a simulated machine: the requests lost, and everything observable. */
async function wq_run(seed: number, buggy: boolean): Promise<wq_run> {
  const wq = new SharedArrayBuffer(WQ_BYTES);
  const q = new Int32Array(wq);
  const ncpu = 4;
  const m: Machine = await boot({ ncpu, image: wqUrl, shared: { wq }, simulate: { seed } });
  try {
    const id = ipi_register(wq_handler, buggy);
    const burst = { func: wq_burst, arg: { id, n: 6 } };
    kpreempt_disable();
    ipi_broadcast(burst);
    kpreempt_enable();
    ipi_wait(burst);
    xc_barrier(XC_HIGHPRI); // every CPU has taken what was pending for it
    let lost = 0;
    for (let c = 0; c < ncpu; c++) lost += q[WQ_REQ + c]!;
    return { lost, trace: JSON.stringify({ q: Array.from(q.subarray(0, 4 * WQ_MAXCPUS)), t: getmicrouptime() }) };
  } finally {
    await m.shutdown();
  }
}

test('a planted interleaving bug is found by trying seeds, and its seed replays it exactly', T, async () => {
  /* The correct copy never loses a request, whatever the interleaving. */
  for (let seed = 1; seed <= 200; seed++) {
    const r = await wq_run(seed, false);
    assert.equal(r.lost, 0, `seed ${seed}: the correct copy lost ${r.lost} requests`);
  }
  /* The buggy copy loses some under some interleavings only. */
  let failing: number | undefined;
  let passing = 0;
  for (let seed = 1; seed <= 200 && failing === undefined; seed++) {
    const r = await wq_run(seed, true);
    if (r.lost > 0) failing = seed;
    else passing++;
  }
  assert.ok(failing !== undefined, 'no seed of 200 hit the window: the simulator explores too little');
  assert.ok(passing > 0, 'every seed failed: the bug is not an interleaving bug, the test is wrong');
  /* Replayed from its seed: the same failure, the same everything. */
  const first = await wq_run(failing, true), again = await wq_run(failing, true);
  assert.ok(first.lost > 0);
  assert.deepEqual(again, first, `seed ${failing} replays the same run`);
  const q = JSON.parse(first.trace) as { q: number[] };
  const sent = q.q.slice(WQ_SENT, WQ_SENT + 4).reduce((s, n) => s + n, 0), done = q.q.slice(WQ_DONE, WQ_DONE + 4).reduce((s, n) => s + n, 0);
  assert.equal(sent, 4 * 6);
  assert.equal(sent - done, first.lost, 'what was lost is what was never taken');
});
