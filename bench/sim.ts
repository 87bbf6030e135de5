/*
 * The simulated machine's speed: how many seeded interleavings (runs) it
 * gets through per second.  A run boots 4 simulated CPUs on this thread,
 * has each cross-call the 3 others SIM_ROUNDS times from an interrupt
 * handler (kernel.ts's sim_storm), and shuts down.
 */
import { boot, ipi_broadcast, ipi_wait, kpreempt_disable, kpreempt_enable } from 'ipi';
import { sim_last } from '../src/arch/sim/boot.js';
import * as k from './kernel.js';
import { benchBuf, image } from './machines.js';

/** Seconds of simulated runs. */
export const SIM_SECONDS = 2;
/** Rounds of the workload in a run. */
export const SIM_ROUNDS = 4;

export interface SimResult {
  runs: number;
  /** Scheduler steps over all runs. */
  steps: number;
  /** Cross-calls in one run. */
  calls: number;
  /** Median time of a run's workload alone, without boot and shutdown, ms. */
  workMs: number;
}

export async function simulatorSuite(): Promise<SimResult> {
  const end = performance.now() + SIM_SECONDS * 1000;
  let runs = 0, steps = 0;
  const work: number[] = [];
  for (let seed = 1; performance.now() < end; seed++) {
    const m = await boot({ ncpu: 4, image, shared: { bench: benchBuf }, simulate: { seed } });
    const t = performance.now();
    const msg = { func: k.sim_storm, arg: SIM_ROUNDS };
    kpreempt_disable();
    ipi_broadcast(msg);
    kpreempt_enable();
    ipi_wait(msg);
    work.push(performance.now() - t);
    steps += sim_last!.steps;
    await m.shutdown();
    runs++;
  }
  work.sort((a, b) => a - b);
  return { runs, steps, calls: 4 * 3 * SIM_ROUNDS, workMs: work[work.length >> 1]! };
}
