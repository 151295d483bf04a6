import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import supertest from 'supertest';
import { ConfigError } from '../../src/shared/env.ts';
import { type SimServer, startSimServer } from '../../src/sim/server.ts';
import { requireSessionPerConnection } from '../../src/store/session-check.ts';
import { cleanEnv, startCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/db.ts';
import { PGBOUNCER, startPgBouncer } from '../support/pgbouncer.ts';
import { SimClient } from '../support/sim-client.ts';
import { connector, NATIVE } from '../support/target.ts';

/**
 * Debian's PgBouncer in front of the test database, one alias per pool mode: session mode is
 * supported, transaction and statement mode are refused at start-up with a message naming
 * pool_mode (docs/deployment.md).
 */
const missing = existsSync(PGBOUNCER) ? undefined : `${PGBOUNCER} is missing (apt-get install pgbouncer)`;
if (missing && process.env.PORTALIS_REQUIRE_PGBOUNCER === '1') throw new Error(missing);

describe('PgBouncer between the service and PostgreSQL', { skip: missing }, () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let bouncer: Awaited<ReturnType<typeof startPgBouncer>>;
  let sim: SimServer;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'portalis-pgbouncer-serve-'));
  const token = `admin-${randomUUID()}`;

  before(async () => {
    database = await createTestDatabase();
    bouncer = await startPgBouncer(database.url);
    sim = await startSimServer({ port: 0, nodes: 3 });
  });
  after(async () => {
    await sim?.close();
    await bouncer?.stop();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const env = (url: string) =>
    cleanEnv({
      DATABASE_URL: url,
      PORTALIS_SIM_URL: sim.url,
      PORTALIS_ADMIN_TOKEN: token,
      PORTALIS_PORT: '0',
      PORTALIS_DATA_DIR: dataDir,
      PORTALIS_LOG_LEVEL: 'warn',
    });

  it('why: in transaction mode a session advisory lock stays on a server connection another client then gets', async () => {
    const a = new pg.Client({ connectionString: bouncer.urlFor('transaction') });
    const b = new pg.Client({ connectionString: bouncer.urlFor('transaction') });
    await a.connect();
    await b.connect();
    try {
      await a.query('SELECT pg_advisory_lock(42)');
      // b is another client, yet PgBouncer runs its statement on the server that holds a's lock:
      // it takes the "same" lock at once, where PostgreSQL would make a second session wait.
      const r = await b.query<{ got: boolean }>('SELECT pg_try_advisory_lock(42) AS got');
      assert.equal(r.rows[0]!.got, true);
    } finally {
      await a.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('the check passes PostgreSQL itself and session mode, and refuses transaction and statement mode naming pool_mode', async () => {
    await requireSessionPerConnection(database.url);
    await requireSessionPerConnection(bouncer.urlFor('session'));
    for (const mode of ['transaction', 'statement'] as const) {
      await assert.rejects(requireSessionPerConnection(bouncer.urlFor(mode)), (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.equal(e.variable, 'DATABASE_URL');
        assert.match(e.message, /pool_mode = session/);
        return true;
      });
    }
  });

  it('portalis serve refuses a transaction-mode PgBouncer at start-up, saying which setting', async () => {
    const p = startCli(['serve'], env(bouncer.urlFor('transaction')));
    assert.equal(await p.exit(), 2, p.output());
    assert.match(
      p.output(),
      /invalid configuration: DATABASE_URL: .*pool_mode = transaction or statement.*set pool_mode = session/,
    );
  });

  it('portalis serve runs through a session-mode PgBouncer: initialize, a long poll woken, terminate', async () => {
    const p = startCli(['serve'], env(bouncer.urlFor('session')));
    try {
      const [, url] = await p.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      const http = supertest.agent(url!);
      const admin = { authorization: `Bearer ${token}` };
      const conn = connector(NATIVE);
      const issued = await http.post('/v1/hosts').set(admin).send({ nqn: conn.nqn });
      const host = { authorization: `Bearer ${issued.body.token}` };
      const v0 = (await http.get('/v1/agent/attachments').set(host)).body.version;
      // The change feed LISTENs through PgBouncer too: this poll wakes on the initialize below.
      const waiting = http.get('/v1/agent/attachments').query({ since: v0, wait: 60 }).set(host);
      const id = randomUUID();
      const created = await http.post('/v1/volumes').set(admin).send({ id, size_gb: 1 });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const init = await http.post(`/v1/volumes/${id}/initialize_connection`).set(admin).send({ connector: conn });
      assert.equal(init.status, 200, JSON.stringify(init.body));
      const woken = await waiting;
      assert.notEqual(woken.body.version, v0);
      assert.deepEqual(await new SimClient(sim.url).acl(created.body.backend_uuid), [conn.nqn]);
      const term = await http
        .post(`/v1/volumes/${id}/terminate_connection`)
        .set(admin)
        .send({ connector: conn, force: true });
      assert.equal(term.status, 200, JSON.stringify(term.body));
      assert.deepEqual(await new SimClient(sim.url).acl(created.body.backend_uuid), []);
    } finally {
      assert.equal(await p.stop(), 0, p.output());
    }
  });
});
