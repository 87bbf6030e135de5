/*
 * npm run bench: what ipi costs, as ratios against baselines and peer
 * libraries measured in the same run, with medians and p99 in µs.
 *
 * One run is ROUNDS rounds.  Each round boots four ipi machines in turn (2
 * CPUs polling, 2 CPUs with diagnostic off, 2 CPUs with poll 0, 4 CPUs)
 * and, while each is up, runs PASSES passes over its blocks: its ipi blocks
 * alternate with the raw baselines (bench/raw.ts: no library) and the peer
 * blocks (bench/peers) they are compared with, every other pass in reverse
 * order.  So the machine's noise falls on baseline and ipi alike.  Here it
 * is large and comes in blocks: a sleeping round trip runs at one of two
 * speeds, several times apart, and keeps it for a while (the noise section
 * of the report measures it).  So blocks are short, and the targets compare
 * each ipi block with its baseline's block of the same pass.
 *
 * After the rounds, measured once: allocation per call on both CPUs, the
 * broadcast send cost for 1 to 8 CPUs, and the simulated machine's speed.
 * The report (bench/report.ts) prints the table, the noise, the targets
 * (MET / NOT MET, with the measured reason for a miss), and writes
 * bench/results/latest.json and bench/results/latency.svg.
 *
 * `node build/bench/bench.js --quick` runs a fifth of the samples (to try
 * the benchmark itself, not to quote).
 */
import { cpu_lookup, XC_HIGHPRI, type Machine } from 'ipi';
import { ALLOC_CALLS, allocationSites, allocationSuite, gcWatch, type AllocResult, type AllocSites } from './alloc.js';
import { buildingBlocks, environment, loadBetween, loadSnapshot } from './env.js';
import { bootBench, CounterDelta } from './machines.js';
import {
  broadcasts, coalescedTriggers, crossCalls, crossCallsAsync, crossCallsBatched, crossCallsSplit, nopMsg, ringingTriggers, softintPong,
  softintRoundTrips, xcalls,
} from './measure.js';
import { open_peers, type peer } from './peers/peers.js';
import { echoAll, RawPartner } from './raw.js';
import { report, type PollBlock, type Results, type ScanRow, type TriggerTotals } from './report.js';
import { Rows } from './rows.js';
import { simulatorSuite } from './sim.js';
import { median, quantiles } from './stats.js';

const ROUNDS = 20;
const PASSES = 6;
const QUICK = process.argv.includes('--quick');
/** Samples per block (a fifth with --quick). */
const scale = (n: number): number => (QUICK ? Math.max(10, Math.round(n / 5)) : n);
const N = {
  spin: scale(800), batches: scale(80), fast: scale(800), split: scale(600), async: scale(300), soft: scale(400), ring: scale(400),
  xc2: scale(200), slow: scale(200), peer: scale(120), bcast: scale(200), pm3: scale(120), peerB: scale(80), xc4: scale(100),
  trigBatches: QUICK ? 2 : 4,
};
/** Unmeasured calls before each block: fast paths, and those that sleep. */
const WARM = 100;
const WARM_SLOW = 20;
const BATCH = 10;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const progress = (s: string): void => void process.stderr.write(`  .. ${s}\n`);

/** What the rounds share. */
interface Bench {
  rows: Rows;
  /** The raw partners: [0] for the unicast baselines, all 3 for postMessage to each. */
  raws: RawPartner[];
  peers: peer[];
  /** Sleeps and polls over the timed blocks, by row id. */
  counters: Map<string, CounterDelta>;
  triggers: TriggerTotals;
  /** cpu1's poll window (µs) at the end of each round, by machine. */
  pollWindows: Record<string, number[]>;
  /** Each ipi_unicast + ipi_wait block to a polling cpu1: how its poll windows stood at the start, and how often it slept. */
  pollBlocks: PollBlock[];
}

function counterOf(b: Bench, id: string): CounterDelta {
  let c = b.counters.get(id);
  if (c === undefined) b.counters.set(id, (c = new CounterDelta()));
  return c;
}

type Block = () => void | Promise<void>;

/**
 * Runs a machine's blocks PASSES times, every other pass in reverse order,
 * with a pause between blocks (timers run, a polling CPU goes back to sleep,
 * as it would between bursts of calls).
 */
async function runBlocks(blocks: Block[]): Promise<void> {
  for (let pass = 0; pass < PASSES; pass++) {
    for (const block of pass % 2 === 0 ? blocks : [...blocks].reverse()) {
      await block();
      await sleep(2);
    }
  }
}

/** a[0], b[0], a[1], b[1], ...; the rest of the longer list at the end. */
function alternate(a: Block[], b: Block[]): Block[] {
  const out: Block[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) out.push(...a.slice(i, i + 1), ...b.slice(i, i + 1));
  return out;
}

/** Records cpu1's poll window, then shuts the machine down. */
async function retire(b: Bench, machine: Machine, name: string): Promise<void> {
  (b.pollWindows[name] ??= []).push(machine.counters()[1]!.poll_window);
  await machine.shutdown();
}

/* ------------------------------------------------------------- rounds */

/** 2 CPUs, default poll: cpu1 polls its doorbell between calls. */
async function roundPolling(b: Bench): Promise<void> {
  const m = await bootBench(2);
  const ci = cpu_lookup(1), msg = nopMsg(), raw = b.raws[0]!;
  const cookie = softintPong();
  /* cpu1 is a new thread: its code is cold. */
  crossCalls(msg, ci, 5000, 0);
  await crossCallsAsync(msg, ci, 500, 0);
  await runBlocks([
    async () => b.rows.add('spin', await raw.spin(N.spin, WARM)),
    () => b.rows.add('poll', pollBlock(b, m, () => crossCalls(msg, ci, N.fast, WARM))),
    async () => b.rows.add('spinB', await raw.spinBatched(N.batches, BATCH, 2)),
    () => b.rows.add('pollB', crossCallsBatched(msg, ci, N.batches, BATCH, 2)),
    () => {
      const s = crossCallsSplit(msg, ci, N.split, WARM);
      b.rows.add('pollSend', s.send);
      b.rows.add('pollWait', s.wait);
    },
    async () => b.rows.add('pollAsync', await counterOf(b, 'pollAsync').wrapAsync(m, N.async + WARM, () => crossCallsAsync(msg, ci, N.async, WARM))),
    () => b.rows.add('softPoll', counterOf(b, 'softPoll').wrap(m, N.soft + WARM, () => softintRoundTrips(cookie, ci, N.soft, WARM, 'spin'))),
    () => {
      const r = counterOf(b, 'ringRT').wrap(m, N.ring + WARM, () => ringingTriggers(m, ci, N.ring, WARM));
      b.rows.add('ringRT', r.roundTrip);
      b.rows.add('ringSend', r.send);
      b.triggers.ringing.sent += r.sent;
      b.triggers.ringing.coalesced += r.coalesced;
    },
    async () => {
      const c = await coalescedTriggers(m, ci, N.trigBatches, 2);
      b.rows.add('coalesced', c.perTrigger);
      b.rows.add('rawCheck', c.rawCheck);
      addCoalesced(b.triggers.coalesced, c);
    },
    () => b.rows.add('xc2low', xcalls(0, N.xc2, WARM_SLOW)),
    () => b.rows.add('xc2high', xcalls(XC_HIGHPRI, N.xc2, WARM_SLOW)),
  ]);
  await retire(b, m, 'polling');
}

/** Runs and records one block of cross-calls to a polling cpu1: its counters, and the poll windows it started with. */
function pollBlock(b: Bench, m: Machine, f: () => Float64Array): Float64Array {
  const c = m.counters();
  const block = new CounterDelta();
  const x = block.wrap(m, N.fast + WARM, f);
  counterOf(b, 'poll').add(block);
  b.pollBlocks.push({ median: median(x), targetSleepRate: block.targetSleepRate, startWindows: [c[0]!.poll_window, c[1]!.poll_window] });
  return x;
}

/** 2 CPUs, default poll, diagnostic off: the fast path without contract assertions. */
async function roundNoDiag(b: Bench): Promise<void> {
  const m = await bootBench(2, { diagnostic: false });
  const ci = cpu_lookup(1), msg = nopMsg();
  crossCalls(msg, ci, 5000, 0);
  await runBlocks([
    () => b.rows.add('nodiag', counterOf(b, 'nodiag').wrap(m, N.fast + WARM, () => crossCalls(msg, ci, N.fast, WARM))),
    () => b.rows.add('nodiagB', crossCallsBatched(msg, ci, N.batches, BATCH, 2)),
    async () => {
      const c = await coalescedTriggers(m, ci, N.trigBatches, 2);
      b.rows.add('coalescedNoDiag', c.perTrigger);
      addCoalesced(b.triggers.coalescedNoDiag, c);
    },
  ]);
  await retire(b, m, 'diagnostic off');
}

/** 2 CPUs, poll 0: cpu1 sleeps on its doorbell between calls; the unicast peers and their postMessage baseline alongside. */
async function roundAsleep(b: Bench): Promise<void> {
  const m = await bootBench(2, { poll: 0 });
  const ci = cpu_lookup(1), msg = nopMsg(), raw = b.raws[0]!;
  const cookie = softintPong();
  crossCalls(msg, ci, 500, 0);
  await crossCallsAsync(msg, ci, 300, 0);
  const peerBlocks = b.peers.map((p): Block => async () => b.rows.add(`peer:${p.name}`, await p.unicast(N.peer, WARM_SLOW)));
  await runBlocks([
    async () => b.rows.add('pm', await raw.echo(N.slow, WARM_SLOW)),
    () => b.rows.add('sleepy', counterOf(b, 'sleepy').wrap(m, N.slow + WARM_SLOW, () => crossCalls(msg, ci, N.slow, WARM_SLOW))),
    async () => b.rows.add('wait', await raw.wait(N.slow, WARM_SLOW, 'wait')),
    async () => b.rows.add('sleepyAsync', await crossCallsAsync(msg, ci, N.slow, WARM_SLOW)),
    async () => b.rows.add('waitAsync', await raw.wait(N.slow, WARM_SLOW, 'wait_async')),
    () => b.rows.add('softSleep', counterOf(b, 'softSleep').wrap(m, N.slow + WARM_SLOW, () => softintRoundTrips(cookie, ci, N.slow, WARM_SLOW, 'sleep'))),
    async () => b.rows.add('waitAsync2', await raw.waitAsyncBoth(N.slow, WARM_SLOW)),
    ...peerBlocks,
  ]);
  await retire(b, m, 'poll 0');
}

/** 4 CPUs on this machine (poll 0 by default when CPUs outnumber cores): broadcasts to 3, against postMessage and the peers. */
async function roundBroadcast(b: Bench): Promise<void> {
  const m = await bootBench(4);
  const msg = nopMsg();
  broadcasts(msg, true, 300, 0);
  xcalls(0, 50, 0);
  xcalls(XC_HIGHPRI, 50, 0);
  const peerBlocks = b.peers.flatMap((p): Block[] => {
    const broadcast = p.broadcast;
    return broadcast === undefined ? [] : [async () => b.rows.add(`peerB:${p.name}`, await broadcast(N.peerB, WARM_SLOW))];
  });
  /* Peers between the others: comlink's comes between postMessage to each and the ipi broadcast it is compared with. */
  await runBlocks(alternate([
    async () => b.rows.add('pm3', await echoAll(b.raws, N.pm3, WARM_SLOW)),
    () => {
      const x = counterOf(b, 'bcast4').wrap(m, N.bcast + WARM_SLOW, () => broadcasts(msg, true, N.bcast, WARM_SLOW));
      b.rows.add('bcast4', x.total);
      b.rows.add('bcast4Send', x.send);
    },
    () => b.rows.add('xc4low', xcalls(0, N.xc4, WARM_SLOW)),
    () => b.rows.add('xc4high', xcalls(XC_HIGHPRI, N.xc4, WARM_SLOW)),
  ], peerBlocks));
  await retire(b, m, '4 CPUs');
}

function addCoalesced(into: TriggerTotals['coalesced'], c: { sent: number; coalesced: number; runs: number }): void {
  into.sent += c.sent;
  into.coalesced += c.coalesced;
  into.runs += c.runs;
  into.blocks++;
  /* Every trigger but the first of a block must coalesce, and the handler run once. */
  if (c.coalesced !== c.sent - 1 || c.runs !== 1) into.held = false;
}

/** Warm the baselines and peers up once, so that the first round does not pay their compiling. */
async function warmUp(b: Bench): Promise<void> {
  const raw = b.raws[0]!;
  await raw.spin(20_000, 0);
  await raw.spinBatched(500, BATCH, 0);
  await raw.wait(1000, 0, 'wait');
  await raw.wait(1000, 0, 'wait_async');
  await raw.waitAsyncBoth(1000, 0);
  await raw.echo(1000, 0);
  await echoAll(b.raws, 500, 0);
  for (const p of b.peers) {
    await p.unicast(300, 0);
    await p.broadcast?.(200, 0);
  }
}

/* ------------------------------------------------- measured once, after */

async function allocationPhase(): Promise<{ polling: AllocResult[]; sleepy: AllocResult[]; sites: [AllocSites, AllocSites] }> {
  progress('allocation: 2 CPUs polling');
  let m = await bootBench(2);
  gcWatch(m, true);
  const polling = await allocationSuite(cpu_lookup(1), false);
  gcWatch(m, false);
  const sites = allocationSites(cpu_lookup(1), ALLOC_CALLS);
  await m.shutdown();
  progress('allocation: 2 CPUs, poll 0');
  m = await bootBench(2, { poll: 0 });
  gcWatch(m, true);
  const sleepy = await allocationSuite(cpu_lookup(1), true);
  gcWatch(m, false);
  await m.shutdown();
  return { polling, sleepy, sites };
}

/** ipi_broadcast(msg, false) + ipi_wait on 1, 2, 4, 8 CPUs: how the sender's cost grows with the CPUs. */
async function broadcastScan(cores: number): Promise<ScanRow[]> {
  const out: ScanRow[] = [];
  for (const [ncpu, poll] of [[1, undefined], [2, undefined], [2, 0], [4, undefined], [8, undefined]] as const) {
    progress(`broadcast scan: ${ncpu} CPUs${poll === undefined ? '' : `, poll ${poll}`}`);
    const m = await bootBench(ncpu, poll === undefined ? {} : { poll });
    const msg = nopMsg();
    broadcasts(msg, false, ncpu === 1 ? 20_000 : 1000, 0, 1000);
    const send: Float64Array[] = [], total: Float64Array[] = [];
    for (let r = 0; r < 3; r++) {
      const x = broadcasts(msg, false, scale(1000), WARM_SLOW, 400);
      send.push(x.send);
      total.push(x.total);
      await sleep(3);
    }
    out.push({ ncpu, poll: poll ?? (ncpu <= cores ? 50 : 0), pollDefault: poll === undefined, send: quantiles(send), total: quantiles(total) });
    await m.shutdown();
  }
  return out;
}

/* --------------------------------------------------------------- main */

async function main(): Promise<void> {
  const env = environment();
  const before = loadSnapshot();
  const blocks = buildingBlocks();
  console.log(`ipi bench: node ${env.node}, ${env.platform}/${env.arch}, ${env.cores} cores (${env.cpuModel}), ` +
    `load average ${before.loadavg.map((l) => l.toFixed(2)).join(' ')}${QUICK ? '; --quick: a fifth of the samples' : ''}`);
  console.log(`single-thread costs here: performance.now() ${blocks.clock.toFixed(0)} ns, Atomics.notify with no waiter ${blocks.notify.toFixed(0)} ns, ` +
    `Atomics.load ${blocks.load.toFixed(0)} ns`);

  progress('starting the raw partners and the peers');
  const raws = await Promise.all([RawPartner.start(), RawPartner.start(), RawPartner.start()]);
  const peers = await open_peers(3);
  const b: Bench = {
    rows: new Rows(), raws, peers, counters: new Map(), pollWindows: {}, pollBlocks: [],
    triggers: { coalesced: emptyCoalesced(), coalescedNoDiag: emptyCoalesced(), ringing: { sent: 0, coalesced: 0 } },
  };
  await warmUp(b);
  const t0 = performance.now();
  for (let r = 0; r < ROUNDS; r++) {
    progress(`round ${r + 1}/${ROUNDS} (${((performance.now() - t0) / 1000).toFixed(0)} s): 2 CPUs polling, diagnostic off, poll 0, 4 CPUs`);
    await roundPolling(b);
    await roundNoDiag(b);
    await roundAsleep(b);
    await roundBroadcast(b);
  }
  await Promise.all([...peers.map((p) => p.close()), ...raws.map((r) => r.close())]);
  const roundsSeconds = (performance.now() - t0) / 1000;

  const alloc = await allocationPhase();
  const scan = await broadcastScan(env.cores);
  progress('simulated machine');
  const sim = await simulatorSuite();
  const after = loadSnapshot();

  const results: Results = {
    env, quick: QUICK, rounds: ROUNDS, passes: PASSES, roundsSeconds, buildingBlocks: blocks, rows: b.rows, counters: b.counters, triggers: b.triggers,
    pollWindows: b.pollWindows, pollBlocks: b.pollBlocks, peerVersions: Object.fromEntries(peers.map((p) => [p.name, p.version])), alloc, scan, sim,
    load: { before: before.loadavg, after: after.loadavg, between: loadBetween(before, after, env.cores) },
  };
  report(results);
}

function emptyCoalesced(): TriggerTotals['coalesced'] {
  return { sent: 0, coalesced: 0, runs: 0, blocks: 0, held: true };
}

await main();
