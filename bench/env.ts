/*
 * The machine the benchmark ran on, and how busy it was: figures that say
 * how far the run's numbers can be trusted.  Load is read before and after
 * the run: the load average, and (on Linux) /proc/stat's CPU time, split
 * into this process's share (process.cpuUsage, all its threads), time
 * stolen by the hypervisor, and everything else (other processes).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';

export interface Environment {
  node: string;
  platform: string;
  arch: string;
  cores: number;
  cpuModel: string;
  date: string;
}

export function environment(): Environment {
  return {
    node: process.version, platform: process.platform, arch: process.arch, cores: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown', date: new Date().toISOString(),
  };
}

/** A snapshot of the machine's load. */
export interface LoadSnapshot {
  at: number;
  loadavg: number[];
  /** /proc/stat's first line (all CPUs), in clock ticks: [total, idle + iowait, steal]; undefined off Linux. */
  ticks: [number, number, number] | undefined;
  /** This process's CPU time, µs. */
  self: number;
}

function procStatTicks(): [number, number, number] | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    /* cpu user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is counted in user already. */
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    if (f.length < 8 || f.some((x) => !Number.isFinite(x))) return undefined;
    const total = f.reduce((a, x) => a + x, 0);
    return [total, f[3]! + f[4]!, f[7]!];
  } catch {
    return undefined;
  }
}

export function loadSnapshot(): LoadSnapshot {
  const u = process.cpuUsage();
  return { at: performance.now(), loadavg: loadavg(), ticks: procStatTicks(), self: u.user + u.system };
}

/** How busy the machine's cores were between two snapshots, as percentages of all its cores' time. */
export interface LoadBetween {
  seconds: number;
  /** Every core's time not idle. */
  busyPct: number | null;
  /** This benchmark's threads. */
  selfPct: number;
  /** Stolen by the hypervisor (a virtual machine's other tenants). */
  stealPct: number | null;
  /** Everything else: other processes on this machine. */
  othersPct: number | null;
}

export function loadBetween(a: LoadSnapshot, b: LoadSnapshot, cores: number): LoadBetween {
  const seconds = (b.at - a.at) / 1000;
  const selfPct = (100 * (b.self - a.self) / 1e6) / (seconds * cores);
  if (a.ticks === undefined || b.ticks === undefined) return { seconds, busyPct: null, selfPct, stealPct: null, othersPct: null };
  const total = b.ticks[0] - a.ticks[0];
  const busyPct = (100 * (total - (b.ticks[1] - a.ticks[1]))) / total;
  const stealPct = (100 * (b.ticks[2] - a.ticks[2])) / total;
  return { seconds, busyPct, selfPct, stealPct, othersPct: Math.max(0, busyPct - stealPct - selfPct) };
}

/** Single-thread costs of the building blocks, ns: reading the clock, a notify nobody waits for, an atomic load. */
export function buildingBlocks(): { clock: number; notify: number; load: number } {
  const w = new Int32Array(new SharedArrayBuffer(64));
  const N = 200_000;
  const best = (f: () => number): number => {
    let b = Infinity;
    for (let r = 0; r < 5; r++) b = Math.min(b, f());
    return b;
  };
  let x = 0;
  const clock = best(() => {
    const a = performance.now();
    for (let i = 0; i < N; i++) x += performance.now();
    return ((performance.now() - a) * 1e6) / N;
  });
  const notify = best(() => {
    const a = performance.now();
    for (let i = 0; i < N; i++) x += Atomics.notify(w, 0);
    return ((performance.now() - a) * 1e6) / N;
  });
  const load = best(() => {
    const a = performance.now();
    for (let i = 0; i < N; i++) x += Atomics.load(w, 1);
    return ((performance.now() - a) * 1e6) / N;
  });
  /* Use x, so that the loops are not optimized away. */
  if (x === -1) console.log(x);
  return { clock, notify, load };
}
