/*
 * A worker thread's life as a CPU: boot (attach, import the image, run),
 * report ready, idle (servicing interrupts) until the machine halts, leave.
 * The library is loaded from the same files as the package name resolves
 * to, so image modules that import it share this CPU's state.
 *
 * Dying.  A CPU that leaves while the machine runs marks itself dead on its
 * way out, so that no CPU waits for it: process.exit() (its 'exit' event
 * runs here, synchronously) and an uncaught error or unhandled rejection
 * (Node ends a worker for those: so do we, after marking it).  A worker
 * that is terminated runs nothing more: the booting thread marks it.
 */
import '../../kern/instance.js';
import { parentPort, workerData } from 'node:worker_threads';
import { cpu_set_current, type cpu_info } from '../../kern/cpu.js';
import { error_record, type error_record as error_record_t } from '../../kern/errors.js';
import { cpu_idle } from '../../kern/intr.js';
import { cpu_boot, cpu_die, cpu_halt, kern_detach } from '../../kern/init_main.js';
import type { cpu_boot_args } from '../../kern/md.js';
import { node_md } from './md.js';

/** What a worker CPU is started with. */
export interface cpu_worker_data {
  args: cpu_boot_args;
  image: readonly string[];
}

export type cpu_message =
  | { type: 'ready' }
  | { type: 'boot-error'; error: error_record_t }
  | { type: 'error'; error: error_record_t };

const port = parentPort!;
const post = (m: cpu_message): void => port.postMessage(m);
const { args, image } = workerData as cpu_worker_data;

let ci: cpu_info;
try {
  const md = node_md(new Int32Array(args.kmem), (e) => post({ type: 'error', error: error_record(e) }));
  ci = await cpu_boot(args, md, (_ci, url) => import(url) as Promise<Record<string, unknown>>, image, cpu_set_current);
} catch (e) {
  post({ type: 'boot-error', error: error_record(e) });
  process.exit(1);
}
process.on('exit', (code) => {
  cpu_die(ci.ci_index, { reason: `process.exit(${code})`, exitCode: code, error: null });
});
process.on('uncaughtException', (e) => {
  const r = error_record(e);
  cpu_die(ci.ci_index, { reason: `uncaught ${r.name}: ${r.message}`, exitCode: 1, error: r });
  process.exit(1);
});
post({ type: 'ready' });
/* A pending Atomics.waitAsync does not keep a worker alive: this does, until halt. */
const keepalive = setInterval(() => {}, 2 ** 31 - 1);
try {
  await cpu_idle(ci, true);
} catch (e) {
  post({ type: 'error', error: error_record(e) });
}
clearInterval(keepalive);
cpu_halt(ci);
kern_detach();
process.exit(0);
