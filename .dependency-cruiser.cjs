/*
 * The architecture, checked by npm test (npm run check:deps):
 *   - no import cycle anywhere in src/ (the vector table and softint's
 *     barrier entry are how the facilities reach each other without one);
 *   - the machine-independent core (src/kern) imports no runtime's part
 *     (src/arch) and no runtime module (node:*): every runtime API goes
 *     through kern/md.ts;
 *   - a runtime's folder imports no other runtime's, except that Node's
 *     boot() runs the simulated machine for boot({ simulate }).
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'An import cycle: a module can then be used before it is initialised.',
      from: { path: '^src' }, to: { circular: true } },
    { name: 'kern-not-to-arch', severity: 'error', comment: 'The core must not depend on a runtime: go through kern/md.ts.',
      from: { path: '^src/kern' }, to: { path: '^src/arch' } },
    { name: 'kern-no-runtime-api', severity: 'error', comment: 'The core calls no runtime API: go through kern/md.ts.',
      from: { path: '^src/kern' }, to: { dependencyTypes: ['core'] } },
    { name: 'arch-not-to-other-arch', severity: 'error', comment: 'A runtime is one folder under src/arch.',
      from: { path: '^src/arch/([^/]+)/' }, to: { path: '^src/arch/([^/]+)/', pathNot: ['^src/arch/$1/', '^src/arch/sim/'] } },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
  },
};
