import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { lifecycleClient } from '../support/lifecycle.ts';
import { connector, NATIVE, startTarget, type Target } from '../support/target.ts';

/** The agent-facing API: host tokens, registration, the long poll and state reports. */
describe('agent API', () => {
  let t: Target;
  let api: ReturnType<typeof lifecycleClient>;
  const admin = () => ({ authorization: `Bearer ${t.token}` });
  const as = (token: string) => ({ authorization: `Bearer ${token}` });

  before(async () => {
    t = await startTarget();
    api = lifecycleClient(t);
  });
  after(async () => t?.close());

  async function newHost(over: Record<string, unknown> = {}) {
    const conn = connector({ ...NATIVE, ...over });
    const r = await t.http.post('/v1/hosts').set(admin()).send({ nqn: conn.nqn, name: conn.host });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.host.nqn, conn.nqn);
    assert.match(r.body.token, /^pth_/);
    return { conn, token: r.body.token as string };
  }

  const poll = (token: string, q: Record<string, unknown> = {}) =>
    t.http.get('/v1/agent/attachments').query(q).set(as(token));
  const report = (token: string, id: string, body: Record<string, unknown>) =>
    t.http.put(`/v1/agent/attachments/${id}/report`).set(as(token)).send(body);
  const CONNECTED = (paths = 3) => ({
    state: 'connected',
    device_path: '/dev/nvme0n1',
    size_bytes: 1073741824,
    health: 'optimal',
    paths: Array.from({ length: paths }, (_, i) => ({
      controller: `nvme${i}`,
      address: '127.0.0.1',
      port: 4420 + i,
      transport: 'tcp',
      state: 'live',
      ana_state: i === 0 ? 'optimized' : 'non-optimized',
    })),
    error: null,
  });

  it('registers an agent whose connector is its own host, and refuses another host (403)', async () => {
    const { conn, token } = await newHost();
    const r = await t.http.post('/v1/agent/register').set(as(token)).send({ connector: conn });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.host.nqn, conn.nqn);
    assert.ok(r.body.host.registered_at);
    const other = connector(NATIVE);
    const bad = await t.http.post('/v1/agent/register').set(as(token)).send({ connector: other });
    assert.equal(bad.status, 403);
    assert.equal(bad.body.error.code, 'forbidden');
    const host = await t.http.get(`/v1/hosts/${conn.nqn}`).set(admin());
    assert.equal(host.status, 200);
    assert.deepEqual(host.body.connector, conn);
  });

  it("records the agent's version (x-portalis-agent-version) at register; one that sends none (0.1.0) is answered the same", async () => {
    const { conn, token } = await newHost();
    const old = await t.http.post('/v1/agent/register').set(as(token)).send({ connector: conn });
    assert.equal(old.status, 200, JSON.stringify(old.body));
    assert.equal(old.body.host.agent_version, null);
    const r = await t.http
      .post('/v1/agent/register')
      .set(as(token))
      .set('x-portalis-agent-version', '0.2.0')
      .send({ connector: conn });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.host.agent_version, '0.2.0');
    assert.equal((await t.http.get(`/v1/hosts/${conn.nqn}`).set(admin())).body.agent_version, '0.2.0');
    const long = await t.http
      .post('/v1/agent/register')
      .set(as(token))
      .set('x-portalis-agent-version', 'x'.repeat(65))
      .send({ connector: conn });
    assert.equal(long.status, 400);
  });

  it('a host token cannot use the orchestrator API, and the admin token cannot act as an agent', async () => {
    const { token } = await newHost();
    assert.equal((await t.http.post('/v1/volumes').set(as(token)).send({ id: randomUUID(), size_gb: 1 })).status, 403);
    assert.equal((await t.http.get('/v1/hosts').set(as(token))).status, 403);
    assert.equal((await poll(t.token)).status, 403);
    assert.equal((await poll('pth_not-a-real-token')).status, 401);
  });

  it('the long poll returns what to connect, wakes on change, and lists teardowns until reported', async () => {
    const { conn, token } = await newHost();
    const first = await poll(token);
    assert.equal(first.status, 200);
    assert.deepEqual(first.body.attachments, []);
    const v0 = first.body.version;

    const vol = (await api.created()).id;
    const init = await api.init(vol, conn);
    assert.equal(init.status, 200);
    const second = await poll(token, { since: v0, wait: 30 });
    assert.notEqual(second.body.version, v0);
    assert.equal(second.body.attachments.length, 1);
    const task = second.body.attachments[0];
    assert.equal(task.id, init.body.attachment_id);
    assert.equal(task.desired, 'connected');
    assert.equal(task.force, false);
    assert.equal(task.size_gb, 1);
    assert.deepEqual(task.connection_info, init.body.connection_info);

    // Waiting with the current version: the terminate below must wake it (a timeout would
    // return the same version).
    const waiting = poll(token, { since: second.body.version, wait: 60 });
    const term = await api.term(vol, { connector: conn });
    assert.equal(term.status, 200);
    const woken = await waiting;
    assert.notEqual(woken.body.version, second.body.version);
    assert.equal(woken.body.attachments[0].desired, 'disconnected');

    const rep = await report(token, task.id, {
      state: 'disconnected',
      device_path: null,
      size_bytes: null,
      health: null,
      paths: [],
      error: null,
    });
    assert.equal(rep.status, 200);
    assert.deepEqual((await poll(token)).body.attachments, []);
  });

  it('a client that hangs up on its parked long poll leaves no waiter behind', async (ctx) => {
    const feed = t.deps?.hostChanges;
    if (!feed || !t.app) return ctx.skip('counts the waiters of the in-process service');
    const { token } = await newHost();
    const version = (await poll(token)).body.version;
    // Counts the subscriptions the polls hold (taken, not yet cancelled).
    const subscribe = feed.subscribe;
    let open = 0;
    feed.subscribe = (nqn: string) => {
      const sub = subscribe.call(feed, nqn);
      open++;
      let cancelled = false;
      return {
        changed: sub.changed,
        cancel: () => {
          if (!cancelled) open--;
          cancelled = true;
          sub.cancel();
        },
      };
    };
    const until = async (what: string, ok: () => boolean) => {
      const deadline = Date.now() + 10_000;
      while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.ok(ok(), what);
    };
    // A port of its own: supertest never settles nor closes an aborted request's server.
    const server = createServer(t.app!);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const hangUp = new AbortController();
      const parked = fetch(`http://127.0.0.1:${port}/v1/agent/attachments?since=${version}&wait=60`, {
        headers: as(token),
        signal: hangUp.signal,
      }).then(
        () => 'answered',
        () => 'aborted',
      );
      await until('the poll parks', () => open === 1);
      hangUp.abort();
      assert.equal(await parked, 'aborted');
      await until('the hang-up cancels its waiter', () => open === 0);
    } finally {
      feed.subscribe = subscribe;
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a forced terminate is passed on to the agent', async () => {
    const { conn, token } = await newHost();
    const vol = (await api.created()).id;
    await api.init(vol, conn);
    await api.term(vol, { connector: conn, force: true });
    const list = await poll(token);
    assert.equal(list.body.attachments[0].desired, 'disconnected');
    assert.equal(list.body.attachments[0].force, true);
  });

  it('reports show on the attachment and in the health matrix; another host learns nothing of it', async () => {
    const { conn, token } = await newHost();
    const intruder = await newHost();
    const vol = (await api.created()).id;
    const init = await api.init(vol, conn);
    const id = init.body.attachment_id;
    assert.equal((await t.http.get(`/v1/attachments/${id}`).set(admin())).body.health, 'unknown');

    assert.equal((await report(token, id, CONNECTED())).status, 200);
    const a = await t.http.get(`/v1/attachments/${id}`).set(admin());
    assert.equal(a.body.health, 'optimal');
    assert.equal(a.body.agent.state, 'connected');
    assert.equal(a.body.agent.device_path, '/dev/nvme0n1');
    assert.equal(a.body.agent.size_bytes, 1073741824);
    assert.equal(a.body.agent.paths.length, 3);

    const matrix = await t.http.get('/v1/health/multipath').set(admin());
    const cell = matrix.body.volumes.find((v: { volume_id: string }) => v.volume_id === vol).hosts[0];
    assert.equal(cell.health, 'optimal');
    assert.equal(cell.paths_total, 3);
    assert.equal(cell.paths_live, 3);

    // The host reads its own attachment; to the intruder it does not exist (404, as a missing
    // one: a host token learns nothing of other hosts' records).
    assert.equal((await t.http.get(`/v1/attachments/${id}`).set(as(token))).status, 200);
    assert.equal((await t.http.get(`/v1/attachments/${id}`).set(as(intruder.token))).status, 404);
    assert.equal((await report(intruder.token, id, CONNECTED())).status, 404);
    assert.equal(
      (await t.http.get(`/v1/attachments/${id}`).set(admin())).body.agent.state,
      'connected',
      'the intruder changed nothing',
    );
    const own = await t.http.get('/v1/attachments').set(as(intruder.token));
    assert.equal(own.status, 200);
    assert.deepEqual(own.body.attachments, []);
    assert.equal(
      (await t.http.get('/v1/attachments').query({ host_nqn: conn.nqn }).set(as(intruder.token))).status,
      403,
    );
  });

  it('a malformed report is a 400 naming the field', async () => {
    const { conn, token } = await newHost();
    const vol = (await api.created()).id;
    const init = await api.init(vol, conn);
    const r = await report(token, init.body.attachment_id, { ...CONNECTED(), health: 'great' });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /health/);
  });

  it('re-issuing a token revokes the old one; revoking leaves none', async () => {
    const { conn, token } = await newHost();
    const again = await t.http.post('/v1/hosts').set(admin()).send({ nqn: conn.nqn });
    assert.equal(again.status, 201);
    assert.equal((await poll(token)).status, 401);
    assert.equal((await poll(again.body.token)).status, 200);
    assert.equal((await t.http.delete(`/v1/hosts/${conn.nqn}/token`).set(admin())).status, 200);
    assert.equal((await poll(again.body.token)).status, 401);
    assert.equal((await t.http.delete(`/v1/hosts/nqn.2014-08.org.example:nobody/token`).set(admin())).status, 404);
  });
});
