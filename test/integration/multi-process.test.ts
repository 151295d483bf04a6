import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type supertest from 'supertest';
import type { SimServer } from '../../src/sim/server.ts';
import { startReplicas } from '../support/replicas.ts';
import { connector, NATIVE } from '../support/target.ts';
import { SimClient } from '../support/sim-client.ts';

/**
 * Two service processes on one database: each has its own connection pool, so the only thing
 * they share is PostgreSQL, as two real processes would.
 */
describe('two service processes on one database', () => {
  const token = `admin-${randomUUID()}`;
  let sim: SimServer;
  let apps: supertest.Agent[];
  let close: (() => Promise<void>) | undefined;

  before(async () => {
    const started = await startReplicas(2, token);
    ({ sim, close } = started);
    apps = started.replicas.map((r) => r.app);
  });
  after(async () => close?.());

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
