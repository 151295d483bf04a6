import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase } from '../../test/support/db.ts';
import { createDb, type Db } from './db.ts';
import { PgVolumeLocks } from './locks.ts';
import { migrateLatest, migrateRollbackAll } from './migrations.ts';
import { PgStore } from './pg-store.ts';

const NQN = 'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-555555555555';

describe('PostgreSQL store and locks', () => {
  let t: Awaited<ReturnType<typeof createTestDatabase>>;
  let second: Db;
  before(async () => {
    t = await createTestDatabase();
    // A second pool on the same database stands in for a second service process.
    second = createDb(t.url);
  });
  after(async () => {
    await second.destroy();
    await t.drop();
  });

  const newVolume = async (store: PgStore) =>
    store.insertVolume({ id: randomUUID(), name: 'v', sizeGb: 1, replicas: 3, multiattach: true, status: 'available' });

  it('insertVolume is idempotent on id', async () => {
    const store = new PgStore(t.db);
    const v = await newVolume(store);
    const again = await store.insertVolume({
      id: v.id,
      name: 'other',
      sizeGb: 9,
      replicas: 1,
      multiattach: false,
      status: 'creating',
    });
    assert.equal(again.name, 'v');
    assert.equal(again.sizeGb, 1);
  });

  it('stores attachments with their connector and connection info as JSON', async () => {
    const store = new PgStore(t.db);
    const v = await newVolume(store);
    const a = await store.insertAttachment({
      volumeId: v.id,
      hostNqn: NQN,
      hostName: 'h1',
      instanceUuid: null,
      connector: { nqn: NQN, host: 'h1', multipath: true },
      multipathMode: 'dm',
      connectedBy: 'agent' as const,
    });
    assert.equal(a.status, 'attaching');
    const info = {
      driver_volume_type: 'nvmeof' as const,
      data: { vol_uuid: 'x', host_nqn: NQN, multipath_mode: 'dm' as const, access_mode: 'rw' as const, discard: true },
    };
    const b = await store.updateAttachment(a.id, { status: 'attached', connectionInfo: info });
    assert.deepEqual(b.connectionInfo, info);
    assert.deepEqual(b.connector, { nqn: NQN, host: 'h1', multipath: true });
    assert.deepEqual(
      (await store.listAttachments({ volumeId: v.id, status: 'attached' })).map((x) => x.id),
      [a.id],
    );
    assert.deepEqual(await store.listAttachments({ volumeId: v.id, status: 'detached' }), []);
  });

  it('volumeWithAttachments reads what getVolume and attachmentsOfVolume read, in one statement', async () => {
    const store = new PgStore(t.db);
    const v = await newVolume(store);
    const conn = (i: number) => ({ nqn: `${NQN}-${i}`, host: `h${i}`, multipath: true });
    const made = [];
    for (let i = 0; i < 3; i++)
      made.push(
        await store.insertAttachment({
          volumeId: v.id,
          hostNqn: `${NQN}-${i}`,
          hostName: `h${i}`,
          instanceUuid: i === 2 ? randomUUID() : null,
          connector: conn(i),
          multipathMode: 'native',
          connectedBy: 'agent' as const,
        }),
      );
    await store.updateAttachment(made[1]!.id, { status: 'detached', detachedAt: new Date() });
    await t
      .db('attachments')
      .where({ id: made[0]!.id })
      .update({ agent_state: 'connected', size_bytes: 2 ** 40, reported_at: new Date(), paths: JSON.stringify([]) });
    let queries = 0;
    const count = () => void queries++;
    t.db.on('query', count);
    const both = await store.volumeWithAttachments(v.id, ['attaching', 'detached']);
    t.db.off('query', count);
    assert.equal(queries, 1);
    assert.deepEqual(both, {
      volume: await store.getVolume(v.id),
      attachments: await store.attachmentsOfVolume(v.id, ['attaching', 'detached']),
    });
    assert.equal(both?.attachments.length, 3);
    assert.equal((await store.volumeWithAttachments(v.id, ['attached']))?.attachments.length, 0);
    assert.equal(await store.volumeWithAttachments(randomUUID(), ['attaching']), null);
    await store.markVolumeDeleted(v.id);
    assert.equal(await store.volumeWithAttachments(v.id, ['attaching']), null);
  });

  it('refuses a second live attachment for the same volume, host and instance at the database level', async () => {
    const store = new PgStore(t.db);
    const v = await newVolume(store);
    const req = {
      volumeId: v.id,
      hostNqn: NQN,
      hostName: 'h1',
      instanceUuid: null,
      connector: { nqn: NQN, host: 'h1' },
      multipathMode: 'single' as const,
      connectedBy: 'agent' as const,
    };
    const first = await store.insertAttachment(req);
    await assert.rejects(store.insertAttachment(req), /attachments_one_live_per_host_instance/);
    // Once detached, the host may attach again.
    await store.updateAttachment(first.id, { status: 'detached' });
    await store.insertAttachment(req);
    // Another instance on the same host is a different attachment.
    await store.insertAttachment({ ...req, instanceUuid: randomUUID() });
  });

  it('serialises one volume across two pools (processes) and lets other volumes run in parallel', async () => {
    const a = new PgVolumeLocks(t.db);
    const b = new PgVolumeLocks(second);
    const order: string[] = [];
    let releaseFirst!: () => void;
    const firstHolds = new Promise<void>((r) => (releaseFirst = r));
    let firstEntered!: () => void;
    const entered = new Promise<void>((r) => (firstEntered = r));

    const p1 = a.withVolumeLock('vol-A', async () => {
      order.push('a:start');
      firstEntered();
      await firstHolds;
      order.push('a:end');
    });
    await entered;
    const p2 = b.withVolumeLock('vol-A', async () => {
      order.push('b');
    });
    // Another volume is not blocked by vol-A's holder.
    await b.withVolumeLock('vol-B', async () => {
      order.push('other');
    });
    // Wait until b is provably queued on PostgreSQL's lock, not just slow.
    for (;;) {
      const r = await t.db.raw("select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted");
      if ((r.rows[0] as { n: number }).n > 0) break;
      await new Promise((r2) => setImmediate(r2));
    }
    assert.deepEqual(order, ['a:start', 'other']);
    releaseFirst();
    await Promise.all([p1, p2]);
    assert.deepEqual(order, ['a:start', 'other', 'a:end', 'b']);
  });

  it('releases the lock when the holder throws', async () => {
    const a = new PgVolumeLocks(t.db);
    await assert.rejects(
      a.withVolumeLock('vol-C', async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    const b = new PgVolumeLocks(second);
    assert.equal(await b.withVolumeLock('vol-C', async () => 'ok'), 'ok');
  });

  it('gives up with a retryable busy error when the lock is held past the lock timeout', async () => {
    const a = new PgVolumeLocks(t.db);
    const b = new PgVolumeLocks(second, { lockTimeoutMs: 50 });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const p = a.withVolumeLock('vol-D', async () => {
      entered();
      await held;
    });
    await inside;
    await assert.rejects(
      b.withVolumeLock('vol-D', async () => 'never'),
      (e: unknown) => (e as { code?: string }).code === 'busy',
    );
    release();
    await p;
  });

  it('migrations roll back and forward cleanly', async () => {
    await migrateRollbackAll(t.db);
    assert.equal(await t.db.schema.hasTable('attachments'), false);
    await migrateLatest(t.db);
    assert.equal(await t.db.schema.hasTable('attachments'), true);
  });
});
