/*
 * Type-level tests: compiled by `npm run build` (so `npm test`), never run.
 * Each @ts-expect-error line must fail to type-check, or the build fails.
 */
import {
  cpu_lookup, ipi_register, ipi_unicast, ipi_wait, ipi_wait_async, IpiTimeoutError, kcpuset_create, softint_schedule, xc_broadcast, xc_wait,
  type ipi_msg_t, type Machine, type softint_cookie_t,
} from 'ipi';
import { count, echo, plain_store } from './fixtures/image.js';

export function typeChecks(): void {
  /* A plain object literal is a message, its arg typed by its func. */
  const msg: ipi_msg_t<number> = { func: count, arg: 1 };
  ipi_unicast(msg, cpu_lookup(1));
  ipi_unicast({ func: plain_store, arg: { index: 1, value: 2 } }, cpu_lookup(1));
  ipi_wait(msg);
  // @ts-expect-error: the argument does not match the function
  ipi_unicast({ func: count, arg: 'one' }, cpu_lookup(1));
  // @ts-expect-error: a CPU index is not a cpu_info
  ipi_unicast(msg, 1);
  ipi_register(echo, 'anything');
  // @ts-expect-error: ipi_register returns a number (the id)
  ipi_register(count, 1) satisfies string;
  // @ts-expect-error: a cookie comes from softint_establish, not from a number
  softint_schedule(5);
  const cookie = 5 as softint_cookie_t;
  softint_schedule(cookie);
  xc_broadcast(0, (a: number, b: string) => void [a, b], 1, 'x');
  // @ts-expect-error: xcall arguments are typed by the function
  xc_broadcast(0, (a: number) => void a, 'x', undefined);
  void kcpuset_create(true);
}

/** Wait options and the machine's events. */
export function failureTypeChecks(machine: Machine, msg: ipi_msg_t<number>): void {
  ipi_wait(msg, { timeout: 100 });
  void ipi_wait_async(msg, { timeout: 100, signal: AbortSignal.timeout(5) });
  // @ts-expect-error: a blocking wait takes no signal (it could never see it fire)
  ipi_wait(msg, { signal: AbortSignal.timeout(5) });
  xc_wait(4, { timeout: 1 });
  machine.addEventListener('error', (e) => void [e.cpu, e.error]);
  machine.addEventListener('dead', (e) => void [e.cpu satisfies number, e.reason satisfies string, e.exitCode satisfies number | undefined]);
  // @ts-expect-error: an 'error' event has no reason
  machine.addEventListener('error', (e) => void e.reason);
  try {
    ipi_wait(msg, { timeout: 1 });
  } catch (e) {
    if (e instanceof IpiTimeoutError) void (e.cpus satisfies readonly number[]);
  }
}
