import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { createTestDatabase } from '../../test/support/db.ts';
import { poll } from '../shared/poll.ts';
import { freePort } from './embedded.ts';
import { classifyDatabaseError } from './db-errors.ts';

/** The errors are the real ones node-postgres and knex raise, provoked against a real PostgreSQL. */
describe('classifyDatabaseError', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: Knex;
  const rejection = async (p: Promise<unknown>): Promise<unknown> => {
    try {
      await p;
    } catch (e) {
      return e;
    }
    throw new Error('expected a rejection');
  };

  before(async () => {
    database = await createTestDatabase();
    admin = knexFactory({ client: 'pg', connection: process.env.DATABASE_URL, pool: { min: 0, max: 1 } });
  });
  after(async () => {
    await admin?.destroy();
    await database?.drop();
  });

  /** Terminates the session of `client` from the admin connection (what an operator or a failover does). */
  async function terminate(client: pg.Client): Promise<void> {
    const pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    await admin.raw('SELECT pg_terminate_backend(?)', [pid]);
  }

  it('a query whose session is terminated under it (57P01, or no SQLSTATE at all) is unavailable', async () => {
    const client = new pg.Client({ connectionString: database.url });
    client.on('error', () => undefined);
    await client.connect();
    const pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const running = rejection(client.query('SELECT pg_sleep(30)'));
    // Wait until the query is running, on the server's own view.
    const active = await poll(
      async () => {
        const r = await admin.raw("SELECT 1 FROM pg_stat_activity WHERE pid = ? AND state = 'active'", [pid]);
        return r.rows.length > 0 ? { done: true as const, value: true } : { done: false as const, last: r.rows };
      },
      { deadlineMs: 10_000, intervalMs: 10 },
    );
    assert.ok(active.done, 'the query runs');
    await admin.raw('SELECT pg_terminate_backend(?)', [pid]);
    const err = await running;
    assert.equal(classifyDatabaseError(err), 'unavailable', String(err));
    // The client is now broken: the next query fails without any SQLSTATE.
    const next = (await rejection(client.query('SELECT 1'))) as Error & { code?: string };
    assert.equal(next.code, undefined, next.message);
    assert.match(next.message, /not queryable|Connection terminated/);
    assert.equal(classifyDatabaseError(next), 'unavailable');
  });

  it('an idle session terminated, then used, is unavailable', async () => {
    const client = new pg.Client({ connectionString: database.url });
    const lost = new Promise<Error>((resolve) => client.on('error', resolve));
    await client.connect();
    await terminate(client);
    const event = await lost;
    assert.equal(classifyDatabaseError(event), 'unavailable', event.message);
    const err = (await rejection(client.query('SELECT 1'))) as Error;
    assert.equal(classifyDatabaseError(err), 'unavailable', err.message);
  });

  it('a refused connection and a knex pool timeout are unavailable, also behind a cause', async () => {
    const port = await freePort();
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'x', database: 'x', password: 'x' });
    const refused = await rejection(client.connect());
    assert.equal(classifyDatabaseError(refused), 'unavailable', String(refused));
    assert.equal(classifyDatabaseError(new Error('wrapped', { cause: refused })), 'unavailable');

    const db = knexFactory({
      client: 'pg',
      connection: database.url,
      pool: { min: 0, max: 1 },
      acquireConnectionTimeout: 200,
    });
    try {
      const held = await (db.client as { acquireConnection(): Promise<unknown> }).acquireConnection();
      const timeout = await rejection(db.raw('SELECT 1'));
      assert.equal((timeout as Error).name, 'KnexTimeoutError');
      assert.equal(classifyDatabaseError(timeout), 'unavailable');
      await (db.client as { releaseConnection(c: unknown): Promise<void> }).releaseConnection(held);
    } finally {
      await db.destroy();
    }
  });

  it('values PostgreSQL refuses (NUL, a lone surrogate in jsonb, bigint overflow) are bad values', async () => {
    await database.db.raw('CREATE TABLE IF NOT EXISTS edge_values (t text, j jsonb, b bigint)');
    const cases: [string, unknown[]][] = [
      ['INSERT INTO edge_values (t) VALUES (?)', ['a\u0000b']],
      ['INSERT INTO edge_values (j) VALUES (?::jsonb)', [JSON.stringify({ x: 'a\u0000b' })]],
      ['INSERT INTO edge_values (j) VALUES (?::jsonb)', [JSON.stringify({ x: '\ud800' })]],
      ['INSERT INTO edge_values (b) VALUES (?)', ['9223372036854775808']],
    ];
    for (const [sql, args] of cases) {
      const err = (await rejection(database.db.raw(sql, args as never))) as { code?: string };
      assert.match(String(err.code), /^22/, `${sql} ${JSON.stringify(args)}: ${err.code}`);
      assert.equal(classifyDatabaseError(err), 'bad_value');
    }
  });

  it('our own mistakes stay unexpected: a syntax error, a unique violation, a plain Error', async () => {
    const syntax = await rejection(database.db.raw('SELEC 1'));
    assert.equal(classifyDatabaseError(syntax), null);
    await database.db.raw('CREATE TABLE IF NOT EXISTS edge_unique (k int PRIMARY KEY)');
    await database.db.raw('INSERT INTO edge_unique VALUES (1)');
    const dup = await rejection(database.db.raw('INSERT INTO edge_unique VALUES (1)'));
    assert.equal((dup as { code?: string }).code, '23505');
    assert.equal(classifyDatabaseError(dup), null);
    assert.equal(classifyDatabaseError(new TypeError("Cannot read properties of undefined (reading 'x')")), null);
  });
});
