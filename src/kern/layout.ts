/*
 * The kernel's shared memory: the one place that knows offsets and sizes.
 *
 * Every CPU attaches the same SharedArrayBuffer; all cross-CPU state of the
 * machine lives in it.  Allocation (kmem_size) is separate from attaching
 * (kmem_attach), so the booting thread can size and create the buffer and
 * each CPU then maps its views over it.
 *
 *   +--------------------+ 0
 *   | header             |  magic, ncpu, halt flag, kcpuset_attached, _running
 *   +--------------------+ CPU_BASE
 *   | cpu[0..ncpu)       |  per CPU, CPU_WORDS words:
 *   |                    |    state, doorbell, ipi pending bits, vector bits,
 *   |                    |    mailbox[IPI_MSG_SLOTS], xcall pending[2],
 *   |                    |    image digest[IMAGE_MAXMODULES + 1]
 *   +--------------------+ REG_BASE
 *   | ipi handlers       |  IPI_MAXREG x { func, gen }
 *   | softint handlers   |  SOFTINT_MAXHANDLERS x { func, gen, flags, ipi id }
 *   | xcall state        |  2 priority classes x XC_WORDS
 *   | msg descriptors    |  ncpu x IPI_MSG_MAXINFLIGHT x { pending, func, error }
 *   +--------------------+ CELL_BASE
 *   | argument cells     |  see below; each CELL_BYTES
 *   +--------------------+ EVCNT_BASE
 *   | event counters     |  Float64, per CPU: EV_NCOUNTERS + IPI_MAXREG x EVI_N
 *   +--------------------+ total
 *
 * An argument cell holds one value passed to another CPU (an argument of a
 * registered handler, of a message, of an xcall; the error of a message):
 *
 *   +0 tag   +4 a   +8 b   +12 c   +16 num (Float64 or BigInt64)   +24 bytes[IPI_ARG_MAXBYTES]
 *
 * Cells are numbered; which structure owns which cell is fixed here
 * (cell_ipireg, cell_softint, cell_xcall, cell_msg, cell_msgerr), so a CPU can
 * cache what it decoded from a cell by its number.
 *
 * Words written by more than one CPU are only ever accessed with Atomics.
 * Plain typed-array accesses are used for single-writer data (a CPU's own
 * counters, a message's argument cell, which its sender writes before it
 * publishes the message with an atomic store); each such place says which
 * atomic operation orders it.
 */
import { IMAGE_MAXMODULES, IPI_ARG_MAXBYTES, IPI_MAXREG, IPI_MSG_MAXINFLIGHT, IPI_MSG_SLOTS, SOFTINT_MAXHANDLERS } from './param.js';

export const KMEM_MAGIC = 0x69706939; // "ipi9"

/* Header words. */
export const H_MAGIC = 0;
export const H_NCPU = 1;
export const H_HALT = 2;
export const H_ATTACHED = 8; // kcpuset_attached: KCPUSET_NWORDS words
export const H_RUNNING = 16; // kcpuset_running: KCPUSET_NWORDS words
const H_WORDS = 24;

/* Per-CPU words, relative to cpu_word(i). */
export const C_STATE = 0;
export const C_DOORBELL = 1;
export const C_IPIPEND = 2;
export const C_MDIPI = 3; // machine-dependent IPI vectors (intr.ts), like x86's own IPIs
export const C_MBOX = 4;
export const C_XCPEND = C_MBOX + IPI_MSG_SLOTS; // [XC_LOWPRI], [XC_HIGHPRI]
export const C_DIGEST = C_XCPEND + 2; // [0] = number of modules, then one per module
const CPU_WORDS = C_DIGEST + 1 + IMAGE_MAXMODULES;

/* CPU states (C_STATE). */
export const CPUST_OFFLINE = 0;
export const CPUST_RUNNING = 1;
export const CPUST_HALTED = 2;

/* An ipi handler slot. */
export const R_FUNC = 0; // symbol + 1, or 0 when free
export const R_GEN = 1; // bumped on every register and unregister
const R_WORDS = 2;

/* A softint handler slot. */
export const S_FUNC = 0; // symbol + 1, or 0 when free
export const S_GEN = 1;
export const S_FLAGS = 2;
export const S_IPIID = 3;
const S_WORDS = 4;

/* An xcall priority class. */
export const X_LOCK = 0;
export const X_HEADP = 1;
export const X_DONEP = 2;
export const X_FUNC = 3;
export const X_IPL = 4;
const X_WORDS = 8;

/* A message descriptor. */
export const M_PENDING = 0; // remote runs not yet acknowledged
export const M_FUNC = 1; // symbol
export const M_ERROR = 2; // 0, or index + 1 of the first CPU whose run threw
const M_WORDS = 4;

/* Argument cell fields (byte offsets in the cell). */
export const CELL_TAG = 0;
export const CELL_A = 4;
export const CELL_B = 8;
export const CELL_C = 12;
export const CELL_NUM = 16;
export const CELL_BYTES_OFF = 24;
export const CELL_BYTES = CELL_BYTES_OFF + IPI_ARG_MAXBYTES;

/*
 * Event counters (NetBSD's evcnt), Float64, each written only by its own CPU
 * with plain stores and read by anyone (a read may be slightly stale).
 * Per CPU (indexes relative to evcnt_index(cpu, 0)):
 */
export const EV_DOORBELL = 0; // doorbells this CPU rang
export const EV_INTR = 1; // service passes that found hard interrupts pending
export const EV_MSG_SENT = 2; // messages this CPU put in a mailbox
export const EV_MSG_HANDLED = 3; // messages this CPU ran from its mailbox
export const EV_MBOX_FULL = 4; // times a send found a target's mailbox full
export const EV_SLEEP = 5; // times this CPU slept on its doorbell
export const EV_POLL_HIT = 6; // idle polls that caught an interrupt
export const EV_INTR_ERROR = 7; // asynchronous handlers that threw
export const EV_SOFT_SCHED = 8; // softint_schedule calls that queued a soft interrupt
export const EV_SOFT_REMOTE = 9; // softint_schedule_cpu calls to a remote CPU
export const EV_SOFT_RUN = 10; // soft interrupt handlers run
export const EV_XC_LOW = 11; // xcalls issued at low priority
export const EV_XC_HIGH = 12; // xcalls issued at high priority
export const EV_NCOUNTERS = 13;
/* Per CPU and per IPI id (evcnt_id_index(cpu, id, EVI_*)): */
export const EVI_SENT = 0; // ipi_trigger calls from this CPU for the id
export const EVI_COALESCED = 1; // of those, the ones that found the bit already set (no doorbell)
export const EVI_RUN = 2; // handler runs on this CPU for the id
export const EVI_N = 3;
const EV_PERCPU = EV_NCOUNTERS + IPI_MAXREG * EVI_N;

export const XC_LOWPRI = 0;
export const XC_HIGHPRI = 1;

const align8 = (n: number): number => (n + 7) & ~7;

/** Where every region starts, for a machine of ncpu CPUs (bytes). */
export function kmem_layout(ncpu: number) {
  const cpu = H_WORDS * 4;
  const ipireg = align8(cpu + ncpu * CPU_WORDS * 4);
  const softreg = ipireg + IPI_MAXREG * R_WORDS * 4;
  const xcall = softreg + SOFTINT_MAXHANDLERS * S_WORDS * 4;
  const msg = xcall + 2 * X_WORDS * 4;
  const cells = align8(msg + ncpu * IPI_MSG_MAXINFLIGHT * M_WORDS * 4);
  const ncells = IPI_MAXREG + SOFTINT_MAXHANDLERS + 4 + 2 * ncpu * IPI_MSG_MAXINFLIGHT;
  const evcnt = align8(cells + ncells * CELL_BYTES);
  const size = evcnt + ncpu * EV_PERCPU * 8;
  return { cpu, ipireg, softreg, xcall, msg, cells, ncells, evcnt, size };
}

/*
 * Views over the attached buffer, and region bases in view units.  Module
 * state: there is one machine per thread.
 */
export let i32: Int32Array = new Int32Array(0);
export let f64: Float64Array = new Float64Array(0);
export let i64: BigInt64Array = new BigInt64Array(0);
export let u8: Uint8Array = new Uint8Array(0);
let cpuBase = 0, ipiregBase = 0, softregBase = 0, xcallBase = 0, msgBase = 0, cellBase = 0, evBase = 0, kmemNcpu = 0;

/** Initialise a freshly allocated buffer (the booting CPU does this once). */
export function kmem_format(sab: SharedArrayBuffer, ncpu: number): void {
  const h = new Int32Array(sab, 0, H_WORDS);
  h[H_NCPU] = ncpu;
  Atomics.store(h, H_MAGIC, KMEM_MAGIC);
}

/** Map this thread's views over the kernel buffer. */
export function kmem_attach(sab: SharedArrayBuffer): number {
  const h = new Int32Array(sab, 0, H_WORDS);
  if (Atomics.load(h, H_MAGIC) !== KMEM_MAGIC) throw new Error('kmem_attach: not a formatted ipi kernel buffer');
  const ncpu = h[H_NCPU]!;
  const l = kmem_layout(ncpu);
  if (sab.byteLength < l.size) throw new Error(`kmem_attach: buffer of ${sab.byteLength} bytes, ${l.size} needed`);
  i32 = new Int32Array(sab);
  f64 = new Float64Array(sab, 0, sab.byteLength >> 3);
  i64 = new BigInt64Array(sab, 0, sab.byteLength >> 3);
  u8 = new Uint8Array(sab);
  cpuBase = l.cpu >> 2;
  ipiregBase = l.ipireg >> 2;
  softregBase = l.softreg >> 2;
  xcallBase = l.xcall >> 2;
  msgBase = l.msg >> 2;
  cellBase = l.cells;
  evBase = l.evcnt >> 3;
  kmemNcpu = ncpu;
  return ncpu;
}

/** Drop the views (machine shut down). */
export function kmem_detach(): void {
  i32 = new Int32Array(0);
  f64 = new Float64Array(0);
  i64 = new BigInt64Array(0);
  u8 = new Uint8Array(0);
  kmemNcpu = 0;
}

/* Index helpers: an i32 index of a word, or a byte offset of a cell. */
export const cpu_word = (cpu: number, field: number): number => cpuBase + cpu * CPU_WORDS + field;
export const ipireg_word = (id: number, field: number): number => ipiregBase + id * R_WORDS + field;
export const softreg_word = (h: number, field: number): number => softregBase + h * S_WORDS + field;
export const xcall_word = (pri: number, field: number): number => xcallBase + pri * X_WORDS + field;
/** A message descriptor is named by a global number: owner CPU * IPI_MSG_MAXINFLIGHT + slot. */
export const msg_word = (desc: number, field: number): number => msgBase + desc * M_WORDS + field;
export const cell_offset = (cell: number): number => cellBase + cell * CELL_BYTES;
export const evcnt_index = (cpu: number, ev: number): number => evBase + cpu * EV_PERCPU + ev;
export const evcnt_id_index = (cpu: number, id: number, ev: number): number =>
  evBase + cpu * EV_PERCPU + EV_NCOUNTERS + id * EVI_N + ev;

/* Cell numbering. */
export const cell_ipireg = (id: number): number => id;
export const cell_softint = (h: number): number => IPI_MAXREG + h;
export const cell_xcall = (pri: number, which: 0 | 1): number => IPI_MAXREG + SOFTINT_MAXHANDLERS + pri * 2 + which;
const msgCell0 = IPI_MAXREG + SOFTINT_MAXHANDLERS + 4;
export const cell_msg = (desc: number): number => msgCell0 + desc;
export const cell_msgerr = (desc: number): number => msgCell0 + kmemNcpu * IPI_MSG_MAXINFLIGHT + desc;
