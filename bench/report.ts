/*
 * The benchmark's report: the table of rows, the details behind it, how
 * noisy the run was, the targets (each MET or NOT MET, with the measured
 * reason for a miss), and the two files bench/results/latest.json and
 * bench/results/latency.svg.  Nothing here measures: it reads Results.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ALLOC_CALLS, ALLOC_RESOLUTION, type AllocResult, type AllocSites, type Side } from './alloc.js';
import type { Environment, LoadBetween } from './env.js';
import type { CounterDelta } from './machines.js';
import { TRIG_BATCH } from './measure.js';
import { type Row, type Rows } from './rows.js';
import { SIM_ROUNDS, SIM_SECONDS, type SimResult } from './sim.js';
import { fmt, median, quantiles, type Quantiles, round4, times } from './stats.js';
import { latencyChart } from './svg.js';

export interface CoalescedTotals {
  sent: number;
  coalesced: number;
  runs: number;
  blocks: number;
  /** Every block: all triggers but the first coalesced, and the handler ran once. */
  held: boolean;
}

export interface TriggerTotals {
  coalesced: CoalescedTotals;
  coalescedNoDiag: CoalescedTotals;
  /** Triggers that waited for the handler between them: all should have rung (none coalesced). */
  ringing: { sent: number; coalesced: number };
}

export interface ScanRow {
  ncpu: number;
  poll: number;
  pollDefault: boolean;
  send: Quantiles;
  total: Quantiles;
}

/** One block of cross-calls to a polling cpu1. */
export interface PollBlock {
  median: number;
  /** cpu1's sleeps on its doorbell per call. */
  targetSleepRate: number;
  /** The poll windows of cpu0 and cpu1 at the block's start, µs (0: closed). */
  startWindows: [number, number];
}

export interface Results {
  env: Environment;
  quick: boolean;
  rounds: number;
  passes: number;
  roundsSeconds: number;
  buildingBlocks: { clock: number; notify: number; load: number };
  rows: Rows;
  counters: Map<string, CounterDelta>;
  triggers: TriggerTotals;
  pollWindows: Record<string, number[]>;
  pollBlocks: PollBlock[];
  peerVersions: Record<string, string>;
  alloc: { polling: AllocResult[]; sleepy: AllocResult[]; sites: [AllocSites, AllocSites] };
  scan: ScanRow[];
  sim: SimResult;
  load: { before: number[]; after: number[]; between: LoadBetween };
}

/** Where the files go: bench/results/ in the source tree (this file runs from build/bench/). */
const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));

/** Target (f): coalesced triggers per second. */
const TARGET_TRIGGER_RATE = 5e6;

const pct = (x: number): string => `${Math.round(100 * x)}%`;
const loads = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');

/* ---------------------------------------------------------------- table */

const W_NAME = 44;
const W_RATIO = 25;

function ratioText(rows: Rows, row: Row): string {
  const base = row.spec.baseline;
  if (base === undefined) return `baseline '${row.spec.short}'`;
  return `${times(rows.ratio(row))} ${rows.get(base).spec.short}`;
}

function printTable(r: Results): void {
  console.log(`\nmedian and p99 over ${r.rounds} rounds of ${r.passes} interleaved passes; ratio = median / the named baseline's median (baselines are marked)`);
  console.log(`  ${'name'.padEnd(W_NAME)} ${'n'.padStart(7)} ${'median'.padStart(8)} ${'p99'.padStart(8)}  ${'ratio'.padEnd(W_RATIO)} what it measures`);
  let section = '';
  for (const row of r.rows.measured()) {
    if (row.spec.section !== section) {
      section = row.spec.section;
      console.log(`  -- ${section}${row.spec.unit === 'µs' ? ', µs' : ''}`);
    }
    const q = row.series.q;
    console.log(`  ${row.spec.name.padEnd(W_NAME)} ${String(q.n).padStart(7)} ${fmt(q.p50).padStart(8)} ${fmt(q.p99).padStart(8)}  ` +
      `${ratioText(r.rows, row).padEnd(W_RATIO)} ${row.spec.explain}${row.spec.kind === 'batch' ? ' [batch means]' : ''}`);
  }
}

/* -------------------------------------------------------------- details */

function printCounters(r: Results): void {
  console.log('\nwhat the counters saw over the timed blocks (sleeps on a doorbell, per call):');
  const line = (id: string, label: string): void => {
    const c = r.counters.get(id);
    if (c === undefined) return;
    console.log(`  ${label.padEnd(40)} ${String(c.calls).padStart(7)} calls: targets slept ${c.targetSleepRate.toFixed(3)}/call` +
      ` (poll hits ${c.targetPollHits}), cpu0 slept ${c.callerSleepRate.toFixed(3)}/call`);
  };
  line('poll', '2 CPUs polling, ipi_unicast + ipi_wait');
  line('nodiag', 'the same, diagnostic off');
  line('pollAsync', 'the same, await ipi_wait_async');
  line('softPoll', '2 CPUs polling, softint round trip');
  line('ringRT', '2 CPUs polling, ringing ipi_trigger');
  line('sleepy', '2 CPUs poll 0, ipi_unicast + ipi_wait');
  line('softSleep', '2 CPUs poll 0, softint round trip');
  line('bcast4', '4 CPUs, ipi_broadcast + ipi_wait');
  const windows = Object.entries(r.pollWindows).map(([m, w]) => `${m} ${[...new Set(w)].join('/')}`).join('; ');
  console.log(`  cpu1's poll window at the end of each round, µs: ${windows}`);
}

function coalescedRate(r: Results, id: 'coalesced' | 'coalescedNoDiag'): number {
  return 1e9 / r.rows.median(id);
}

function printTriggers(r: Results): void {
  const t = r.triggers;
  const perBlock = Math.round(t.coalesced.sent / Math.max(1, t.coalesced.blocks));
  console.log(`\ntrigger rates (coalesced: ${t.coalesced.blocks} blocks of ${perBlock} triggers, timed in batches of ${TRIG_BATCH}):`);
  const held = (c: CoalescedTotals): string => (c.held ? `all but the first of each block coalesced, handler ran ${c.runs} times in ${c.blocks} blocks`
    : `COALESCING DID NOT HOLD: ${c.coalesced} of ${c.sent} coalesced, ${c.runs} handler runs in ${c.blocks} blocks`);
  console.log(`  coalesced ipi_trigger:           ${(coalescedRate(r, 'coalesced') / 1e6).toFixed(1)} M/s (${held(t.coalesced)})`);
  console.log(`  coalesced, diagnostic off:       ${(coalescedRate(r, 'coalescedNoDiag') / 1e6).toFixed(1)} M/s (${held(t.coalescedNoDiag)})`);
  const rt = r.rows.median('ringRT');
  console.log(`  ringing, one at a time:          ${(1 / rt).toFixed(2)} M/s = 1 / the ${fmt(rt)} µs trigger-to-handler round trip` +
    ` (${t.ringing.sent} sent, ${t.ringing.coalesced} coalesced: ${t.ringing.coalesced === 0 ? 'every one rang' : 'SOME DID NOT RING'})`);
}

function printScan(r: Results): void {
  console.log(`\nipi_broadcast(msg, false) + ipi_wait by CPU count, µs (after the rounds, one machine each; ${r.env.cores} cores: past ${r.env.cores} CPUs they are oversubscribed)`);
  console.log(`  ${'ncpu'.padEnd(5)} ${'poll µs'.padEnd(12)} ${'n'.padStart(6)} ${'send med'.padStart(9)} ${'/remote'.padStart(8)} ${'send p99'.padStart(9)} ${'total med'.padStart(10)} ${'p99'.padStart(8)}`);
  for (const s of r.scan) {
    const per = s.ncpu > 1 ? fmt(s.send.p50 / (s.ncpu - 1)) : '-';
    console.log(`  ${String(s.ncpu).padEnd(5)} ${`${s.poll}${s.pollDefault ? ' (default)' : ''}`.padEnd(12)} ${String(s.total.n).padStart(6)} ${fmt(s.send.p50).padStart(9)}` +
      ` ${per.padStart(8)} ${fmt(s.send.p99).padStart(9)} ${fmt(s.total.p50).padStart(10)} ${fmt(s.total.p99).padStart(8)}` +
      (s.ncpu > r.env.cores ? '  oversubscribed' : s.ncpu === 1 ? '  local run only' : ''));
  }
}

/** Bytes per call; a negative estimate is shown as 0*: below what the probe resolves. */
function bytes(d: Side): string {
  return d.belowResolution ? '0*' : `${d.perCall.toFixed(2)}`;
}
const BELOW = '0* = the estimate came out negative: below the probe\'s resolution, shown as 0';

function printAllocation(r: Results): void {
  const side = (d: Side): string => `${bytes(d).padStart(7)} B/call, ${String(d.gcs).padStart(2)} GCs (${String(d.shrank).padStart(2)} chunks shrank)`;
  const line = (a: AllocResult): void => console.log(`    ${a.label.padEnd(40)} ${String(a.calls).padStart(6)}  sender ${side(a.sender)}  target ${side(a.target)}`);
  console.log('\nallocation per cross-call: young-generation growth per call on each CPU (v8.getHeapSpaceStatistics around chunks of calls,');
  console.log(`median of the chunks without a scavenge, probe overhead subtracted; ${BELOW}):`);
  console.log('  cpu1 polling, 50 chunks of 2000:');
  for (const a of r.alloc.polling) line(a);
  console.log('  poll 0 (cpu1 sleeps on Atomics.waitAsync between calls), 50 chunks of 500:');
  for (const a of r.alloc.sleepy) line(a);
  console.log(`  where, over ${ALLOC_CALLS} more integer-arg calls (V8 sampling heap profiler, collected objects included; site < caller):`);
  for (const [who, x] of [['sender cpu0', r.alloc.sites[0]], ['target cpu1', r.alloc.sites[1]]] as const) {
    console.log(`    ${who}: ${(x.total / ALLOC_CALLS).toFixed(1)} B/call sampled`);
    for (const [site, b] of x.sites) console.log(`      ${(b / ALLOC_CALLS).toFixed(1).padStart(6)} B/call  ${site}`);
  }
}

function printSimulator(r: Results): void {
  const s = r.sim;
  console.log(`\nsimulated machine (boot({ simulate: { seed } }): every CPU on this thread, one seed per run), ${SIM_SECONDS} s of runs:`);
  console.log(`  a run: boot 4 CPUs, each cross-calls the 3 others ${SIM_ROUNDS} times from an interrupt handler (${s.calls} calls), shut down`);
  console.log(`  ${s.runs} runs = ${Math.round(s.runs / SIM_SECONDS)} interleavings/s (boot included); ${Math.round(s.steps / SIM_SECONDS / 1000)} k scheduler steps/s, ` +
    `${Math.round((s.runs * s.calls) / SIM_SECONDS / 1000)} k cross-calls/s; a run without boot and shutdown: ${fmt(s.workMs * 1000)} µs median`);
}

/* ---------------------------------------------------------------- noise */

interface NoiseRow {
  id: string;
  name: string;
  blockMedians: number[];
  min: number;
  max: number;
  spread: number;
  /** Share of the blocks in the slow mode: a median over SLOW_MODE times the row's fastest block's. */
  slowShare: number;
}

/** The raw baselines whose block-to-block spread measures the run's noise. */
const NOISE_ROWS = ['spin', 'wait', 'waitAsync', 'waitAsync2', 'pm', 'pm3', 'rawCheck'];
/** ipi rows whose spread is shown beside them, with names that stand outside their table section. */
const NOISE_ROWS_IPI: Record<string, string> = {
  poll: 'ipi_unicast + ipi_wait, cpu1 polling', sleepy: 'ipi_unicast + ipi_wait, poll 0', bcast4: 'ipi_broadcast + ipi_wait, 4 CPUs',
};
/** A block whose median is this many times the row's fastest block's counts as slow. */
const SLOW_MODE = 4;

function noiseRow(r: Results, id: string, name: string): NoiseRow {
  const m = r.rows.get(id).series.blockMedians();
  const min = Math.min(...m), max = Math.max(...m);
  return { id, name, blockMedians: m, min, max, spread: max / min, slowShare: m.filter((x) => x > SLOW_MODE * min).length / m.length };
}

function printNoise(r: Results, raw: NoiseRow[], ipi: NoiseRow[]): void {
  const l = r.load.between;
  console.log(`\nhow noisy the run was: ${r.env.cores} cores; load average (1, 5, 15 min) ${loads(r.load.before)} before, ${loads(r.load.after)} after`);
  if (l.busyPct !== null) {
    console.log(`  over the ${l.seconds.toFixed(0)} s: cores busy ${l.busyPct.toFixed(0)}% of the time: this benchmark ${l.selfPct.toFixed(0)}%, ` +
      `other processes ${l.othersPct!.toFixed(0)}%, stolen by the hypervisor ${l.stealPct!.toFixed(1)}% (/proc/stat)`);
  }
  console.log(`  per-block medians (a block: one row's turn in one pass), min .. max (max/min), over ${r.rounds * r.passes} blocks; ` +
    `slow: the share of blocks over ${SLOW_MODE}x the row's fastest`);
  const line = (n: NoiseRow): void => {
    const unit = r.rows.get(n.id).spec.unit;
    console.log(`    ${n.name.padEnd(W_NAME)} ${fmt(n.min).padStart(8)} .. ${fmt(n.max).padEnd(8)} ${unit}  (${times(n.spread).padStart(6)})  slow ${pct(n.slowShare).padStart(4)}`);
  };
  for (const n of raw) line(n);
  console.log('    and for comparison, ipi:');
  for (const n of ipi) line(n);
  const bimodal = [...raw, ...ipi].filter((n) => n.slowShare >= 0.1 && n.slowShare <= 0.9);
  if (bimodal.length > 0) {
    const rawMost = Math.max(...raw.map((n) => n.slowShare));
    console.log(`  ${bimodal.map((n) => `${n.name.trim()} (${pct(n.slowShare)})`).join(', ')}: blocks ran at one of two speeds, a fast one and one ` +
      `${SLOW_MODE}x or more slower, and kept it for the whole block (the raw baselines did so in ${pct(rawMost)} of their blocks at most). ` +
      'A row\'s pooled median lands in whichever speed holds most of its samples, or between them, so the targets below are judged on paired ' +
      'blocks (each ipi block against its baseline\'s block in the same pass).');
  }
}

/* -------------------------------------------------------------- targets */

/**
 * Row a against row b: the ratio of their pooled medians (as in the table)
 * and the median of their paired block ratios (the verdict), with the
 * middle half of the paired ratios.
 */
interface Comparison {
  pooled: number;
  paired: number;
  p25: number;
  p75: number;
}

function compare(r: Results, a: string, b: string): Comparison {
  const q = quantiles([Float64Array.from(r.rows.blockRatios(a, b))]);
  return { pooled: r.rows.median(a) / r.rows.median(b), paired: q.p50, p25: q.p25, p75: q.p75 };
}

const cmpText = (c: Comparison): string => `${times(c.paired)} paired (middle half ${times(c.p25)}..${times(c.p75)}; pooled medians ${times(c.pooled)})`;
const cmpJson = (c: Comparison): Record<string, number | null> => ({ paired: round4(c.paired), paired_p25: round4(c.p25), paired_p75: round4(c.p75), pooled: round4(c.pooled) });

interface Target {
  id: string;
  title: string;
  met: boolean;
  figure: string;
  stretch?: { title: string; met: boolean };
  reason?: string;
  values: Record<string, unknown>;
}

function targetPolling(r: Results): Target {
  const m = (id: string): number => r.rows.median(id);
  const c = compare(r, 'poll', 'spin');
  const met = c.paired <= 3, stretch = c.paired <= 2;
  return {
    id: 'a', title: 'cross-call to a polling CPU <= 3x the raw spin ping-pong', met,
    figure: `${cmpText(c)}; medians ${fmt(m('poll'))} vs ${fmt(m('spin'))} µs, p99 ${fmt(r.rows.get('poll').series.q.p99)} vs ` +
      `${fmt(r.rows.get('spin').series.q.p99)} µs; batches of 10, clock amortized: ${times(m('pollB') / m('spinB'))}`,
    stretch: { title: 'stretch <= 2x', met: stretch },
    reason: met && stretch ? undefined : pollingReason(r, r.counters.get('poll')!),
    values: { vs_spin: cmpJson(c), ipi_us: m('poll'), spin_us: m('spin'), batched_pooled: m('pollB') / m('spinB') },
  };
}

/** A block of cross-calls in which cpu1 slept before more than this share of the calls found it not polling. */
const POLL_BLOCK_ASLEEP = 0.1;

/** Why a cross-call to a polling CPU took what it took: sleeps it should not have had, and the cost of the calls that found it polling. */
function pollingReason(r: Results, c: CounterDelta): string {
  const m = (id: string): number => r.rows.median(id);
  const why: string[] = [];
  if (c.targetSleepRate >= 0.05) {
    const asleep = r.pollBlocks.filter((b) => b.targetSleepRate > POLL_BLOCK_ASLEEP);
    const awake = r.pollBlocks.filter((b) => b.targetSleepRate <= POLL_BLOCK_ASLEEP);
    const mid = (bs: PollBlock[]): number => median(Float64Array.from(bs, (b) => b.median));
    const closed = asleep.filter((b) => b.startWindows[0] === 0 && b.startWindows[1] === 0).length;
    const closedAwake = awake.filter((b) => b.startWindows[0] === 0 && b.startWindows[1] === 0).length;
    why.push(`cpu1 was asleep before ${pct(c.targetSleepRate)} of the calls, and cpu0 slept in ${pct(c.callerSleepRate)} of its waits: each such call ` +
      `pays a wake-up (a raw notify -> waitAsync round trip is ${fmt(m('waitAsync'))} µs here)`);
    why.push(`the sleeps came in whole blocks: in ${asleep.length} of ${r.pollBlocks.length} blocks cpu1 slept before more than ` +
      `${pct(POLL_BLOCK_ASLEEP)} of the calls (block median ${fmt(mid(asleep))} µs; ${closed} of them began with both CPUs' adaptive poll windows ` +
      `closed, against ${closedAwake} of the other blocks), in the other ${awake.length} it polled (block median ${fmt(mid(awake))} µs = ` +
      `${times(mid(awake) / m('spin'))} spin; blocks of ${Math.round(r.rows.get('poll').series.q.n / Math.max(1, r.pollBlocks.length))} calls)`);
    const others = r.load.between.othersPct;
    if (others !== null && others >= 10) {
      why.push(`other processes used ${others.toFixed(0)}% of the cores' time during the run, and a polling thread that loses its core stops answering`);
    }
  }
  why.push(`the ipi_unicast call alone takes ${fmt(m('pollSend'))} µs and the ipi_wait after it ${fmt(m('pollWait'))} µs (medians), against ` +
    `${fmt(m('spin'))} µs for a whole raw round trip; with diagnostic off a round trip takes ${fmt(m('nodiag'))} µs`);
  return why.join('; ');
}

/** The share of row id's blocks whose median is over `us`. */
function slowShare(r: Results, id: string, us: number): number {
  const m = r.rows.get(id).series.blockMedians();
  return m.filter((x) => x > us).length / m.length;
}

function targetSleeping(r: Results): Target {
  const m = (id: string): number => r.rows.median(id);
  const raw = compare(r, 'sleepy', 'waitAsync'), pm = compare(r, 'sleepy', 'pm');
  const c = r.counters.get('sleepy')!;
  const met = raw.paired <= 2 && pm.paired <= 1;
  const why: string[] = [];
  if (raw.paired > 2) why.push(`against the raw round trip with the same two wake-ups, ipi's blocks took ${times(raw.paired)} as long`);
  if (pm.paired > 1) {
    why.push(`against postMessage, ipi's blocks took ${times(pm.paired)} as long (medians ${fmt(m('sleepy'))} and ${fmt(m('pm'))} µs)` +
      (m('pm') < m('waitAsync') ? `; postMessage beat even the raw notify -> waitAsync round trip (${fmt(m('waitAsync'))} µs)` : ''));
  }
  if (!met) {
    /* Slow and fast blocks, by one threshold for all three rows: SLOW_MODE times the fastest raw block. */
    const slow = SLOW_MODE * Math.min(...r.rows.get('waitAsync').series.blockMedians());
    const fast = (id: string): number => median(Float64Array.from(r.rows.get(id).series.blockMedians().filter((x) => x <= slow)));
    why.push(`${pct(slowShare(r, 'sleepy', slow))} of ipi's blocks ran at the slow speed (block median over ${fmt(slow)} µs, ${SLOW_MODE}x the fastest ` +
      `raw block) against ${pct(slowShare(r, 'waitAsync', slow))} of the raw baseline's and ${pct(slowShare(r, 'pm', slow))} of postMessage's; ` +
      `the fast blocks' medians: ipi ${fmt(fast('sleepy'))}, raw ${fmt(fast('waitAsync'))}, postMessage ${fmt(fast('pm'))} µs; per call cpu1 slept ` +
      `${c.targetSleepRate.toFixed(2)} times and cpu0 ${c.callerSleepRate.toFixed(2)} times (the raw baseline: once each)`);
  }
  return {
    id: 'b', title: 'cross-call to a sleeping CPU (poll 0) within 2x the raw notify -> waitAsync round trip, and no slower than postMessage', met,
    figure: `${cmpText(raw)} the raw round trip; ${cmpText(pm)} the postMessage round trip; medians ${fmt(m('sleepy'))}, ${fmt(m('waitAsync'))}, ` +
      `${fmt(m('pm'))} µs; with ipi_wait_async ${fmt(m('sleepyAsync'))} µs`,
    reason: met ? undefined : why.join('; '),
    values: { vs_raw: cmpJson(raw), vs_postmessage: cmpJson(pm), ipi_us: m('sleepy'), raw_us: m('waitAsync'), postmessage_us: m('pm') },
  };
}

function targetBroadcast(r: Results): Target {
  const m = (id: string): number => r.rows.median(id);
  const faster = compare(r, 'peerB:comlink', 'bcast4'), pm = compare(r, 'bcast4', 'pm3');
  const c = r.counters.get('bcast4')!;
  const met = faster.paired >= 1.5 && pm.paired <= 1;
  return {
    id: 'c', title: `broadcast, 4 CPUs on ${r.env.cores} cores: >= 1.5x faster than comlink's Promise.all to 3 workers, and no slower than postMessage to each`, met,
    figure: `${cmpText(faster)} faster than comlink; ${cmpText(pm)} the postMessage-to-each time; medians ${fmt(m('bcast4'))}, ` +
      `${fmt(m('peerB:comlink'))}, ${fmt(m('pm3'))} µs`,
    reason: met ? undefined
      : `the ipi_broadcast call alone takes ${fmt(m('bcast4Send'))} µs (3 mailboxes, 3 doorbells); per broadcast the 3 targets slept ${c.targetSleepRate.toFixed(2)} ` +
        `times in all and cpu0 ${c.callerSleepRate.toFixed(2)} times in ipi_wait, and the 4 CPUs' threads share ${r.env.cores} cores, so the targets are woken ` +
        `one after another; postMessage to each took ${fmt(m('pm3'))} µs and comlink ${fmt(m('peerB:comlink'))} µs`,
    values: { faster_than_comlink: cmpJson(faster), vs_postmessage_each: cmpJson(pm), ipi_us: m('bcast4'), comlink_us: m('peerB:comlink'), postmessage_each_us: m('pm3') },
  };
}

function targetAsync(r: Results): Target {
  const m = (id: string): number => r.rows.median(id);
  const faster = compare(r, 'peer:comlink', 'pollAsync');
  const met = faster.paired >= 5;
  return {
    id: 'd', title: 'ipi_wait_async against a polling CPU >= 5x faster than comlink', met,
    figure: `${cmpText(faster)}; medians ${fmt(m('pollAsync'))} vs ${fmt(m('peer:comlink'))} µs`,
    reason: met ? undefined : asyncReason(r),
    values: { faster_than_comlink: cmpJson(faster), ipi_us: m('pollAsync'), comlink_us: m('peer:comlink') },
  };
}

/** Why ipi_wait_async to a polling CPU was not 5x faster than comlink: its cost against the blocking wait, and comlink's. */
function asyncReason(r: Results): string {
  const m = (id: string): number => r.rows.median(id);
  const extra = m('pollAsync') - m('poll');
  const c = r.counters.get('pollAsync')!;
  return `ipi_unicast + await ipi_wait_async took ${fmt(m('pollAsync'))} µs against ${fmt(m('poll'))} µs with the blocking ipi_wait` +
    (extra > 0 ? ` (the promise and cpu0's event loop add ${fmt(extra)} µs)` : '') + `; a comlink call took ${fmt(m('peer:comlink'))} µs; ` +
    `${pct(slowShare(r, 'pollAsync', SLOW_MODE * Math.min(...r.rows.get('pollAsync').series.blockMedians())))} of the ipi_wait_async blocks ran ` +
    `${SLOW_MODE}x or more slower than the fastest, and over all of them cpu1 slept before ${pct(c.targetSleepRate)} of the calls and cpu0 ` +
    `in ${pct(c.callerSleepRate)} of its waits instead of polling`;
}

function targetAllocation(r: Results): Target {
  const fast = r.alloc.polling.filter((a) => !a.control);
  const none = (d: Side): boolean => d.perCall < ALLOC_RESOLUTION;
  const senderOk = fast.every((a) => none(a.sender)), targetOk = fast.every((a) => none(a.target));
  const list = (pick: (a: AllocResult) => Side): string => fast.map((a) => bytes(pick(a))).join(' / ');
  const heaviest = (s: AllocSites): string => {
    const top = s.sites[0];
    return top === undefined ? 'no site sampled' : `most of it at ${top[0]} (${(top[1] / ALLOC_CALLS).toFixed(1)} B/call)`;
  };
  /* 'integer arg (i), reused msg' -> 'integer arg' */
  const over = fast.flatMap((a) => ([['sender', a.sender], ['target', a.target]] as const)
    .filter(([, d]) => !none(d)).map(([who, d]) => `${who} ${d.perCall.toFixed(2)} B/call with the ${a.label.split(/ \(|,/)[0]}`));
  const why: string[] = [];
  if (over.length) why.push(`over the limit: ${over.join(', ')}`);
  if (!senderOk) why.push(`the sender's sampled allocations over integer-argument calls: ${(r.alloc.sites[0].total / ALLOC_CALLS).toFixed(1)} B/call, ${heaviest(r.alloc.sites[0])}`);
  if (!targetOk) why.push(`the target's sampled allocations over integer-argument calls: ${(r.alloc.sites[1].total / ALLOC_CALLS).toFixed(1)} B/call, ${heaviest(r.alloc.sites[1])}`);
  const sleepy = r.alloc.sleepy[0];
  return {
    id: 'e', title: `no allocation per call on the fast path (number and view arguments), both sides (< ${ALLOC_RESOLUTION} B/call counts as none)`,
    met: senderOk && targetOk,
    figure: `sender ${list((a) => a.sender)} B/call, target ${list((a) => a.target)} B/call for int / double / view, cpu1 polling` +
      (sleepy === undefined ? '' : `; poll 0, int: sender ${bytes(sleepy.sender)}, target ${bytes(sleepy.target)} B/call`) +
      ([...fast, ...r.alloc.sleepy].some((a) => a.sender.belowResolution || a.target.belowResolution) ? ` (${BELOW})` : ''),
    reason: why.length ? why.join('; ') : undefined,
    values: Object.fromEntries(fast.flatMap((a) => [[`${a.label}: sender`, round4(a.sender.perCall)], [`${a.label}: target`, round4(a.target.perCall)]])),
  };
}

function targetTriggers(r: Results): Target {
  const rate = coalescedRate(r, 'coalesced');
  const held = r.triggers.coalesced.held;
  const met = rate >= TARGET_TRIGGER_RATE && held;
  const ns = r.rows.median('coalesced'), raw = r.rows.median('rawCheck');
  return {
    id: 'f', title: 'coalesced ipi_trigger >= 5 M/s', met,
    figure: `${(rate / 1e6).toFixed(1)} M/s = ${times(rate / TARGET_TRIGGER_RATE)} the target (${fmt(ns)} ns per trigger; diagnostic off ` +
      `${(coalescedRate(r, 'coalescedNoDiag') / 1e6).toFixed(1)} M/s); ${held ? 'coalescing held' : 'COALESCING DID NOT HOLD'}`,
    reason: met ? undefined
      : !held ? 'triggers that should have found the bit pending rang the doorbell or ran the handler again (see the trigger rates above)'
        : `a trigger takes ${fmt(ns)} ns against ${fmt(raw)} ns for the raw check of the same bit (${times(ns / raw)}): the rest is the library's own checks`,
    values: { per_second: round4(rate), ns_per_trigger: round4(ns), raw_check_ns: round4(raw) },
  };
}

function printTargets(targets: Target[]): void {
  console.log('\ntargets: ratios are judged paired (the median over blocks of each ipi block\'s median / its baseline block\'s, same pass);');
  console.log('the ratio of the pooled medians, as in the table, is shown beside it');
  for (const t of targets) {
    const stretch = t.stretch === undefined ? '' : `; ${t.stretch.title}: ${t.stretch.met ? 'MET' : 'NOT MET'}`;
    console.log(`  (${t.id}) ${t.met ? 'MET    ' : 'NOT MET'} ${t.title}: ${t.figure}${stretch}`);
    if (t.reason !== undefined) console.log(`      why: ${t.reason}`);
  }
}

/* ---------------------------------------------------------------- files */

function quantilesJson(q: Quantiles): Record<string, number | null> {
  return Object.fromEntries(Object.entries(q).map(([k, v]) => [k, k === 'n' ? v : round4(v)]));
}

function resultsJson(r: Results, noise: NoiseRow[], targets: Target[]): unknown {
  const allocJson = (a: AllocResult): unknown => ({ ...a, sender: { ...a.sender, perCall: round4(a.sender.perCall) }, target: { ...a.target, perCall: round4(a.target.perCall) } });
  return {
    environment: { ...r.env, peers: r.peerVersions },
    settings: { rounds: r.rounds, passes_per_round: r.passes, quick: r.quick, rounds_seconds: round4(r.roundsSeconds) },
    single_thread_ns: { performance_now: round4(r.buildingBlocks.clock), notify_no_waiter: round4(r.buildingBlocks.notify), atomics_load: round4(r.buildingBlocks.load) },
    noise: {
      loadavg_before: r.load.before, loadavg_after: r.load.after,
      cpu_percent: Object.fromEntries(Object.entries(r.load.between).map(([k, v]) => [k, v === null ? null : round4(v)])),
      block_medians: noise.map((n) => ({
        id: n.id, name: n.name, min: round4(n.min), max: round4(n.max), spread: round4(n.spread), slow_share: round4(n.slowShare), medians: n.blockMedians.map(round4),
      })),
    },
    rows: r.rows.measured().map((row) => ({
      id: row.spec.id, section: row.spec.section, name: row.spec.name.trim(), family: row.spec.family, kind: row.spec.kind, unit: row.spec.unit,
      baseline: row.spec.baseline ?? null, ratio: round4(r.rows.ratio(row)), explain: row.spec.explain,
      quantiles: quantilesJson(row.series.q), block_medians: row.series.blockMedians().map(round4),
    })),
    counters: Object.fromEntries([...r.counters].map(([id, c]) => [id, c.toJSON()])),
    poll_windows_us: r.pollWindows,
    polling_blocks: r.pollBlocks.map((b) => ({ median_us: round4(b.median), cpu1_sleeps_per_call: round4(b.targetSleepRate), start_windows_us: b.startWindows })),
    triggers: r.triggers,
    allocation: { polling: r.alloc.polling.map(allocJson), poll0: r.alloc.sleepy.map(allocJson), sites: { sender: r.alloc.sites[0], target: r.alloc.sites[1] } },
    broadcast_scan: r.scan.map((s) => ({ ...s, send: quantilesJson(s.send), total: quantilesJson(s.total) })),
    simulator: { ...r.sim, interleavings_per_second: r.sim.runs / SIM_SECONDS },
    targets,
  };
}

function writeFiles(r: Results, noise: NoiseRow[], targets: Target[]): [string, string] {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const json = `${RESULTS_DIR}latest.json`, svg = `${RESULTS_DIR}latency.svg`;
  writeFileSync(json, `${JSON.stringify(resultsJson(r, noise, targets), null, 2)}\n`);
  const chartRows = r.rows.measured().filter((row) => row.spec.kind === 'call' && row.spec.unit === 'µs')
    .map((row) => ({ name: row.spec.name.trim(), section: row.spec.section, family: row.spec.family, q: row.series.q }));
  writeFileSync(svg, latencyChart(chartRows,
    `node ${r.env.node}, ${r.env.cores} cores (${r.env.cpuModel}), ${r.rounds} rounds x ${r.passes} interleaved passes, ${r.env.date.slice(0, 16).replace('T', ' ')} UTC, ` +
    `load average ${loads(r.load.before)} before`));
  return [json, svg];
}

/* ----------------------------------------------------------------- all */

export function report(r: Results): void {
  printTable(r);
  printCounters(r);
  printTriggers(r);
  printScan(r);
  printAllocation(r);
  printSimulator(r);
  const raw = NOISE_ROWS.map((id) => noiseRow(r, id, r.rows.get(id).spec.name));
  const ipi = Object.entries(NOISE_ROWS_IPI).map(([id, name]) => noiseRow(r, id, name));
  printNoise(r, raw, ipi);
  const targets = [targetPolling(r), targetSleeping(r), targetBroadcast(r), targetAsync(r), targetAllocation(r), targetTriggers(r)];
  printTargets(targets);
  const [json, svg] = writeFiles(r, [...raw, ...ipi], targets);
  console.log(`\nwritten: ${json}\n         ${svg} (latency distribution per row: box p25-p75, whiskers p1-p99, median marked; log scale)`);
  console.log(`(the rounds took ${r.roundsSeconds.toFixed(0)} s, the whole run ${r.load.between.seconds.toFixed(0)} s)`);
}
