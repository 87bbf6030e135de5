/*
 * Kernel symbols: the functions that can run on another CPU.
 *
 * A JavaScript function lives in one thread's heap, so a CPU cannot hand
 * another a function the way a kernel hands over a function pointer.  What
 * all CPUs share is the image: modules every CPU imports at boot, in the same
 * order.  Their exported functions, numbered in that order after the
 * library's own, form a symbol table that is the same on every CPU, and a
 * symbol number is what crosses between CPUs.  Each CPU publishes a digest
 * of the names it numbered, per module, and boot compares them, so two CPUs
 * can never disagree about what a number means.
 */
import { IpiError, typeError } from './errors.js';
import { C_DIGEST, cpu_word, i32 } from './layout.js';
import { IMAGE_MAXMODULES } from './param.js';

/** Any function (what a symbol names); callers cast it to the signature they call. */
export type kernel_func = (...args: never[]) => unknown;

let symtab: kernel_func[] = [];
let symidx = new Map<kernel_func, number>();
/** Symbols that are classes: numbered like the others (every CPU agrees), refused as handlers. */
let classes = new Set<number>();
let modules: string[] = [];
let attached = false;

/** Start a table with the library's own functions (the same list on every CPU). */
export function sym_init(builtins: readonly kernel_func[]): void {
  symtab = [...builtins];
  symidx = new Map(builtins.map((f, i) => [f, i]));
  classes = new Set();
  modules = [];
  attached = true;
}

/** Forget the table (shutdown). */
export function sym_detach(): void {
  sym_init([]);
  attached = false;
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
 * Number the functions a module exports (a module namespace lists its
 * exports in a fixed order) and publish this CPU's digest of them.
 */
export function sym_load_module(cpu: number, url: string, ns: Record<string, unknown>): void {
  if (modules.length >= IMAGE_MAXMODULES) throw new RangeError(`boot: more than IMAGE_MAXMODULES (${IMAGE_MAXMODULES}) image modules`);
  let h = 0x811c9dc5;
  for (const name of Object.keys(ns)) {
    const f = ns[name];
    if (typeof f !== 'function') continue;
    h = fnv1a(h, name);
    if (symidx.has(f as kernel_func)) continue;
    if (is_class(f as kernel_func)) classes.add(symtab.length);
    symidx.set(f as kernel_func, symtab.length);
    symtab.push(f as kernel_func);
  }
  modules.push(url);
  i32[cpu_word(cpu, C_DIGEST) + modules.length] = h | 0;
  Atomics.store(i32, cpu_word(cpu, C_DIGEST), modules.length);
}

/** Compare CPU `cpu`'s published digest with this CPU's; an error naming the first difference, or null. */
export function sym_compare(self: number, cpu: number): string | null {
  const mine = cpu_word(self, C_DIGEST), theirs = cpu_word(cpu, C_DIGEST);
  const n = Atomics.load(i32, mine), m = Atomics.load(i32, theirs);
  if (n !== m) return `cpu${cpu} loaded ${m} image modules, cpu${self} loaded ${n}`;
  for (let k = 1; k <= n; k++) {
    if (i32[mine + k] !== i32[theirs + k]) {
      return `cpu${cpu} and cpu${self} export different functions from image module ${modules[k - 1]}: ` +
        'an image module must export the same functions on every CPU';
    }
  }
  return null;
}

/**
 * The symbol number of `f`, which must be a kernel symbol.  Bad input,
 * checked always: calling a function that is not in the image on another
 * CPU cannot work, and checking it even when the target is local keeps code
 * portable.
 */
export function sym_id(fn: string, what: string, f: unknown): number {
  const id = symidx.get(f as kernel_func);
  if (id !== undefined && !classes.has(id)) return id;
  if (!attached) throw new IpiError(`${fn}: this thread is not a CPU of a running machine (call boot() first)`);
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

/** The function with symbol number id. */
export function sym_func(id: number): kernel_func {
  return symtab[id]!;
}

/** The name of symbol id, for reports. */
export function sym_name(id: number): string {
  const f = symtab[id];
  return f === undefined ? `#${id}` : f.name || `(anonymous #${id})`;
}

