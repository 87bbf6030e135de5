/*
 * ipi9 on Node.js: the machine-independent interface (api.ts) and Node's
 * boot().  The package's conditional exports pick this file for Node.
 */
export * from '../../api.js';
export { boot } from './boot.js';
