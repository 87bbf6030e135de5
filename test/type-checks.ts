/*
 * Type-level tests: compiled by `npm run build` (so `npm test`), never run.
 * Each @ts-expect-error line must fail to type-check, or the build fails.
 */
import {
  cpu_lookup, ipi_register, ipi_unicast, ipi_wait, kcpuset_create, softint_schedule, xc_broadcast, type ipi_msg_t,
  type softint_cookie_t,
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
