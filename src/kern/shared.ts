/*
 * User shared memory: the SharedArrayBuffers given to boot({ shared }), the
 * same memory on every CPU under the same name.  Each is numbered in name
 * order, so a view of one can be passed to another CPU by reference.
 */
import { cpu_self } from './cpu.js';
import { IpiError, typeError } from './errors.js';

let names: string[] = [];
let buffers: SharedArrayBuffer[] = [];
let index = new Map<SharedArrayBuffer, number>();
let byName = new Map<string, SharedArrayBuffer>();

export function shared_attach(record: Readonly<Record<string, SharedArrayBuffer>>): void {
  names = Object.keys(record).sort();
  buffers = names.map((n) => record[n]);
  index = new Map(buffers.map((b, i) => [b, i]));
  byName = new Map(names.map((n, i) => [n, buffers[i]]));
}

export function shared_detach(): void {
  shared_attach({});
}

/**
 * shared: the machine's shared buffer called `name`: the same memory on
 * every CPU.
 * => name must be a key of boot({ shared }).
 */
export function shared(name: string): SharedArrayBuffer {
  const b = byName.get(name);
  if (b !== undefined) return b;
  cpu_self('shared');
  if (typeof name !== 'string') throw typeError('shared', 'name', 'a string', name);
  throw new IpiError(
    `shared: no shared buffer named ${JSON.stringify(name)}` +
      (names.length ? ` (this machine has: ${names.join(', ')})` : ' (this machine was booted without boot({ shared }))'),
  );
}

/** The number of a machine shared buffer, or -1. */
export function shared_id(b: ArrayBufferLike): number {
  return index.get(b as SharedArrayBuffer) ?? -1;
}

export function shared_buf(id: number): SharedArrayBuffer {
  return buffers[id];
}
