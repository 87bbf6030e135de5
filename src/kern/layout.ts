/*
 * The kernel's shared memory: the one place that knows offsets and sizes.
 *
 * Every CPU attaches the same SharedArrayBuffer; all cross-CPU state of the
 * machine lives in it.  Allocation (kmem_size) is separate from attaching
 * (kmem_attach), so the booting thread can size and create the buffer and
 * each CPU then maps its views over it.  NW below is the number of 32-bit
 * words a set of this machine's CPUs takes: ceil(ncpu / 32).
 *
 *   +--------------------+ 0
 *   | header             |  magic, ncpu, halt flag, death count, boot time,
 *   |                    |  kcpuset_attached, kcpuset_running, the dead set
 *   +--------------------+
 *   | cpu[0..ncpu)       |  per CPU, CPU_WORDS words:
 *   |                    |    state, doorbell, ipi pending bits, vector bits,
 *   |                    |    activity and its sequence number,
 *   |                    |    mailbox[IPI_MSG_SLOTS], xcall calls claimed[2] and completed[2],
 *   |                    |    image digest[IMAGE_MAXMODULES + 1]
 *   +--------------------+
 *   | ipi handlers       |  IPI_MAXREG x { func, gen }
 *   | softint handlers   |  SOFTINT_MAXHANDLERS x { func, gen, flags, ipi id }
 *   | xcall classes      |  2 priority classes x X_WORDS
 *   | xcall records      |  2 classes x XC_HISTORY x { where, targets[NW], failed[NW] }
 *   | msg descriptors    |  ncpu x IPI_MSG_MAXINFLIGHT x { func, seq, targets[NW], failed[NW] }
 *   | error records      |  ncpu x IPI_ERR_RECORDS x { state, kind, id, seq }
 *   +--------------------+
 *   | argument cells     |  see below; each CELL_BYTES
 *   +--------------------+
 *   | event counters     |  Float64, per CPU: EV_NCOUNTERS + IPI_MAXREG x EVI_N
 *   +--------------------+ total
 *
 * An argument cell holds one value passed to another CPU (an argument of a
 * registered handler, of a message, of an xcall; an error; why a CPU died):
 *
 *   +0 tag   +4 a   +8 b   +12 c   +16 num (Float64 or BigInt64)   +24 bytes[IPI_ARG_MAXBYTES]
 *
 * Cells are numbered; which structure owns which cell is fixed here
 * (cell_ipireg, cell_softint, cell_xcall, cell_msg, cell_err, cell_death), so
 * a CPU can cache what it decoded from a cell by its number.
 *
 * Words written by more than one CPU are only ever accessed with Atomics.
 * Plain typed-array accesses are used for single-writer data (a CPU's own
 * counters and activity, a message's argument cell, which its sender writes
 * before it publishes the message with an atomic store); each such place
 * says which atomic operation orders it, or that a reader may see it stale.
 */
import {
  IMAGE_MAXMODULES, IPI_ARG_MAXBYTES, IPI_ERR_RECORDS, IPI_MAXREG, IPI_MSG_MAXINFLIGHT, IPI_MSG_SLOTS, SOFTINT_MAXHANDLERS, XC_HISTORY,
} from './param.js';
import { IpiError } from './errors.js';

export const KMEM_MAGIC = 0x69706939; // "ipi9"

/* Header words. */
export const H_MAGIC = 0;
export const H_NCPU = 1;
export const H_HALT = 2;
export const H_DEADGEN = 3; // CPUs that have died: bumped after each is marked dead
export const H_BOOTTIME = 4; // [4, 5]: a Float64, md.now() when the machine booted (getmicrouptime)
export const H_ATTACHED = 8; // kcpuset_attached: KCPUSET_NWORDS words
export const H_RUNNING = 16; // kcpuset_running: KCPUSET_NWORDS words
export const H_DEAD = 24; // CPUs that died: KCPUSET_NWORDS words
const H_WORDS = 32;

/* Per-CPU words, relative to cpu_word(i). */
export const C_STATE = 0; // CPUST_*
export const C_DOORBELL = 1;
export const C_IPIPEND = 2;
export const C_MDIPI = 3; // machine-dependent IPI vectors (intr.ts), like x86's own IPIs
export const C_ACT = 4; // what the CPU is doing (ACT_* | arg << ACT_SHIFT), written only by it, read stale by others
export const C_ACTSEQ = 5; // bumped at every change of C_ACT, so a reader can tell "still the same"
export const C_MBOX = 6;
export const C_XCSEEN = C_MBOX + IPI_MSG_SLOTS; // [XC_CLASS_LOW], [XC_CLASS_HIGH]: the call whose part was claimed last
export const C_XCDONE = C_XCSEEN + 2; // [XC_CLASS_LOW], [XC_CLASS_HIGH]: the call whose part was completed last
export const C_DIGEST = C_XCDONE + 2; // [0] = number of modules, then one per module
const CPU_WORDS = C_DIGEST + 1 + IMAGE_MAXMODULES;

/* CPU states (C_STATE). */
export const CPUST_OFFLINE = 0; // attached, not yet running (boot)
export const CPUST_RUNNING = 1;
export const CPUST_HALTED = 2; // left the machine at shutdown
export const CPUST_DEAD = 3; // died while the machine ran; never runs again
export const CPUST_DYING = 4; // being marked dead (cpu_die), for a moment

/* Activities (C_ACT & ACT_MASK); the argument is a symbol, or a wait code for ACT_WAIT. */
export const ACT_THREAD = 0; // running thread code outside the library
export const ACT_IDLE = 1; // its idle loop sleeps, or its event loop runs other tasks
export const ACT_WAIT = 2; // in a wait of the library
export const ACT_IPI = 3; // in an asynchronous IPI handler
export const ACT_MSG = 4; // in a cross-call function
export const ACT_SOFT = 5; // in a soft interrupt handler
export const ACT_XCALL = 6; // in an xcall function
export const ACT_MASK = 0xf;
export const ACT_SHIFT = 4;

/* An ipi handler slot. */
export const R_FUNC = 0; // symbol + 1; 0 when free; -(cpu + 1) while that CPU fills it in or frees it
export const R_GEN = 1; // bumped on every register and unregister
const R_WORDS = 2;

/* A softint handler slot. */
export const S_FUNC = 0; // as R_FUNC
export const S_GEN = 1;
export const S_FLAGS = 2;
export const S_IPIID = 3;
const S_WORDS = 4;

/* An xcall priority class (xcall.ts). */
export const X_LOCK = 0; // 0 free, or holder cpu + 1, | X_LOCK_CONTENDED
export const X_HEADP = 1; // runs requested
export const X_DONEP = 2; // runs completed
export const X_FUNC = 3; // symbol of the call in flight
export const X_LEVEL = 4; // the SOFTINT_* level it runs at (high priority)
export const X_REC = 5; // its record (0 .. XC_HISTORY - 1)
export const X_CALLS = 6; // calls issued: selects the record of each call
const X_WORDS = 8;
export const X_LOCK_CONTENDED = 1 << 16;
export const X_LOCK_HOLDER = X_LOCK_CONTENDED - 1;

/* The two xcall priority classes (not to be confused with the XC_HIGHPRI flag). */
export const XC_CLASS_LOW = 0;
export const XC_CLASS_HIGH = 1;

/* An xcall record: the targets and failures of one call, kept for xc_wait (xcall.ts). */
export const XR_WHERE = 0; // headp after the call was issued (its ticket's count), 0 while being reset
export const XR_TARGETS = 1; // NW words: the CPUs the call runs on
export const xr_failed = (): number => 1 + NW; // NW words after the targets: CPUs whose part threw or died

/* A message descriptor. */
export const M_FUNC = 0; // symbol
export const M_SEQ = 1; // bumped at every send, to tell this send's error records from older ones
export const M_TARGETS = 2; // NW words: remote targets that have not yet acknowledged (NetBSD's _pending)

/* An error record: details of a failure, owned by the CPU that failed (ipi.ts). */
export const E_STATE = 0; // 0 free, 1 in use
export const E_KIND = 1; // ERR_MSG or ERR_XCALL
export const E_ID = 2; // the descriptor, or the xcall class
export const E_SEQ = 3; // the descriptor's M_SEQ, or the xcall's where
const E_WORDS = 4;
export const ERR_MSG = 1;
export const ERR_XCALL = 2;

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
export const EV_POLL_HIT = 6; // polls (idle or waiting) that caught what they waited for
export const EV_INTR_ERROR = 7; // asynchronous handlers that threw
export const EV_SOFT_SCHED = 8; // softint_schedule calls that queued a soft interrupt
export const EV_SOFT_REMOTE = 9; // softint_schedule_cpu calls to a remote CPU
export const EV_SOFT_RUN = 10; // soft interrupt handlers run
export const EV_XC_LOW = 11; // xcalls issued at low priority
export const EV_XC_HIGH = 12; // xcalls issued at high priority
export const EV_TIMEOUT = 13; // waits of this CPU that timed out
export const EV_ERR_LOST = 14; // failures whose details found no free error record (IPI_ERR_RECORDS)
export const EV_POLL_MISS = 15; // polls that ran their window out (the window shrank)
export const EV_POLL_WIN = 16; // this CPU's poll window now, µs (not a count)
export const EV_NCOUNTERS = 17;
/* Per CPU and per IPI id (evcnt_id_index(cpu, id, EVI_*)): */
export const EVI_SENT = 0; // ipi_trigger calls from this CPU for the id
export const EVI_COALESCED = 1; // of those, the ones that found the bit already set (no doorbell)
export const EVI_RUN = 2; // handler runs on this CPU for the id
export const EVI_N = 3;
const EV_PERCPU = EV_NCOUNTERS + IPI_MAXREG * EVI_N;

const align8 = (n: number): number => (n + 7) & ~7;

/** Words of a set of an ncpu machine's CPUs. */
export const set_words = (ncpu: number): number => (ncpu + 31) >> 5;

/** Where every region starts, for a machine of ncpu CPUs (bytes). */
export function kmem_layout(ncpu: number) {
  const nw = set_words(ncpu);
  const cpu = H_WORDS * 4;
  const ipireg = align8(cpu + ncpu * CPU_WORDS * 4);
  const softreg = ipireg + IPI_MAXREG * R_WORDS * 4;
  const xcall = softreg + SOFTINT_MAXHANDLERS * S_WORDS * 4;
  const xcrec = xcall + 2 * X_WORDS * 4;
  const msg = xcrec + 2 * XC_HISTORY * (1 + 2 * nw) * 4;
  const err = msg + ncpu * IPI_MSG_MAXINFLIGHT * (2 + 2 * nw) * 4;
  const cells = align8(err + ncpu * IPI_ERR_RECORDS * E_WORDS * 4);
  const ncells = IPI_MAXREG + SOFTINT_MAXHANDLERS + 4 + ncpu * IPI_MSG_MAXINFLIGHT + ncpu * IPI_ERR_RECORDS + ncpu;
  const evcnt = align8(cells + ncells * CELL_BYTES);
  const size = evcnt + ncpu * EV_PERCPU * 8;
  return { nw, cpu, ipireg, softreg, xcall, xcrec, msg, err, cells, ncells, evcnt, size };
}

/*
 * Views over the attached buffer, and region bases in view units.  Module
 * state: there is one machine per thread.
 */
export let i32: Int32Array = new Int32Array(0);
export let f64: Float64Array = new Float64Array(0);
export let i64: BigInt64Array = new BigInt64Array(0);
export let u8: Uint8Array = new Uint8Array(0);
/** Words of a CPU set in kernel memory (NW). */
export let NW = 0;
let cpuBase = 0, ipiregBase = 0, softregBase = 0, xcallBase = 0, xcrecBase = 0, msgBase = 0, errBase = 0, cellBase = 0, evBase = 0;
let kmemNcpu = 0, msgWords = 0, xcrecWords = 0;

/** Initialise a freshly allocated buffer (the booting CPU does this once). */
export function kmem_format(sab: SharedArrayBuffer, ncpu: number): void {
  const h = new Int32Array(sab, 0, H_WORDS);
  h[H_NCPU] = ncpu;
  Atomics.store(h, H_MAGIC, KMEM_MAGIC);
}

/** Map this thread's views over the kernel buffer. */
export function kmem_attach(sab: SharedArrayBuffer): number {
  const h = new Int32Array(sab, 0, H_WORDS);
  if (Atomics.load(h, H_MAGIC) !== KMEM_MAGIC) throw new IpiError('kmem_attach: not a formatted ipi kernel buffer');
  const ncpu = h[H_NCPU] ?? 0;
  const l = kmem_layout(ncpu);
  if (sab.byteLength < l.size) throw new IpiError(`kmem_attach: buffer of ${sab.byteLength} bytes, ${l.size} needed`);
  i32 = new Int32Array(sab);
  f64 = new Float64Array(sab, 0, sab.byteLength >> 3);
  i64 = new BigInt64Array(sab, 0, sab.byteLength >> 3);
  u8 = new Uint8Array(sab);
  NW = l.nw;
  cpuBase = l.cpu >> 2;
  ipiregBase = l.ipireg >> 2;
  softregBase = l.softreg >> 2;
  xcallBase = l.xcall >> 2;
  xcrecBase = l.xcrec >> 2;
  msgBase = l.msg >> 2;
  errBase = l.err >> 2;
  cellBase = l.cells;
  evBase = l.evcnt >> 3;
  kmemNcpu = ncpu;
  msgWords = 2 + 2 * l.nw;
  xcrecWords = 1 + 2 * l.nw;
  return ncpu;
}

/** Drop the views (machine shut down). */
export function kmem_detach(): void {
  i32 = new Int32Array(0);
  f64 = new Float64Array(0);
  i64 = new BigInt64Array(0);
  u8 = new Uint8Array(0);
  kmemNcpu = 0;
  NW = 0;
}

/* Index helpers: an i32 index of a word, or a byte offset of a cell. */
export const cpu_word = (cpu: number, field: number): number => cpuBase + cpu * CPU_WORDS + field;
export const ipireg_word = (id: number, field: number): number => ipiregBase + id * R_WORDS + field;
export const softreg_word = (h: number, field: number): number => softregBase + h * S_WORDS + field;
export const xcall_word = (cls: number, field: number): number => xcallBase + cls * X_WORDS + field;
/** Record r (0 .. XC_HISTORY - 1) of class cls. */
export const xcrec_word = (cls: number, r: number, field: number): number => xcrecBase + (cls * XC_HISTORY + r) * xcrecWords + field;
/** A message descriptor is named by a global number: owner CPU * IPI_MSG_MAXINFLIGHT + slot. */
export const msg_word = (desc: number, field: number): number => msgBase + desc * msgWords + field;
/** The first word of descriptor desc's failed set (NW words after its targets). */
export const msg_failed = (desc: number): number => msgBase + desc * msgWords + M_TARGETS + NW;
/** Error record r (0 .. IPI_ERR_RECORDS - 1) of CPU cpu. */
export const err_word = (cpu: number, r: number, field: number): number => errBase + (cpu * IPI_ERR_RECORDS + r) * E_WORDS + field;
export const cell_offset = (cell: number): number => cellBase + cell * CELL_BYTES;
export const evcnt_index = (cpu: number, ev: number): number => evBase + cpu * EV_PERCPU + ev;
export const evcnt_id_index = (cpu: number, id: number, ev: number): number =>
  evBase + cpu * EV_PERCPU + EV_NCOUNTERS + id * EVI_N + ev;

/* Cell numbering. */
export const cell_ipireg = (id: number): number => id;
export const cell_softint = (h: number): number => IPI_MAXREG + h;
export const cell_xcall = (cls: number, which: 0 | 1): number => IPI_MAXREG + SOFTINT_MAXHANDLERS + cls * 2 + which;
const msgCell0 = IPI_MAXREG + SOFTINT_MAXHANDLERS + 4;
export const cell_msg = (desc: number): number => msgCell0 + desc;
export const cell_err = (cpu: number, r: number): number => msgCell0 + kmemNcpu * IPI_MSG_MAXINFLIGHT + cpu * IPI_ERR_RECORDS + r;
export const cell_death = (cpu: number): number => msgCell0 + kmemNcpu * (IPI_MSG_MAXINFLIGHT + IPI_ERR_RECORDS) + cpu;
