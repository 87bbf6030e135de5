/*
 * The raw baselines, main thread side: what the mechanisms ipi is built on
 * cost with no library in the way.  The partner thread is raw_worker.ts.
 * Every function returns one sample per round trip, µs, after `warm`
 * unmeasured ones.
 */
import { Worker } from 'node:worker_threads';
import { PING, PONG, type raw_command } from './raw_worker.js';

const now = (): number => performance.now();

/** Spins before a raw ping-pong gives up on its partner (a stopped partner must fail the run, not hang it). */
const SPIN_LIMIT = 2e8;

export class RawPartner {
  private readonly w: Int32Array;
  private next: ((v: unknown) => void) | undefined;

  private constructor(private readonly worker: Worker, buf: SharedArrayBuffer) {
    this.w = new Int32Array(buf);
    /* Listener first, before anything yields: a message sent before it would be lost. */
    worker.on('message', (v) => {
      const f = this.next;
      this.next = undefined;
      f?.(v);
    });
    worker.on('error', (e) => {
      console.error('bench: raw baseline worker failed:', e);
      process.exit(1);
    });
  }

  static async start(): Promise<RawPartner> {
    const buf = new SharedArrayBuffer(256);
    const p = new RawPartner(new Worker(new URL('./raw_worker.js', import.meta.url), { workerData: buf }), buf);
    await p.echo(10, 0);
    return p;
  }

  /** The partner's next postMessage. */
  reply(): Promise<unknown> {
    return new Promise((r) => (this.next = r));
  }

  send(m: raw_command): void {
    this.worker.postMessage(m);
  }

  /** postMessage round trips: the worker, idle in its event loop, echoes. */
  async echo(n: number, warm: number): Promise<Float64Array> {
    const out = new Float64Array(n);
    for (let i = 0; i < warm + n; i++) {
      const r = this.reply();
      const t0 = now();
      this.send({ op: 'echo', i });
      await r;
      const t = now() - t0;
      if (i >= warm) out[i - warm] = t * 1e3;
    }
    return out;
  }

  /** Starts a ping-pong of kind `op` on the partner; resolves when the partner has left it. */
  private begin(op: 'spin' | 'wait' | 'wait_async'): Promise<unknown> {
    Atomics.store(this.w, PING, 0);
    Atomics.store(this.w, PONG, 0);
    const done = this.reply();
    this.send({ op, start: 0 });
    return done;
  }

  private async end(done: Promise<unknown>): Promise<void> {
    Atomics.store(this.w, PING, -1);
    Atomics.notify(this.w, PING);
    await done;
  }

  /** One spin round trip: write the ping, spin until the pong comes back. */
  private spinOnce(i: number): void {
    const w = this.w;
    Atomics.store(w, PING, i);
    for (let s = 0; Atomics.load(w, PONG) !== i;) if (++s === SPIN_LIMIT) throw new Error('bench: the spin partner stopped answering');
  }

  /** Shared-memory ping-pong; both threads spin on Atomics.load. */
  async spin(n: number, warm: number): Promise<Float64Array> {
    const out = new Float64Array(n);
    const done = this.begin('spin');
    for (let i = 1; i <= warm + n; i++) {
      const t0 = now();
      this.spinOnce(i);
      const t = now() - t0;
      if (i > warm) out[i - warm - 1] = t * 1e3;
    }
    await this.end(done);
    return out;
  }

  /** The spin ping-pong timed in batches of `batch` round trips: the mean per round trip, the clock read amortized. */
  async spinBatched(n: number, batch: number, warm: number): Promise<Float64Array> {
    const out = new Float64Array(n);
    const done = this.begin('spin');
    let seq = 0;
    for (let b = 0; b < warm + n; b++) {
      const t0 = now();
      for (let j = 0; j < batch; j++) this.spinOnce(++seq);
      const t = now() - t0;
      if (b >= warm) out[b - warm] = (t * 1e3) / batch;
    }
    await this.end(done);
    return out;
  }

  /**
   * Shared-memory ping-pong; the main thread sleeps in Atomics.wait, the
   * worker in Atomics.wait too ('wait') or in its event loop on
   * Atomics.waitAsync ('wait_async', as an idle ipi CPU does); each is
   * woken by Atomics.notify.
   */
  async wait(n: number, warm: number, op: 'wait' | 'wait_async'): Promise<Float64Array> {
    const w = this.w, out = new Float64Array(n);
    const done = this.begin(op);
    for (let i = 1; i <= warm + n; i++) {
      const t0 = now();
      Atomics.store(w, PING, i);
      Atomics.notify(w, PING);
      for (let v; (v = Atomics.load(w, PONG)) !== i;) {
        if (Atomics.wait(w, PONG, v, 5000) === 'timed-out') throw new Error('bench: the wait partner stopped answering');
      }
      const t = now() - t0;
      if (i > warm) out[i - warm - 1] = t * 1e3;
    }
    await this.end(done);
    return out;
  }

  /** As wait(n, warm, 'wait_async'), but the main thread awaits Atomics.waitAsync too (as `await ipi_wait_async` may). */
  async waitAsyncBoth(n: number, warm: number): Promise<Float64Array> {
    const w = this.w, out = new Float64Array(n);
    const done = this.begin('wait_async');
    for (let i = 1; i <= warm + n; i++) {
      const t0 = now();
      Atomics.store(w, PING, i);
      Atomics.notify(w, PING);
      for (let v; (v = Atomics.load(w, PONG)) !== i;) {
        const r = Atomics.waitAsync(w, PONG, v, 5000);
        if ((r.async ? await r.value : r.value) === 'timed-out') throw new Error('bench: the wait partner stopped answering');
      }
      const t = now() - t0;
      if (i > warm) out[i - warm - 1] = t * 1e3;
    }
    await this.end(done);
    return out;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** postMessage to each partner at once, then wait for every echo: one sample per round. */
export async function echoAll(partners: readonly RawPartner[], n: number, warm: number): Promise<Float64Array> {
  const out = new Float64Array(n);
  for (let i = 0; i < warm + n; i++) {
    const replies = partners.map((p) => p.reply());
    const t0 = now();
    for (const p of partners) p.send({ op: 'echo', i });
    await Promise.all(replies);
    const t = now() - t0;
    if (i >= warm) out[i - warm] = t * 1e3;
  }
  return out;
}
