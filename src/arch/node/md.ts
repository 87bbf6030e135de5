/*
 * Node.js's machine-dependent layer: doorbells are Atomics wait/notify on
 * kernel words, deferred work is setImmediate, the clock is the common
 * timeOrigin + now().  Errors no caller waits for go to the Machine on the
 * booting thread.
 */
import { i32 } from '../../kern/layout.js';
import type { cpu_md } from '../../kern/md.js';

export function node_md(report: (error: unknown) => void): cpu_md {
  const origin = performance.timeOrigin;
  return {
    can_block: true,
    /* Wake every waiter: a CPU can have a blocking wait and its idle loop's waitAsync on one word. */
    wake: (index) => void Atomics.notify(i32, index),
    sleep: (index, seen, ms) => void Atomics.wait(i32, index, seen, ms),
    sleep_async: (index, seen, ms) => {
      const r = Atomics.waitAsync(i32, index, seen, ms === Infinity ? undefined : ms);
      return r.async ? r.value : undefined;
    },
    now: () => origin + performance.now(),
    defer: (fn) => void setImmediate(fn),
    report,
  };
}
