/*
 * comlink's Node adapter, ESM build: the UMD build is CommonJS to Node, and
 * its types say `export default`, which under NodeNext means exports.default,
 * undefined at run time; the ESM build has no .d.mts.  These are its types.
 */
declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink';
  import type { NodeEndpoint } from 'comlink/dist/umd/node-adapter.js';
  export default function nodeEndpoint(nep: NodeEndpoint): Endpoint;
}
