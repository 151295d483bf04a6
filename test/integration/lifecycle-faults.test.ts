import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import type { MemoryDataPlane } from '../../src/sim/memory-data-plane.ts';
import { lifecycleClient, simFaults, simSnapshot, simVolume } from '../support/lifecycle.ts';
import { connector, NATIVE, startTarget, type Target } from '../support/target.ts';
import { SimClient } from '../support/sim-client.ts';
import { GiB } from '../../src/shared/units.ts';

/**
 * The lifecycle's fault cases that need an in-process service: a short backend request timeout
 * and operation deadline (hangs, waits past the deadline), one-shot global faults (failCreate,
 * POST failures on the shared snapshots path) and a look inside the simulator's data plane.
 */
describe('volume lifecycle under backend faults (in-process)', () => {
  let t: Target;
  let sim: SimClient;
  let api: ReturnType<typeof lifecycleClient>;
  /** The backend's state transitions take this long in the tests that make them slow. */
  const SLOW_MS = 2000;

  before(async () => {
    t = await startTarget({ requestTimeoutMs: 300, operationTimeoutMs: 1500 });
    sim = new SimClient(t.simUrl, { jwt: t.simJwt });
    api = lifecycleClient(t);
  });
  after(async () => t?.close());
  afterEach(async () => sim.clearFaults());

  describe('deadlines', () => {
    it('extend against a backend that never answers is a 504 naming extendVolume; the retry grows it', async () => {
      const v = await api.created({ size_gb: 1 });
      await sim.faults({ hangNext: { count: 1000, method: 'PUT', path: v.backend_uuid } });
      const r = await api.extend(v.id, 2);
      assert.equal(r.status, 504, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'backend_timeout');
      assert.match(r.body.error.message, /extendVolume/);
      assert.equal((await api.get(v.id)).body.size_gb, 1);
      await sim.clearFaults();
      assert.equal((await api.extend(v.id, 2)).body.size_gb, 2);
    });

    it('a snapshot POST that never answers is a 504 naming createSnapshot; the retry makes it', async () => {
      const v = await api.created();
      const id = randomUUID();
      await sim.faults({ hangNext: { count: 1000, method: 'POST', path: '/snapshots' } });
      const r = await api.snap(v.id, { id });
      assert.equal(r.status, 504, JSON.stringify(r.body));
      assert.match(r.body.error.message, /createSnapshot/);
      assert.equal((await api.getSnap(id)).body.status, 'error');
      await sim.clearFaults();
      const again = await api.snap(v.id, { id });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.status, 'available');
    });

    it('a create stuck in Creating past the deadline is a 504 naming the state; the retry finds it Available', async () => {
      await sim.faults({ stateDelayMs: SLOW_MS });
      const id = randomUUID();
      const r = await api.create({ id });
      assert.equal(r.status, 504, JSON.stringify(r.body));
      assert.match(r.body.error.message, /createVolume.*still in state Creating/);
      assert.equal((await api.get(id)).body.status, 'error');
      await sim.faults({ stateDelayMs: 0 });
      const again = await api.create({ id });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.status, 'available');
      assert.equal(
        (await sim.state()).volumes.filter((x: { name: string }) => x.name === `volume-${id}`).length,
        1,
        'one backend volume',
      );
    });

    it('a delete stuck in Deleting past the deadline is a 504 naming the state; the retry finishes', async () => {
      const v = await api.created();
      await sim.faults({ stateDelayMs: SLOW_MS });
      const r = await api.del(v.id);
      assert.equal(r.status, 504, JSON.stringify(r.body));
      assert.match(r.body.error.message, /deleteVolume.*still in state Deleting/);
      assert.equal((await api.get(v.id)).body.status, 'error');
      assert.equal((await api.del(v.id)).status, 204);
      assert.equal(await simVolume(t, v.name), null);
    });

    it('a snapshot stuck in Creating past the deadline is a 504 naming the state; the retry finds it', async () => {
      const v = await api.created();
      await sim.faults({ stateDelayMs: SLOW_MS });
      const id = randomUUID();
      const r = await api.snap(v.id, { id });
      assert.equal(r.status, 504, JSON.stringify(r.body));
      assert.match(r.body.error.message, /createSnapshot.*still in state Creating/);
      const again = await api.snap(v.id, { id });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(
        (await sim.state()).snapshots.filter((s: { name: string }) => s.name === `snapshot-${id}`).length,
        1,
      );
    });
  });

  describe('snapshot create retries (Cinder: 400, 500, 503 with 2^i backoff)', () => {
    it('two refused POSTs (400) are retried, the third makes the snapshot', async () => {
      const v = await api.created();
      await sim.faults({ failNext: { count: 2, status: 400, method: 'POST', path: '/snapshots' } });
      const r = await api.snap(v.id);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal((await simFaults(t)).failNext, null, 'both refusals were met');
    });

    it('a 403 is not retried', async () => {
      const v = await api.created();
      await sim.faults({ failNext: { count: 5, status: 403, method: 'POST', path: '/snapshots' } });
      const r = await api.snap(v.id);
      assert.equal(r.status, 502, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'backend_rejected');
      assert.equal((await simFaults(t)).failNext.count, 4, 'one POST only');
    });

    it('gives up after 5 attempts and says so', async () => {
      const v = await api.created();
      await sim.faults({ failNext: { count: 10, status: 503, method: 'POST', path: '/snapshots' } });
      const r = await api.snap(v.id);
      assert.equal(r.status, 502, JSON.stringify(r.body));
      assert.match(r.body.error.message, /createSnapshot.*gave up after 5 attempts/);
      assert.equal((await simFaults(t)).failNext.count, 5);
    });
  });

  describe('creates from a source', () => {
    it('a clone whose volume ends Failed: the volume and the intermediate snapshot are cleaned up; the retry clones', async () => {
      const src = await api.created();
      const id = randomUUID();
      await sim.faults({ failCreate: true });
      const r = await api.create({ id, source: { volume_id: src.id } });
      assert.equal(r.status, 502, JSON.stringify(r.body));
      assert.match(r.body.error.message, /ended in state Failed \(deleted it\)/);
      assert.equal(await simVolume(t, `volume-${id}`), null);
      assert.equal(await simSnapshot(t, `for_clone_${id}`), null);
      assert.equal((await api.get(id)).body.status, 'error');
      const again = await api.create({ id, source: { volume_id: src.id } });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.status, 'available');
    });

    it("a backend that creates from a snapshot at the snapshot's size: the volume is grown to the size asked", async () => {
      const src = await api.created({ size_gb: 2 });
      const s = (await api.snap(src.id)).body;
      const cluster = t.sim!.cluster;
      const original = cluster.createVolume.bind(cluster);
      cluster.createVolume = (project, spec) =>
        original(
          project,
          spec.sourceSnapshotUuid
            ? { ...spec, sizeBytes: cluster.getSnapshot(project, spec.sourceSnapshotUuid)!.sizeBytes }
            : spec,
        );
      try {
        const r = await api.create({ size_gb: 5, source: { snapshot_id: s.id } });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        assert.equal(r.body.size_gb, 5);
        assert.equal(Number((await simVolume(t, r.body.name))?.size), 5 * GiB);
      } finally {
        cluster.createVolume = original;
      }
    });
  });

  it('online extend reaches the data plane under the connected host', async () => {
    const v = await api.created({ size_gb: 1 });
    const conn = connector(NATIVE);
    assert.equal((await api.init(v.id, conn)).status, 200);
    assert.equal((await api.extend(v.id, 3)).status, 200);
    await t.sim!.cluster.settled();
    const dp = t.sim!.cluster.dataPlane as MemoryDataPlane;
    assert.deepEqual(
      dp
        .callsOf('resizeNamespace')
        .filter((c) => c.volumeUuid === v.backend_uuid)
        .map((c) => c.sizeBytes),
      [3 * GiB],
    );
    assert.equal(dp.namespaces.get(v.backend_uuid)?.sizeBytes, 3 * GiB);
    assert.deepEqual(dp.allowedHosts.includes(conn.nqn as string), true, 'the host keeps its access');
  });

  it("capabilities with an unreadable capacity answer 200 with 'unknown' figures, not an error", async () => {
    // count 5: the path also matches /clusterinfo, which must not use up the fault.
    await sim.faults({ failNext: { count: 5, status: 500, method: 'GET', path: '/api/v2/cluster' } });
    const r = await t.http.get('/v1/capabilities').set(api.auth());
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.total_capacity_gb, 'unknown');
    assert.equal(r.body.free_capacity_gb, 'unknown');
    assert.equal(r.body.vendor_name, 'Portalis');
  });
});
