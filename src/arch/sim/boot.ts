/*
 * The simulated machine as a runtime (kern/md.ts's runtime_md): every CPU
 * is on the calling thread, scheduled by sim.ts.  Each CPU imports its own
 * copy of the image (the module URL with ?ipi9-cpu=N, CPU 0 the plain
 * one, which the program imports too), so module state is per CPU as on
 * workers, and the kernel-symbol rules are the same: code tested here runs
 * unchanged on workers.
 */
import { cpu_set_current_of, type cpu_info } from '../../kern/cpu.js';
import { rangeError, typeError } from '../../kern/errors.js';
import { boot_machine, cpu_boot, type BootOptions } from '../../kern/init_main.js';
import type { Machine } from '../../kern/machine.js';
import type { runtime_md } from '../../kern/md.js';
import { sim_machine } from './sim.js';

/** CPUs of a simulated machine when boot() is not told: a few, as the interleavings of a few CPUs are the ones to explore. */
export const SIM_NCPU_DEFAULT = 4;

/** The URL CPU c imports for image module url: its own copy. */
function cpu_copy(url: string, c: number): string {
  if (c === 0) return url;
  const u = new URL(url);
  u.searchParams.set('ipi9-cpu', String(c));
  return u.href;
}

/** The simulated machine of the last boot({ simulate }) on this thread, for reports (steps taken). @internal */
export let sim_last: sim_machine | undefined;

export async function sim_boot(options: BootOptions, image_url: (spec: string | URL) => string): Promise<Machine> {
  const s = options.simulate;
  if (typeof s !== 'object' || s === null) throw typeError('boot', 'options.simulate', 'an object ({ seed })', s);
  for (const k of Object.keys(s)) if (k !== 'seed') throw new TypeError(`boot: unknown option simulate.${k} (the options of simulate are: seed)`);
  if (typeof s.seed !== 'number') throw typeError('boot', 'options.simulate.seed', 'a number', s.seed);
  if (!Number.isSafeInteger(s.seed)) throw rangeError('boot', 'options.simulate.seed', 'a safe integer', s.seed);
  if (options.poll !== undefined && options.poll !== 0) {
    throw new RangeError('boot: options.poll must be 0 or left out with simulate: a simulated CPU never spins, it lets the others run');
  }
  const sim = new sim_machine(s.seed);
  sim_last = sim;
  const runtime: runtime_md = {
    name: 'simulated',
    ncpu_default: () => SIM_NCPU_DEFAULT,
    poll_default: () => 0,
    image_url,
    import: (ci, url) => sim.as(ci, () => import(cpu_copy(url, ci.ci_index)) as Promise<Record<string, unknown>>),
    md: (kmem, report) => {
      const m = sim.md(kmem);
      pending_report = report;
      return m;
    },
    cpu_start(args, image, events) {
      void cpu_boot(args, undefined, runtime.import, image, (ci) => sim.add_cpu(ci, events.error)).then(() => events.ready(), (e: Error) => events.failed(e));
      return {
        /* The CPU is on this thread: terminating it is marking it dead (exited() does), and it is never stepped again. */
        terminate: async () => events.exited(null, undefined),
        halted: async () => {},
        ref: () => {},
      };
    },
    idle: () => sim.idle(),
  };
  let pending_report: (error: unknown) => void = () => {};
  const enter = (ci: cpu_info): void => {
    sim.add_cpu(ci, pending_report);
    cpu_set_current_of(sim.current);
  };
  return boot_machine({ ...options, poll: 0 }, runtime, enter);
}
