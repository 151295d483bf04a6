import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ObservedPath, healthOf, isUsable, toWire } from './health.ts';

const p = (state: string, anaState: string | null, dmState?: string | null): ObservedPath => ({
  controller: 'nvme0',
  address: '10.0.0.1',
  port: 4420,
  transport: 'tcp',
  state,
  anaState,
  dmState,
});

describe('health', () => {
  it('usable = live and optimized or non-optimized (no ANA counts as optimized)', () => {
    assert.equal(isUsable(p('live', 'optimized')), true);
    assert.equal(isUsable(p('live', 'non-optimized')), true);
    assert.equal(isUsable(p('live', null)), true);
    for (const ana of ['inaccessible', 'persistent-loss', 'change']) assert.equal(isUsable(p('live', ana)), false, ana);
    for (const st of ['connecting', 'resetting', 'deleting', 'missing', 'no-namespace', 'wrong-volume'])
      assert.equal(isUsable(p(st, 'optimized')), false, st);
    assert.equal(isUsable(p('live', null, 'failed')), false, 'multipathd failed the path');
  });

  it('rolls up to optimal, degraded or failed', () => {
    assert.equal(healthOf([p('live', 'optimized'), p('live', 'non-optimized')]), 'optimal');
    assert.equal(
      healthOf([p('live', 'non-optimized'), p('live', 'non-optimized')]),
      'degraded',
      'usable but none optimized',
    );
    assert.equal(healthOf([p('live', 'optimized'), p('connecting', 'optimized')]), 'degraded');
    assert.equal(healthOf([p('connecting', 'optimized'), p('live', 'inaccessible')]), 'failed');
    assert.equal(healthOf([]), 'failed');
  });

  it('puts paths on the wire in snake_case', () => {
    assert.deepEqual(toWire(p('live', 'optimized', 'active')), {
      controller: 'nvme0',
      address: '10.0.0.1',
      port: 4420,
      transport: 'tcp',
      state: 'live',
      ana_state: 'optimized',
    });
  });
});
