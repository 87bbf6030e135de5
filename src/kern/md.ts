/*
 * The boundary between the machine-independent core and a runtime (NetBSD's
 * sys/kern and sys/arch).  The core never calls a runtime API itself: every
 * wait, wake, clock read and deferred task goes through the cpu_md of the
 * current thread, which the runtime's code installs when it attaches a CPU.
 */

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
  /** Run fn as a task of this thread's event loop (thread context). */
  defer(fn: () => void): void;
  /** An error no caller is waiting for (an asynchronous handler threw). */
  report(error: unknown): void;
}

function detached(): never {
  throw new Error('ipi: no machine on this thread (call boot() first)');
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
