/*
 * Node.js as a runtime of the machine (kern/md.ts's runtime_md): the
 * booting thread is CPU 0, each other CPU a worker_threads Worker running
 * cpu_start.ts.  Start-up messages (ready, failed) and errors no caller
 * waits for travel by postMessage; everything else between CPUs goes
 * through kernel memory.  boot({ simulate }) runs the simulated machine
 * (arch/sim) instead.
 */
import { availableParallelism } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { cpu_set_current } from '../../kern/cpu.js';
import { error_revive } from '../../kern/errors.js';
import { boot_machine, type BootOptions } from '../../kern/init_main.js';
import type { Machine } from '../../kern/machine.js';
import type { runtime_md } from '../../kern/md.js';
import { sim_boot } from '../sim/boot.js';
import type { cpu_message, cpu_worker_data } from './cpu_start.js';
import { node_md } from './md.js';

const workerUrl = new URL('./cpu_start.js', import.meta.url);

/** Resolve an image module given to boot(): a URL, a path (against the current directory), or a package specifier. */
export function node_image_url(m: string | URL): string {
  if (m instanceof URL) return m.href;
  if (m.startsWith('.') || isAbsolute(m)) return pathToFileURL(resolve(m)).href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(m)) return m;
  return import.meta.resolve(m);
}

export const node_runtime: runtime_md = {
  name: 'node',
  ncpu_default: () => availableParallelism(),
  poll_default: (ncpu) => (ncpu <= availableParallelism() ? 50 : 0),
  image_url: node_image_url,
  import: (_ci, url) => import(url) as Promise<Record<string, unknown>>,
  md: node_md,
  cpu_start(args, image, events) {
    const w = new Worker(workerUrl, { workerData: { args, image } satisfies cpu_worker_data });
    let lastError: Error | undefined;
    /* Listeners first, before anything yields: no message may be lost. */
    w.on('message', (m: cpu_message) => {
      if (m.type === 'ready') events.ready();
      else if (m.type === 'boot-error') events.failed(error_revive(m.error));
      else events.error(error_revive(m.error));
    });
    /* An error that ends the worker (when it could not mark itself dead): the 'exit' that follows names it. */
    w.on('error', (e) => {
      lastError = e;
    });
    const exited = new Promise<void>((done) => w.once('exit', (code) => {
      events.exited(code, lastError);
      done();
    }));
    return {
      terminate: async () => {
        await w.terminate();
        await exited;
      },
      halted: async (grace_ms) => {
        const timer = setTimeout(() => void w.terminate(), grace_ms);
        await exited;
        clearTimeout(timer);
      },
      ref: (keep) => {
        if (keep) w.ref();
        else w.unref();
      },
    };
  },
};

/**
 * boot: start a machine.  This thread becomes CPU 0; CPUs 1 .. ncpu-1 are
 * workers, or, with `simulate`, all run on this thread under a seeded
 * scheduler.  Resolves once every CPU has loaded the image, the symbol
 * tables agree, and every CPU runs (kcpuset_running).
 * => One machine per thread at a time.
 */
export function boot(options: BootOptions = {}): Promise<Machine> {
  if (typeof options === 'object' && options !== null && options.simulate !== undefined) return sim_boot(options, node_image_url);
  return boot_machine(options, node_runtime, cpu_set_current);
}
