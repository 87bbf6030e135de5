/*
 * The partner thread of the raw baselines (no ipi here): it echoes
 * postMessages, and on command answers a ping word in shared memory either by
 * spinning on Atomics.load or by sleeping in Atomics.wait.
 *
 * 'wait_async' answers from its event loop, woken by Atomics.waitAsync (as an
 * idle ipi CPU is).
 *
 * Shared words (Int32Array over workerData.words): PING, written by the main
 * thread (1, 2, 3, ...; -1 stops a ping-pong), and PONG, where this thread
 * writes back the ping it saw.
 */
import { parentPort, workerData } from 'node:worker_threads';

export const PING = 0;
export const PONG = 16; /* another cache line */

export type raw_command =
  | { op: 'echo'; i: number }
  | { op: 'spin' | 'wait' | 'wait_async'; start: number };

const port = parentPort;
if (port !== null) {
  const w = new Int32Array(workerData as SharedArrayBuffer);
  port.on('message', (m: raw_command) => {
    switch (m.op) {
      case 'echo':
        port.postMessage(m.i);
        return;
      case 'spin': {
        /* Both sides spin: no sleeps, no wake-ups. */
        let last = m.start;
        for (;;) {
          let v;
          while ((v = Atomics.load(w, PING)) === last);
          if (v < 0) break;
          Atomics.store(w, PONG, v);
          last = v;
        }
        port.postMessage('done');
        return;
      }
      case 'wait': {
        /* Both sides sleep in Atomics.wait and are woken by Atomics.notify. */
        let last = m.start;
        for (;;) {
          Atomics.wait(w, PING, last);
          const v = Atomics.load(w, PING);
          if (v === last) continue;
          if (v < 0) break;
          Atomics.store(w, PONG, v);
          Atomics.notify(w, PONG);
          last = v;
        }
        port.postMessage('done');
        return;
      }
      case 'wait_async': {
        /* This side sleeps in its event loop on Atomics.waitAsync; the main thread uses Atomics.wait. */
        let last = m.start;
        const woken = (): void => {
          const v = Atomics.load(w, PING);
          if (v < 0) return void port.postMessage('done');
          if (v !== last) {
            Atomics.store(w, PONG, v);
            Atomics.notify(w, PONG);
            last = v;
          }
          const r = Atomics.waitAsync(w, PING, last);
          if (r.async) void r.value.then(woken);
          else woken();
        };
        woken();
        return;
      }
    }
  });
}
