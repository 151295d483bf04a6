import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { createDb } from './db.ts';
import { connectionConfig, MIGRATION_LOCK_KEY, migrateUnderLock } from './migration-lock.ts';
import { TsMigrationSource } from './migrations.ts';

/** An empty database in DATABASE_URL's PostgreSQL (no schema at all, unlike createTestDatabase's). */
async function emptyDatabase(admin: Knex): Promise<{ url: string; name: string }> {
  const name = `portalis_test_${randomBytes(6).toString('hex')}`;
  await admin.raw(`CREATE DATABASE ${name}`);
  const u = new URL(process.env.DATABASE_URL ?? '');
  u.pathname = `/${name}`;
  return { url: u.toString(), name };
}

async function waitFor(what: string, check: () => Promise<boolean>, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

const source = new TsMigrationSource();
const allMigrations = async () => (await source.getMigrations()).map((m) => source.getMigrationName(m));

describe('migrations under an advisory lock', () => {
  let admin: Knex;
  const dbs: string[] = [];
  before(() => {
    admin = knexFactory({ client: 'pg', connection: process.env.DATABASE_URL, pool: { min: 0, max: 2 } });
  });
  after(async () => {
    for (const name of dbs) await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.destroy();
  });

  it("the lock's connection has the pool's password, which knex keeps hidden (a PostgreSQL without trust auth)", async () => {
    const knex = createDb('postgres://portalis:s3cret@127.0.0.1:5432/portalis');
    try {
      // Spread, as the lock's client options are: a hidden property would not survive it.
      assert.equal({ ...connectionConfig(knex) }.password, 's3cret');
    } finally {
      await knex.destroy();
    }
  });

  it('six migrators started at once on a fresh database, each with a pool of one: one migrates, all start', async () => {
    const { url, name } = await emptyDatabase(admin);
    dbs.push(name);
    // A pool of one: a lock held on a pooled connection would leave migrate.latest waiting for a second.
    const knexes = Array.from({ length: 6 }, () => createDb(url, { poolMax: 1 }));
    try {
      const outcomes = await Promise.all(knexes.map((k) => migrateUnderLock(k)));
      const all = await allMigrations();
      const ran = outcomes.filter((o) => o.kind === 'migrated' && o.applied.length > 0);
      assert.equal(ran.length, 1, JSON.stringify(outcomes));
      assert.deepEqual(ran[0], { kind: 'migrated', applied: all });
      for (const o of outcomes) if (o !== ran[0]) assert.deepEqual(o, { kind: 'migrated', applied: [] });
      const rows = await knexes[0]!('knex_migrations').select('name').orderBy('id');
      assert.deepEqual(
        rows.map((r) => r.name),
        all,
      );
      assert.equal(await knexes[0]!.schema.hasTable('periodic_jobs'), true);
    } finally {
      for (const k of knexes) await k.destroy();
    }
  });

  it('a replica starting while another holds the lock waits for it, then finds nothing to do', async () => {
    const { url, name } = await emptyDatabase(admin);
    dbs.push(name);
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    const knex = createDb(url, { poolMax: 1 });
    try {
      await holder.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [MIGRATION_LOCK_KEY]);
      let settled = false;
      const waiting = migrateUnderLock(knex).finally(() => {
        settled = true;
      });
      // The migrator's session waits in pg_advisory_lock (an advisory lock not granted in pg_locks).
      await waitFor('the migrator to wait for the lock', async () => {
        const r = await holder.query(
          `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database
            WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()`,
        );
        return r.rows[0].n === 1;
      });
      assert.equal(settled, false);
      assert.equal(await knex.schema.hasTable('knex_migrations'), false);
      await holder.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [MIGRATION_LOCK_KEY]);
      assert.deepEqual(await waiting, { kind: 'migrated', applied: await allMigrations() });
    } finally {
      await holder.end();
      await knex.destroy();
    }
  });

  it("a later release's database starts without migrating (knex alone refuses it); another line of releases' is refused", async () => {
    const { url, name } = await emptyDatabase(admin);
    dbs.push(name);
    const knex = createDb(url, { poolMax: 2 });
    try {
      await migrateUnderLock(knex);
      const future = '20991231000000_a_later_release.ts';
      await knex('knex_migrations').insert({ name: future, batch: 99, migration_time: new Date() });
      assert.deepEqual(await migrateUnderLock(knex), { kind: 'newer-schema', unknown: [future] });
      // Another line of releases: names this one lacks, and one of its own missing.
      const mine = (await allMigrations()).at(-1)!;
      await knex('knex_migrations').where({ name: mine }).delete();
      await assert.rejects(migrateUnderLock(knex), (e: Error) => {
        assert.ok(e.message.includes(`does not know (${future}) and lacks some of its own (${mine})`), e.message);
        return true;
      });
      await knex('knex_migrations').insert({ name: mine, batch: 98, migration_time: new Date() });
      // What release 0.1.0 does with the same database (it calls knex's migrate.latest directly).
      await assert.rejects(
        knex.migrate.latest({ migrationSource: new TsMigrationSource() }),
        /migration directory is corrupt, the following files are missing: 20991231000000_a_later_release\.ts/,
      );
    } finally {
      await knex.destroy();
    }
  });
});
