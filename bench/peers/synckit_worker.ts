/*
 * The worker of the synckit peer.  synckit has no way to terminate the worker
 * behind a createSyncFn, so the peer's close() calls fn(STOP) and the worker
 * ends itself once that reply is out.
 */
import { runAsWorker } from 'synckit';

export const STOP = -1;

runAsWorker((x: number): number => {
  /* After the reply is posted (runAsWorker posts it once this returns, in a microtask). */
  if (x === STOP) setTimeout(() => process.exit(0), 0);
  return x + 1;
});
