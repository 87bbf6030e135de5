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
import { cpu_dead_p, cpu_info, ncpu as runningNcpu } from '../../kern/cpu.js';
import { error_record, error_revive, IpiError, rangeError, typeError } from '../../kern/errors.js';
import { cpu_idle } from '../../kern/intr.js';
import { cpu_die, cpu_halt, cpu_image_check, cpu_init, cpu_load_module, cpu_running, kern_sysinit, kmem_create, machine_halt } from '../../kern/init_main.js';
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
  /**
   * With `diagnostic`, a wait with no timeout that has waited this many
   * milliseconds prints once which CPUs it waits for and what each is
   * doing, then goes on waiting; 0 never.  Default STALL_REPORT_MS.
   */
  stallReport?: number;
}

/** The default of boot({ stallReport }): 10 s, as a wait that long is almost surely stuck. */
export const STALL_REPORT_MS = 10_000;

const BOOT_OPTIONS: readonly (keyof BootOptions)[] = ['ncpu', 'image', 'shared', 'diagnostic', 'poll', 'stallReport'];

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

/** The known option nearest to a misspelt one (Levenshtein distance at most 2), for the error. */
function nearest(name: string): string | undefined {
  const dist = (a: string, b: string): number => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0]![j] = j;
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++) {
        d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      }
    }
    return d[a.length]![b.length]!;
  };
  return BOOT_OPTIONS.find((k) => dist(name.toLowerCase(), k.toLowerCase()) <= 2);
}

function options_check(o: BootOptions): Required<Omit<BootOptions, 'image'>> & { image: string[] } {
  if (typeof o !== 'object' || o === null) throw typeError('boot', 'options', 'an object', o);
  for (const k of Object.keys(o)) {
    if ((BOOT_OPTIONS as readonly string[]).includes(k)) continue;
    const near = nearest(k);
    throw new TypeError(`boot: unknown option ${JSON.stringify(k)}${near !== undefined ? ` (did you mean ${JSON.stringify(near)}?)` : ''}; ` +
      `the options are ${BOOT_OPTIONS.join(', ')}`);
  }
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
  const stallReport = o.stallReport ?? STALL_REPORT_MS;
  if (typeof stallReport !== 'number') throw typeError('boot', 'options.stallReport', 'a number', stallReport);
  if (!(stallReport >= 0)) throw rangeError('boot', 'options.stallReport', 'milliseconds >= 0 (0: never)', stallReport);
  return { ncpu, shared, diagnostic, poll, stallReport, image: image_urls(o.image) };
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
  const early: (() => void)[] = [];
  const later = (f: (m: Machine) => void): void => {
    if (machine) f(machine);
    else early.push(() => f(machine!));
  };
  const report = (error: unknown, cpu: number): void => later((m) => m.report(error, cpu));
  const boot_args = { kmem, shared: o.shared, diagnostic: o.diagnostic, poll: o.poll, stallReport: o.stallReport };
  const ci: cpu_info = cpu_init({ ...boot_args, index: 0 }, node_md((e) => report(e, 0)));
  kern_sysinit(ncpu);

  let halting = false;
  /* Per worker CPU: an error its Worker reported, and whether machine.terminate() ended it. */
  const lastError: (Error | undefined)[] = [];
  const terminated = new Set<number>();
  const workers: Worker[] = [];
  const exited: Promise<void>[] = [];
  const ready: Promise<void>[] = [];
  for (let i = 1; i < ncpu; i++) {
    const args: cpu_worker_args = { ...boot_args, index: i, image: o.image };
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
          rejectReady(new IpiError(`boot: cpu${i} failed to start: ${m.error.name}: ${m.error.message}`, { cause: error_revive(m.error) }));
        } else if (m.type === 'error') {
          report(error_revive(m.error), i);
        }
      });
      w.on('error', (e) => {
        if (!booted) rejectReady(new IpiError(`boot: cpu${i} failed to start: ${e.message}`, { cause: e }));
        /* Running: the 'exit' that follows marks it dead, with this as the reason if it did not mark itself. */
        else lastError[i] = e;
      });
      exited.push(new Promise<void>((done) => w.once('exit', (code) => {
        if (!booted) rejectReady(new IpiError(`boot: cpu${i} exited with code ${code} before it was running`));
        else if (!halting) cpu_exited(i, code);
        done();
      })));
    }));
  }

  /*
   * A worker CPU is gone while the machine runs.  It marks itself dead on
   * its way out (process.exit, an uncaught error); if it could not
   * (terminated, a fatal error), this thread does, now that it runs no more.
   */
  const cpu_exited = (i: number, code: number): void => {
    const e = lastError[i];
    const reason = terminated.has(i) ? 'terminated' : e !== undefined ? `uncaught ${e.name}: ${e.message}` : `exited with code ${code}`;
    cpu_die(i, { reason, exitCode: terminated.has(i) ? null : code, error: e === undefined ? null : error_record(e) });
    if (cpu_dead_p(i)) later((m) => m.died(i));
  };

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
  machine = new Machine(ncpu, {
    halt,
    terminate: async (c) => {
      terminated.add(c);
      await workers[c - 1]!.terminate();
      await exited[c - 1];
    },
    ref: (keep) => {
      for (const w of workers) {
        if (keep) w.ref();
        else w.unref();
      }
    },
  });
  for (const f of early) f();
  return machine;
}
