import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import knexFactory from 'knex';
import { connector, startTarget, type Target } from '../support/target.ts';

/**
 * PostgreSQL stops accepting sessions (ALLOW_CONNECTIONS false binds superusers too): callers get 503s that say so, never a 401 (an agent
 * would drop its registration) nor a 500; once it is back everything works again.
 */
describe('database unavailable', () => {
  let t: Target;
  const admin = knexFactory({ client: 'pg', connection: process.env.DATABASE_URL, pool: { min: 0, max: 1 } });
  let dbName: string;
  let hostToken: string;

  before(async () => {
    t = await startTarget();
    dbName = (await t.http.get('/readyz')).status === 200 ? (t.databaseName as string) : '';
    const conn = connector();
    hostToken = (await t.http.post('/v1/hosts').set('authorization', `Bearer ${t.token}`).send({ nqn: conn.nqn })).body
      .token;
  });
  after(async () => {
    await admin.raw(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`);
    await t?.close();
    await admin.destroy();
  });

  async function cutOff(): Promise<void> {
    await admin.raw(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS false`);
    await admin.raw(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid()',
      [dbName],
    );
  }

  it('answers 503 for host tokens, admin calls and readiness, and recovers', async () => {
    await cutOff();
    const host = await t.http.get('/v1/attachments').set('authorization', `Bearer ${hostToken}`);
    assert.equal(host.status, 503, JSON.stringify(host.body));
    assert.equal(host.body.error.code, 'service_unavailable');
    const list = await t.http.get('/v1/attachments').set('authorization', `Bearer ${t.token}`);
    assert.equal(list.status, 503, JSON.stringify(list.body));
    const ready = await t.http.get('/readyz');
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.body.checks.database, { ok: false });

    await admin.raw(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`);
    assert.equal((await t.http.get('/v1/attachments').set('authorization', `Bearer ${hostToken}`)).status, 200);
    assert.equal((await t.http.get('/readyz')).status, 200);
  });
});
