/*
 * A worker thread's life as a CPU: attach, load the image, report ready,
 * idle (servicing interrupts) until the machine halts, leave.  The library
 * is loaded from the same files as the package name 'ipi' resolves to, so
 * image modules that import 'ipi' share this CPU's state.
 */
import '../../kern/instance.js';
import { parentPort, workerData } from 'node:worker_threads';
import type { cpu_info } from '../../kern/cpu.js';
import { cpu_idle } from '../../kern/intr.js';
import { cpu_halt, cpu_init, cpu_load_module, cpu_running, type cpu_boot_args } from '../../kern/init_main.js';
import { node_md } from './md.js';

export interface cpu_worker_args extends cpu_boot_args {
  image: string[];
}

interface error_record {
  name: string;
  message: string;
  stack?: string;
}

export type cpu_message =
  | { type: 'ready' }
  | { type: 'boot-error'; error: error_record }
  | { type: 'error'; error: error_record };

function record(e: unknown): error_record {
  return e instanceof Error ? { name: e.name, message: e.message, stack: e.stack } : { name: 'Error', message: String(e) };
}

const port = parentPort!;
const post = (m: cpu_message): void => port.postMessage(m);
const args = workerData as cpu_worker_args;

let ci: cpu_info;
try {
  ci = cpu_init(args, node_md((e) => post({ type: 'error', error: record(e) })));
  for (const url of args.image) cpu_load_module(ci, url, await import(url));
  cpu_running(ci);
} catch (e) {
  post({ type: 'boot-error', error: record(e) });
  process.exit(1);
}
post({ type: 'ready' });
/* A pending Atomics.waitAsync does not keep a worker alive: this does, until halt. */
const keepalive = setInterval(() => {}, 2 ** 31 - 1);
try {
  await cpu_idle(ci, true);
} catch (e) {
  post({ type: 'error', error: record(e) });
}
clearInterval(keepalive);
cpu_halt(ci);
process.exit(0);
