import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type LifecycleClient, simSnapshot, simVolume, startSuite } from '../support/lifecycle.ts';
import type { Target } from '../support/target.ts';
import { GiB } from '../../src/shared/units.ts';

/**
 * Snapshots, volumes from snapshots and clones, and deleting a volume that has snapshots;
 * in-process or by URL. Every test here that creates backend snapshots is in this one file, so
 * that lifecycle-faults.test.ts can aim faults at snapshot calls without racing it.
 */
describe('snapshots, volumes from snapshots, clones', () => {
  let t: Target;
  let api: LifecycleClient;
  before(async () => ({ t, api } = await startSuite()));
  after(async () => t?.close());

  async function snapshot(volumeId: string, body: Record<string, unknown> = {}) {
    const r = await api.snap(volumeId, body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body as { id: string; backend_name: string; backend_uuid: string; size_gb: number };
  }

  describe('snapshots', () => {
    it('creates snapshot-<id> on the backend from the volume; a retry is a 200 with the same snapshot', async () => {
      const v = await api.created({ size_gb: 2 });
      const id = randomUUID();
      const r = await api.snap(v.id, { id, name: 'before upgrade' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.deepEqual(
        {
          id: r.body.id,
          volume_id: r.body.volume_id,
          name: r.body.name,
          status: r.body.status,
          size_gb: r.body.size_gb,
          backend_name: r.body.backend_name,
        },
        {
          id,
          volume_id: v.id,
          name: 'before upgrade',
          status: 'available',
          size_gb: 2,
          backend_name: `snapshot-${id}`,
        },
      );
      const b = await simSnapshot(t, `snapshot-${id}`);
      assert.ok(b, 'the backend snapshot exists under the Cinder name');
      assert.equal(b.UUID, r.body.backend_uuid);
      assert.equal(b.sourceVolumeUUID, v.backend_uuid);
      assert.equal(b.state, 'Available');

      const again = await api.snap(v.id, { id, name: 'before upgrade' });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.backend_uuid, r.body.backend_uuid);
    });

    it('the same snapshot id with another name or volume is a 409 already_exists', async () => {
      const [v1, v2] = [await api.created(), await api.created()];
      const s = await snapshot(v1.id, { name: 'a' });
      for (const [vol, name] of [
        [v1.id, 'b'],
        [v2.id, 'a'],
      ] as const) {
        const r = await api.snap(vol, { id: s.id, name });
        assert.equal(r.status, 409, JSON.stringify(r.body));
        assert.equal(r.body.error.code, 'already_exists');
      }
    });

    it("reads one snapshot and lists a volume's snapshots oldest first; unknown ones are 404", async () => {
      const v = await api.created();
      const s1 = await snapshot(v.id);
      const s2 = await snapshot(v.id);
      const one = await api.getSnap(s1.id);
      assert.equal(one.status, 200);
      assert.equal(one.body.id, s1.id);
      const list = await api.listSnaps(v.id);
      assert.equal(list.status, 200);
      assert.deepEqual(
        list.body.snapshots.map((s: { id: string }) => s.id),
        [s1.id, s2.id],
      );
      assert.equal((await api.getSnap(randomUUID())).status, 404);
      assert.equal((await api.getSnap(randomUUID())).body.error.code, 'snapshot_not_found');
      assert.equal((await api.listSnaps(randomUUID())).status, 404);
      assert.equal((await api.snap(randomUUID())).status, 404);
    });

    it('delete removes it from the backend (204); again, and for an unknown id, still 204', async () => {
      const v = await api.created();
      const s = await snapshot(v.id);
      assert.equal((await api.delSnap(s.id)).status, 204);
      assert.equal((await api.getSnap(s.id)).status, 404);
      assert.equal(await simSnapshot(t, s.backend_name), null);
      assert.equal((await api.delSnap(s.id)).status, 204);
      assert.equal((await api.delSnap(randomUUID())).status, 204);
      assert.deepEqual((await api.listSnaps(v.id)).body.snapshots, []);
    });
  });

  describe('a volume with snapshots', () => {
    it('is refused deletion with 409 volume_has_snapshots naming them (the backend would orphan them)', async () => {
      const v = await api.created();
      const s = await snapshot(v.id);
      const r = await api.del(v.id);
      assert.equal(r.status, 409, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'volume_has_snapshots');
      assert.deepEqual(r.body.error.details.snapshots, [s.id]);
      assert.ok(await simVolume(t, v.name), 'the volume is still on the backend');
      assert.equal((await api.get(v.id)).body.status, 'available');

      assert.equal((await api.delSnap(s.id)).status, 204);
      assert.equal((await api.del(v.id)).status, 204);
      assert.equal(await simVolume(t, v.name), null);
    });
  });

  describe('from a snapshot', () => {
    it('creates a volume from the snapshot; a larger size grows it', async () => {
      const v = await api.created({ size_gb: 2 });
      const s = await snapshot(v.id);
      const r = await api.create({ size_gb: 5, source: { snapshot_id: s.id } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.size_gb, 5);
      assert.deepEqual(r.body.source, { snapshot_id: s.id });
      const b = await simVolume(t, r.body.name);
      assert.equal(b?.sourceSnapshotUUID, s.backend_uuid);
      assert.equal(Number(b?.size), 5 * GiB);
      const again = await api.create({ id: r.body.id, size_gb: 5, source: { snapshot_id: s.id } });
      assert.equal(again.status, 200, 'a retry is idempotent');
      const other = await api.create({ id: r.body.id, size_gb: 5 });
      assert.equal(other.status, 409, 'the same id without the source is another request');
      assert.deepEqual(other.body.error.details.fields, ['source.snapshot_id']);
    });

    it('a size smaller than the snapshot is a 400 naming size_gb', async () => {
      const v = await api.created({ size_gb: 3 });
      const s = await snapshot(v.id);
      const r = await api.create({ size_gb: 2, source: { snapshot_id: s.id } });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error.message, /size_gb/);
    });
  });

  describe('clones', () => {
    it('clones through an intermediate for_clone_<id> snapshot that is gone afterwards', async () => {
      const src = await api.created({ size_gb: 2 });
      const id = randomUUID();
      const r = await api.create({ id, size_gb: 3, source: { volume_id: src.id } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.size_gb, 3);
      assert.deepEqual(r.body.source, { volume_id: src.id });
      const b = await simVolume(t, `volume-${id}`);
      assert.equal(b?.sourceSnapshotName, `for_clone_${id}`, 'made from the intermediate snapshot');
      assert.equal(Number(b?.size), 3 * GiB);
      assert.equal(await simSnapshot(t, `for_clone_${id}`), null, 'the intermediate snapshot was deleted');
      assert.deepEqual(
        (await api.listSnaps(src.id)).body.snapshots,
        [],
        "the intermediate snapshot is not the orchestrator's",
      );
      assert.equal((await api.del(src.id)).status, 204, 'the source can be deleted while its clone lives');
      assert.equal((await api.get(id)).body.status, 'available');
    });

    it('a source larger than the clone is a 400; an unknown source a 404', async () => {
      const src = await api.created({ size_gb: 2 });
      const small = await api.create({ size_gb: 1, source: { volume_id: src.id } });
      assert.equal(small.status, 400, JSON.stringify(small.body));
      assert.match(small.body.error.message, /size_gb/);
      const unknown = await api.create({ source: { volume_id: randomUUID() } });
      assert.equal(unknown.status, 404);
    });
  });
});
