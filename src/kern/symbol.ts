/*
 * Kernel symbols: the functions that can run on another CPU.
 *
 * A JavaScript function lives in one thread's heap, so a CPU cannot hand
 * another a function the way a kernel hands over a function pointer.  What
 * all CPUs share is the image: modules every CPU imports at boot, in the same
 * order.  Their exported functions, numbered in that order after the
 * library's own, form a symbol table that is the same on every CPU, and a
 * symbol number is what crosses between CPUs.  Each CPU has its own table
 * of its own copies (each loads the image itself), kept in its cpu_info;
 * each publishes a digest of the names it numbered, per module, and boot
 * compares them, so two CPUs can never disagree about what a number means.
 */
import type { cpu_info, kernel_func } from './cpu.js';
import { IpiError, typeError } from './errors.js';
import { C_DIGEST, cpu_word, i32 } from './layout.js';
import { IMAGE_MAXMODULES } from './param.js';

/** Start ci's table with the library's own functions (the same list on every CPU). */
export function sym_init(ci: cpu_info, builtins: readonly kernel_func[]): void {
  ci.ci_symtab = [...builtins];
  ci.ci_symidx = new Map(builtins.map((f, i) => [f, i]));
  ci.ci_symclass = new Set();
  ci.ci_modules = [];
}

/** True if f is a class (its source starts with `class`): calling it without new throws. */
function is_class(f: kernel_func): boolean {
  try {
    return /^class\b/.test(Function.prototype.toString.call(f));
  } catch {
    return false;
  }
}

/** FNV-1a over a string, continuing from h. */
function fnv1a(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return Math.imul(h ^ 0, 16777619);
}

/**
 * Number the functions a module exports on CPU ci (a module namespace lists
 * its exports in a fixed order) and publish ci's digest of them.
 */
export function sym_load_module(ci: cpu_info, url: string, ns: Record<string, unknown>): void {
  if (ci.ci_modules.length >= IMAGE_MAXMODULES) throw new RangeError(`boot: more than IMAGE_MAXMODULES (${IMAGE_MAXMODULES}) image modules`);
  let h = 0x811c9dc5;
  for (const name of Object.keys(ns)) {
    const f = ns[name];
    if (typeof f !== 'function') continue;
    h = fnv1a(h, name);
    if (ci.ci_symidx.has(f as kernel_func)) continue;
    if (is_class(f as kernel_func)) ci.ci_symclass.add(ci.ci_symtab.length);
    ci.ci_symidx.set(f as kernel_func, ci.ci_symtab.length);
    ci.ci_symtab.push(f as kernel_func);
  }
  ci.ci_modules.push(url);
  const digest = cpu_word(ci.ci_index, C_DIGEST);
  i32[digest + ci.ci_modules.length] = h | 0;
  /* Publish: the digest word above is visible to whoever sees the new count. */
  Atomics.store(i32, digest, ci.ci_modules.length);
}

/** Compare CPU `cpu`'s published digest with ci's; an error naming the first difference, or null. */
export function sym_compare(ci: cpu_info, cpu: number): string | null {
  const self = ci.ci_index;
  const mine = cpu_word(self, C_DIGEST), theirs = cpu_word(cpu, C_DIGEST);
  const n = Atomics.load(i32, mine), m = Atomics.load(i32, theirs);
  if (n !== m) return `cpu${cpu} loaded ${m} image modules, cpu${self} loaded ${n}`;
  for (let k = 1; k <= n; k++) {
    if (i32[mine + k] !== i32[theirs + k]) {
      return `cpu${cpu} and cpu${self} export different functions from image module ${ci.ci_modules[k - 1]}: ` +
        'an image module must export the same functions on every CPU';
    }
  }
  return null;
}

/**
 * The symbol number of `f` on CPU ci, which must be a kernel symbol.  Bad
 * input, checked always: calling a function that is not in the image on
 * another CPU cannot work, and checking it even when the target is local
 * keeps code portable.
 */
export function sym_id(ci: cpu_info, fn: string, what: string, f: unknown): number {
  const id = ci.ci_symidx.get(f as kernel_func);
  if (id !== undefined && !ci.ci_symclass.has(id)) return id;
  if (typeof f !== 'function') throw typeError(fn, what, 'a function exported by an image module', f);
  if (id !== undefined) {
    throw new TypeError(`${fn}: ${what} (class ${f.name || '(anonymous)'}) is a class, not a function: ` +
      'it cannot be called as a handler; export a function that uses it');
  }
  throw new IpiError(
    `${fn}: ${what} (function ${f.name || '(anonymous)'}) is not a kernel symbol: only functions exported by ` +
      `the machine's image modules can run on another CPU; export it from a module listed in boot({ image }) ` +
      `and import it from there`,
  );
}

/** CPU ci's function with symbol number id. */
export function sym_func(ci: cpu_info, id: number): kernel_func {
  return ci.ci_symtab[id];
}

/** The name of symbol id on CPU ci, for reports. */
export function sym_name(ci: cpu_info, id: number): string {
  const f = ci.ci_symtab[id];
  return f === undefined ? `#${id}` : f.name || `(anonymous #${id})`;
}
