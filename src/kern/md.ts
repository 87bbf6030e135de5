/*
 * The boundary between the machine-independent core and a runtime (NetBSD's
 * sys/kern and sys/arch).  The core never calls a runtime API itself: every
 * wait, wake, clock read and deferred task goes through the cpu_md of the
 * current thread, and booting a machine through a runtime_md.  A runtime is
 * one folder under src/arch/ that implements both:
 *
 *   runtime_md                     how a machine's CPUs come to be
 *     ncpu_default()                 CPUs when boot() is not told (the cores)
 *     poll_default(ncpu)             the poll window when not told (µs)
 *     image_url(spec)                an image module's URL, from what boot() was given
 *     import(ci, url)                import an image module for a CPU of this thread
 *     md(kmem, report)               this thread's cpu_md, over the kernel memory
 *     cpu_start(args, image, events) start CPU args.index: it boots (cpu_boot),
 *                                    reports through events, and idles until the
 *                                    machine halts
 *     idle(ci)                       (optional) CPU 0's idle loop; by default
 *                                    cpu_idle() on this thread's event loop
 *   cpu_md                         what a CPU's thread does for the core
 *     wake, sleep, sleep_async       doorbells: wake and wait on a kernel word
 *     now                            a clock common to every CPU (ms)
 *     defer                          run a task of the event loop (thread context)
 *     report                         an error no caller waits for
 *     preempt                        (optional) called at interrupt points: where a
 *                                    runtime that runs several CPUs on one thread
 *                                    lets the others run
 *     relax                          (optional) the same, in a spin loop (cpu_relax)
 *
 * The runtime receives the kernel memory (an Int32Array over it) rather than
 * importing it, so arch/ depends on kern/ only through this interface.
 */
import type { cpu_info } from './cpu.js';
import { IpiError } from './errors.js';

export interface cpu_md {
  /** False where this thread must not block (a browser's main thread). */
  readonly can_block: boolean;
  /** Ring: wake whoever sleeps on kernel word `index` (a doorbell). */
  wake(index: number): void;
  /** Block while kernel word `index` still holds `seen`, at most `ms` milliseconds. */
  sleep(index: number, seen: number, ms: number): void;
  /**
   * The same without blocking: undefined if the word already differs,
   * otherwise a promise that settles on a wake or after `ms`.
   */
  sleep_async(index: number, seen: number, ms: number): Promise<unknown> | undefined;
  /** Milliseconds on a clock common to all CPUs of the machine. */
  now(): number;
  /** Run fn as a task of this CPU's event loop (thread context). */
  defer(fn: () => void): void;
  /** An error no caller is waiting for (an asynchronous handler threw). */
  report(error: unknown): void;
  /** An interrupt point: a runtime that runs several CPUs on one thread lets the others run here. */
  readonly preempt?: () => void;
  /** A spin loop waits for another CPU (cpu_relax): the same, where nothing else lets it run. */
  readonly relax?: () => void;
}

/** What a secondary CPU is told when it starts. */
export interface cpu_boot_args {
  kmem: SharedArrayBuffer;
  shared: Readonly<Record<string, SharedArrayBuffer>>;
  index: number;
  diagnostic: boolean;
  /** Poll window of idle and waiting CPUs, microseconds. */
  poll: number;
  /** A diagnostic wait with no timeout reports itself after this many milliseconds (0: never). */
  stallReport: number;
}

/** How a secondary CPU's start-up and life end reach the booting thread. */
export interface cpu_events {
  /** It runs (loaded its image). */
  ready(): void;
  /** It could not start: what went wrong. */
  failed(error: Error): void;
  /** An error no caller waits for, on that CPU. */
  error(error: unknown): void;
  /** Its thread ended (after ready): its exit code if it exited, the error that ended it if one did. */
  exited(code: number | null, error: Error | undefined): void;
}

/** The booting thread's handle on a secondary CPU. */
export interface cpu_handle {
  /** End its thread wherever it is; resolves once it is gone (exited() has been called). */
  terminate(): Promise<void>;
  /** Resolves once its thread has ended, after the machine halted; terminate it after grace_ms. */
  halted(grace_ms: number): Promise<void>;
  /** Keep the program alive while it runs (true, the default), or not. */
  ref(keep: boolean): void;
}

/** A runtime: how a machine's CPUs come to be (see above). */
export interface runtime_md {
  readonly name: string;
  ncpu_default(): number;
  poll_default(ncpu: number): number;
  image_url(spec: string | URL): string;
  import(ci: cpu_info, url: string): Promise<Record<string, unknown>>;
  md(kmem: Int32Array, report: (error: unknown) => void): cpu_md;
  cpu_start(args: cpu_boot_args, image: readonly string[], events: cpu_events): cpu_handle;
  idle?(ci: cpu_info): Promise<void>;
}

function detached(): never {
  throw new IpiError('ipi: no machine on this thread (call boot() first)');
}

/** The current thread's machine-dependent layer; a stub that throws until a CPU is attached. */
export let md: cpu_md = {
  can_block: false,
  wake: detached,
  sleep: detached,
  sleep_async: detached,
  now: detached,
  defer: detached,
  report: detached,
};
const detachedMd = md;

export function md_attach(m: cpu_md | undefined): void {
  md = m ?? detachedMd;
}
