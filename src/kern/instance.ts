/*
 * One copy of the library per thread.  A CPU's state (curcpu(), its IPL,
 * its preemption count) is module state, so two copies loaded on one thread
 * (say src/ through a TypeScript loader and build/ through the package name)
 * would split a CPU in two.  The first copy claims the thread; a second one
 * fails loudly on load.
 */
const key = Symbol.for('ipi.instance');
const g = globalThis as { [key]?: string };
const here = import.meta.url;
if (g[key] !== undefined && g[key] !== here) {
  throw new Error(
    `ipi: two copies of the library on one thread (${g[key]} and ${here}): ` +
      "import it by its package name ('ipi') everywhere, tests and image modules included",
  );
}
g[key] = here;
export {};
