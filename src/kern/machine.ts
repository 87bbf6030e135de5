/*
 * The handle boot() resolves to, on the booting thread (CPU 0).  What it
 * does is machine-independent; how CPUs are stopped, terminated and kept
 * alive is the runtime's (the machine_ops it is built with).
 */
import { cpu_self } from './cpu.js';
import { cpu_death_record, type cpu_death } from './failure.js';
import { error_record, error_revive, IpiCpuDeadError, IpiError, typeError } from './errors.js';
import { evcnt_read, type cpu_evcnt } from './evcnt.js';
import { shared } from './shared.js';

/** An error no caller was waiting for: an asynchronous handler threw, or a CPU failed. */
export class MachineErrorEvent extends Event {
  /** The error; a thrown value that was not an Error is wrapped in one that shows it. */
  readonly error: Error;

  constructor(error: unknown, readonly cpu: number) {
    super('error', { cancelable: true });
    this.error = error instanceof Error ? error : error_revive(error_record(error));
  }
}

/** A CPU died while the machine ran: its worker exited, crashed or was terminated. */
export class CpuDeadEvent extends Event {
  /** Why, in words: "process.exit(3)", "uncaught TypeError: boom", "terminated". */
  readonly reason: string;
  /** Its exit code, if it exited. */
  readonly exitCode: number | undefined;
  /** The error that killed it, if one did. */
  readonly error: Error | undefined;

  constructor(readonly cpu: number, death: cpu_death) {
    super('dead', { cancelable: true });
    this.reason = death.reason;
    this.exitCode = death.exitCode ?? undefined;
    this.error = death.error === null ? undefined : error_revive(death.error);
  }
}

/** The events of a Machine, by type. */
export interface MachineEventMap {
  error: MachineErrorEvent;
  dead: CpuDeadEvent;
}

/** What the runtime does for a machine. @internal */
export interface machine_ops {
  /** Stop every CPU; resolves once all are gone. */
  halt(): Promise<void>;
  /** Terminate CPU c's thread; resolves once it is gone (not yet marked dead). */
  terminate(c: number): Promise<void>;
  /** Let the program exit while CPUs run (false), or not (true). */
  ref(keep: boolean): void;
}

type Listener<E extends Event> = ((ev: E) => void) | { handleEvent(ev: E): void };
/* EventTarget's own parameter types (the DOM's names are not in every runtime's typings). */
type AnyListener = Parameters<EventTarget['addEventListener']>[1];
type AddOptions = Parameters<EventTarget['addEventListener']>[2];
type RemoveOptions = Parameters<EventTarget['removeEventListener']>[2];

export class Machine extends EventTarget {
  /** Number of CPUs. */
  readonly ncpu: number;
  #ops: machine_ops;
  #halted: Promise<void> | undefined;

  /** @internal Made by boot(). */
  constructor(ncpu: number, ops: machine_ops) {
    super();
    this.ncpu = ncpu;
    this.#ops = ops;
  }

  override addEventListener<K extends keyof MachineEventMap>(type: K, listener: Listener<MachineEventMap[K]> | null,
    options?: AddOptions): void;
  override addEventListener(type: string, listener: AnyListener, options?: AddOptions): void;
  override addEventListener(type: string, listener: AnyListener, options?: AddOptions): void {
    super.addEventListener(type, listener, options);
  }

  override removeEventListener<K extends keyof MachineEventMap>(type: K, listener: Listener<MachineEventMap[K]> | null,
    options?: RemoveOptions): void;
  override removeEventListener(type: string, listener: AnyListener, options?: RemoveOptions): void;
  override removeEventListener(type: string, listener: AnyListener, options?: RemoveOptions): void {
    super.removeEventListener(type, listener, options);
  }

  #check(fn: string): void {
    if (this.#halted !== undefined) throw new IpiError(`machine.${fn}: the machine has been shut down`);
  }

  /** The shared buffer called `name` (the same as shared(name) on any CPU). */
  shared(name: string): SharedArrayBuffer {
    this.#check('shared');
    return shared(name);
  }

  /** Event counters of every CPU, as `vmstat -i` would show them. */
  counters(): cpu_evcnt[] {
    this.#check('counters');
    return evcnt_read(this.ncpu);
  }

  /**
   * Terminate CPU `cpu` (1 .. ncpu-1) as Worker.terminate() does, wherever
   * it is, even in a loop with no interrupt point.  It is marked dead: its
   * waiters fail with an IpiCpuDeadError, calls to it are refused, and a
   * 'dead' event is dispatched before this resolves.  The others carry on.
   */
  async terminate(cpu: number): Promise<void> {
    this.#check('terminate');
    if (typeof cpu !== 'number') throw typeError('machine.terminate', 'cpu', `an integer in [1, ${this.ncpu})`, cpu);
    if (!Number.isInteger(cpu) || cpu < 1 || cpu >= this.ncpu) {
      throw new RangeError(`machine.terminate: cpu must be an integer in [1, ${this.ncpu}), got ${String(cpu)}` +
        (cpu === 0 ? ': cpu0 is this thread; shut the machine down instead' : ''));
    }
    await this.#ops.terminate(cpu);
  }

  /**
   * unref: let the program exit while the machine runs, as Worker.unref()
   * does, if nothing else keeps it alive: for a machine that serves for the
   * whole life of the program and is never shut down.
   */
  unref(): void {
    this.#check('unref');
    this.#ops.ref(false);
  }

  /** ref: undo unref(): the machine keeps the program alive until shutdown() (the default). */
  ref(): void {
    this.#check('ref');
    this.#ops.ref(true);
  }

  /**
   * Stop every CPU and release every worker and handle.  Waits still in
   * progress on any CPU fail with an IpiError.  Calling it again returns the
   * same promise.
   */
  shutdown(): Promise<void> {
    this.#halted ??= this.#ops.halt();
    return this.#halted;
  }

  /**
   * @internal Deliver an error that no caller waits for, as an 'error' event;
   * as on the web, a listener that calls preventDefault() has handled it,
   * otherwise it is printed.
   */
  report(error: unknown, cpu: number): void {
    if (this.dispatchEvent(new MachineErrorEvent(error, cpu))) {
      console.error(`ipi: unhandled error on cpu${cpu} (handle 'error' events of the machine to take it):`, error instanceof Error ? error : error_record(error).message);
    }
  }

  /**
   * @internal CPU c has been marked dead: dispatch 'dead', then 'error' with
   * an IpiCpuDeadError; printed unless a listener of either calls
   * preventDefault().
   */
  died(c: number): void {
    cpu_self('machine');
    const death = cpu_death_record(c);
    const dead = this.dispatchEvent(new CpuDeadEvent(c, death));
    const err = new IpiCpuDeadError(`cpu${c} died: ${death.reason}`, c, death.reason, death.exitCode ?? undefined);
    const unhandled = this.dispatchEvent(new MachineErrorEvent(err, c));
    if (dead && unhandled) console.error(`ipi: cpu${c} died (handle 'dead' or 'error' events of the machine to take it): ${death.reason}`);
  }
}
