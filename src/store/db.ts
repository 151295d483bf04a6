import knexFactory, { type Knex } from 'knex';
import { migrateLatest } from './migrations.ts';

export type Db = Knex;

/**
 * A knex pool on `url`. Every lock holder needs one connection and runs all its queries on
 * it (see `locks.ts`), so the pool only bounds concurrency; it cannot deadlock on itself.
 */
export function createDb(url: string, opts: { poolMax?: number } = {}): Db {
  return knexFactory({
    client: 'pg',
    connection: url,
    pool: { min: 0, max: opts.poolMax ?? 10 },
    acquireConnectionTimeout: 30_000,
  });
}

export async function openDb(url: string, opts: { poolMax?: number; migrate?: boolean } = {}): Promise<Db> {
  const db = createDb(url, opts);
  if (opts.migrate ?? true) await migrateLatest(db);
  return db;
}
