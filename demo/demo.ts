/*
 * The demo: boot a machine with one CPU per core, drive asynchronous IPIs,
 * cross-calls, soft interrupts and xcalls across every CPU, then print the
 * event counters (as `vmstat -i` would) and cross-call latency against a
 * postMessage round trip measured in the same run.
 *
 *   npm start               # ncpu = available cores
 *   npm start -- --ncpu 4
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import {
  boot, cpu_lookup, ipi_register, ipi_trigger_broadcast, ipi_unicast, ipi_wait, kpreempt_disable, kpreempt_enable,
  softint_establish, softint_schedule_cpu, SOFTINT_NET, SOFTINT_RCPU, xc_broadcast, xc_wait, XC_HIGHPRI,
  type cpu_evcnt,
} from 'ipi';
import * as kernel from './kernel.js';

const argv = process.argv.slice(2);
const at = argv.indexOf('--ncpu');
const ncpu = at >= 0 ? Number(argv[at + 1]) : availableParallelism();
const ROUNDS = 2000;

function quantiles(xs: number[]): { median: number; p99: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, p99: s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]! };
}

/** postMessage round trips to a worker that echoes: the baseline. */
async function postMessageRoundTrips(n: number): Promise<number[]> {
  const w = new Worker('const { parentPort } = require("node:worker_threads"); parentPort.on("message", (m) => parentPort.postMessage(m));', { eval: true });
  const times: number[] = [];
  await new Promise<void>((resolve) => {
    let i = 0, t0 = 0;
    w.on('message', () => {
      times.push(performance.now() - t0);
      if (++i === n) return resolve();
      t0 = performance.now();
      w.postMessage(i);
    });
    t0 = performance.now();
    w.postMessage(0);
  });
  await w.terminate();
  return times;
}

function crossCallRoundTrips(n: number, target: number): number[] {
  const msg = { func: kernel.ping, arg: 0 };
  const ci = cpu_lookup(target);
  const times: number[] = [];
  kpreempt_disable();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    ipi_unicast(msg, ci);
    ipi_wait(msg);
    times.push(performance.now() - t0);
  }
  kpreempt_enable();
  return times;
}

function table(ev: cpu_evcnt[]): void {
  const cols = ['cpu', 'doorbells', 'interrupts', 'msg sent', 'msg handled', 'mbox full', 'sleeps', 'poll hits', 'softints', 'xcalls'];
  const rows = ev.map((c) => [`cpu${c.cpu}`, c.doorbells, c.interrupts, c.msg_sent, c.msg_handled, c.mbox_full, c.sleeps, c.poll_hits,
    c.softint_run, c.xcall_low + c.xcall_high].map(String));
  const w = cols.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((s, i) => (i === 0 ? s.padEnd(w[i]!) : s.padStart(w[i]!))).join('  ');
  console.log(line(cols));
  for (const r of rows) console.log(line(r));
  console.log('\nper IPI id (sent by / run on):');
  for (const c of ev) {
    for (const e of c.ipi) {
      console.log(`  cpu${c.cpu} id ${String(e.id).padStart(2)}: sent ${e.sent}, coalesced ${e.coalesced}, doorbells ${e.doorbells}, runs ${e.runs}`);
    }
  }
}

async function main(): Promise<void> {
  const percpu = new SharedArrayBuffer(8 * 256 * 4);
  const pc = new Int32Array(percpu);
  console.log(`booting ${ncpu} CPUs (${availableParallelism()} cores)...`);
  const machine = await boot({ ncpu, image: new URL('./kernel.js', import.meta.url), shared: { percpu } });
  try {
    /* Asynchronous IPIs: a tick on every CPU, many times; repeats while pending coalesce. */
    const tick = ipi_register(kernel.tick, 0);
    kpreempt_disable();
    for (let i = 0; i < ROUNDS; i++) ipi_trigger_broadcast(tick, false);
    kpreempt_enable();

    /* Cross-calls: a round trip to each other CPU. */
    const lat = new Map<number, number[]>();
    for (let c = 1; c < ncpu; c++) lat.set(c, crossCallRoundTrips(ROUNDS, c));

    /* softint(9): deferred work scheduled on every CPU from here. */
    const sih = softint_establish(SOFTINT_NET | SOFTINT_RCPU, kernel.deferred, 1);
    if (sih === null) throw new Error('softint table full');
    kpreempt_disable();
    for (let c = 0; c < ncpu; c++) softint_schedule_cpu(sih, cpu_lookup(c));
    kpreempt_enable();

    /* xcall(9): a TLB shootdown on every CPU, at both priorities. */
    xc_wait(xc_broadcast(0, kernel.tlb_shootdown, 7, 2));
    xc_wait(xc_broadcast(XC_HIGHPRI, kernel.tlb_shootdown, 8, 3));

    await new Promise((r) => setTimeout(r, 50));
    const row = (r: number): number[] => Array.from({ length: ncpu }, (_, c) => Atomics.load(pc, r * 256 + c));
    console.log(`\nticks run per CPU (${ROUNDS} broadcasts, coalesced while pending): ${row(0).join(' ')}`);
    console.log(`softints run per CPU: ${row(1).join(' ')}`);
    console.log(`TLB generation per CPU after low / high priority shootdowns: ${row(2).join(' ')} / ${row(3).join(' ')}\n`);
    table(machine.counters());

    if (ncpu > 1) {
      const base = quantiles((await postMessageRoundTrips(ROUNDS)).slice(100));
      console.log(`\nround trips, µs (median / p99), ${ROUNDS} each:`);
      console.log(`  postMessage to a worker (baseline): ${(base.median * 1e3).toFixed(1)} / ${(base.p99 * 1e3).toFixed(1)}`);
      for (const [c, times] of lat) {
        const q = quantiles(times.slice(100));
        console.log(`  ipi_unicast + ipi_wait to cpu${c}:    ${(q.median * 1e3).toFixed(1)} / ${(q.p99 * 1e3).toFixed(1)}` +
          `  (${(base.median / q.median).toFixed(1)}x faster than postMessage at the median)`);
      }
      if (ncpu > availableParallelism()) console.log('  (more CPUs than cores: CPUs share cores, and waking one takes a scheduler time slice)');
    }
  } finally {
    await machine.shutdown();
  }
}

await main();
