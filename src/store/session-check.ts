import pg from 'pg';
import { ConfigError } from '../shared/env.ts';

const REFUSED =
  'the database connections at this URL share server sessions between clients (a pooler such as PgBouncer ' +
  'with pool_mode = transaction or statement); Portalis keeps session state (advisory locks held across ' +
  'statements, LISTEN, SET lock_timeout) and needs a session of its own per connection: set pool_mode = session ' +
  'for this database in pgbouncer.ini, or point DATABASE_URL at PostgreSQL itself (docs/deployment.md)';

/**
 * Refuses a database URL whose connections are not sessions of their own: PgBouncer in
 * transaction or statement mode hands a client's next transaction to whichever server connection
 * is free (PgBouncer docs, "pool_mode"; its feature table lists session advisory locks, LISTEN and
 * SET as session-mode only). Portalis would then lose its volume locks' mutual exclusion (a lock
 * taken on one server connection, the work and the unlock sent on others), the host change feed
 * (a LISTEN on a server that another client gets next) and its lock_timeout.
 *
 * PgBouncer answers no query that names its mode on a normal connection, so this watches what a
 * pooler does: client A asks for its server's pid, then client B opens a transaction and asks for
 * its own, then A asks again. With a session per client, A's pid never changes and B's differs.
 * A transaction pooler gives B the server A just released (PgBouncer reuses the most recently
 * released one, `server_round_robin = 0` by default), or moves A while B holds it. Three rounds,
 * so that another client of the pooler taking the server in between does not hide it. Statement
 * mode refuses B's `BEGIN` outright.
 */
export async function requireSessionPerConnection(url: string): Promise<void> {
  // The pools' acquire timeout (db.ts): an unreachable database fails start-up, it does not hang it.
  const a = new pg.Client({ connectionString: url, connectionTimeoutMillis: 30_000 });
  const b = new pg.Client({ connectionString: url, connectionTimeoutMillis: 30_000 });
  // A pooler that ends the connection on a refused BEGIN: the rejected query says so already.
  a.on('error', () => undefined);
  b.on('error', () => undefined);
  try {
    await a.connect();
    await b.connect();
    const pid = async (c: pg.Client) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    for (let round = 0; round < 3; round++) {
      const a1 = await pid(a);
      try {
        await b.query('BEGIN');
      } catch (e) {
        if (/transaction blocks not allowed/i.test((e as Error).message))
          throw new ConfigError('DATABASE_URL', REFUSED);
        throw e;
      }
      const b1 = await pid(b);
      const a2 = await pid(a);
      await b.query('COMMIT');
      if (b1 === a1 || a2 !== a1) throw new ConfigError('DATABASE_URL', REFUSED);
    }
  } finally {
    await Promise.all([a.end().catch(() => undefined), b.end().catch(() => undefined)]);
  }
}
