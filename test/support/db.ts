import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';
import { openDb, type Db } from '../../src/store/db.ts';

/**
 * A fresh database for one test file, created in the PostgreSQL that DATABASE_URL names
 * (`npm test` starts an embedded one when it is unset), migrated to the latest schema.
 */
export async function createTestDatabase(): Promise<{ url: string; db: Db; drop: () => Promise<void> }> {
  const base = process.env.DATABASE_URL;
  if (!base)
    throw new Error('DATABASE_URL is not set: run the tests through `npm test`, which starts an embedded PostgreSQL');
  const name = `portalis_test_${randomBytes(6).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: base, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${name}`);
  const u = new URL(base);
  u.pathname = `/${name}`;
  const url = u.toString();
  const db = await openDb(url, { poolMax: 10 });
  return {
    url,
    db,
    drop: async () => {
      await db.destroy();
      await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.destroy();
    },
  };
}
