/*
 * The rows of the report: what each measures, in plain words, and the
 * baseline row its ratio is taken against.  The table, latest.json and the
 * chart are all made from this list, in this order.
 */
import { Series } from './stats.js';

/** Where a row's figure comes from: no library, ipi, or a peer library. */
export type Family = 'raw' | 'ipi' | 'peer';

export interface RowSpec {
  id: string;
  section: string;
  name: string;
  family: Family;
  /** The row this one's median is divided by; none for a baseline. */
  baseline?: string;
  /** A baseline's short name, shown in the ratio column of the rows compared with it. */
  short?: string;
  /** 'call': one sample per call; 'batch': one per batch of calls (the mean per call), which hides the distribution. */
  kind: 'call' | 'batch';
  /** µs for round trips, ns for trigger costs. */
  unit: 'µs' | 'ns';
  explain: string;
}

const RAW = 'raw baselines (no library), main thread <-> 1 worker unless said';
const POLL = 'ipi, 2 CPUs, default poll (50 µs): cpu1 idle, polling its doorbell between calls';
const SLEEP = 'ipi, 2 CPUs, boot({ poll: 0 }): cpu1 asleep between calls';
const BCAST = 'broadcast to 3 others, 4 CPUs (default poll: 0 when CPUs outnumber cores): cpus 1-3 asleep between calls';
const PEERS = 'peer libraries (the worker returns its argument + 1)';
const TRIG = 'triggers, ns per call';

export const ROW_SPECS: readonly RowSpec[] = [
  { id: 'spin', section: RAW, name: 'raw SAB spin ping-pong', family: 'raw', short: 'spin', kind: 'call', unit: 'µs',
    explain: 'both threads spin on Atomics.load of a shared word; nobody sleeps' },
  { id: 'spinB', section: RAW, name: 'raw spin ping-pong, batches of 10', family: 'raw', short: 'spin x10', kind: 'batch', unit: 'µs',
    explain: 'the same, timed per 10 round trips (mean per trip): the clock read amortized' },
  { id: 'wait', section: RAW, name: 'raw Atomics.wait/notify ping-pong', family: 'raw', short: 'wait/notify', kind: 'call', unit: 'µs',
    explain: 'both threads sleep in Atomics.wait between turns; Atomics.notify wakes each' },
  { id: 'waitAsync', section: RAW, name: 'raw notify -> worker in waitAsync', family: 'raw', short: 'waitAsync', kind: 'call', unit: 'µs',
    explain: 'worker sleeps in its event loop on Atomics.waitAsync (as an idle ipi CPU does); main sleeps in Atomics.wait' },
  { id: 'waitAsync2', section: RAW, name: 'raw notify <-> waitAsync, main awaits', family: 'raw', short: 'waitAsync both', kind: 'call', unit: 'µs',
    explain: 'as above, but main awaits Atomics.waitAsync too: both event loops sleep' },
  { id: 'pm', section: RAW, name: 'postMessage round trip', family: 'raw', short: 'postMessage', kind: 'call', unit: 'µs',
    explain: 'main posts to a worker idle in its event loop, awaits the echo' },
  { id: 'pm3', section: RAW, name: 'postMessage to each of 3 workers', family: 'raw', short: 'postMessage x3', kind: 'call', unit: 'µs',
    explain: 'main posts to 3 idle workers at once, awaits all 3 echoes' },

  { id: 'poll', section: POLL, name: 'ipi_unicast + ipi_wait', family: 'ipi', baseline: 'spin', kind: 'call', unit: 'µs',
    explain: 'cpu1 polls its doorbell (adaptive window), else sleeps in waitAsync; cpu0 blocks in ipi_wait, polling then sleeping' },
  { id: 'pollSend', section: POLL, name: '  the ipi_unicast call alone', family: 'ipi', baseline: 'spin', kind: 'call', unit: 'µs',
    explain: 'puts the message in cpu1\'s mailbox, rings its doorbell' },
  { id: 'pollWait', section: POLL, name: '  the ipi_wait call alone', family: 'ipi', baseline: 'spin', kind: 'call', unit: 'µs',
    explain: 'from the send\'s return until cpu1 has acknowledged' },
  { id: 'pollB', section: POLL, name: 'ipi_unicast + ipi_wait, batches of 10', family: 'ipi', baseline: 'spinB', kind: 'batch', unit: 'µs',
    explain: 'the first row timed per 10 round trips (mean per trip)' },
  { id: 'nodiag', section: POLL, name: 'ipi_unicast + ipi_wait, diagnostic off', family: 'ipi', baseline: 'spin', kind: 'call', unit: 'µs',
    explain: 'the first row on a machine booted with diagnostic: false (no contract assertions)' },
  { id: 'nodiagB', section: POLL, name: '  the same, batches of 10', family: 'ipi', baseline: 'spinB', kind: 'batch', unit: 'µs',
    explain: 'timed per 10 round trips (mean per trip)' },
  { id: 'pollAsync', section: POLL, name: 'ipi_unicast + await ipi_wait_async', family: 'ipi', baseline: 'pm', kind: 'call', unit: 'µs',
    explain: 'cpu0 awaits (polls its doorbell first, then its event loop sleeps); cpu1 polling' },
  { id: 'softPoll', section: POLL, name: 'softint_schedule_cpu round trip', family: 'ipi', baseline: 'spin', kind: 'call', unit: 'µs',
    explain: 'SOFTINT_RCPU handler on cpu1 echoes a word; cpu0 spins on the word outside the library' },
  { id: 'ringRT', section: POLL, name: 'ipi_trigger that rings, to handler run', family: 'ipi', baseline: 'spin', kind: 'call', unit: 'µs',
    explain: 'bit clear: set it and ring; cpu0 spins until cpu1\'s handler has counted the run' },
  { id: 'xc2low', section: POLL, name: 'xc_broadcast(0) + xc_wait', family: 'ipi', baseline: 'pm', kind: 'call', unit: 'µs',
    explain: 'nop on cpu0, and on cpu1 as a thread-context task; cpu0 blocks in xc_wait' },
  { id: 'xc2high', section: POLL, name: 'xc_broadcast(XC_HIGHPRI) + xc_wait', family: 'ipi', baseline: 'pm', kind: 'call', unit: 'µs',
    explain: 'the same, run in soft-interrupt context on each CPU' },

  { id: 'sleepy', section: SLEEP, name: 'ipi_unicast + ipi_wait', family: 'ipi', baseline: 'waitAsync', kind: 'call', unit: 'µs',
    explain: 'cpu1 asleep in its event loop on Atomics.waitAsync; cpu0 sleeps in ipi_wait (Atomics.wait)' },
  { id: 'sleepyAsync', section: SLEEP, name: 'ipi_unicast + await ipi_wait_async', family: 'ipi', baseline: 'waitAsync2', kind: 'call', unit: 'µs',
    explain: 'cpu1 asleep as above; cpu0 awaits, its event loop asleep on its doorbell' },
  { id: 'softSleep', section: SLEEP, name: 'softint_schedule_cpu round trip', family: 'ipi', baseline: 'waitAsync', kind: 'call', unit: 'µs',
    explain: 'cpu1 asleep; cpu0 sleeps in Atomics.wait on the echo word, the handler\'s notify wakes it' },

  { id: 'bcast4', section: BCAST, name: 'ipi_broadcast(msg, true) + ipi_wait', family: 'ipi', baseline: 'pm3', kind: 'call', unit: 'µs',
    explain: 'cpus 1-3 asleep in waitAsync; cpu0 sends to all 3, blocks in ipi_wait for all 3' },
  { id: 'bcast4Send', section: BCAST, name: '  the ipi_broadcast call alone', family: 'ipi', baseline: 'pm3', kind: 'call', unit: 'µs',
    explain: 'fills 3 mailboxes, rings 3 doorbells' },
  { id: 'xc4low', section: BCAST, name: 'xc_broadcast(0) + xc_wait, 4 CPUs', family: 'ipi', baseline: 'pm3', kind: 'call', unit: 'µs',
    explain: 'nop on all 4 CPUs, as a thread-context task on cpus 1-3; cpu0 blocks in xc_wait' },
  { id: 'xc4high', section: BCAST, name: 'xc_broadcast(XC_HIGHPRI) + xc_wait, 4 CPUs', family: 'ipi', baseline: 'pm3', kind: 'call', unit: 'µs',
    explain: 'the same, run in soft-interrupt context on each CPU' },

  { id: 'peer:comlink', section: PEERS, name: 'comlink: await proxy.fn(x)', family: 'peer', baseline: 'pm', kind: 'call', unit: 'µs',
    explain: 'an RPC message over the worker\'s port each way; main awaits' },
  { id: 'peer:piscina', section: PEERS, name: 'piscina: await pool.run(x), 1 thread', family: 'peer', baseline: 'pm', kind: 'call', unit: 'µs',
    explain: 'a task to a pool of 1 idle thread; main awaits the result' },
  { id: 'peer:tinypool', section: PEERS, name: 'tinypool: await pool.run(x), 1 thread', family: 'peer', baseline: 'pm', kind: 'call', unit: 'µs',
    explain: 'as piscina (tinypool is a fork of it)' },
  { id: 'peer:workerpool', section: PEERS, name: 'workerpool: await pool.exec(fn), 1 worker', family: 'peer', baseline: 'pm', kind: 'call', unit: 'µs',
    explain: 'a named method on a pool of 1 worker thread; main awaits' },
  { id: 'peer:synckit', section: PEERS, name: 'synckit: fn(x), synchronous', family: 'peer', baseline: 'pm', kind: 'call', unit: 'µs',
    explain: 'main blocks in Atomics.wait until the worker posts its reply' },
  { id: 'peerB:comlink', section: PEERS, name: 'comlink: Promise.all to 3 workers', family: 'peer', baseline: 'pm3', kind: 'call', unit: 'µs',
    explain: 'proxy.fn(x) on 3 workers at once; main awaits all 3' },
  { id: 'peerB:piscina', section: PEERS, name: 'piscina: Promise.all of 3 runs, 3 threads', family: 'peer', baseline: 'pm3', kind: 'call', unit: 'µs',
    explain: '3 tasks at once to a pool of 3 threads; main awaits all 3' },
  { id: 'peerB:tinypool', section: PEERS, name: 'tinypool: Promise.all of 3 runs, 3 threads', family: 'peer', baseline: 'pm3', kind: 'call', unit: 'µs',
    explain: 'as piscina' },
  { id: 'peerB:workerpool', section: PEERS, name: 'workerpool: Promise.all of 3 execs, 3 workers', family: 'peer', baseline: 'pm3', kind: 'call', unit: 'µs',
    explain: '3 execs at once to a pool of 3 workers; main awaits all 3' },

  { id: 'rawCheck', section: TRIG, name: 'raw check of a pending bit', family: 'raw', short: 'raw check', kind: 'batch', unit: 'ns',
    explain: 'Atomics.load & bit on a shared word whose bit is set: the floor of a coalesced trigger' },
  { id: 'coalesced', section: TRIG, name: 'ipi_trigger, coalesced', family: 'ipi', baseline: 'rawCheck', kind: 'batch', unit: 'ns',
    explain: 'cpu1 held busy with no interrupt point, so the bit stays set: check only, no write, no doorbell' },
  { id: 'coalescedNoDiag', section: TRIG, name: 'ipi_trigger, coalesced, diagnostic off', family: 'ipi', baseline: 'rawCheck', kind: 'batch', unit: 'ns',
    explain: 'the same without contract assertions' },
  { id: 'ringSend', section: TRIG, name: 'ipi_trigger that rings, the call alone', family: 'ipi', baseline: 'rawCheck', kind: 'call', unit: 'ns',
    explain: 'bit clear (cpu1 serviced the last one): sets it, rings the doorbell; to a sleeping cpu1 that is a kernel wake-up' },
];

export class Row {
  readonly series = new Series();
  constructor(readonly spec: RowSpec) {}
}

/** Every row, by id. */
export class Rows {
  private readonly byId = new Map<string, Row>(ROW_SPECS.map((s) => [s.id, new Row(s)]));

  get(id: string): Row {
    const r = this.byId.get(id);
    if (r === undefined) throw new Error(`bench: no row ${id}`);
    return r;
  }

  add(id: string, samples: Float64Array): void {
    this.get(id).series.add(samples);
  }

  /** The median of row id. */
  median(id: string): number {
    return this.get(id).series.q.p50;
  }

  /** Rows with samples, in report order. */
  measured(): Row[] {
    return [...this.byId.values()].filter((r) => r.series.q.n > 0);
  }

  /**
   * Row a's median over row b's, block by block: the k-th blocks of two rows
   * ran in the same pass of the same round, close in time, so noise that
   * moves whole blocks (a wake-up mode that holds for a while) falls on both.
   */
  blockRatios(a: string, b: string): number[] {
    const x = this.get(a).series.blockMedians(), y = this.get(b).series.blockMedians();
    return x.map((v, i) => v / y[i]!).filter(Number.isFinite);
  }

  /** Median of the row over the median of its baseline; NaN for a baseline. */
  ratio(row: Row): number {
    return row.spec.baseline === undefined ? NaN : row.series.q.p50 / this.median(row.spec.baseline);
  }
}
