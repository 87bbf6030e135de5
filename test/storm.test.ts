/* The storm, short: every CPU sends every kind of call at once; one CPU is killed in the middle. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { storm } from './storm.js';

test('storm: every CPU sends every kind of call to random targets at once; each runs exactly once on exactly its targets', { timeout: 120_000 }, async () => {
  const r = await storm({ ncpu: 4, calls: 20_000, kill: false });
  assert.deepEqual(r.violations, []);
  assert.ok(r.calls >= 20_000);
  assert.equal(r.deadWaits + r.refused, 0);
  assert.ok(r.triggers.runs > 0 && r.softints.runs > 0);
});

test('storm with a CPU killed in the middle: its waiters fail with IpiCpuDeadError, everything else completes', { timeout: 120_000 }, async () => {
  const r = await storm({ ncpu: 4, calls: 20_000, kill: true });
  assert.deepEqual(r.violations, []);
  assert.equal(r.killed, 3);
  assert.ok(r.calls >= 20_000);
});
