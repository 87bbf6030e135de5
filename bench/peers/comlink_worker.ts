/* The worker of the comlink peer: an object whose fn the main thread calls through a comlink proxy. */
import { parentPort } from 'node:worker_threads';
import { expose } from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';

export interface comlink_api {
  fn(x: number): number;
}

const api: comlink_api = { fn: (x) => x + 1 };
if (parentPort !== null) expose(api, nodeEndpoint(parentPort));
