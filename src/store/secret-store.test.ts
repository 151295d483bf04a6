import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase } from '../../test/support/db.ts';
import { recordVolume } from '../../test/support/records.ts';
import type { DriverDeps } from '../driver/deps.ts';
import { generateDhchapSecret } from '../driver/dhchap-key.ts';
import { advanceRotation } from '../driver/host-secrets.ts';
import type { DhchapPair } from '../driver/ports.ts';
import { silentLogger } from '../shared/logger.ts';
import { createDb } from './db.ts';
import { PgHostStore } from './host-store.ts';
import { PgStore } from './pg-store.ts';
import { TsMigrationSource } from './migrations.ts';
import { SecretBox } from './secret-box.ts';
import { PgHostSecretStore } from './secret-store.ts';

/** The hosts' secrets on a real PostgreSQL: sealed at rest, and the rotation state's transitions. */
describe('PgHostSecretStore', () => {
  let t: Awaited<ReturnType<typeof createTestDatabase>>;
  let store: PgHostSecretStore;
  const key = randomBytes(32);

  before(async () => {
    t = await createTestDatabase();
    store = new PgHostSecretStore(t.db, new SecretBox(key));
  });
  after(async () => t?.drop());

  async function host(): Promise<string> {
    const nqn = `nqn.2014-08.org.nvmexpress:uuid:${randomUUID()}`;
    await new PgHostStore(t.db).issueToken(nqn, 'h', `hash-${nqn}`);
    return nqn;
  }
  const pair = () => ({ hostSecret: generateDhchapSecret(), ctrlSecret: generateDhchapSecret() });

  it('stores a generation sealed: the row holds neither secret, nor any DHHC-1 text, and opens to both', async () => {
    const nqn = await host();
    const p = pair();
    const s = await store.begin(nqn, () => p);
    assert.deepEqual([s.generation, s.nextGeneration, s.step], [0, 1, 'staged']);
    const { rows } = (await t.db.raw(
      `SELECT host_secret, ctrl_secret, (SELECT row_to_json(h)::text FROM host_secrets h
          WHERE h.host_nqn = s.host_nqn AND h.generation = s.generation) AS whole
         FROM host_secrets s WHERE host_nqn = ?`,
      [nqn],
    )) as { rows: { host_secret: Buffer; ctrl_secret: Buffer; whole: string }[] };
    assert.equal(rows.length, 1);
    const raw = rows[0]!;
    for (const secret of [p.hostSecret, p.ctrlSecret]) {
      const bytes = Buffer.from(secret.split(':')[2]!, 'base64').subarray(0, 32);
      for (const col of [raw.host_secret, raw.ctrl_secret]) {
        assert.equal(col.includes(bytes), false, 'secret bytes in the row');
        assert.equal(col.includes(Buffer.from(secret)), false, 'secret text in the row');
      }
      assert.equal(raw.whole.includes(secret.split(':')[2]!), false);
    }
    assert.equal(raw.whole.includes('DHHC-1'), false);
    assert.deepEqual(await store.pair(nqn, 1), { generation: 1, ...p });
    // Another key cannot open it; nor can the ciphertext be moved to another host's row.
    const otherKey = new PgHostSecretStore(t.db, new SecretBox(randomBytes(32)));
    await assert.rejects(otherKey.pair(nqn, 1), { code: 'secrets_unreadable' });
    await store.advance(nqn, 1, 'staged', 'at_backend');
    await assert.rejects(otherKey.delivery(nqn), { code: 'secrets_unreadable' }, 'a typed error, never a plain one');
    const other = await host();
    await store.begin(other, () => pair());
    await t.db.raw(
      `UPDATE host_secrets SET host_secret = (SELECT host_secret FROM host_secrets WHERE host_nqn = ? AND generation = 1)
        WHERE host_nqn = ? AND generation = 1`,
      [nqn, other],
    );
    await assert.rejects(store.pair(other, 1), 'a ciphertext copied into another host row does not open');
  });

  it('concurrent begins start one rotation; the others join it and their pairs are unused', async () => {
    const nqn = await host();
    const pairs = Array.from({ length: 6 }, pair);
    const states = await Promise.all(pairs.map((p) => store.begin(nqn, () => p)));
    assert.deepEqual(new Set(states.map((s) => s.nextGeneration)), new Set([1]));
    const stored = await store.pair(nqn, 1);
    assert.equal(pairs.filter((p) => p.hostSecret === stored?.hostSecret).length, 1);
    const { rows } = (await t.db.raw('SELECT count(*)::int AS n FROM host_secrets WHERE host_nqn = ?', [nqn])) as {
      rows: { n: number }[];
    };
    assert.equal(rows[0]!.n, 1);
  });

  it('moves by compare-and-set, records errors, and finishing retires every older generation', async () => {
    const nqn = await host();
    await store.begin(nqn, () => pair());
    assert.equal(await store.advance(nqn, 1, 'at_backend', 'confirmed'), false, 'not from the wrong step');
    await store.recordError(nqn, 'backend_error: boom');
    assert.equal((await store.state(nqn))?.lastError, 'backend_error: boom');
    assert.equal(await store.advance(nqn, 1, 'staged', 'at_backend'), true);
    assert.equal(await store.advance(nqn, 1, 'staged', 'at_backend'), false, 'twice moves once');
    assert.equal((await store.state(nqn))?.lastError, null, 'a step that succeeds clears the error');
    assert.equal(await store.finish(nqn, 1), false, 'not before confirmed');
    assert.equal(await store.advance(nqn, 1, 'at_backend', 'confirmed'), true);
    assert.equal(await store.finish(nqn, 1), true);
    assert.deepEqual(await store.unfinished().then((l) => l.includes(nqn)), false);
    const g1 = await store.pair(nqn, 1);
    assert.ok(g1);
    const s2 = await store.begin(nqn, () => pair());
    assert.deepEqual([s2.generation, s2.nextGeneration], [1, 2]);
    assert.deepEqual(await store.unfinished().then((l) => l.includes(nqn)), true);
    await store.advance(nqn, 2, 'staged', 'at_backend');
    await store.advance(nqn, 2, 'at_backend', 'confirmed');
    await store.finish(nqn, 2);
    assert.equal(await store.pair(nqn, 1), null, 'generation 1 retired');
    const { rows } = (await t.db.raw(
      'SELECT generation, host_secret IS NULL AS gone, retired_at IS NOT NULL AS retired FROM host_secrets WHERE host_nqn = ? ORDER BY 1',
      [nqn],
    )) as { rows: { generation: number; gone: boolean; retired: boolean }[] };
    assert.deepEqual(rows, [
      { generation: 1, gone: true, retired: true },
      { generation: 2, gone: false, retired: false },
    ]);
  });

  it('begin hands the pair in force to make; finish with `then` stages the next generation in the same step', async () => {
    const nqn = await host();
    const seen: Array<DhchapPair | null> = [];
    const p1 = pair();
    await store.begin(nqn, (inForce) => (seen.push(inForce), p1));
    assert.deepEqual([...seen], [null], 'no secrets yet: nothing in force');
    await store.advance(nqn, 1, 'staged', 'at_backend');
    await store.begin(nqn, (inForce) => (seen.push(inForce), pair()));
    assert.equal(seen.length, 1, 'a rotation under way: make is not called');
    await store.advance(nqn, 1, 'at_backend', 'confirmed');
    await store.finish(nqn, 1);
    await store.begin(nqn, (inForce) => (seen.push(inForce), { ...pair(), ctrlSecret: inForce!.ctrlSecret }));
    assert.deepEqual(seen[1], { generation: 1, ...p1 });
    await store.advance(nqn, 2, 'staged', 'at_backend');
    await store.advance(nqn, 2, 'at_backend', 'confirmed');
    const then = pair();
    assert.equal(await store.finish(nqn, 2, then), true);
    const s = await store.state(nqn);
    assert.deepEqual([s?.generation, s?.nextGeneration, s?.step], [2, 3, 'staged']);
    assert.deepEqual(await store.pair(nqn, 3), { generation: 3, ...then });
    assert.equal(await store.pair(nqn, 1), null, 'generation 1 retired');
    assert.equal(await store.finish(nqn, 2, pair()), false, 'a repeated finish stages nothing more');
    assert.deepEqual(await store.pair(nqn, 3), { generation: 3, ...then });
  });

  it('delivers what the agent must hold at each step, in one read', async () => {
    const nqn = await host();
    assert.equal(await store.delivery(nqn), null, 'no secrets yet');
    const p1 = pair();
    await store.begin(nqn, () => p1);
    assert.equal(await store.delivery(nqn), null, 'generation 1 staged: not at the backend yet');
    await store.advance(nqn, 1, 'staged', 'at_backend');
    assert.deepEqual(await store.delivery(nqn), { current: { generation: 1, ...p1 }, previous: null });
    await store.advance(nqn, 1, 'at_backend', 'confirmed');
    await store.finish(nqn, 1);
    const p2 = pair();
    await store.begin(nqn, () => p2);
    assert.deepEqual(
      await store.delivery(nqn),
      { current: { generation: 1, ...p1 }, previous: null },
      'staged: the old one',
    );
    await store.advance(nqn, 2, 'staged', 'at_backend');
    assert.deepEqual(await store.delivery(nqn), {
      current: { generation: 2, ...p2 },
      previous: { generation: 1, ...p1 },
    });
    await store.advance(nqn, 2, 'at_backend', 'confirmed');
    assert.deepEqual((await store.delivery(nqn))?.previous?.generation, 1, 'confirmed: the old one until retired');
    await store.finish(nqn, 2);
    assert.deepEqual(await store.delivery(nqn), { current: { generation: 2, ...p2 }, previous: null });
  });

  it('two replicas advancing one host take turns: no backend call starts while another is in flight', async () => {
    // Replica A's PUT hangs (LightOS's transport re-sends until its deadline); replica B, on its
    // own store and connections, must not read the same `staged` state and call the backend too,
    // or A's late PUT could land an old pair after B moved on.
    const nqn = await host();
    await store.begin(nqn, () => pair());
    let inFlight = 0;
    let most = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const puts: number[][] = [];
    const backend = {
      async setTrustedHost(_nqn: string, accepted: DhchapPair[]) {
        inFlight++;
        most = Math.max(most, inFlight);
        puts.push(accepted.map((p) => p.generation));
        if (puts.length === 1) await gate;
        inFlight--;
      },
    };
    const replica = (s: PgHostSecretStore) =>
      ({ hostSecrets: s, backend, logger: silentLogger }) as unknown as DriverDeps;
    const a = advanceRotation(replica(store), nqn);
    const waitFor = async (what: string, cond: () => Promise<boolean> | boolean) => {
      for (const end = Date.now() + 10_000; !(await cond()); ) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setImmediate(r));
      }
    };
    await waitFor("A's backend call", () => puts.length === 1);
    let bDone = false;
    const b = advanceRotation(replica(new PgHostSecretStore(t.db, new SecretBox(key))), nqn).finally(
      () => (bDone = true),
    );
    // B either finished (no lock: a second backend call beside A's) or waits in PostgreSQL for the lock.
    const lockWaiters = async () =>
      (
        (await t.db.raw(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)) as {
          rows: { n: number }[];
        }
      ).rows[0]!.n;
    await waitFor('B to finish or wait for the lock', async () => bDone || (await lockWaiters()) > 0);
    assert.equal(puts.length, 1, 'B called the backend while A was in flight');
    release();
    await Promise.all([a, b]);
    assert.equal(most, 1);
    assert.deepEqual(puts, [[1]], 'B re-read the state under the lock and found the step done');
    assert.equal((await store.state(nqn))?.step, 'idle', 'no live paths: finished');
  });

  it("counts only the live paths of the host's live attachments for confirmation", async () => {
    const nqn = await host();
    assert.equal(await store.pathsOnGeneration(nqn, 1), true, 'no attachments: nothing to wait for');
    const data = new PgStore(t.db);
    const v = await recordVolume(data);
    const a = await data.insertAttachment({
      volumeId: v.id,
      hostNqn: nqn,
      hostName: 'h',
      instanceUuid: null,
      connector: { nqn, host: 'h' },
      multipathMode: 'native',
      connectedBy: 'agent',
    });
    await data.updateAttachment(a.id, { status: 'attached' });
    const path = (state: string, gen: number | null | undefined) => ({
      controller: 'nvme0',
      address: '10.0.0.1',
      port: 4420,
      transport: 'tcp',
      state,
      ana_state: 'optimized',
      ...(gen === undefined ? {} : { auth_generation: gen }),
    });
    const report = (paths: object[]) =>
      new PgHostStore(t.db).saveReport(nqn, a.id, {
        state: 'connected',
        devicePath: '/dev/nvme0n1',
        sizeBytes: 1,
        health: 'optimal',
        paths: paths as never,
        error: null,
        reportedAt: new Date(),
      });
    await report([path('live', 2), path('live', 1)]);
    assert.equal(await store.pathsOnGeneration(nqn, 2), false);
    await report([path('live', 2), path('connecting', 1)]);
    assert.equal(await store.pathsOnGeneration(nqn, 2), true, 'a path that is down does not hold it');
    await report([path('live', 2), path('live', undefined)]);
    assert.equal(await store.pathsOnGeneration(nqn, 2), false, 'an agent that does not say holds it');
    await report([path('live', 3), path('live', null)]);
    assert.equal(await store.pathsOnGeneration(nqn, 2), false, 'an unauthenticated path holds it');
    await data.updateAttachment(a.id, { status: 'detached' });
    assert.equal(await store.pathsOnGeneration(nqn, 2), true, 'a detached attachment does not count');
  });

  it('the migration is expand-only: a previous release works on the migrated schema, and it undoes cleanly', async () => {
    // What the previous release does with hosts (issue a token, register, report) touches none
    // of the new tables; dropping them again (down) leaves those paths as they were.
    const nqn = await host();
    await store.begin(nqn, () => pair());
    const source = new TsMigrationSource();
    const { db, drop } = await createTestDatabase();
    try {
      await db.migrate.down({ migrationSource: source, name: '20261207140000_host_secrets.ts' });
      const tables = async () =>
        (
          (await db.raw(
            `SELECT tablename FROM pg_tables WHERE tablename IN ('host_secrets', 'host_auth') ORDER BY 1`,
          )) as {
            rows: { tablename: string }[];
          }
        ).rows.map((r) => r.tablename);
      assert.deepEqual(await tables(), []);
      await new PgHostStore(db).issueToken(nqn, 'h', 'x');
      await db.migrate.up({ migrationSource: source, name: '20261207140000_host_secrets.ts' });
      assert.deepEqual(await tables(), ['host_auth', 'host_secrets']);
      assert.equal(await new PgHostSecretStore(db, new SecretBox(key)).state(nqn), null);
    } finally {
      await drop();
    }
  });
  it("holds the host's lock across pools: a second waits, past its lock timeout busy; a throw releases it", async () => {
    const nqn = await host();
    const second = createDb(t.url);
    try {
      const other = new PgHostSecretStore(second, new SecretBox(key), undefined, { lockTimeoutMs: 50 });
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let entered!: () => void;
      const inside = new Promise<void>((r) => (entered = r));
      const p = store.withHostLock(nqn, async () => {
        entered();
        await held;
      });
      await inside;
      await assert.rejects(
        other.withHostLock(nqn, async () => 'never'),
        (e: unknown) => (e as { code?: string }).code === 'busy',
      );
      release();
      await p;
      await assert.rejects(
        store.withHostLock(nqn, async () => {
          throw new Error('step failed');
        }),
        /step failed/,
      );
      assert.equal(await other.withHostLock(nqn, async () => 'ok'), 'ok');
    } finally {
      await second.destroy();
    }
  });
});
