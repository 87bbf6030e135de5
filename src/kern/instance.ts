/*
 * One copy of the library per thread.  The machine's state on a thread
 * (the current CPU, the kernel memory, the CPUs' structures) is module
 * state, so two copies loaded on one thread (say src/ through a TypeScript
 * loader and build/ through the package name) would split it in two.  The
 * first copy claims the thread; a second one fails loudly on load.
 */
import { IpiError } from './errors.js';

const key = Symbol.for('ipi9.instance');
const g = globalThis as { [key]?: string };
const here = import.meta.url;
if (g[key] !== undefined && g[key] !== here) {
  throw new IpiError(
    `ipi9: two copies of the library on one thread (${g[key]} and ${here}): ` +
      'import it by its package name everywhere, tests and image modules included',
  );
}
g[key] = here;
export {};
