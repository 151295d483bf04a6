import knexFactory, { type Knex } from 'knex';
import type { Logger } from '../shared/logger.ts';
import { migrateUnderLock } from './migration-lock.ts';

export type Db = Knex;

/**
 * A knex pool on `url`. Every lock holder needs one connection and runs all its queries on
 * it (see `locks.ts`), so the pool only bounds concurrency; it cannot deadlock on itself.
 */
export function createDb(url: string, opts: { poolMax?: number; logger?: Logger } = {}): Db {
  const log = opts.logger;
  return knexFactory({
    client: 'pg',
    connection: url,
    pool: { min: 0, max: opts.poolMax ?? 10 },
    acquireConnectionTimeout: 30_000,
    // knex writes its own warnings (a refused connection, …) to the console otherwise.
    ...(log
      ? {
          log: {
            warn: (m: unknown) => log.warn({ knex: String(m) }, 'database'),
            error: (m: unknown) => log.error({ knex: String(m) }, 'database'),
            deprecate: (m: unknown) => log.debug({ knex: String(m) }, 'database'),
            debug: (m: unknown) => log.debug({ knex: String(m) }, 'database'),
          },
        }
      : {}),
  });
}

export async function openDb(
  url: string,
  opts: { poolMax?: number; migrate?: boolean; logger?: Logger } = {},
): Promise<Db> {
  const db = createDb(url, opts);
  if (opts.migrate ?? true) {
    try {
      await migrateUnderLock(db, opts.logger);
    } catch (e) {
      await db.destroy();
      throw e;
    }
  }
  return db;
}
