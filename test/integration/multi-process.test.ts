import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import supertest from 'supertest';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { createApp } from '../../src/server/app.ts';
import { Authenticator } from '../../src/server/auth.ts';
import { composeDeps } from '../../src/server/service.ts';
import { type SimServer, startSimServer } from '../../src/sim/server.ts';
import { createTestDatabase } from '../support/db.ts';
import { connector, NATIVE } from '../support/target.ts';
import { SimClient } from '../support/sim-client.ts';

/**
 * Two service processes on one database: each has its own connection pool, so the only thing
 * they share is PostgreSQL, as two real processes would.
 */
describe('two service processes on one database', () => {
  const token = `admin-${randomUUID()}`;
  const stops: (() => Promise<void>)[] = [];
  let sim: SimServer;
  let apps: supertest.Agent[];
  let drop: () => Promise<void>;

  before(async () => {
    const database = await createTestDatabase();
    drop = database.drop;
    sim = await startSimServer({ port: 0, nodes: 3 });
    const config = loadConfig({
      DATABASE_URL: database.url,
      PORTALIS_SIM_URL: sim.url,
      PORTALIS_LIGHTOS_POLL_INTERVAL_MS: '20',
    });
    apps = [];
    for (let i = 0; i < 2; i++) {
      const { deps } = await composeDeps(config, silentLogger, stops);
      apps.push(
        supertest.agent(
          await createApp({ deps, auth: new Authenticator(token, deps), logger: silentLogger, readiness: [] }),
        ),
      );
    }
  });
  after(async () => {
    for (const s of stops.reverse()) await s();
    await sim?.close();
    await drop?.();
  });

  it('50 concurrent identical initialize calls across both give one attachment and one ACL entry', async () => {
    const id = randomUUID();
    const created = await apps[0]!.post('/v1/volumes').set('authorization', `Bearer ${token}`).send({ id, size_gb: 1 });
    assert.equal(created.status, 201);
    const conn = connector(NATIVE);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        apps[i % 2]!.post(`/v1/volumes/${id}/initialize_connection`)
          .set('authorization', `Bearer ${token}`)
          .send({ connector: conn }),
      ),
    );
    for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(new Set(results.map((r) => r.body.attachment_id)).size, 1);
    const list = await apps[1]!.get('/v1/attachments').query({ volume_id: id }).set('authorization', `Bearer ${token}`);
    assert.equal(list.body.attachments.length, 1);
    assert.deepEqual(await new SimClient(sim.url).acl(created.body.backend_uuid), [conn.nqn]);
  });

  it('a long poll in one process is woken by a change made through the other', async () => {
    const conn = connector(NATIVE);
    const issued = await apps[0]!.post('/v1/hosts').set('authorization', `Bearer ${token}`).send({ nqn: conn.nqn });
    const hostAuth = { authorization: `Bearer ${issued.body.token}` };
    const v0 = (await apps[0]!.get('/v1/agent/attachments').set(hostAuth)).body.version;
    const waiting = apps[0]!.get('/v1/agent/attachments').query({ since: v0, wait: 60 }).set(hostAuth);
    const id = randomUUID();
    await apps[1]!.post('/v1/volumes').set('authorization', `Bearer ${token}`).send({ id, size_gb: 1 });
    const init = await apps[1]!
      .post(`/v1/volumes/${id}/initialize_connection`)
      .set('authorization', `Bearer ${token}`)
      .send({ connector: conn });
    const woken = await waiting;
    assert.notEqual(woken.body.version, v0);
    assert.deepEqual(
      woken.body.attachments.map((a: { id: string }) => a.id),
      [init.body.attachment_id],
    );
  });

  it('concurrent creates of one volume across both make one backend volume', async () => {
    const id = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        apps[i % 2]!.post('/v1/volumes').set('authorization', `Bearer ${token}`).send({ id, size_gb: 2 }),
      ),
    );
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    assert.equal(new Set(results.map((r) => r.body.backend_uuid)).size, 1);
    const state = await new SimClient(sim.url).state();
    assert.equal(state.volumes.filter((v: { name: string }) => v.name === `volume-${id}`).length, 1);
  });
});
