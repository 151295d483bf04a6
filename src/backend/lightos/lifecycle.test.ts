/**
 * The adapter's snapshot create (retries with backoff, within the deadline), snapshot delete and
 * the cleanup of a volume create that ends broken, against recorded LightOS answers
 * (test/fixtures/lightos/) on a ManualClock; and what the simulator does with the snapshots of
 * a deleted volume.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, beforeEach, describe, test } from 'node:test';
import { type DriverError, isDriverError } from '../../driver/errors.ts';
import { ManualClock } from '../../shared/clock.ts';
import { startSimServer } from '../../sim/server.ts';
import { call, waitUntil } from '../../../test/support/sim-client.ts';
import { LightosBackend } from './backend.ts';
import type { LightosConfig } from './config.ts';
import { type FakeAnswer, type FakeLightos, type RecordedRequest, startFakeLightos } from './testing/fake-lightos.ts';

const FIXTURES = new URL('../../../test/fixtures/lightos/', import.meta.url);
const fixture = (name: string): any => JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8'));
const SNAPSHOT = fixture('snapshot.json');
const VOLUME = fixture('volume.json');
const SNAPS = '/api/v2/projects/default/snapshots';
const VOLS = '/api/v2/projects/default/volumes';
const GONE = { status: 404, body: { code: 5, message: 'not found' } };

/** Runs `p` to completion, advancing the clock by `stepMs` whenever the code under test sleeps. */
async function drive<T>(
  clock: ManualClock,
  p: Promise<T>,
  stepMs: number,
): Promise<{ ok: true; value: T } | { ok: false; error: DriverError }> {
  let done = false;
  const settled = p.then(
    (value) => ((done = true), { ok: true as const, value }),
    (error: DriverError) => ((done = true), { ok: false as const, error }),
  );
  while (!done) {
    await waitUntil(() => done || clock.pending > 0, { what: 'the adapter to sleep or finish' });
    if (!done) await clock.advance(stepMs);
  }
  return settled;
}

let fake: FakeLightos;
let clock: ManualClock;
/** The answer for each request of the current test; `at` records the clock time of each. */
let handler: (r: RecordedRequest) => FakeAnswer;
let at: { method: string; url: string; t: number }[];

before(async () => {
  fake = await startFakeLightos((r) => {
    at.push({ method: r.method, url: r.url, t: clock.now() });
    return handler(r);
  });
});
after(() => fake.close());
beforeEach(() => {
  clock = new ManualClock();
  at = [];
  fake.requests.length = 0;
});

const make = (over: Partial<LightosConfig> = {}) =>
  new LightosBackend({
    endpoints: [fake.url],
    clock,
    pollIntervalMs: 1000,
    operationTimeoutMs: 100_000,
    random: () => 0,
    ...over,
  });

/** A LightOS that has no snapshot yet, answers POSTs from `posts` (then creates), and serves the snapshot in `states` order. */
function lightos(posts: number[], states: string[] = ['Available']) {
  let created = false;
  let polls = 0;
  const snap = () => ({ ...SNAPSHOT, state: states[Math.min(polls, states.length - 1)] });
  handler = (r) => {
    if (r.method === 'GET' && r.url === `${SNAPS}/?Name=${SNAPSHOT.name}`) return created ? { body: snap() } : GONE;
    if (r.method === 'POST' && r.url === SNAPS) {
      const status = posts.shift() ?? 200;
      if (status !== 200) return { status, body: { code: 14, message: `refused with ${status}` } };
      created = true;
      return { body: { ...SNAPSHOT, state: 'Creating' } };
    }
    if (r.method === 'GET' && r.url === `${SNAPS}/${SNAPSHOT.UUID}`) {
      if (!created) return GONE;
      const s = snap();
      polls++;
      return { body: s };
    }
    if (r.method === 'DELETE' && r.url === `${SNAPS}/${SNAPSHOT.UUID}`) {
      created = false;
      return { body: {} };
    }
    return { status: 404, body: { code: 5, message: `no fixture for ${r.method} ${r.url}` } };
  };
}

const posts = () => at.filter((q) => q.method === 'POST');

describe('createSnapshot', () => {
  test('looks the name up with ?Name=, POSTs {name, sourceVolumeUUID}, waits for Available', async () => {
    lightos([], ['Creating', 'Available']);
    const r = await drive(clock, make().createSnapshot(SNAPSHOT.sourceVolumeUUID, SNAPSHOT.name), 1000);
    assert.ok(r.ok, String(!r.ok && r.error));
    assert.deepEqual(r.value, {
      uuid: SNAPSHOT.UUID,
      name: SNAPSHOT.name,
      sourceVolumeUuid: SNAPSHOT.sourceVolumeUUID,
      sizeGb: 10,
      state: 'Available',
    });
    assert.deepEqual(
      fake.requests.slice(0, 2).map((q) => `${q.method} ${q.url}`),
      [`GET ${SNAPS}/?Name=${SNAPSHOT.name}`, `POST ${SNAPS}`],
    );
    assert.deepEqual(fake.requests[1]!.body, { name: SNAPSHOT.name, sourceVolumeUUID: SNAPSHOT.sourceVolumeUUID });
    assert.equal(clock.now(), 1000, 'one poll interval in Creating');
  });

  test('an existing snapshot of that name is returned without a POST', async () => {
    handler = (r) => (r.url.startsWith(SNAPS) && r.method === 'GET' ? { body: SNAPSHOT } : GONE);
    const r = await drive(clock, make().createSnapshot(SNAPSHOT.sourceVolumeUUID, SNAPSHOT.name), 1000);
    assert.ok(r.ok);
    assert.equal(r.value.uuid, SNAPSHOT.UUID);
    assert.equal(posts().length, 0);
  });

  test('503 and 400 answers are retried 1 s, then 2 s later (2^i × poll interval), each after a fresh lookup', async () => {
    lightos([503, 400]);
    const r = await drive(clock, make().createSnapshot(SNAPSHOT.sourceVolumeUUID, SNAPSHOT.name), 1000);
    assert.ok(r.ok, String(!r.ok && r.error));
    assert.deepEqual(
      posts().map((q) => q.t),
      [0, 1000, 3000],
    );
    assert.equal(at.filter((q) => q.url.includes('?Name=')).length, 3, 'a lookup before every POST');
  });

  test('gives up after snapshotMaxCalls attempts (pauses 1, 2, 4, 8 s) with the last error', async () => {
    lightos([500, 500, 500, 500, 500, 500, 500]);
    const r = await drive(clock, make().createSnapshot(SNAPSHOT.sourceVolumeUUID, SNAPSHOT.name), 1000);
    assert.ok(!r.ok && isDriverError(r.error, 'backend_error'), String(!r.ok && r.error));
    assert.match(r.error.message, /^LightOS createSnapshot\(snapshot .*\): HTTP 500 .* \(gave up after 5 attempts\)$/);
    assert.equal(r.error.details?.attempts, 5);
    assert.deepEqual(
      posts().map((q) => q.t),
      [0, 1000, 3000, 7000, 15000],
    );
  });

  test('never pauses past the operation deadline', async () => {
    lightos([503, 503, 503, 503]);
    const r = await drive(
      clock,
      make({ operationTimeoutMs: 2500 }).createSnapshot(SNAPSHOT.sourceVolumeUUID, SNAPSHOT.name),
      1000,
    );
    assert.ok(!r.ok && isDriverError(r.error, 'backend_error'));
    assert.match(r.error.message, /gave up after 2 attempts/);
    assert.deepEqual(
      posts().map((q) => q.t),
      [0, 1000],
      'a third attempt would start at 3 s, past the 2.5 s deadline',
    );
  });

  test('other refusals (403) are final at once', async () => {
    lightos([403]);
    const r = await drive(clock, make().createSnapshot(SNAPSHOT.sourceVolumeUUID, SNAPSHOT.name), 1000);
    assert.ok(!r.ok && isDriverError(r.error, 'backend_rejected'), String(!r.ok && r.error));
    assert.equal(posts().length, 1);
    assert.equal(clock.now(), 0);
  });

  test('a missing source volume (404 to the POST) is volume_not_found, not retried', async () => {
    lightos([404]);
    const r = await drive(clock, make().createSnapshot(SNAPSHOT.sourceVolumeUUID, SNAPSHOT.name), 1000);
    assert.ok(!r.ok && isDriverError(r.error, 'volume_not_found'), String(!r.ok && r.error));
    assert.equal(posts().length, 1);
  });

  test('a snapshot that ends Failed is deleted and reported', async () => {
    lightos([], ['Creating', 'Failed']);
    const r = await drive(clock, make().createSnapshot(SNAPSHOT.sourceVolumeUUID, SNAPSHOT.name), 1000);
    assert.ok(!r.ok && isDriverError(r.error, 'backend_error'));
    assert.match(r.error.message, /ended in state Failed \(deleted it\)/);
    assert.equal(at.filter((q) => q.method === 'DELETE').length, 1);
  });

  test('a snapshot stuck in Creating is backend_timeout naming the state', async () => {
    lightos([], ['Creating']);
    const r = await drive(
      clock,
      make({ operationTimeoutMs: 3000 }).createSnapshot(SNAPSHOT.sourceVolumeUUID, SNAPSHOT.name),
      1000,
    );
    assert.ok(!r.ok && isDriverError(r.error, 'backend_timeout'));
    assert.match(r.error.message, /still in state Creating after 3000 ms waiting for snapshot .* to become Available/);
  });
});

describe('deleteSnapshot', () => {
  test('a 404 to the DELETE means already gone: no wait, no error', async () => {
    handler = () => GONE;
    const r = await drive(clock, make().deleteSnapshot(SNAPSHOT.UUID), 1000);
    assert.ok(r.ok, String(!r.ok && r.error));
    assert.deepEqual(
      fake.requests.map((q) => q.method),
      ['DELETE'],
    );
  });

  test('waits until the snapshot is gone', async () => {
    let reads = 0;
    handler = (r) =>
      r.method === 'DELETE' ? { body: {} } : reads++ < 2 ? { body: { ...SNAPSHOT, state: 'Deleting' } } : GONE;
    const r = await drive(clock, make().deleteSnapshot(SNAPSHOT.UUID), 1000);
    assert.ok(r.ok);
    assert.equal(clock.now(), 2000);
  });
});

describe('createVolume end states', () => {
  for (const state of ['Failed', 'Rollback']) {
    test(`a volume that ends ${state} is deleted and reported, as the Cinder driver cleans up`, async () => {
      let exists = true;
      handler = (r) => {
        if (r.method === 'GET' && r.url.startsWith(`${VOLS}/?name=`)) return { body: { ...VOLUME, state: 'Creating' } };
        if (r.method === 'GET' && r.url === `${VOLS}/${VOLUME.UUID}`)
          return exists ? { body: { ...VOLUME, state } } : GONE;
        if (r.method === 'DELETE') {
          exists = false;
          return { body: {} };
        }
        return GONE;
      };
      const r = await drive(clock, make().createVolume({ name: VOLUME.name, sizeGb: 10, replicas: 3 }), 1000);
      assert.ok(!r.ok && isDriverError(r.error, 'backend_error'), String(!r.ok && r.error));
      assert.match(r.error.message, new RegExp(`ended in state ${state} \\(deleted it\\)`));
      assert.deepEqual(
        at.filter((q) => q.method === 'DELETE').map((q) => q.url),
        [`${VOLS}/${VOLUME.UUID}`],
      );
    });
  }
});

describe('the simulator (what the service guards against)', () => {
  test('deleting a volume leaves its snapshots behind, orphaned: the backend itself does not refuse', async () => {
    const sim = await startSimServer({ port: 0 });
    try {
      const b = new LightosBackend({ endpoints: [sim.url], pollIntervalMs: 10, operationTimeoutMs: 3000 });
      const v = await b.createVolume({ name: 'volume-with-snap', sizeGb: 1, replicas: 1 });
      const s = await b.createSnapshot(v.uuid, 'snapshot-of-it');
      await b.deleteVolume(v.uuid);
      assert.equal(await b.getVolume(v.uuid), null);
      const left = await b.getSnapshotByName('snapshot-of-it');
      assert.equal(left?.uuid, s.uuid, 'the snapshot outlives its volume');
      assert.equal((await call(sim.url, 'GET', `${SNAPS}/${s.uuid}`)).body.sourceVolumeUUID, v.uuid);
    } finally {
      await sim.close();
    }
  });
});
