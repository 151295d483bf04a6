import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase } from '../../test/support/db.ts';
import { migrateLatest, migrateRollbackAll } from './migrations.ts';
import { PgStore } from './pg-store.ts';

const NQN = 'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-555555555555';
const QOS = '2a9c1f4e-7b3d-4e8a-9f61-5d2c0b7a8e93';

/** The store's side of the volume lifecycle: volume options, soft deletion, snapshots. */
describe('PostgreSQL store: volume options, soft delete, snapshots', () => {
  let t: Awaited<ReturnType<typeof createTestDatabase>>;
  let store: PgStore;
  before(async () => {
    t = await createTestDatabase();
    store = new PgStore(t.db);
  });
  after(async () => t?.drop());

  const newVolume = (over: Record<string, unknown> = {}) =>
    store.insertVolume({
      id: randomUUID(),
      name: 'v',
      sizeGb: 1,
      replicas: 3,
      multiattach: false,
      status: 'available',
      ...over,
    });

  it('keeps the create options; defaults for a volume created without them', async () => {
    const src = await newVolume();
    assert.deepEqual(
      [src.compression, src.thinProvisioned, src.qosPolicyId, src.sourceSnapshotId, src.sourceVolumeId],
      [false, true, null, null, null],
    );
    const v = await newVolume({ compression: true, qosPolicyId: QOS, sourceVolumeId: src.id });
    const read = await store.getVolume(v.id);
    assert.deepEqual([read?.compression, read?.qosPolicyId, read?.sourceVolumeId], [true, QOS, src.id]);
  });

  it('a soft-deleted volume is gone for getVolume, its attachments stay; its id starts a fresh volume', async () => {
    const v = await newVolume({ sizeGb: 1 });
    await store.updateVolume(v.id, { backendUuid: 'b-1' });
    const a = await store.insertAttachment({
      volumeId: v.id,
      hostNqn: NQN,
      hostName: 'h1',
      instanceUuid: null,
      connector: { nqn: NQN, host: 'h1' },
      multipathMode: 'single',
      connectedBy: 'agent' as const,
    });
    await store.markVolumeDeleted(v.id);
    assert.equal(await store.getVolume(v.id), null);
    assert.equal((await store.getAttachment(a.id))?.volumeId, v.id, 'the attachment row outlives the volume');
    await store.markVolumeDeleted(v.id); // again: not an error

    const fresh = await store.insertVolume({
      id: v.id,
      name: 'v2',
      sizeGb: 5,
      replicas: 1,
      multiattach: true,
      status: 'creating',
      compression: true,
    });
    assert.deepEqual(
      [fresh.name, fresh.sizeGb, fresh.replicas, fresh.status, fresh.backendUuid, fresh.compression],
      ['v2', 5, 1, 'creating', null, true],
    );
    const live = await store.insertVolume({
      id: v.id,
      name: 'v3',
      sizeGb: 9,
      replicas: 1,
      multiattach: true,
      status: 'creating',
    });
    assert.equal(live.name, 'v2', 'a live volume is never replaced');
  });

  it('snapshots: idempotent insert, update, oldest-first list, delete', async () => {
    const v = await newVolume();
    const base = { volumeId: v.id, name: 'nightly', sizeGb: 1, status: 'creating' as const };
    const ids = [randomUUID(), randomUUID()];
    const s1 = await store.insertSnapshot({ ...base, id: ids[0]!, backendName: `snapshot-${ids[0]}` });
    await store.insertSnapshot({ ...base, id: ids[1]!, backendName: `snapshot-${ids[1]}` });
    const again = await store.insertSnapshot({ ...base, id: ids[0]!, name: 'other', backendName: 'x' });
    assert.equal(again.name, 'nightly', 'the existing row, unchanged');
    const up = await store.updateSnapshot(s1.id, { status: 'available', backendUuid: 'bs-1', sizeGb: 2 });
    assert.deepEqual([up.status, up.backendUuid, up.sizeGb], ['available', 'bs-1', 2]);
    assert.deepEqual(
      (await store.snapshotsOfVolume(v.id)).map((s) => s.id),
      ids,
    );
    await store.deleteSnapshot(s1.id);
    await store.deleteSnapshot(s1.id);
    assert.equal(await store.getSnapshot(s1.id), null);
    assert.deepEqual(
      (await store.snapshotsOfVolume(v.id)).map((s) => s.id),
      [ids[1]],
    );
  });

  it('a snapshot keeps its volume row from being removed (the service refuses first; the key is the backstop)', async () => {
    const v = await newVolume();
    await store.insertSnapshot({
      id: randomUUID(),
      volumeId: v.id,
      name: null,
      backendName: 'snapshot-x',
      sizeGb: 1,
      status: 'available',
    });
    await assert.rejects(t.db('volumes').where({ id: v.id }).delete(), /foreign key/);
  });

  it('the migration rolls back and forward', async () => {
    await migrateRollbackAll(t.db);
    assert.equal(await t.db.schema.hasTable('snapshots'), false);
    await migrateLatest(t.db);
    assert.equal(await t.db.schema.hasTable('snapshots'), true);
    assert.equal(await t.db.schema.hasColumn('volumes', 'deleted_at'), true);
  });
});
