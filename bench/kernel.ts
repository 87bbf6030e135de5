/*
 * The benchmark's image: the kernel symbols every CPU loads.  State lives in
 * the shared buffer 'bench' (B_* below): Int32 words for control, and
 * Float64 slots per CPU for heap and GC statistics that CPU 0 reads.
 */
import { Session } from 'node:inspector';
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { cpu_lookup, cpu_number, ipi_unicast, ipi_wait, ncpu, shared, type ipi_msg_t } from 'ipi';

/** Bytes of the 'bench' buffer. */
export const BENCH_BYTES = 64 * 1024;
/** Int32 word: hold() spins while it is non-zero. */
export const B_HOLD = 0;
/** Int32 word: hold() sets it once it spins. */
export const B_HOLDING = 1;
/** Int32 word: runs of tick(). */
export const B_TICKS = 2;
/** Int32 word: the round trip number CPU 0 asks soft_pong() to echo. */
export const B_SOFT_PING = 16;
/** Int32 word (another cache line): where soft_pong() echoes it, and wakes a waiter. */
export const B_SOFT_PONG = 32;
/** Int32 words from here: a few for a view argument. */
export const B_VIEW = 64;
/** Float64 index of CPU c's statistics: B_STATS + c * STATS_PER_CPU + S_*. */
export const B_STATS = 512;
export const STATS_PER_CPU = 8;
export const S_GC_COUNT = 0;
export const S_GC_MS = 1;
export const S_NEW_SPACE = 2;
export const S_HEAP_USED = 3;
/** Bytes: CPU c's allocation report (a length word, then UTF-8) at B_TEXT + c * TEXT_BYTES. */
export const B_TEXT = 16 * 1024;
export const TEXT_BYTES = 8 * 1024;

let i32: Int32Array | undefined;
let f64: Float64Array | undefined;
function words(): Int32Array {
  return (i32 ??= new Int32Array(shared('bench')));
}
function stats(): Float64Array {
  return (f64 ??= new Float64Array(shared('bench')));
}

/** A cross-call that does nothing: the round trip. */
export function nop(_arg: unknown): void {}

/** An asynchronous IPI handler: count a run. */
export function tick(): void {
  Atomics.add(words(), B_TICKS, 1);
}

/**
 * A soft interrupt handler (SOFTINT_RCPU): echo the ping word into the pong
 * word and wake whoever sleeps on it, so the CPU that scheduled it sees the
 * round trip end.  The notify costs ~40 ns when nobody sleeps.
 */
export function soft_pong(): void {
  const w = words();
  Atomics.store(w, B_SOFT_PONG, Atomics.load(w, B_SOFT_PING));
  Atomics.notify(w, B_SOFT_PONG);
}

/**
 * Keep this CPU busy without an interrupt point, so a trigger sent to it
 * meanwhile stays pending, until B_HOLD is cleared (or `limitMs` passes, so
 * that a failed benchmark never leaves a CPU spinning).
 */
export function hold(limitMs: number): void {
  const w = words();
  Atomics.store(w, B_HOLDING, 1);
  const end = Date.now() + limitMs;
  for (let n = 1; Atomics.load(w, B_HOLD) !== 0; n++) {
    if ((n & 0xfffff) === 0 && Date.now() > end) break;
  }
  Atomics.store(w, B_HOLDING, 0);
}

/* GC entries on this CPU, counted by an observer installed by gc_watch(). */
let observer: PerformanceObserver | undefined;

/** Start counting this CPU's garbage collections into its statistics slots. */
export function gc_watch(): void {
  if (observer !== undefined) return;
  const s = stats();
  const at = B_STATS + cpu_number() * STATS_PER_CPU;
  observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      s[at + S_GC_COUNT]!++;
      s[at + S_GC_MS]! += e.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
}

/** Stop counting (an observer keeps a worker's event loop busy otherwise). */
export function gc_unwatch(): void {
  observer?.disconnect();
  observer = undefined;
}

/** Record this CPU's heap usage now: young generation and whole heap, bytes. */
export function heap_probe(): void {
  const s = stats();
  const at = B_STATS + cpu_number() * STATS_PER_CPU;
  /* Read both before storing anything: the probe's own garbage comes after. */
  const heap = getHeapStatistics().used_heap_size;
  let young = 0;
  for (const sp of getHeapSpaceStatistics()) if (sp.space_name === 'new_space') young = sp.space_used_size;
  s[at + S_NEW_SPACE] = young;
  s[at + S_HEAP_USED] = heap;
}

/*
 * Where a CPU allocates: V8's sampling heap profiler, keeping the samples of
 * objects already collected (so short-lived garbage shows), summed by
 * allocating function and its caller.
 */
let session: Session | undefined;

/** Start sampling this CPU's allocations, every `interval` bytes on average. */
export function alloc_prof_start(interval: number): void {
  session = new Session();
  session.connect();
  session.post('HeapProfiler.enable');
  session.post('HeapProfiler.startSampling', {
    samplingInterval: interval, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true,
  } as never);
}

interface prof_node {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: prof_node[];
}

/**
 * Stop sampling and write this CPU's report into the 'bench' buffer: JSON
 * [total bytes, [[site, bytes], ...]] of the `top` heaviest sites.
 */
export function alloc_prof_stop(top: number): void {
  const s = session;
  session = undefined;
  if (s === undefined) return;
  const frame = (n: prof_node): string =>
    `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/') || '(native)'}:${n.callFrame.lineNumber + 1}`;
  let report = '[0,[]]';
  /* A session on its own thread answers synchronously. */
  s.post('HeapProfiler.stopSampling', (err, r) => {
    if (err) return;
    const sites = new Map<string, number>();
    let total = 0;
    const walk = (n: prof_node, caller: string): void => {
      const f = frame(n);
      if (n.selfSize > 0) {
        const key = `${f} < ${caller}`;
        sites.set(key, (sites.get(key) ?? 0) + n.selfSize);
        total += n.selfSize;
      }
      for (const c of n.children) walk(c, f);
    };
    walk((r as unknown as { profile: { head: prof_node } }).profile.head, '');
    report = JSON.stringify([total, [...sites].sort((a, b) => b[1] - a[1]).slice(0, top)]);
  });
  s.post('HeapProfiler.disable');
  s.disconnect();
  const off = B_TEXT + cpu_number() * TEXT_BYTES;
  const bytes = new TextEncoder().encode(report).subarray(0, TEXT_BYTES - 4);
  const u8 = new Uint8Array(shared('bench'), off + 4, TEXT_BYTES - 4);
  u8.set(bytes);
  new Int32Array(shared('bench'), off, 1)[0] = bytes.length;
}

const simMsg: ipi_msg_t<undefined> = { func: nop, arg: undefined };

/** The simulated machine's workload: from an interrupt handler, cross-call every other CPU `rounds` times, waiting each time. */
export function sim_storm(rounds: number): void {
  const me = cpu_number();
  for (let r = 0; r < rounds; r++) {
    for (let c = 0; c < ncpu; c++) {
      if (c === me) continue;
      ipi_unicast(simMsg, cpu_lookup(c));
      ipi_wait(simMsg);
    }
  }
}
