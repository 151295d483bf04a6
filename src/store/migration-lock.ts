import type { Knex } from 'knex';
import pg from 'pg';
import type { Logger } from '../shared/logger.ts';
import { silentLogger } from '../shared/logger.ts';
import { migrateLatest, TsMigrationSource } from './migrations.ts';

/** The advisory lock key every replica takes around its migrations (hashed like the volume locks' keys). */
export const MIGRATION_LOCK_KEY = 'portalis:migrations';

/** What a start-up did about the schema. */
export type MigrationOutcome =
  | { kind: 'migrated'; applied: string[] }
  /** The database has migrations this release does not know: a later release ran them (docs/DECISIONS.md). */
  | { kind: 'newer-schema'; unknown: string[] };

/**
 * Brings the schema to this release's latest while holding a PostgreSQL session advisory lock,
 * so that of several replicas starting at once one migrates and the others wait for it, then
 * find nothing left to do. knex's own `knex_migrations_lock` row does not wait: a second
 * `migrate.latest` meanwhile fails with "Migration table is already locked" (knex's
 * lib/migrations/migrate/Migrator.js, `_getLock`), which would fail a replica's start-up.
 *
 * The lock is held on a connection of its own, outside the knex pool: `migrate.latest` takes
 * pooled connections, and a lock held on one of them would wait for a second one, forever with
 * a pool of one. Ending that connection releases the lock (PostgreSQL drops a session's advisory
 * locks with the session), so a replica killed mid-migration does not hold up the others; its
 * migration's transaction is rolled back (PostgreSQL's DDL is transactional, knex runs each
 * migration in one).
 *
 * A database migrated by a later release (names in `knex_migrations` this release does not
 * have) is not an error: the rule of expand-then-contract is that the previous release keeps
 * working on the newer schema, so this release starts without migrating. knex would refuse it
 * ("The migration directory is corrupt, the following files are missing"), which is what
 * release 0.1.0 does.
 */
export async function migrateUnderLock(knex: Knex, log: Logger = silentLogger): Promise<MigrationOutcome> {
  // Connecting is bounded like the pools' acquire (db.ts); waiting for the lock is not: a replica
  // waits for however long another one's migrations take.
  const client = new pg.Client({ connectionTimeoutMillis: 30_000, ...connectionConfig(knex) });
  await client.connect();
  // A connection error while waiting or migrating rejects the query in flight; the listener only
  // keeps an 'error' event from becoming an uncaught exception.
  client.on('error', () => undefined);
  try {
    await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [MIGRATION_LOCK_KEY]);
    const { unknown, pending } = await compareApplied(client);
    if (unknown.length > 0 && pending.length > 0) {
      // Not a later release of this line (it would have applied this release's migrations first):
      // another branch's schema, on which neither migrating nor serving is safe.
      throw new Error(
        `the database has migrations this release does not know (${unknown.join(', ')}) and lacks some ` +
          `of its own (${pending.join(', ')}): it was migrated by another line of releases`,
      );
    }
    if (unknown.length > 0) {
      log.warn(
        { unknown },
        'the database has migrations this release does not know (a later release ran them); starting without migrating',
      );
      return { kind: 'newer-schema', unknown };
    }
    return { kind: 'migrated', applied: await migrateLatest(knex) };
  } finally {
    // end() without an unlock: closing the session releases the lock, also when the unlock could
    // not be sent.
    await client.end().catch(() => undefined);
  }
}

/**
 * `unknown`: the names in `knex_migrations` that `db/migrations` of this release does not have;
 * `pending`: this release's migrations not in `knex_migrations` yet.
 */
async function compareApplied(client: pg.Client): Promise<{ unknown: string[]; pending: string[] }> {
  const source = new TsMigrationSource();
  const known = (await source.getMigrations()).map((m) => source.getMigrationName(m));
  const table = await client.query<{ t: string | null }>(`SELECT to_regclass('knex_migrations')::text AS t`);
  if (!table.rows[0]?.t) return { unknown: [], pending: known };
  const applied = new Set(
    (await client.query<{ name: string }>('SELECT name FROM knex_migrations')).rows.map((r) => r.name),
  );
  const mine = new Set(known);
  return { unknown: [...applied].filter((n) => !mine.has(n)).sort(), pending: known.filter((n) => !applied.has(n)) };
}

/**
 * The knex instance's own connection settings, for a pg client beside its pool. knex parses a URL
 * into an object and keeps its password as a hidden, non-enumerable property (knex
 * lib/util/security.js, so that it stays out of logs): a spread of the object would drop it, and
 * a server asking for a password gets an empty one. It is copied by name.
 */
export function connectionConfig(knex: Knex): pg.ClientConfig {
  const c = (knex.client as { config: { connection: unknown } }).config.connection;
  if (typeof c === 'string') return { connectionString: c };
  if (c && typeof c === 'object') {
    const { password } = c as { password?: pg.ClientConfig['password'] };
    return { ...(c as pg.ClientConfig), ...(password === undefined ? {} : { password }) };
  }
  throw new Error('the database connection must be a URL or a pg connection object');
}
