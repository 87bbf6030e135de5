/*
 * Event counters (NetBSD's evcnt(9), as `vmstat -i` shows them), read from
 * kernel memory.  Each CPU counts its own events with plain stores; a read
 * from another CPU may be a little stale, never torn.
 */
import * as L from './layout.js';
import { IPI_MAXREG } from './param.js';

/** Counters of one IPI id on one CPU. */
export interface ipi_evcnt {
  readonly id: number;
  /** ipi_trigger calls from this CPU for the id. */
  readonly sent: number;
  /** Of those, the ones that found it already pending (coalesced: no doorbell). */
  readonly coalesced: number;
  /** Doorbells those triggers rang: sent - coalesced. */
  readonly doorbells: number;
  /** Handler runs on this CPU for the id. */
  readonly runs: number;
}

/** Counters of one CPU. */
export interface cpu_evcnt {
  readonly cpu: number;
  /** Doorbells this CPU rang (triggers, vectors, completions). */
  readonly doorbells: number;
  /** Service passes that found hard interrupts pending. */
  readonly interrupts: number;
  readonly msg_sent: number;
  readonly msg_handled: number;
  /** Sends that found the target's mailbox full. */
  readonly mbox_full: number;
  /** Times this CPU slept on its doorbell. */
  readonly sleeps: number;
  /** Polls (idle, or in a wait) that caught what they waited for before sleeping. */
  readonly poll_hits: number;
  /** Polls that ran their window out and went to sleep (each halves the window). */
  readonly poll_misses: number;
  /** The CPU's poll window now, µs: it adapts between 0 and the boot option `poll`. */
  readonly poll_window: number;
  /** Asynchronous handlers (IPI, soft interrupt) that threw or whose promise rejected: delivered as 'error' events. */
  readonly handler_errors: number;
  readonly softint_scheduled: number;
  readonly softint_remote: number;
  readonly softint_run: number;
  readonly xcall_low: number;
  readonly xcall_high: number;
  /** Waits of this CPU that passed their timeout. */
  readonly timeouts: number;
  /** Failures of this CPU whose details found all its IPI_ERR_RECORDS in use (reported without them). */
  readonly errors_lost: number;
  /** Per IPI id with any activity. */
  readonly ipi: readonly ipi_evcnt[];
}

export function evcnt_read(ncpu: number): cpu_evcnt[] {
  const out: cpu_evcnt[] = [];
  for (let c = 0; c < ncpu; c++) {
    const ev = (e: number): number => L.f64[L.evcnt_index(c, e)];
    const ipi: ipi_evcnt[] = [];
    for (let id = 0; id < IPI_MAXREG; id++) {
      const at = (e: number): number => L.f64[L.evcnt_id_index(c, id, e)];
      const sent = at(L.EVI_SENT), coalesced = at(L.EVI_COALESCED), runs = at(L.EVI_RUN);
      if (sent || runs) ipi.push({ id, sent, coalesced, doorbells: sent - coalesced, runs });
    }
    out.push({
      cpu: c,
      doorbells: ev(L.EV_DOORBELL),
      interrupts: ev(L.EV_INTR),
      msg_sent: ev(L.EV_MSG_SENT),
      msg_handled: ev(L.EV_MSG_HANDLED),
      mbox_full: ev(L.EV_MBOX_FULL),
      sleeps: ev(L.EV_SLEEP),
      poll_hits: ev(L.EV_POLL_HIT),
      poll_misses: ev(L.EV_POLL_MISS),
      poll_window: ev(L.EV_POLL_WIN),
      handler_errors: ev(L.EV_INTR_ERROR),
      softint_scheduled: ev(L.EV_SOFT_SCHED),
      softint_remote: ev(L.EV_SOFT_REMOTE),
      softint_run: ev(L.EV_SOFT_RUN),
      xcall_low: ev(L.EV_XC_LOW),
      xcall_high: ev(L.EV_XC_HIGH),
      timeouts: ev(L.EV_TIMEOUT),
      errors_lost: ev(L.EV_ERR_LOST),
      ipi,
    });
  }
  return out;
}
