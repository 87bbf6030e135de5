/*
 * Machine-wide bounds.  Every fixed size in the shared-memory layout comes
 * from here; each is exported so callers can size their own data, and each
 * is tested at its edge.
 */

/** Most CPUs a machine may have; a kcpuset_t holds exactly this many bits. */
export const MAXCPUS = 256;

/** Registered asynchronous IPI handlers, including the reserved IPI_SYNCH_ID (NetBSD: IPI_MAXREG). */
export const IPI_MAXREG = 32;

/** The id reserved for synchronous IPIs (cross-calls); ipi_register never returns it. */
export const IPI_SYNCH_ID = 0;

/** Mailbox slots per CPU for cross-call messages (NetBSD: one cache line of pointers). */
export const IPI_MSG_SLOTS = 8;

/**
 * Cross-call messages one CPU may have sent and not yet waited for.  Each
 * takes a descriptor in shared memory from the sending CPU's own pool until
 * ipi_wait() (or ipi_wait_async()) returns for it.
 */
export const IPI_MSG_MAXINFLIGHT = 64;

/**
 * Bytes of a string or plain-data argument copied through shared memory
 * (UTF-8 or JSON text).  Larger data belongs in a shared buffer, passed as a view.
 */
export const IPI_ARG_MAXBYTES = 1024;

/** Image modules a machine may load (each has a digest slot per CPU). */
export const IMAGE_MAXMODULES = 64;

/** Soft interrupt handlers that may be established at once, machine-wide. */
export const SOFTINT_MAXHANDLERS = 64;

/**
 * Failures whose details (the error's name, message and stack) each CPU
 * keeps until the waiter collects them.  A failure that finds them all in
 * use is still reported, naming its CPU, without the details (counted).
 */
export const IPI_ERR_RECORDS = 8;

/**
 * Completed xcalls per priority class whose failures xc_wait() can still
 * report.  The failures of an older call that nobody waited for are
 * delivered as 'error' events of the machine instead.
 */
export const XC_HISTORY = 16;
