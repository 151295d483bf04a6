import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  type LifecycleClient,
  startSuite,
  resetFaults,
  simFaults,
  simSnapshot,
  simVolume,
} from '../support/lifecycle.ts';
import type { Target } from '../support/target.ts';
import type { SimClient } from '../support/sim-client.ts';
import { GiB } from '../../src/shared/units.ts';

/**
 * Backend faults during delete, extend, snapshots and creates from a source: a 5xx is a 502
 * naming the backend operation, the record says what state it was left in, and the retry
 * converges; slow state transitions are waited out. In-process or by URL.
 *
 * By URL every contract file shares one simulator, so this is the ONE contract file that sets
 * faults, each aimed at a path only this test's request uses (a volume's UUID or name), undone
 * field by field afterwards. Hangs and waits past a deadline need a short backend timeout, which
 * only an in-process service has: they are in test/integration/lifecycle-faults.test.ts.
 */
describe('volume lifecycle under backend faults', () => {
  let t: Target;
  let sim: SimClient;
  let api: LifecycleClient;
  before(async () => ({ t, sim, api } = await startSuite()));
  after(async () => t?.close());
  afterEach(async () => resetFaults(t));

  it('delete: a 5xx is a 502 naming deleteVolume, the record is left in error, the retry deletes', async () => {
    const v = await api.created();
    await sim.faults({ failNext: { count: 1, status: 500, method: 'DELETE', path: `/volumes/${v.backend_uuid}` } });
    const r = await api.del(v.id);
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'backend_error');
    assert.match(r.body.error.message, /deleteVolume/);
    assert.equal((await api.get(v.id)).body.status, 'error');
    assert.ok(await simVolume(t, v.name), 'still on the backend');

    assert.equal((await api.del(v.id)).status, 204);
    assert.equal(await simVolume(t, v.name), null);
    assert.equal((await api.get(v.id)).status, 404);
  });

  it('extend: a 5xx is a 502 naming extendVolume, the record keeps its size, the retry grows it', async () => {
    const v = await api.created({ size_gb: 1 });
    await sim.faults({ failNext: { count: 1, status: 503, method: 'PUT', path: `/volumes/${v.backend_uuid}` } });
    const r = await api.extend(v.id, 2);
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.match(r.body.error.message, /extendVolume/);
    const after = (await api.get(v.id)).body;
    assert.deepEqual([after.size_gb, after.status], [1, 'available']);
    assert.equal(Number((await simVolume(t, v.name))?.size), 1 * GiB);

    const again = await api.extend(v.id, 2);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.size_gb, 2);
    assert.equal(Number((await simVolume(t, v.name))?.size), 2 * GiB);
  });

  it('slow Creating and Deleting transitions are waited out: create, snapshot and delete still succeed', async () => {
    await sim.faults({ stateDelayMs: 300 });
    const started = performance.now();
    const v = await api.created();
    assert.ok(performance.now() - started >= 300, 'the create waited for the backend to leave Creating');
    assert.equal((await api.get(v.id)).body.status, 'available');
    const s = await api.snap(v.id);
    assert.equal(s.status, 201, JSON.stringify(s.body));
    assert.equal(s.body.status, 'available');
    assert.equal((await api.delSnap(s.body.id)).status, 204);
    assert.equal(await simSnapshot(t, s.body.backend_name), null, 'the delete waited until the snapshot was gone');
    assert.equal((await api.del(v.id)).status, 204);
    assert.equal(await simVolume(t, v.name), null, 'the delete waited until the volume was gone');
  });

  it('snapshot create: failing lookups are retried with backoff, and the snapshot is made', async () => {
    const v = await api.created();
    const id = randomUUID();
    await sim.faults({ failNext: { count: 2, status: 503, method: 'GET', path: `?Name=snapshot-${id}` } });
    const r = await api.snap(v.id, { id });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.status, 'available');
    assert.equal((await simFaults(t)).failNext, null, 'both injected failures were met (and retried past)');
    assert.equal((await simSnapshot(t, `snapshot-${id}`))?.state, 'Available');
  });

  it('snapshot delete: a 5xx is a 502 naming deleteSnapshot, the snapshot is left in error, the retry deletes', async () => {
    const v = await api.created();
    const s = (await api.snap(v.id)).body;
    await sim.faults({ failNext: { count: 1, status: 500, method: 'DELETE', path: `/snapshots/${s.backend_uuid}` } });
    const r = await api.delSnap(s.id);
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.match(r.body.error.message, /deleteSnapshot/);
    assert.equal((await api.getSnap(s.id)).body.status, 'error');
    assert.ok(await simSnapshot(t, s.backend_name));
    assert.equal((await api.delSnap(s.id)).status, 204);
    assert.equal(await simSnapshot(t, s.backend_name), null);
  });

  it('from a snapshot: a failed backend create leaves the volume in error; the retry finishes it', async () => {
    const src = await api.created();
    const s = (await api.snap(src.id)).body;
    const id = randomUUID();
    await sim.faults({ failNext: { count: 1, status: 500, method: 'GET', path: `?name=volume-${id}` } });
    const r = await api.create({ id, source: { snapshot_id: s.id } });
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.match(r.body.error.message, /createVolume/);
    assert.equal((await api.get(id)).body.status, 'error');
    const again = await api.create({ id, source: { snapshot_id: s.id } });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.status, 'available');
    assert.equal((await simVolume(t, `volume-${id}`))?.sourceSnapshotUUID, s.backend_uuid);
  });

  it('clone: when the volume cannot be made, the intermediate snapshot is deleted; the retry clones', async () => {
    const src = await api.created();
    const id = randomUUID();
    await sim.faults({ failNext: { count: 1, status: 500, method: 'GET', path: `?name=volume-${id}` } });
    const r = await api.create({ id, source: { volume_id: src.id } });
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.match(r.body.error.message, /createVolume/);
    assert.equal(await simSnapshot(t, `for_clone_${id}`), null, 'no intermediate snapshot left behind');
    assert.equal((await api.get(id)).body.status, 'error');

    const again = await api.create({ id, source: { volume_id: src.id } });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.status, 'available');
    assert.equal(await simSnapshot(t, `for_clone_${id}`), null);
  });
});
