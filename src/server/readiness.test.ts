import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../shared/logger.ts';
import { readinessProbe } from './readiness.ts';

describe('readinessProbe', () => {
  it('answers within its bound when a check never settles, naming it as timed out', async () => {
    const probe = readinessProbe(
      [
        { name: 'database', check: async () => {} },
        { name: 'backend', check: () => new Promise<void>(() => {}) },
      ],
      silentLogger,
      50,
    );
    const start = performance.now();
    const r = await probe();
    const ms = performance.now() - start;
    assert.equal(r.status, 503);
    assert.deepEqual(r.body, {
      status: 'unavailable',
      not_ready: ['backend'],
      checks: { database: { ok: true }, backend: { ok: false, timed_out: true } },
    });
    // The bound is 50 ms; a generous ceiling for a loaded machine, far below any check's own timeout.
    assert.ok(ms < 2000, `answered after ${Math.round(ms)} ms`);
  });

  it('a failing check is not ready without timed_out; all passing is 200', async () => {
    let fail = true;
    const probe = readinessProbe(
      [{ name: 'database', check: async () => (fail ? Promise.reject(new Error('down')) : undefined) }],
      silentLogger,
      1000,
    );
    assert.deepEqual((await probe()).body, {
      status: 'unavailable',
      not_ready: ['database'],
      checks: { database: { ok: false } },
    });
    fail = false;
    const ok = await probe();
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, { status: 'ok', not_ready: [], checks: { database: { ok: true } } });
  });

  it('joins a check still running instead of starting another; starts a new one once it settled', async () => {
    let started = 0;
    let release = () => {};
    const probe = readinessProbe(
      [
        {
          name: 'backend',
          check: () => {
            started++;
            return new Promise<void>((resolve) => (release = resolve));
          },
        },
      ],
      silentLogger,
      20,
    );
    assert.equal((await probe()).status, 503);
    assert.equal((await probe()).status, 503);
    assert.equal(started, 1, 'the second probe joined the hung check');
    release();
    // Settled: the next probe is ready, whether it still joins that check or starts a new one.
    assert.equal((await probe()).status, 200);
    assert.ok(started <= 2);
  });
});
