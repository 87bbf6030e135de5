/*
 * Machine-independent start-up and shut-down of a CPU (NetBSD's
 * init_main.c): attach the kernel memory, the per-CPU state of every
 * subsystem, the image's symbols.  The runtime's code (arch/) calls these;
 * it decides how CPUs start and where the image comes from.
 */
import { arg_init } from './arg.js';
import { cpu_attach, cpu_detach, cpu_info, kcpuset_attached, kcpuset_dead, kcpuset_running, ncpu } from './cpu.js';
import { cpu_death_write, type cpu_death } from './failure.js';
import { cpu_ring, intr_init, machine_halted, thread_reset } from './intr.js';
import { ipi_cpu_dead, ipi_msg_init, ipi_nullop } from './ipi.js';
import { kcpuset_atomic_clear, kcpuset_atomic_set } from './kcpuset.js';
import {
  C_STATE, CPUST_DEAD, CPUST_DYING, CPUST_HALTED, CPUST_RUNNING, cpu_word, H_DEADGEN, H_HALT, i32, ipireg_word, kmem_attach, kmem_detach, kmem_format,
  kmem_layout, R_FUNC,
} from './layout.js';
import { md_attach, type cpu_md } from './md.js';
import { IPI_SYNCH_ID } from './param.js';
import { shared_attach, shared_detach } from './shared.js';
import { softint_cpu_dead, softint_cpu_init, softint_drop, softint_schedule } from './softint.js';
import { sym_compare, sym_detach, sym_init, sym_load_module } from './symbol.js';
import { xc_cpu_dead, xc_highpri_softint, xc_init, xc_nullop } from './xcall.js';

/** The library's own kernel symbols, in a fixed order: numbered first, alike on every CPU. */
const BUILTINS = [ipi_nullop, softint_schedule, softint_drop, xc_highpri_softint, xc_nullop];

/** What a CPU needs to attach to its machine. */
export interface cpu_boot_args {
  kmem: SharedArrayBuffer;
  shared: Readonly<Record<string, SharedArrayBuffer>>;
  index: number;
  diagnostic: boolean;
  /** Poll window of idle and waiting CPUs, microseconds. */
  poll: number;
  /** A diagnostic wait with no timeout reports itself after this many milliseconds (0: never). */
  stallReport: number;
}

/** Create and format the kernel memory of an ncpu machine (the booting CPU, once). */
export function kmem_create(ncpu: number): SharedArrayBuffer {
  const kmem = new SharedArrayBuffer(kmem_layout(ncpu).size);
  kmem_format(kmem, ncpu);
  return kmem;
}

/** Attach this thread as a CPU: every subsystem's per-CPU state. */
export function cpu_init(args: cpu_boot_args, m: cpu_md): cpu_info {
  const ncpu = kmem_attach(args.kmem);
  md_attach(m);
  const ci = cpu_attach(ncpu, args.index, args.diagnostic);
  shared_attach(args.shared);
  sym_init(BUILTINS);
  arg_init(kmem_layout(ncpu).ncells);
  ipi_msg_init(args.index);
  softint_cpu_init();
  thread_reset();
  intr_init(args.poll, args.stallReport);
  return ci;
}

/** Machine-wide state, set up once by the booting CPU after its cpu_init(). */
export function kern_sysinit(ncpu: number): void {
  for (let c = 0; c < ncpu; c++) kcpuset_atomic_set(kcpuset_attached, c);
  /* IPI_SYNCH_ID is always registered; its handler is ipi.ts's mailbox handler. */
  Atomics.store(i32, ipireg_word(IPI_SYNCH_ID, R_FUNC), 1);
  xc_init();
}

/** Number an image module's exported functions on this CPU. */
export function cpu_load_module(ci: cpu_info, url: string, ns: Record<string, unknown>): void {
  sym_load_module(ci.ci_index, url, ns);
}

/** After loading its image: this CPU runs. */
export function cpu_running(ci: cpu_info): void {
  Atomics.store(i32, cpu_word(ci.ci_index, C_STATE), CPUST_RUNNING);
  kcpuset_atomic_set(kcpuset_running, ci.ci_index);
}

/** Compare every CPU's symbol table with this one's; the first difference, or null. */
export function cpu_image_check(self: cpu_info, ncpu: number): string | null {
  for (let c = 0; c < ncpu; c++) {
    if (c === self.ci_index) continue;
    const diff = sym_compare(self.ci_index, c);
    if (diff !== null) return diff;
  }
  return null;
}

/** Tell every CPU to halt: idle loops return, waits fail. */
export function machine_halt(ncpu: number): void {
  Atomics.store(i32, H_HALT, 1);
  for (let c = 0; c < ncpu; c++) cpu_ring(c);
}

/** This CPU stops: it leaves kcpuset_running and forgets the machine. */
export function cpu_halt(ci: cpu_info): void {
  Atomics.store(i32, cpu_word(ci.ci_index, C_STATE), CPUST_HALTED);
  kcpuset_atomic_clear(kcpuset_running, ci.ci_index);
  cpu_detach();
  sym_detach();
  shared_detach();
  thread_reset();
  md_attach(undefined);
  kmem_detach();
}

/**
 * cpu_die: CPU c has died while the machine runs (its thread exited,
 * crashed or was terminated).  Record why, mark it dead (it leaves
 * kcpuset_running), write off its part of every call in flight so that no
 * one waits for it, release what it held, and ring every CPU so that waits
 * look again.  Runs on the dying CPU itself (on its way out) or on another
 * CPU once its thread is gone; the first caller does it, later ones return
 * false, as do calls during shutdown.
 */
export function cpu_die(c: number, death: cpu_death): boolean {
  if (machine_halted()) return false;
  const st = cpu_word(c, C_STATE);
  const was = Atomics.load(i32, st);
  if (was === CPUST_DEAD || was === CPUST_DYING || was === CPUST_HALTED) return false;
  if (Atomics.compareExchange(i32, st, was, CPUST_DYING) !== was) return false;
  cpu_death_write(c, death);
  /* Publish: the death record is visible to whoever sees the state DEAD. */
  Atomics.store(i32, st, CPUST_DEAD);
  kcpuset_atomic_set(kcpuset_dead, c);
  kcpuset_atomic_clear(kcpuset_running, c);
  Atomics.add(i32, H_DEADGEN, 1);
  ipi_cpu_dead(c);
  xc_cpu_dead(c);
  softint_cpu_dead(c);
  for (let t = 0; t < ncpu; t++) if (t !== c) cpu_ring(t);
  return true;
}
