/*
 * Booting a machine on Node.js: the calling thread becomes CPU 0, each other
 * CPU is a worker_threads Worker running cpu_start.ts.  Boot messages
 * (ready, failed) and errors no caller waits for travel by postMessage;
 * everything else between CPUs goes through kernel memory.
 */
import { availableParallelism } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { cpu_info, ncpu as runningNcpu } from '../../kern/cpu.js';
import { IpiError, rangeError, typeError } from '../../kern/errors.js';
import { cpu_idle } from '../../kern/intr.js';
import { cpu_halt, cpu_image_check, cpu_init, cpu_load_module, cpu_running, kern_sysinit, kmem_create, machine_halt } from '../../kern/init_main.js';
import { Machine } from '../../kern/machine.js';
import { MAXCPUS } from '../../kern/param.js';
import { node_md } from './md.js';
import type { cpu_message, cpu_worker_args } from './cpu_start.js';

export interface BootOptions {
  /** Number of CPUs, 1 .. MAXCPUS; defaults to the available cores. */
  ncpu?: number;
  /**
   * The image: a module (path, file URL or package specifier) or a list of
   * them.  Every CPU imports them in order before it runs; their exported
   * functions are the kernel symbols.  Relative paths are resolved against
   * the current directory.
   */
  image?: string | URL | readonly (string | URL)[];
  /** Shared buffers every CPU reaches as shared(name). */
  shared?: Readonly<Record<string, SharedArrayBuffer>>;
  /** Check every contract assertion (NetBSD's DIAGNOSTIC); default true. */
  diagnostic?: boolean;
  /**
   * How long (µs) an idle or waiting CPU polls its doorbell before it
   * sleeps.  Polling answers in well under a microsecond but burns a core;
   * default 50 when there are at least as many cores as CPUs, else 0.
   */
  poll?: number;
}

/** How long shutdown waits for a worker to leave by itself before terminating it. */
const HALT_GRACE_MS = 2000;

const workerUrl = new URL('./cpu_start.js', import.meta.url);

function image_urls(image: BootOptions['image']): string[] {
  const list = image === undefined ? [] : typeof image === 'string' || image instanceof URL ? [image] : image;
  if (!Array.isArray(list)) throw typeError('boot', 'options.image', 'a module path or URL, or an array of them', image);
  return list.map((m, i) => {
    if (m instanceof URL) return m.href;
    if (typeof m !== 'string' || m === '') throw typeError('boot', `options.image[${i}]`, 'a module path or URL', m);
    if (m.startsWith('.') || isAbsolute(m)) return pathToFileURL(resolve(m)).href;
    if (/^[a-z][a-z0-9+.-]*:/i.test(m)) return m;
    return import.meta.resolve(m);
  });
}

function options_check(o: BootOptions): Required<Omit<BootOptions, 'image'>> & { image: string[] } {
  if (typeof o !== 'object' || o === null) throw typeError('boot', 'options', 'an object', o);
  const ncpu = o.ncpu ?? availableParallelism();
  if (typeof ncpu !== 'number') throw typeError('boot', 'options.ncpu', 'a number', ncpu);
  if (!Number.isInteger(ncpu) || ncpu < 1 || ncpu > MAXCPUS) throw rangeError('boot', 'options.ncpu', `an integer in [1, MAXCPUS = ${MAXCPUS}]`, ncpu);
  const shared = o.shared ?? {};
  if (typeof shared !== 'object' || shared === null) throw typeError('boot', 'options.shared', 'a record of SharedArrayBuffers', shared);
  for (const [k, v] of Object.entries(shared)) {
    if (!(v instanceof SharedArrayBuffer)) throw typeError('boot', `options.shared.${k}`, 'a SharedArrayBuffer', v);
  }
  const diagnostic = o.diagnostic ?? true;
  if (typeof diagnostic !== 'boolean') throw typeError('boot', 'options.diagnostic', 'a boolean', diagnostic);
  const poll = o.poll ?? (ncpu <= availableParallelism() ? 50 : 0);
  if (typeof poll !== 'number') throw typeError('boot', 'options.poll', 'a number', poll);
  if (!(poll >= 0 && poll <= 1e6)) throw rangeError('boot', 'options.poll', 'microseconds in [0, 1e6]', poll);
  return { ncpu, shared, diagnostic, poll, image: image_urls(o.image) };
}

function revive(e: { name: string; message: string; stack?: string }): Error {
  const err = new Error(e.message);
  err.name = e.name;
  if (e.stack) err.stack = e.stack;
  return err;
}

/**
 * boot: start a machine.  This thread becomes CPU 0; CPUs 1 .. ncpu-1 are
 * workers.  Resolves once every CPU has loaded the image, the symbol tables
 * agree, and every CPU runs (kcpuset_running).
 * => One machine per thread at a time.
 */
export async function boot(options: BootOptions = {}): Promise<Machine> {
  const o = options_check(options);
  if (runningNcpu !== 0) throw new IpiError('boot: this thread is already a CPU of a running machine: shut that one down first');
  const { ncpu } = o;
  const kmem = kmem_create(ncpu);
  let machine: Machine | undefined;
  const early: [unknown, number][] = [];
  const report = (error: unknown, cpu: number): void => {
    if (machine) machine.report(error, cpu);
    else early.push([error, cpu]);
  };
  const ci: cpu_info = cpu_init({ kmem, shared: o.shared, index: 0, diagnostic: o.diagnostic, poll: o.poll }, node_md((e) => report(e, 0)));
  kern_sysinit(ncpu);

  let halting = false;
  const workers: Worker[] = [];
  const exited: Promise<void>[] = [];
  const ready: Promise<void>[] = [];
  for (let i = 1; i < ncpu; i++) {
    const args: cpu_worker_args = { kmem, shared: o.shared, index: i, diagnostic: o.diagnostic, poll: o.poll, image: o.image };
    const w = new Worker(workerUrl, { workerData: args });
    workers.push(w);
    let booted = false;
    ready.push(new Promise<void>((resolveReady, rejectReady) => {
      /* Listeners first, before anything yields: no message may be lost. */
      w.on('message', (m: cpu_message) => {
        if (m.type === 'ready') {
          booted = true;
          resolveReady();
        } else if (m.type === 'boot-error') {
          rejectReady(new IpiError(`boot: cpu${i} failed to start: ${m.error.name}: ${m.error.message}`, { cause: revive(m.error) }));
        } else if (m.type === 'error') {
          report(revive(m.error), i);
        }
      });
      w.on('error', (e) => {
        if (!booted) rejectReady(new IpiError(`boot: cpu${i} failed to start: ${e.message}`, { cause: e }));
        else report(e, i);
      });
      exited.push(new Promise<void>((done) => w.once('exit', (code) => {
        if (!booted) rejectReady(new IpiError(`boot: cpu${i} exited with code ${code} before it was running`));
        else if (!halting) report(new IpiError(`cpu${i} exited with code ${code} while the machine was running`), i);
        done();
      })));
    }));
  }

  /* Handled now: if CPU 0 fails first, the workers' failures must not go unhandled. */
  const allReady = Promise.all(ready);
  allReady.catch(() => {});

  let idle: Promise<void> | undefined;
  const halt = async (): Promise<void> => {
    halting = true;
    machine_halt(ncpu);
    await Promise.all(workers.map(async (w, k) => {
      const timer = setTimeout(() => void w.terminate(), HALT_GRACE_MS);
      await exited[k];
      clearTimeout(timer);
    }));
    await idle;
    cpu_halt(ci);
  };

  try {
    for (const url of o.image) {
      let ns: Record<string, unknown>;
      try {
        ns = await import(url);
      } catch (e) {
        throw new IpiError(`boot: cpu0 failed to load image module ${url}: ${(e as Error).message}`, { cause: e });
      }
      cpu_load_module(ci, url, ns);
    }
    await allReady;
    const diff = cpu_image_check(ci, ncpu);
    if (diff !== null) throw new IpiError(`boot: the CPUs built different symbol tables: ${diff}`);
  } catch (e) {
    await halt();
    throw e;
  }
  cpu_running(ci);
  idle = cpu_idle(ci, false).catch((e: unknown) => report(e, 0));
  machine = new Machine(ncpu, halt);
  for (const [e, c] of early) machine.report(e, c);
  return machine;
}
