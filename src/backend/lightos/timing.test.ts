/**
 * Retry and wait timing, driven by a ManualClock: how often the adapter retries and when it
 * gives up, without any real waiting.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { isDriverError } from '../../driver/errors.ts';
import { ManualClock } from '../../shared/clock.ts';
import { waitUntil } from '../../../test/support/sim-client.ts';
import { LightosBackend } from './backend.ts';
import { type FakeLightos, startFakeLightos } from './testing/fake-lightos.ts';

const VOLS = '/api/v2/projects/default/volumes';
const UUID = '6d2a3b6e-1f0c-4b8e-9a57-2c1d0e4f5a61';

/** Runs `p` to completion, advancing the clock by `stepMs` each time the code under test sleeps. */
async function drive<T>(
  clock: ManualClock,
  p: Promise<T>,
  stepMs: number,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  let done = false;
  const settled = p.then(
    (value) => ((done = true), { ok: true as const, value }),
    (error) => ((done = true), { ok: false as const, error }),
  );
  while (!done) {
    await waitUntil(() => done || clock.pending > 0, { what: 'the adapter to sleep or finish' });
    if (!done) await clock.advance(stepMs);
  }
  return settled;
}

function droppingServer(): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const server: Server = createServer((s) => {
    hits++;
    s.destroy();
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
        hits: () => hits,
        close: () => new Promise((r) => server.close(() => r())),
      }),
    ),
  );
}

describe('transport retries', () => {
  test('one endpoint: retried every pollIntervalMs until the operation deadline, then backend_unavailable', async () => {
    const d = await droppingServer();
    try {
      const clock = new ManualClock();
      const b = new LightosBackend({ endpoints: [d.url], clock, pollIntervalMs: 1000, operationTimeoutMs: 5000 });
      const r = await drive(clock, b.clusterInfo(), 1000);
      assert.equal(r.ok, false);
      assert.ok(!r.ok && isDriverError(r.error, 'backend_unavailable'), String(!r.ok && r.error));
      assert.equal(d.hits(), 6, 'tries at t=0,1,2,3,4,5 s');
      assert.equal(clock.now(), 5000, 'gave up exactly at the deadline');
    } finally {
      await d.close();
    }
  });

  test('several endpoints: one full cycle, no pause, then backend_unavailable', async () => {
    const [a, b2, c] = [await droppingServer(), await droppingServer(), await droppingServer()];
    try {
      const clock = new ManualClock();
      const b = new LightosBackend({ endpoints: [a.url, b2.url, c.url], clock, random: () => 0.5 });
      await assert.rejects(b.ping(), (e: unknown) => isDriverError(e, 'backend_unavailable'));
      assert.deepEqual([a.hits(), b2.hits(), c.hits()], [1, 1, 1]);
      assert.equal(clock.now(), 0, 'never slept');
    } finally {
      await Promise.all([a.close(), b2.close(), c.close()]);
    }
  });
});

describe('waits and conflicts', () => {
  let fake: FakeLightos;
  let mode: 'creating' | 'conflict';
  before(async () => {
    fake = await startFakeLightos((r) => {
      const vol = {
        UUID,
        name: 'volume-w',
        size: '1073741824',
        replicaCount: 1,
        state: mode === 'creating' ? 'Creating' : 'Available',
        acl: { values: ['ALLOW_NONE'] },
        ETag: '1',
      };
      if (r.method === 'PUT') return { status: 412, body: { code: 9, message: 'etag mismatch' } };
      if (r.url.startsWith(VOLS)) return { body: vol };
      return { status: 404, body: {} };
    });
  });
  after(() => fake.close());

  test('a volume stuck in Creating is polled every interval and ends in backend_timeout naming the state', async () => {
    mode = 'creating';
    fake.requests.length = 0;
    const clock = new ManualClock();
    const b = new LightosBackend({ endpoints: [fake.url], clock, pollIntervalMs: 1000, operationTimeoutMs: 3000 });
    const r = await drive(clock, b.createVolume({ name: 'volume-w', sizeGb: 1, replicas: 1 }), 1000);
    assert.ok(!r.ok && isDriverError(r.error, 'backend_timeout'), String(!r.ok && r.error));
    assert.match((r as { error: Error }).error.message, /still in state Creating after 3000 ms/);
    const polls = fake.requests.filter((q) => q.url === `${VOLS}/${UUID}`).length;
    assert.equal(polls, 4, 'polled at t=0,1,2,3 s');
  });

  test('an ETag conflict that never clears is retried every interval, then backend_timeout', async () => {
    mode = 'conflict';
    fake.requests.length = 0;
    const clock = new ManualClock();
    const b = new LightosBackend({ endpoints: [fake.url], clock, pollIntervalMs: 500, operationTimeoutMs: 2000 });
    const r = await drive(clock, b.grantAccess(UUID, 'nqn.2014-08.org.nvmexpress:uuid:x'), 500);
    assert.ok(!r.ok && isDriverError(r.error, 'backend_timeout'), String(!r.ok && r.error));
    assert.match((r as { error: Error }).error.message, /HTTP 412 on If-Match/);
    assert.equal(fake.requests.filter((q) => q.method === 'PUT').length, 5, 'PUT at t=0,0.5,1,1.5,2 s');
  });
});
