/*
 * The ipi measurements, run on CPU 0 (this thread) of a booted machine.
 * Each returns one sample per round trip (µs) after `warm` unmeasured ones,
 * unless it says otherwise; performance.now() is read around each call
 * (about 40-50 ns here, reported at the top of the output).
 */
import {
  ipi_broadcast, ipi_register, ipi_trigger, ipi_unicast, ipi_unregister, ipi_wait, ipi_wait_async, kpreempt_disable, kpreempt_enable,
  softint_establish, softint_schedule_cpu, SOFTINT_MPSAFE, SOFTINT_NET, SOFTINT_RCPU, xc_broadcast, xc_wait,
  type cpu_info, type ipi_msg_t, type Machine, type softint_cookie_t,
} from 'ipi';
import * as k from './kernel.js';
import { bw } from './machines.js';

const now = (): number => performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A trivial cross-call message, reused: its function does nothing. */
export const nopMsg = (): ipi_msg_t<unknown> => ({ func: k.nop as (a: unknown) => void, arg: 0 });

/** Runs f with preemption disabled, as NetBSD's sends require. */
function unpreempted<T>(f: () => T): T {
  kpreempt_disable();
  try {
    return f();
  } finally {
    kpreempt_enable();
  }
}

/** Spins until word `at` of the bench buffer reads at least `value`; fails after 5 s (a lost interrupt must fail the run, not hang it). */
function spinUntil(at: number, value: number, what: string): void {
  const deadline = now() + 5000;
  for (let s = 1; Atomics.load(bw, at) < value; s++) {
    if ((s & 0xffff) === 0 && now() > deadline) throw new Error(`bench: ${what} never came back`);
  }
}

/* ---------------------------------------------------------- cross-calls */

/** ipi_unicast + ipi_wait round trips to ci. */
export function crossCalls(msg: ipi_msg_t<unknown>, ci: cpu_info, n: number, warm: number): Float64Array {
  const out = new Float64Array(n);
  unpreempted(() => {
    for (let i = 0; i < warm + n; i++) {
      const t0 = now();
      ipi_unicast(msg, ci);
      ipi_wait(msg);
      const t = now() - t0;
      if (i >= warm) out[i - warm] = t * 1e3;
    }
  });
  return out;
}

/** The same, timed in batches of `batch`: the mean per round trip, the clock read amortized. */
export function crossCallsBatched(msg: ipi_msg_t<unknown>, ci: cpu_info, n: number, batch: number, warm: number): Float64Array {
  const out = new Float64Array(n);
  unpreempted(() => {
    for (let b = 0; b < warm + n; b++) {
      const t0 = now();
      for (let j = 0; j < batch; j++) {
        ipi_unicast(msg, ci);
        ipi_wait(msg);
      }
      const t = now() - t0;
      if (b >= warm) out[b - warm] = (t * 1e3) / batch;
    }
  });
  return out;
}

/** How a round trip splits: the ipi_unicast call, and the ipi_wait that follows. */
export function crossCallsSplit(msg: ipi_msg_t<unknown>, ci: cpu_info, n: number, warm: number): { send: Float64Array; wait: Float64Array } {
  const send = new Float64Array(n), wait = new Float64Array(n);
  unpreempted(() => {
    for (let i = 0; i < warm + n; i++) {
      const t0 = now();
      ipi_unicast(msg, ci);
      const t1 = now();
      ipi_wait(msg);
      const t2 = now();
      if (i >= warm) {
        send[i - warm] = (t1 - t0) * 1e3;
        wait[i - warm] = (t2 - t1) * 1e3;
      }
    }
  });
  return { send, wait };
}

/** ipi_unicast + await ipi_wait_async round trips to ci. */
export async function crossCallsAsync(msg: ipi_msg_t<unknown>, ci: cpu_info, n: number, warm: number): Promise<Float64Array> {
  const out = new Float64Array(n);
  for (let i = 0; i < warm + n; i++) {
    const t0 = now();
    unpreempted(() => ipi_unicast(msg, ci));
    await ipi_wait_async(msg);
    const t = now() - t0;
    if (i >= warm) out[i - warm] = t * 1e3;
  }
  return out;
}

/* ----------------------------------------------------------- broadcasts */

/**
 * ipi_broadcast(msg, skipSelf) + ipi_wait: the whole (`total`) and the
 * ipi_broadcast call alone (`send`), until n samples or capMs have passed.
 */
export function broadcasts(msg: ipi_msg_t<unknown>, skipSelf: boolean, n: number, warm: number, capMs = Infinity): { send: Float64Array; total: Float64Array } {
  const send = new Float64Array(n), total = new Float64Array(n);
  const end = now() + capMs;
  let i = 0;
  unpreempted(() => {
    for (let j = 0; j < warm + n; j++) {
      const t0 = now();
      ipi_broadcast(msg, skipSelf);
      const t1 = now();
      ipi_wait(msg);
      const t2 = now();
      if (j < warm) continue;
      send[i] = (t1 - t0) * 1e3;
      total[i] = (t2 - t0) * 1e3;
      i++;
      if (t2 > end) break;
    }
  });
  return { send: send.subarray(0, i), total: total.subarray(0, i) };
}

/** xc_broadcast(flags) of a function that does nothing + xc_wait: every CPU runs it, this one included. */
export function xcalls(flags: number, n: number, warm: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < warm + n; i++) {
    const t0 = now();
    xc_wait(xc_broadcast(flags, k.nop, 0, undefined));
    const t = now() - t0;
    if (i >= warm) out[i - warm] = t * 1e3;
  }
  return out;
}

/* ------------------------------------------------------------- softint */

/** A SOFTINT_RCPU soft interrupt whose handler, kernel.ts's soft_pong, echoes the ping word; establish once per machine. */
export function softintPong(): softint_cookie_t {
  const cookie = softint_establish(SOFTINT_NET | SOFTINT_MPSAFE | SOFTINT_RCPU, k.soft_pong, undefined);
  if (cookie === null) throw new Error('bench: softint_establish found no free slot');
  return cookie;
}

let softSeq = 0;

/**
 * Remote soft interrupt round trips: CPU 0 writes a new ping number,
 * softint_schedule_cpu()s the handler on ci (an ipi_trigger there; ci's
 * service pass queues it and runs it at IPL_SOFTNET), and waits until the
 * handler has echoed the number into the pong word.  CPU 0 waits outside
 * the library, so only the softint path is timed: 'spin' spins on the word
 * (to compare with the raw spin ping-pong), 'sleep' sleeps in Atomics.wait
 * on it and the handler's notify wakes it (to compare with the raw
 * notify -> waitAsync round trip).
 */
export function softintRoundTrips(cookie: softint_cookie_t, ci: cpu_info, n: number, warm: number, wait: 'spin' | 'sleep'): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < warm + n; i++) {
    const seq = ++softSeq;
    const t0 = now();
    Atomics.store(bw, k.B_SOFT_PING, seq);
    unpreempted(() => softint_schedule_cpu(cookie, ci));
    if (wait === 'spin') {
      spinUntil(k.B_SOFT_PONG, seq, 'the soft interrupt');
    } else {
      for (let v; (v = Atomics.load(bw, k.B_SOFT_PONG)) !== seq;) {
        if (Atomics.wait(bw, k.B_SOFT_PONG, v, 5000) === 'timed-out') throw new Error('bench: the soft interrupt never came back');
      }
    }
    const t = now() - t0;
    if (i >= warm) out[i - warm] = t * 1e3;
  }
  return out;
}

/* ------------------------------------------------------------- triggers */

/** A fresh id for kernel.ts's tick handler (count a run). */
function registerTick(): number {
  const id = ipi_register(k.tick, undefined);
  if (id === 0) throw new Error('bench: ipi_register found no free id');
  return id;
}

export interface RingingResult {
  /** Trigger until the handler's run is seen by CPU 0 (spinning), µs. */
  roundTrip: Float64Array;
  /** The ipi_trigger call alone, which finds the bit clear: sets it and rings the doorbell, ns. */
  send: Float64Array;
  sent: number;
  coalesced: number;
}

/**
 * Triggers that ring: each waits until the handler has run (CPU 0 spins on
 * its count), so the target has cleared the pending bit and the next
 * trigger sets it again and rings the doorbell.
 */
export function ringingTriggers(machine: Machine, ci: cpu_info, n: number, warm: number): RingingResult {
  const id = registerTick();
  const before = idCounters(machine, id);
  const roundTrip = new Float64Array(n), send = new Float64Array(n);
  unpreempted(() => {
    for (let i = 0; i < warm + n; i++) {
      const target = Atomics.load(bw, k.B_TICKS) + 1;
      const t0 = now();
      ipi_trigger(id, ci);
      const t1 = now();
      spinUntil(k.B_TICKS, target, 'a ringing trigger');
      const t2 = now();
      if (i < warm) continue;
      send[i - warm] = (t1 - t0) * 1e6;
      roundTrip[i - warm] = (t2 - t0) * 1e3;
    }
  });
  const after = idCounters(machine, id);
  ipi_unregister(id);
  return { roundTrip, send, sent: after.sent - before.sent, coalesced: after.coalesced - before.coalesced };
}

/** CPU 0's counters for IPI id. */
function idCounters(machine: Machine, id: number): { sent: number; coalesced: number } {
  return machine.counters()[0]!.ipi.find((e) => e.id === id) ?? { sent: 0, coalesced: 0 };
}

export interface CoalescedResult {
  /** ns per coalesced trigger, one value per batch. */
  perTrigger: Float64Array;
  /** ns per raw check (Atomics.load & bit of a word whose bit is set), one value per batch. */
  rawCheck: Float64Array;
  sent: number;
  coalesced: number;
  runs: number;
}

export const TRIG_BATCH = 10_000;

/**
 * Coalesced triggers: CPU 1 is held in kernel.ts's hold(), which has no
 * interrupt point, so once the first trigger has set the id's bit every
 * later one finds it pending: the check, no atomic write, no doorbell.
 * Batches of TRIG_BATCH, each followed by as many raw checks of a set bit
 * (the floor a trigger cannot beat).
 */
export async function coalescedTriggers(machine: Machine, ci: cpu_info, batches: number, warm: number): Promise<CoalescedResult> {
  const id = registerTick();
  const before = idCounters(machine, id);
  Atomics.store(bw, k.B_TICKS, 0);
  Atomics.store(bw, k.B_HOLD, 1);
  const holdMsg = { func: k.hold, arg: 30_000 };
  const perTrigger = new Float64Array(batches), rawCheck = new Float64Array(batches);
  const RAW = k.B_VIEW + 32, bit = 1 << id;
  Atomics.store(bw, RAW, bit);
  let rawSeen = 0;
  kpreempt_disable();
  try {
    ipi_unicast(holdMsg, ci);
    spinUntil(k.B_HOLDING, 1, 'hold()');
    ipi_trigger(id, ci); /* sets the bit and rings the doorbell: the only one that does */
    for (let b = 0; b < warm + batches; b++) {
      const a = now();
      for (let i = 0; i < TRIG_BATCH; i++) ipi_trigger(id, ci);
      const m = now();
      for (let i = 0; i < TRIG_BATCH; i++) if ((Atomics.load(bw, RAW) & bit) !== 0) rawSeen++;
      const e = now();
      if (b < warm) continue;
      perTrigger[b - warm] = ((m - a) * 1e6) / TRIG_BATCH;
      rawCheck[b - warm] = ((e - m) * 1e6) / TRIG_BATCH;
    }
    if (Atomics.load(bw, k.B_HOLDING) !== 1) throw new Error('bench: hold() ended before the triggers did (raise its limit)');
    Atomics.store(bw, k.B_HOLD, 0);
    ipi_wait(holdMsg);
  } finally {
    Atomics.store(bw, k.B_HOLD, 0);
    kpreempt_enable();
  }
  if (rawSeen !== (warm + batches) * TRIG_BATCH) throw new Error('bench: the raw check miscounted');
  await until('the coalesced handler run', () => Atomics.load(bw, k.B_TICKS) >= 1);
  await sleep(5); /* a second run, if coalescing failed, would show in the count */
  const after = idCounters(machine, id);
  const runs = Atomics.load(bw, k.B_TICKS);
  ipi_unregister(id);
  return { perTrigger, rawCheck, sent: after.sent - before.sent, coalesced: after.coalesced - before.coalesced, runs };
}

async function until(what: string, pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`bench: timed out after ${ms} ms waiting for ${what}`);
    await sleep(1);
  }
}
