/*
 * npm run stress: the long storm.  Every CPU sends every kind of call to
 * random targets at once until --calls cross-calls and xcall runs were
 * sent (default 10 million); the last CPU is terminated halfway.  A live
 * progress line, then the totals, memory at start and end, and every
 * violation of the ledger; exit code 1 if there is any.
 *
 *   npm run stress -- --cpus 4 --calls 10000000
 */
import { parseArgs } from 'node:util';
import { storm } from './storm.js';

const { values } = parseArgs({
  options: { cpus: { type: 'string', default: '4' }, calls: { type: 'string', default: '10000000' }, 'no-kill': { type: 'boolean', default: false } },
});
const ncpu = Number(values.cpus), calls = Number(values.calls);
if (!Number.isInteger(ncpu) || ncpu < 3) throw new RangeError('stress: --cpus must be an integer >= 3 (one is killed)');
if (!Number.isInteger(calls) || calls < 1000) throw new RangeError('stress: --calls must be an integer >= 1000');

/** A CPU's heap may grow this much (KiB) over the run, after collections, before it counts as a leak. */
const HEAP_GROWTH_KIB = 8 * 1024;

const mb = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MB`;
const tty = process.stdout.isTTY;
console.log(`stress: ${ncpu} CPUs, ${calls.toLocaleString('en')} calls, cpu${ncpu - 1} terminated halfway${values['no-kill'] ? ' (not: --no-kill)' : ''}`);
const r = await storm({
  ncpu, calls, kill: !values['no-kill'], progress_ms: tty ? 250 : 5000,
  progress: (p) => {
    const line = `  ${p.calls.toLocaleString('en')} calls (${((100 * p.calls) / calls).toFixed(1)}%), ` +
      `${Math.round(p.calls / (p.ms / 1000)).toLocaleString('en')}/s, ${(p.ms / 1000).toFixed(1)} s` + (p.killed !== undefined ? `, cpu${p.killed} killed` : '');
    if (tty) process.stdout.write(`\r${line}\x1b[K`);
    else console.log(line);
  },
});
if (tty) process.stdout.write('\n');
console.log(`sent ${r.calls.toLocaleString('en')} cross-calls and xcall runs in ${(r.ms / 1000).toFixed(1)} s ` +
  `(${Math.round(r.calls / (r.ms / 1000)).toLocaleString('en')}/s), ${r.ops.toLocaleString('en')} operations`);
console.log(`triggers sent ${r.triggers.sent.toLocaleString('en')}, handler runs ${r.triggers.runs.toLocaleString('en')} (coalesced: fewer runs); ` +
  `soft interrupts scheduled ${r.softints.sent.toLocaleString('en')}, run ${r.softints.runs.toLocaleString('en')}`);
console.log(`cpu${ncpu - 1} killed: ${r.deadWaits} waits failed with IpiCpuDeadError naming it, ${r.refused} sends to it refused`);
const { start, end, heapStart, heapEnd } = r.memory;
const kib = (h: number[]): string => h.map((k, c) => (c === r.killed ? `cpu${c} killed` : `cpu${c} ${(k / 1024).toFixed(1)}`)).join(', ');
console.log(`heap in use after a collection, MB: at start ${kib(heapStart)}; at end ${kib(heapEnd)}`);
console.log(`process RSS: ${mb(start.rss)} at start, ${mb(end.rss)} at end (it includes garbage not yet collected)`);
const grew = heapEnd.some((k, c) => c !== r.killed && k - heapStart[c]! > HEAP_GROWTH_KIB);
if (heapStart.every((k) => k === 0)) console.log('(run with node --expose-gc, as npm run stress does, to collect before measuring)');
else if (grew) r.violations.push(`a CPU's heap grew by more than ${HEAP_GROWTH_KIB / 1024} MB: a leak`);
if (r.violations.length === 0) {
  console.log('ledger: every call ran exactly once on exactly its targets; every ordering check held');
} else {
  console.log(`ledger: ${r.violations.length} violations:`);
  for (const v of r.violations) console.log(`  ${v}`);
  process.exitCode = 1;
}
