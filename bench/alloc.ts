/*
 * Allocation per cross-call, on the sender (CPU 0) and on the target (CPU 1).
 *
 * Heap growth is read as the growth of V8's young generation (new space)
 * between two probes, on CPU 0 locally and on CPU 1 by a cross-call.  A
 * scavenge empties new space, so a chunk in which one ran shows a drop: the
 * median over the chunks that did not shrink is the allocation of a chunk.
 * Chunks of no calls give the probes' own garbage, subtracted.  GCs are
 * counted by a PerformanceObserver on each CPU.  Where the bytes come from
 * is read by V8's sampling heap profiler on both CPUs.
 */
import { cpu_lookup, ipi_unicast, ipi_wait, kpreempt_disable, kpreempt_enable, type cpu_info, type ipi_msg_t, type Machine } from 'ipi';
import * as k from './kernel.js';
import { benchBuf, bf } from './machines.js';
import { median } from './stats.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Calls per allocation case. */
export const ALLOC_CALLS = 100_000;
/** Below this many bytes per call, a side counts as allocating nothing (the probe cannot resolve less). */
export const ALLOC_RESOLUTION = 0.5;

export interface Side {
  /** Median young-generation growth per call, probe overhead subtracted, bytes; never negative. */
  perCall: number;
  /** The subtraction came out negative: the growth is below what the probe resolves. */
  belowResolution: boolean;
  /** Chunks whose young generation shrank: a scavenge ran there. */
  shrank: number;
  /** GC entries over the whole case. */
  gcs: number;
}

export interface AllocResult {
  label: string;
  /** 'control' for the case that allocates on purpose. */
  control: boolean;
  calls: number;
  sender: Side;
  target: Side;
}

const statAt = (cpu: number, s: number): number => bf[k.B_STATS + cpu * k.STATS_PER_CPU + s]!;

function unpreempted(f: () => void): void {
  kpreempt_disable();
  try {
    f();
  } finally {
    kpreempt_enable();
  }
}

/** Young-generation bytes in use on CPU 0 and on ci, now. */
function probeBoth(ci: cpu_info, probe: ipi_msg_t<undefined>): [number, number] {
  k.heap_probe(); /* CPU 0, locally */
  unpreempted(() => {
    ipi_unicast(probe, ci);
    ipi_wait(probe);
  });
  return [statAt(0, k.S_NEW_SPACE), statAt(ci.ci_index, k.S_NEW_SPACE)];
}

async function allocation(label: string, ci: cpu_info, chunks: number, chunk: number, run: (calls: number) => void,
  overhead: [number, number] = [0, 0]): Promise<AllocResult> {
  const probe = { func: k.heap_probe, arg: undefined };
  await sleep(30); /* let GC entries of earlier work be delivered */
  const g0 = [statAt(0, k.S_GC_COUNT), statAt(ci.ci_index, k.S_GC_COUNT)];
  const ds = new Float64Array(chunks), dt = new Float64Array(chunks);
  for (let c = 0; c < chunks; c++) {
    const a = probeBoth(ci, probe);
    run(chunk);
    const b = probeBoth(ci, probe);
    ds[c] = b[0] - a[0];
    dt[c] = b[1] - a[1];
  }
  await sleep(30);
  const g1 = [statAt(0, k.S_GC_COUNT), statAt(ci.ci_index, k.S_GC_COUNT)];
  const side = (d: Float64Array, i: 0 | 1): Side => {
    const grown = d.filter((x) => x >= 0);
    const m = grown.length ? median(grown) : NaN;
    const raw = chunk === 0 ? m : (m - overhead[i]) / chunk;
    return { perCall: Math.max(0, raw), belowResolution: raw < 0, shrank: chunks - grown.length, gcs: g1[i]! - g0[i]! };
  };
  return { label, control: label.startsWith('control'), calls: chunks * chunk, sender: side(ds, 0), target: side(dt, 1) };
}

/**
 * The allocation cases on a 2-CPU machine: integer, double and shared-view
 * arguments on a reused message, and a control that makes a new message per
 * call.  `sleepy`: CPU 1 sleeps between calls (poll 0): only the integer case,
 * in smaller chunks (the calls are slower).
 */
export async function allocationSuite(ci: cpu_info, sleepy: boolean): Promise<AllocResult[]> {
  const chunk = sleepy ? 500 : 2000, chunks = ALLOC_CALLS / 2000;
  const msg: ipi_msg_t<unknown> = { func: k.nop, arg: 0 };
  const view = new Int32Array(benchBuf, k.B_VIEW * 4, 16);
  /* The argument is set once per run, so that the loop itself allocates nothing. */
  const reused = (arg: unknown, vary: boolean) => (n: number): void => unpreempted(() => {
    msg.arg = arg;
    for (let i = 0; i < n; i++) {
      if (vary) msg.arg = i;
      ipi_unicast(msg, ci);
      ipi_wait(msg);
    }
  });
  const fresh = (n: number): void => unpreempted(() => {
    for (let i = 0; i < n; i++) {
      const m = { func: k.nop, arg: i };
      ipi_unicast(m, ci);
      ipi_wait(m);
    }
  });
  const cases: [string, (n: number) => void][] = [
    ['integer arg (i), reused msg', reused(0, true)],
    ['double arg (1.5), reused msg', reused(1.5, false)],
    ['shared Int32Array view arg, reused msg', reused(view, false)],
    ['control: a new msg object per call', fresh],
  ];
  /* Warm every path up first, so that compiling it is not counted. */
  for (const [, f] of cases) f(sleepy ? 2000 : 20_000);
  const ovh = await allocation('probes alone', ci, chunks, 0, () => {});
  const overhead: [number, number] = [ovh.sender.perCall, ovh.target.perCall];
  const out: AllocResult[] = [];
  for (const [label, f] of sleepy ? cases.slice(0, 1) : cases) out.push(await allocation(label, ci, chunks, chunk, f, overhead));
  return out;
}

export interface AllocSites {
  /** Bytes sampled over all the calls. */
  total: number;
  /** [allocating function < its caller, bytes], heaviest first. */
  sites: [string, number][];
}

/** Where CPU 0 and CPU 1 allocate over `calls` cross-calls with an integer argument (V8's sampling heap profiler). */
export function allocationSites(ci: cpu_info, calls: number): [AllocSites, AllocSites] {
  const msg: ipi_msg_t<unknown> = { func: k.nop, arg: 0 };
  const on = { func: k.alloc_prof_start, arg: 128 }, off = { func: k.alloc_prof_stop, arg: 4 };
  unpreempted(() => {
    ipi_unicast(on, ci);
    ipi_wait(on);
    k.alloc_prof_start(128);
    for (let i = 0; i < calls; i++) {
      msg.arg = i;
      ipi_unicast(msg, ci);
      ipi_wait(msg);
    }
    k.alloc_prof_stop(4);
    ipi_unicast(off, ci);
    ipi_wait(off);
  });
  const read = (cpu: number): AllocSites => {
    const at = k.B_TEXT + cpu * k.TEXT_BYTES;
    const n = new Int32Array(benchBuf, at, 1)[0]!;
    const [total, sites] = JSON.parse(new TextDecoder().decode(new Uint8Array(benchBuf, at + 4, n).slice())) as [number, [string, number][]];
    return { total, sites };
  };
  return [read(0), read(ci.ci_index)];
}

/** Count GCs on every CPU of the machine (CPU 0 locally), or stop counting. */
export function gcWatch(machine: Machine, on: boolean): void {
  if (on) k.gc_watch();
  else k.gc_unwatch();
  const m = { func: on ? k.gc_watch : k.gc_unwatch, arg: undefined };
  unpreempted(() => {
    for (let c = 1; c < machine.ncpu; c++) {
      ipi_unicast(m, cpu_lookup(c));
      ipi_wait(m);
    }
  });
}
