/*
 * The simulated machine: every CPU on the calling thread, under a seeded
 * scheduler, in virtual time.  The same seed gives the same interleaving.
 *
 * How CPUs share one thread.  A CPU runs only at the scheduler's word, and
 * switches only at interrupt points: its idle loop, the waits of the
 * library (md.sleep), preempt_point() and a lowering splx() (md.preempt),
 * deferred thread work.  JavaScript cannot suspend a synchronous call
 * stack, so where a CPU would block, the scheduler runs other CPUs' steps
 * nested on the same stack, as interrupts taken in a wait.  A step of a
 * CPU is one service pass at the interrupt point it is at:
 *   - idle (it is on no frame of the stack): hard interrupts, soft ones,
 *     thread work, then one deferred task of its event loop;
 *   - in a wait (md.sleep): hard interrupts at any IPL, soft ones above
 *     its IPL, thread work in thread context, as intr_wait does;
 *   - at a preempt point: the same, hard interrupts only below IPL_HIGH;
 *   - running (a step of it is under way, lower on the stack): not at all.
 * Each CPU keeps a stack of what it is doing (sim_cpu.frames) to know which.
 *
 * What the seed decides.  Which runnable CPU takes the next step; whether a
 * waiting CPU whose doorbell rang goes on at once or lets others run first
 * (when a pending interrupt is taken); how many steps others get at a
 * preempt point.  Nothing else chooses: CPUs are scanned in order, and time
 * is virtual (md.now): each step costs SIM_STEP_MS, and when no CPU can run,
 * time jumps to the next deadline.  Asynchronous code (a promise's
 * continuation, the program on CPU 0 after an await) runs between the
 * scheduler's batches, each in the context of the CPU that started it
 * (AsyncLocalStorage), so curcpu() is right there too; the scheduler's
 * batches are macrotasks.  Real timers (setTimeout) in image code run in
 * real time: a program that uses them is not replayed exactly.
 *
 * Thread work nests only where it cannot wait for a CPU below it.  A CPU
 * lower on the stack cannot go on until every step above it returns, so a
 * step must not wait for it.  Interrupt handlers wait only for what other
 * CPUs' interrupt service gives (messages, barriers), which nesting
 * provides; thread work (low-priority xcall functions, deferred tasks) may
 * issue xcalls, which wait for the high-priority xcall lock.  So while a
 * CPU on the stack holds that lock (ci_thread_held, the same rule that keeps
 * the holder itself from running thread work in its waits), no CPU above it
 * runs thread work: it waits for the stack to unwind, as it would wait for
 * the lock.
 *
 * Limits.  A CPU that spins on shared memory with no interrupt point never
 * lets another run: put preempt_point() in such loops (it takes nothing at
 * IPL_HIGH, but lets the machine go on).  A wait that only another CPU's
 * asynchronous code could end cannot end while it blocks the thread: after
 * SIM_DEADLOCK_MS of virtual time with no CPU able to run, the scheduler
 * throws an IpiError naming the seed.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { cpu_dead_p, type cpu_info } from '../../kern/cpu.js';
import { IpiError } from '../../kern/errors.js';
import { intr_pending, intr_point_service, machine_halted } from '../../kern/intr.js';
import type { cpu_md } from '../../kern/md.js';

/** Virtual milliseconds each step of a CPU takes. */
export const SIM_STEP_MS = 0.001;
/** Virtual milliseconds with no CPU able to run after which a blocking wait is a deadlock. */
export const SIM_DEADLOCK_MS = 3_600_000;
/** Virtual milliseconds a CPU may spin (cpu_relax) with no CPU able to run before that is a deadlock. */
export const SIM_SPIN_DEADLOCK_MS = 10_000;
/** Steps nested on the stack, at most: deeper, a waiting CPU lets no other run (and may report a deadlock). */
export const SIM_MAXDEPTH = 128;
/** Steps the scheduler runs in one macrotask before it lets asynchronous code run. */
export const SIM_BATCH = 256;
/** Where virtual time starts (ms): never 0, which callers take for "unset". */
const SIM_EPOCH_MS = 1_000_000;

/*
 * The current CPU of asynchronous code: one store for every simulated
 * machine of this thread (one runs at a time), since each live instance
 * costs every promise of the thread some time.
 */
const sim_als = new AsyncLocalStorage<cpu_info>();

/** What a CPU is doing, on the stack (sim_cpu.frames). */
const RUN = 0;
const WAIT = 1;
const PREEMPT = 2;

interface async_sleeper {
  cpu: sim_cpu;
  index: number;
  seen: number;
  deadline: number;
  resolve: () => void;
}

interface sim_cpu {
  readonly ci: cpu_info;
  /** What it does on the stack, innermost last: RUN, WAIT or PREEMPT; none: idle. */
  readonly frames: number[];
  /** Tasks of its event loop (md.defer), run when it is idle. */
  readonly deferq: (() => void)[];
}

/** xorshift128+ on two 32-bit halves, seeded by splitmix32: small, fast, and the same everywhere. */
class sim_rng {
  #s = new Uint32Array(4);

  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.#s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if ((this.#s[0] | this.#s[1] | this.#s[2] | this.#s[3]) === 0) this.#s[0] = 1;
  }

  /** A uniform integer in [0, n). */
  below(n: number): number {
    const s = this.#s;
    const t = s[0] ^ (s[0] << 11);
    s[0] = s[1];
    s[1] = s[2];
    s[2] = s[3];
    s[3] = (s[3] ^ (s[3] >>> 19) ^ t ^ (t >>> 8)) >>> 0;
    return Math.floor((s[3] / 0x100000000) * n);
  }
}

export class sim_machine {
  readonly seed: number;
  readonly #rng: sim_rng;
  readonly #cpus: sim_cpu[] = [];
  #kmem: Int32Array = new Int32Array(0);
  #now = SIM_EPOCH_MS;
  /** When a step last ran (virtual), for deadlock detection. */
  #progress = SIM_EPOCH_MS;
  #depth = 0;
  #sleepers: async_sleeper[] = [];
  #scheduled = false;
  #halted = false;
  #idle: (() => void) | undefined;
  /** Steps taken, for reports (interleavings per second). */
  steps = 0;
  /** Per CPU: where its errors that no caller waits for go. */
  readonly #reports: ((error: unknown) => void)[] = [];

  constructor(seed: number) {
    this.seed = seed;
    this.#rng = new sim_rng(seed);
  }

  /** CPU ci is one of the machine's, and its errors no caller waits for go to `report`. */
  add_cpu(ci: cpu_info, report: (error: unknown) => void): void {
    this.#cpus[ci.ci_index] = { ci, frames: [], deferq: [] };
    this.#reports[ci.ci_index] = report;
  }

  /**
   * The current CPU: the one whose step or asynchronous code runs, else CPU 0
   * (the program).  A stored CPU of another machine (a store that outlived
   * its machine: Deno's test runner carries one into the next test) is not ours.
   */
  current = (): cpu_info | undefined => {
    const s = sim_als.getStore();
    return s !== undefined && this.#cpus[s.ci_index]?.ci === s ? s : this.#cpus[0]?.ci;
  };

  /** Run fn as CPU ci (its image's top-level code, its asynchronous continuations). */
  as<T>(ci: cpu_info, fn: () => T): T {
    return sim_als.run(ci, fn);
  }

  /** The cpu_md all simulated CPUs share. */
  md(kmem: Int32Array): cpu_md {
    this.#kmem = kmem;
    return {
      can_block: true,
      wake: () => this.#kick(),
      sleep: (index, seen, ms) => this.#sleep(index, seen, ms),
      sleep_async: (index, seen, ms) => this.#sleep_async(index, seen, ms),
      now: () => this.#now,
      defer: (fn) => {
        this.#self().deferq.push(fn);
        this.#kick();
      },
      report: (e) => this.#reports[this.#self().ci.ci_index]?.(e),
      preempt: () => this.#preempt(),
      relax: () => this.#relax(),
    };
  }

  /** CPU 0's idle loop: the scheduler idles every CPU; this resolves at halt. */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.#idle = resolve;
      this.#kick();
    });
  }

  /** The machine halts: wake every asynchronous waiter (it sees the halt), stop scheduling. */
  halt(): void {
    this.#halted = true;
    for (const s of this.#sleepers.splice(0)) s.resolve();
    this.#idle?.();
  }

  #self(): sim_cpu {
    return this.#cpus[this.current()!.ci_index];
  }

  #error(what: string): IpiError {
    return new IpiError(`simulated machine (seed ${this.seed}): ${what}; boot({ simulate: { seed: ${this.seed} } }) replays it`);
  }

  /** May thread work run now: does no CPU on the stack hold the high-priority xcall lock? */
  #thread_ok(): boolean {
    for (const z of this.#cpus) if (z.frames.length !== 0 && z.ci.ci_thread_held !== 0) return false;
    return true;
  }

  /** Can CPU y take a step now, at the interrupt point it is at? */
  #runnable(y: sim_cpu, thread: boolean): boolean {
    if (cpu_dead_p(y.ci.ci_index)) return false;
    const top = y.frames.length === 0 ? -1 : y.frames[y.frames.length - 1];
    if (top === RUN) return false;
    if (top === -1) return (thread && y.deferq.length !== 0) || intr_pending(y.ci, true, thread);
    return intr_pending(y.ci, top === WAIT, thread);
  }

  /** A runnable CPU other than `not`, chosen by the seed; undefined if none. */
  #pick(not: sim_cpu | undefined): sim_cpu | undefined {
    const thread = this.#thread_ok();
    let n = 0;
    for (const y of this.#cpus) if (y !== not && this.#runnable(y, thread)) n++;
    if (n === 0) return undefined;
    let k = this.#rng.below(n);
    for (const y of this.#cpus) if (y !== not && this.#runnable(y, thread) && k-- === 0) return y;
    return undefined;
  }

  /** One step of CPU y, as y, at the interrupt point it is at. */
  #step(y: sim_cpu): void {
    const top = y.frames.length === 0 ? -1 : y.frames[y.frames.length - 1];
    const thread = this.#thread_ok();
    y.frames.push(RUN);
    this.#depth++;
    this.steps++;
    this.#now += SIM_STEP_MS;
    this.#progress = this.#now;
    try {
      sim_als.run(y.ci, () => {
        if (intr_point_service(y.ci, top !== PREEMPT, thread) || top !== -1 || !thread) return;
        const task = y.deferq.shift();
        if (task === undefined) return;
        try {
          task();
        } catch (e) {
          this.#reports[y.ci.ci_index]?.(e);
        }
      });
    } finally {
      this.#depth--;
      y.frames.pop();
    }
  }

  /** md.sleep: the current CPU blocks; others run (nested) until its doorbell rings or ms pass. */
  #sleep(index: number, seen: number, ms: number): void {
    const x = this.#self();
    const deadline = this.#now + ms;
    x.frames.push(WAIT);
    try {
      for (;;) {
        if (machine_halted() || this.#now >= deadline) return;
        const rang = Atomics.load(this.#kmem, index) !== seen;
        /* The seed decides whether the interrupt is taken now, or others run first. */
        if (rang && this.#rng.below(2) === 0) return;
        const y = this.#depth < SIM_MAXDEPTH ? this.#pick(x) : undefined;
        if (y !== undefined) {
          this.#step(y);
          continue;
        }
        if (rang) return;
        if (this.#now - this.#progress >= SIM_DEADLOCK_MS) {
          throw this.#error(`deadlock: cpu${x.ci.ci_index} waits, no CPU can run, and ${SIM_DEADLOCK_MS} ms of virtual time passed ` +
            '(a wait that only asynchronous code could end blocks the only thread)');
        }
        /* No one can run: time passes, to this wait's deadline at most. */
        this.#now = Math.min(deadline, this.#progress + SIM_DEADLOCK_MS);
      }
    } finally {
      x.frames.pop();
    }
  }

  /** md.preempt: at an interrupt point, let a few others run first (how many, the seed says). */
  #preempt(): void {
    const x = this.#self();
    this.#now += SIM_STEP_MS;
    if (this.#depth >= SIM_MAXDEPTH) return;
    x.frames.push(PREEMPT);
    try {
      while (this.#rng.below(2) === 0) {
        const y = this.#pick(x);
        if (y === undefined) break;
        this.#step(y);
      }
    } finally {
      x.frames.pop();
    }
  }

  /**
   * md.relax (cpu_relax): the current CPU spins waiting for another: let a
   * runnable CPU take a step; if none can, time passes (the spin may wait
   * for a clock), and a spin that no CPU can ever end is a deadlock.
   */
  #relax(): void {
    const x = this.#self();
    this.#now += SIM_STEP_MS;
    const y = this.#depth < SIM_MAXDEPTH ? this.#pick(x) : undefined;
    if (y === undefined) {
      if (this.#now - this.#progress >= SIM_SPIN_DEADLOCK_MS) {
        throw this.#error(`deadlock: cpu${x.ci.ci_index} spins (cpu_relax) and no CPU can run for ${SIM_SPIN_DEADLOCK_MS} ms of virtual time`);
      }
      return;
    }
    /* Spinning, it takes nothing: for the scheduler it is running. */
    x.frames.push(RUN);
    try {
      this.#step(y);
    } finally {
      x.frames.pop();
    }
  }

  /** md.sleep_async: the scheduler resolves it when the doorbell rings or time passes its deadline. */
  #sleep_async(index: number, seen: number, ms: number): Promise<void> | undefined {
    if (Atomics.load(this.#kmem, index) !== seen) return undefined;
    return new Promise<void>((resolve) => {
      this.#sleepers.push({ cpu: this.#self(), index, seen, deadline: this.#now + ms, resolve });
      this.#kick();
    });
  }

  /** Make sure a batch of the scheduler is coming. */
  #kick(): void {
    if (this.#scheduled || this.#halted) return;
    this.#scheduled = true;
    setImmediate(() => this.#batch());
  }

  /** Wake the asynchronous sleepers whose doorbell rang or whose deadline passed; true if any. */
  #wake_sleepers(): boolean {
    let woke = false;
    for (let i = 0; i < this.#sleepers.length; i++) {
      const s = this.#sleepers[i];
      if (Atomics.load(this.#kmem, s.index) === s.seen && this.#now < s.deadline) continue;
      this.#sleepers.splice(i--, 1);
      s.resolve();
      woke = true;
    }
    return woke;
  }

  /**
   * A batch (a macrotask, with nothing else on the stack, so every CPU is
   * idle or in asynchronous code): steps until none can run or the batch
   * is spent; waking asynchronous sleepers ends it, so that their code
   * runs before the next.
   */
  #batch(): void {
    this.#scheduled = false;
    if (machine_halted()) this.halt();
    if (this.#halted) return;
    for (let n = 0; n < SIM_BATCH; n++) {
      if (this.#wake_sleepers()) break;
      const y = this.#pick(undefined);
      if (y !== undefined) {
        this.#step(y);
        continue;
      }
      /* No CPU can run: time jumps to the next asynchronous deadline, if any. */
      let next = Infinity;
      for (const s of this.#sleepers) next = Math.min(next, s.deadline);
      if (next === Infinity) return;
      this.#now = Math.max(this.#now, next);
    }
    this.#kick();
  }
}
