/*
 * ipi9: NetBSD's machine-independent IPI interface, ipi(9), for JavaScript.
 * Worker threads are the CPUs; one SharedArrayBuffer is their memory.
 * This is the machine-independent interface; each runtime's index
 * (src/arch/<runtime>/index.ts) adds its boot().  Exports are grouped as
 * NetBSD's headers group them.
 */
import './kern/instance.js';

/* The machine (this library's boot; the runtime's part is in arch/). */
export { type BootOptions, type SimulateOptions, STALL_REPORT_MS } from './kern/init_main.js';
export { Machine, MachineErrorEvent, CpuDeadEvent, type MachineEventMap } from './kern/machine.js';
export { shared } from './kern/shared.js';
export type { cpu_evcnt, ipi_evcnt } from './kern/evcnt.js';
export {
  IpiError, IpiAssertionError, IpiRemoteError, IpiCpuDeadError, IpiTimeoutError, type IpiCpuFailure, type IpiCpuState,
} from './kern/errors.js';
export {
  MAXCPUS, IPI_MSG_MAXINFLIGHT, IPI_ARG_MAXBYTES, IPI_ERR_RECORDS, IMAGE_MAXMODULES, SOFTINT_MAXHANDLERS, XC_HISTORY,
} from './kern/param.js';

/* <sys/cpu.h>, <sys/intr.h>, spl(9), kpreempt(9) */
export {
  cpu_info, curcpu, cpu_number, cpu_index, cpu_lookup, ncpu, kpreempt_disable, kpreempt_enable, kpreempt_disabled,
  cpu_intr_p, cpu_softintr_p, IPL_NONE, IPL_SOFTCLOCK, IPL_SOFTBIO, IPL_SOFTNET, IPL_SOFTSERIAL, IPL_VM, IPL_SCHED, IPL_HIGH,
} from './kern/cpu.js';
export { splhigh, splraiseipl, splx, spl0, preempt_point, cpu_relax, getmicrouptime } from './kern/intr.js';

/* <sys/kcpuset.h> */
export * from './kern/kcpuset.js';
export { kcpuset_attached, kcpuset_running } from './kern/cpu.js';

/* <sys/ipi.h>: asynchronous */
export { IPI_MAXREG, IPI_SYNCH_ID, IPI_MSG_SLOTS } from './kern/param.js';
export { ipi_register, ipi_unregister, ipi_unregister_async, ipi_trigger, ipi_trigger_multi, ipi_trigger_broadcast } from './kern/ipi.js';
/* <sys/ipi.h>: synchronous */
export {
  type ipi_func_t, type ipi_msg_t, type ipi_wait_options, type ipi_wait_async_options, ipi_unicast, ipi_multicast, ipi_broadcast, ipi_wait,
  ipi_wait_async,
} from './kern/ipi.js';

/* <sys/intr.h>: softint(9) */
export {
  type softint_cookie_t, softint_establish, softint_disestablish, softint_disestablish_async, softint_schedule, softint_schedule_cpu,
  SOFTINT_CLOCK, SOFTINT_BIO, SOFTINT_NET, SOFTINT_SERIAL, SOFTINT_COUNT, SOFTINT_MPSAFE, SOFTINT_RCPU,
} from './kern/softint.js';

/* <sys/xcall.h> */
export {
  type xcfunc_t, type xc_wait_options, type xc_wait_async_options, xc_broadcast, xc_broadcast_async, xc_unicast, xc_unicast_async,
  xc_wait, xc_wait_async, xc_barrier, xc_barrier_async, XC_HIGHPRI, XC_HIGHPRI_IPL,
} from './kern/xcall.js';
