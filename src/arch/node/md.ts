/*
 * Node.js's machine-dependent layer for one CPU's thread: doorbells are
 * Atomics wait/notify on kernel words, deferred work is setImmediate, the
 * clock is the common timeOrigin + now().  It is given the kernel memory.
 */
import type { cpu_md } from '../../kern/md.js';

export function node_md(kmem: Int32Array, report: (error: unknown) => void): cpu_md {
  const origin = performance.timeOrigin;
  return {
    can_block: true,
    /* Wake every waiter: a CPU can have a blocking wait and its idle loop's waitAsync on one word. */
    wake: (index) => void Atomics.notify(kmem, index),
    sleep: (index, seen, ms) => void Atomics.wait(kmem, index, seen, ms),
    sleep_async: (index, seen, ms) => {
      const r = Atomics.waitAsync(kmem, index, seen, ms === Infinity ? undefined : ms);
      return r.async ? r.value : undefined;
    },
    now: () => origin + performance.now(),
    defer: (fn) => void setImmediate(fn),
    report,
  };
}
