/*
 * The storm's driver, for the short storm of npm test (storm.test.ts) and
 * the long one of npm run stress (stress.ts): boot, start every worker's
 * storm (storm_image.ts), storm on this CPU too in slices (so that this
 * thread can report progress and kill a CPU), stop once enough calls were
 * made, then check the ledger.
 */
import {
  cpu_lookup, ipi_broadcast, ipi_register, ipi_unicast, ipi_wait, kpreempt_disable, kpreempt_enable, softint_establish, SOFTINT_NET, SOFTINT_RCPU,
} from 'ipi';
import {
  at3, K_MSG, K_XCHIGH, K_XCLOW, L_DEAD, L_DONE, L_NOTE, L_OPS, L_ORDER, L_OTHER, L_REFUSED, L_RUNS, L_SENT, L_SOFT_RUNS, L_SOFT_SENT, L_STOP,
  L_HEAP, L_TRIG_RUNS, L_TRIG_SENT, storm_heap, storm_soft, storm_start, storm_state, storm_trig, STORM_MAXCPUS, STORM_WORDS,
} from './fixtures/storm_image.js';
import { bootTest } from './helpers.js';

export interface storm_options {
  ncpu: number;
  /** Stop once this many cross-calls and xcall runs were sent. */
  calls: number;
  /** Terminate the last CPU once half of them were sent. */
  kill: boolean;
  /** Called about every progress_ms with the totals so far. */
  progress?: (p: storm_progress) => void;
  progress_ms?: number;
}

export interface storm_progress {
  calls: number;
  ops: number;
  ms: number;
  killed: number | undefined;
}

export interface storm_result extends storm_progress {
  /** Everything the ledger disproves; empty when the storm passed. */
  violations: string[];
  /** Waits that failed because their target died, and sends refused for it. */
  deadWaits: number;
  refused: number;
  triggers: { sent: number; runs: number };
  softints: { sent: number; runs: number };
  /** Process memory, and each living CPU's heap in use after a collection (KiB; 0 without node --expose-gc's gc). */
  memory: { start: NodeJS.MemoryUsage; end: NodeJS.MemoryUsage; heapStart: number[]; heapEnd: number[] };
}

/** Every living CPU's heap in use, after a collection where the runtime allows one. */
function heaps(l: Int32Array, ncpu: number): number[] {
  const msg = { func: storm_heap, arg: undefined };
  kpreempt_disable();
  ipi_broadcast(msg);
  kpreempt_enable();
  ipi_wait(msg);
  return Array.from(l.subarray(L_HEAP, L_HEAP + ncpu));
}

const KINDS: [number, string][] = [[K_MSG, 'cross-call'], [K_XCHIGH, 'high-priority xcall'], [K_XCLOW, 'low-priority xcall']];
const SLICE = 64;

export async function storm(o: storm_options): Promise<storm_result> {
  if (o.ncpu > STORM_MAXCPUS) throw new RangeError(`storm: at most ${STORM_MAXCPUS} CPUs`);
  const buf = new SharedArrayBuffer(STORM_WORDS * 4);
  const l = new Int32Array(buf);
  const t = await bootTest(o.ncpu, { image: new URL('./fixtures/storm_image.js', import.meta.url), shared: { storm: buf } });
  const victim = o.kill ? o.ncpu - 1 : -1;
  let killed: number | undefined;
  /* The death we cause is expected; any other event is a violation. */
  const events: string[] = [];
  t.machine.addEventListener('dead', (e) => {
    e.preventDefault();
    if (e.cpu !== victim || e.reason !== 'terminated') events.push(`cpu${e.cpu} died: ${e.reason}`);
  });
  t.machine.addEventListener('error', (e) => {
    e.preventDefault();
    if (e.cpu !== victim) events.push(`error event on cpu${e.cpu}: ${String(e.error)}`);
  });
  const sum = (base: number): number => {
    let n = 0;
    for (let k = 0; k < KINDS.length; k++) for (let s = 0; s < o.ncpu; s++) for (let d = 0; d < o.ncpu; d++) n += l[at3(base, k, s, d)]!;
    return n;
  };
  const ops = (): number => l.subarray(L_OPS, L_OPS + o.ncpu).reduce((a, b) => a + b, 0);
  try {
    const id = ipi_register(storm_trig, undefined);
    const cookie = softint_establish(SOFTINT_NET | SOFTINT_RCPU, storm_soft, undefined);
    if (id === 0 || cookie === null) throw new Error('storm: no IPI id or soft interrupt left');
    const heapStart = heaps(l, o.ncpu);
    const memStart = process.memoryUsage();
    const start = performance.now();
    for (let c = 1; c < o.ncpu; c++) {
      const msg = { func: storm_start, arg: { seed: 0x9e3779b9 * (c + 1), ops: Number.MAX_SAFE_INTEGER, id, cookie } };
      kpreempt_disable();
      ipi_unicast(msg, cpu_lookup(c));
      kpreempt_enable();
      ipi_wait(msg);
    }
    const mine = new storm_state({ seed: 0x2545f491, ops: Number.MAX_SAFE_INTEGER, id, cookie });
    let shown = start;
    const progress = (): storm_progress => ({ calls: sum(L_SENT), ops: ops(), ms: performance.now() - start, killed });
    while (Atomics.load(l, L_STOP) === 0) {
      mine.run(SLICE);
      const calls = sum(L_SENT);
      if (calls >= o.calls) Atomics.store(l, L_STOP, 1);
      if (killed === undefined && victim > 0 && calls >= o.calls / 2) {
        killed = victim;
        await t.machine.terminate(victim);
      }
      if (o.progress && performance.now() - shown >= (o.progress_ms ?? 500)) {
        shown = performance.now();
        o.progress(progress());
      }
      /* Let this thread's event loop run (its timers, the workers' exits, its own idle loop) now and then. */
      if ((mine.left.n & 1023) < SLICE) await new Promise((r) => setImmediate(r));
    }
    const workers = o.ncpu - 1 - (killed === undefined ? 0 : 1);
    const deadline = Date.now() + 60_000;
    while (Atomics.load(l, L_DONE) < workers) {
      if (Date.now() > deadline) throw new Error(`storm: ${Atomics.load(l, L_DONE)} of ${workers} workers finished after 60 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const end = progress();
    const heapEnd = heaps(l, o.ncpu);
    const memEnd = process.memoryUsage();
    const checked = check(l, o.ncpu, killed);
    checked.violations.push(...events);
    return { ...end, ...checked, memory: { start: memStart, end: memEnd, heapStart, heapEnd } };
  } finally {
    await t.machine.shutdown();
  }
}

/** Check the ledger: what it disproves, and the totals. */
function check(l: Int32Array, ncpu: number, killed: number | undefined): Omit<storm_result, keyof storm_progress | 'memory'> {
  const violations: string[] = [];
  let deadWaits = 0;
  for (const [k, name] of KINDS) {
    for (let s = 0; s < ncpu; s++) {
      for (let d = 0; d < ncpu; d++) {
        const sent = l[at3(L_SENT, k, s, d)]!, runs = l[at3(L_RUNS, k, s, d)]!, dead = l[at3(L_DEAD, k, s, d)]!;
        deadWaits += dead;
        const what = `${name}s from cpu${s} to cpu${d}: sent ${sent}, ran ${runs}, failed dead ${dead}`;
        if (d !== killed && s !== killed) {
          /* Exactly once on exactly its targets. */
          if (runs !== sent || dead !== 0) violations.push(what);
        } else if (d === killed) {
          /* It may have run some before it died, not more than were sent; the waiters of the others were told. */
          if (runs > sent || runs + dead > sent + ncpu) violations.push(what);
        } else if (runs > sent + 1) {
          /* Sent by the CPU that was killed: at most one it sent was not yet counted. */
          violations.push(what);
        }
      }
    }
  }
  const coalesced = (sentBase: number, runBase: number, what: string): { sent: number; runs: number } => {
    let sent = 0, runs = 0;
    for (let d = 0; d < ncpu; d++) {
      let toD = 0;
      for (let s = 0; s < ncpu; s++) toD += l[sentBase + s * STORM_MAXCPUS + d]!;
      const ran = l[runBase + d]!;
      sent += toD;
      runs += ran;
      if (d !== killed && (ran > toD || (toD > 0 && ran === 0))) violations.push(`${what} to cpu${d}: sent ${toD}, ran ${ran}`);
    }
    return { sent, runs };
  };
  const triggers = coalesced(L_TRIG_SENT, L_TRIG_RUNS, 'triggers');
  const softints = coalesced(L_SOFT_SENT, L_SOFT_RUNS, 'soft interrupts');
  if (l[L_ORDER] !== 0) violations.push(`${l[L_ORDER]} runs did not see the sender's writes made before the call`);
  if (l[L_OTHER] !== 0) {
    const n = l[L_NOTE]!;
    violations.push(`${l[L_OTHER]} unexpected errors; the first: ${String.fromCharCode(...l.subarray(L_NOTE + 1, L_NOTE + 1 + n))}`);
  }
  let refused = 0;
  for (let s = 0; s < ncpu; s++) refused += l[L_REFUSED + s]!;
  return { violations, deadWaits, refused, triggers, softints };
}
