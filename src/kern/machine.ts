/*
 * The handle boot() resolves to, on the booting thread (CPU 0).  What it
 * does is machine-independent; how the CPUs are stopped is the runtime's
 * (the `halt` function it is built with).
 */
import { IpiError } from './errors.js';
import { evcnt_read, type cpu_evcnt } from './evcnt.js';
import { shared } from './shared.js';

/** An error no caller was waiting for: an asynchronous handler threw, or a CPU failed. */
export class MachineErrorEvent extends Event {
  constructor(readonly error: unknown, readonly cpu: number) {
    super('error', { cancelable: true });
  }
}

export class Machine extends EventTarget {
  /** Number of CPUs. */
  readonly ncpu: number;
  #halt: (() => Promise<void>) | undefined;
  #halted: Promise<void> | undefined;

  /** @internal Made by boot(). */
  constructor(ncpu: number, halt: () => Promise<void>) {
    super();
    this.ncpu = ncpu;
    this.#halt = halt;
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
   * Stop every CPU and release every worker and handle.  Waits still in
   * progress on any CPU fail with an IpiError.  Calling it again returns the
   * same promise.
   */
  shutdown(): Promise<void> {
    if (this.#halted === undefined) {
      const halt = this.#halt!;
      this.#halt = undefined;
      this.#halted = halt();
    }
    return this.#halted;
  }

  /**
   * @internal Deliver an error that no caller waits for, as an 'error' event;
   * as on the web, a listener that calls preventDefault() has handled it,
   * otherwise it is printed.
   */
  report(error: unknown, cpu: number): void {
    if (this.dispatchEvent(new MachineErrorEvent(error, cpu))) {
      console.error(`ipi: unhandled error on cpu${cpu} (handle 'error' events of the machine to take it):`, error);
    }
  }
}
