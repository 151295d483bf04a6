import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { GiB } from '../../src/shared/units.ts';
import { type LifecycleClient, lifecycleClient, resetFaults, simVolume, startSuite } from '../support/lifecycle.ts';
import { AGENT, connector, NATIVE, startTarget, type Target } from '../support/target.ts';
import { SimClient } from '../support/sim-client.ts';

/**
 * Failure sequences that must not leave a record stuck: an attachment no agent can act on, a
 * volume lock waiting for a second pooled connection, a volume record that disagrees with the
 * backend after a failed extend or delete, a long poll that outlives its token. The backend
 * faults come from the simulator's fault API; everything else is the real service.
 */

type Agent = { authorization: string };

function agentHelpers(t: Target, api: ReturnType<typeof lifecycleClient>) {
  return {
    /** Issues the host's token and registers its agent, so that the host is agent-managed. */
    async registered(conn: Record<string, unknown>): Promise<Agent> {
      const issued = await t.http.post('/v1/hosts').set(api.auth()).send({ nqn: conn.nqn });
      assert.equal(issued.status, 201, JSON.stringify(issued.body));
      const agent = { authorization: `Bearer ${issued.body.token}` };
      const reg = await t.http.post('/v1/agent/register').set(agent).send({ connector: conn });
      assert.equal(reg.status, 200, JSON.stringify(reg.body));
      return agent;
    },
    report: (agent: Agent, id: string, state: string) =>
      t.http
        .put(`/v1/agent/attachments/${id}/report`)
        .set(agent)
        .send({
          state,
          device_path: state === 'connected' ? '/dev/nvme0n1' : null,
          size_bytes: null,
          health: null,
          paths: [],
          error: null,
        }),
  };
}

/** Puts `hosts` into the volume's ACL through the simulator's own LightOS API (no If-Match: unconditional). */
async function setSimAcl(t: Target, uuid: string, hosts: string[]): Promise<void> {
  const r = await fetch(`${t.simUrl}/api/v2/projects/default/volumes/${uuid}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ acl: { values: hosts } }),
  });
  assert.equal(r.status, 200, await r.text());
}

describe('records that no agent can act on converge without force', () => {
  let t: Target;
  let sim: SimClient;
  let api: ReturnType<typeof lifecycleClient>;
  let agents: ReturnType<typeof agentHelpers>;

  before(async () => {
    t = await startTarget();
    sim = new SimClient(t.simUrl);
    api = lifecycleClient(t);
    agents = agentHelpers(t, api);
  });
  after(async () => t?.close());
  afterEach(async () => resetFaults(t));

  /**
   * An initialize that fails after its `attaching` row is written, and whose undo (the revoke)
   * fails too. The host is in the ACL beforehand (so a grant that got through would write
   * nothing); every backend request fails: the grant's reads, run beside the insert, and then
   * the undo's read.
   */
  async function stuckAttaching(volumeUuid: string, volumeId: string, conn: Record<string, unknown>, extra = {}) {
    await setSimAcl(t, volumeUuid, [conn.nqn as string]);
    await sim.faults({ failNext: { count: 1000, status: 503, path: '/api/v2/' } });
    const r = await api.init(volumeId, conn, extra);
    assert.equal(r.status, 502, JSON.stringify(r.body));
    await resetFaults(t);
    const rows = (await api.attachments(volumeId)).filter((a) => a.host_nqn === conn.nqn && a.status === 'attaching');
    assert.equal(rows.length, 1, 'the attaching row stays, without connection info');
    assert.equal(rows[0].connection_info, null);
    assert.deepEqual(await sim.acl(volumeUuid), [conn.nqn], 'the failed undo left the host in the ACL');
    return rows[0] as { id: string };
  }

  it('a normal terminate on an agent host revokes at once and reports the record detached', async () => {
    const conn = connector({ ...NATIVE, ...AGENT });
    const agent = await agents.registered(conn);
    const vol = await api.created();
    const stuck = await stuckAttaching(vol.backend_uuid, vol.id, conn);
    const listed = (await t.http.get('/v1/agent/attachments').set(agent)).body.attachments;
    assert.deepEqual(listed, [], 'the agent is never told about it');

    const r = await api.term(vol.id, { connector: conn });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, {
      revoked: true,
      shared: false,
      detached: [stuck.id],
      revoked_hosts: [conn.nqn],
      pending: [],
    });
    assert.deepEqual(await sim.acl(vol.backend_uuid), []);
    assert.equal((await t.http.get(`/v1/attachments/${stuck.id}`).set(api.auth())).body.status, 'detached');
    const again = await api.term(vol.id, { connector: conn });
    assert.deepEqual(again.body, { revoked: false, shared: false, detached: [], revoked_hosts: [], pending: [] });
    assert.equal((await api.del(vol.id)).status, 204, 'nothing holds the volume any more');
  });

  it('beside a later real attachment of the host, the stuck one ends at once and the real one waits for its agent', async () => {
    const conn = connector({ ...NATIVE, ...AGENT });
    const agent = await agents.registered(conn);
    const vol = await api.created({ multiattach: true });
    const stuck = await stuckAttaching(vol.backend_uuid, vol.id, conn, { instance_uuid: crypto.randomUUID() });
    const real = (await api.init(vol.id, conn, { instance_uuid: crypto.randomUUID() })).body.attachment_id as string;
    assert.equal((await agents.report(agent, real, 'connected')).status, 200);

    // Not ambiguous: only one of the two was ever handed out.
    const r = await api.term(vol.id, { connector: conn });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, {
      revoked: false,
      shared: false,
      detached: [stuck.id],
      revoked_hosts: [],
      pending: [real],
    });
    assert.deepEqual(await sim.acl(vol.backend_uuid), [conn.nqn], 'access stays until the agent released the device');
    assert.equal((await agents.report(agent, real, 'disconnected')).status, 200);
    assert.deepEqual(await sim.acl(vol.backend_uuid), []);
    const statuses = (await api.attachments(vol.id)).map((a) => a.status);
    assert.deepEqual(statuses, ['detached', 'detached']);
  });
});

describe('the volume lock never waits for a second pooled connection', () => {
  let t: Target;
  let api: ReturnType<typeof lifecycleClient>;
  let agents: ReturnType<typeof agentHelpers>;

  before(async () => {
    t = await startTarget({ dbPoolMax: 2 });
    api = lifecycleClient(t);
    agents = agentHelpers(t, api);
  });
  after(async () => t?.close());

  it('with a pool of 2, concurrent detaches on agent hosts all succeed, and so do their reports', async () => {
    const hosts = [connector({ ...NATIVE, ...AGENT }), connector({ ...NATIVE, ...AGENT })];
    const agentOf = new Map<string, Agent>();
    for (const h of hosts) agentOf.set(h.nqn as string, await agents.registered(h));
    const work: { vol: string; uuid: string; host: Record<string, unknown>; id: string }[] = [];
    for (let i = 0; i < 6; i++) {
      const vol = await api.created();
      const host = hosts[i % 2]!;
      const init = await api.init(vol.id, host);
      assert.equal(init.status, 200, JSON.stringify(init.body));
      work.push({ vol: vol.id, uuid: vol.backend_uuid, host, id: init.body.attachment_id });
    }

    const terms = await Promise.all(work.map((w) => api.term(w.vol, { connector: w.host })));
    assert.deepEqual(
      terms.map((r) => [r.status, r.body.pending]),
      work.map((w) => [200, [w.id]]),
      JSON.stringify(terms.map((r) => r.body)),
    );
    // The agents report the devices gone, all at once: each finishes its detach under the lock.
    const reports = await Promise.all(
      work.map((w) => agents.report(agentOf.get(w.host.nqn as string)!, w.id, 'disconnected')),
    );
    assert.deepEqual(
      reports.map((r) => r.status),
      work.map(() => 200),
    );
    // And mixed with attaches and extends of other volumes.
    const more = await Promise.all([
      ...work.map((w) => api.init(w.vol, w.host)),
      ...work.map((w) => api.extend(w.vol, 2)),
    ]);
    assert.equal(more.filter((r) => r.status >= 500).length, 0, JSON.stringify(more.map((r) => r.body)));
    const statuses = await Promise.all(work.map(async (w) => (await api.attachments(w.vol)).map((a) => a.status)));
    assert.deepEqual(
      statuses,
      work.map(() => ['detached', 'attached']),
    );
  });
});

describe('the volume record follows the backend after a failed extend or delete', () => {
  let t: Target;
  let sim: SimClient;
  let api: ReturnType<typeof lifecycleClient>;

  before(async () => {
    t = await startTarget({ operationTimeoutMs: 1500 });
    sim = new SimClient(t.simUrl);
    api = lifecycleClient(t);
  });
  after(async () => t?.close());
  afterEach(async () => resetFaults(t));

  it('an extend whose resize landed but whose state wait failed: the volume stays attachable and takes the new size', async () => {
    const v = await api.created({ size_gb: 1 });
    const conn = connector({ ...NATIVE, ...AGENT });
    assert.equal((await api.init(v.id, conn)).status, 200);
    // The read before the resize passes, the resize lands, every read after it fails until the
    // operation's deadline (and the re-read after the failure too).
    await sim.faults({
      failNext: { count: 100_000, status: 503, method: 'GET', path: `/volumes/${v.backend_uuid}`, skip: 1 },
    });
    const r = await api.extend(v.id, 2);
    await resetFaults(t);
    assert.ok(r.status >= 502 && r.status <= 504, JSON.stringify(r.body));
    assert.equal(Number((await simVolume(t, v.name))?.size), 2 * GiB, 'the backend has the new size');
    assert.equal((await api.get(v.id)).body.status, 'available');

    assert.equal((await api.init(v.id, conn)).status, 200, 'attaching keeps working');
    const rec = (await api.get(v.id)).body;
    assert.deepEqual([rec.status, rec.size_gb], ['available', 2], 'the record took the backend size');
    const again = await api.extend(v.id, 2);
    assert.deepEqual([again.status, again.body.size_gb], [200, 2]);
  });

  it('an extend that did not land leaves the volume available at its old size', async () => {
    const v = await api.created({ size_gb: 1 });
    await sim.faults({ failNext: { count: 1, status: 503, method: 'PUT', path: `/volumes/${v.backend_uuid}` } });
    const r = await api.extend(v.id, 2);
    assert.equal(r.status, 502, JSON.stringify(r.body));
    const rec = (await api.get(v.id)).body;
    assert.deepEqual([rec.status, rec.size_gb], ['available', 1]);
    assert.equal((await api.init(v.id, connector())).status, 200);
  });

  it('a backend size the record missed is taken on the next initialize, and reaches the agent', async () => {
    const v = await api.created({ size_gb: 1 });
    const conn = connector({ ...NATIVE, ...AGENT });
    const issued = await t.http.post('/v1/hosts').set(api.auth()).send({ nqn: conn.nqn });
    const agent = { authorization: `Bearer ${issued.body.token}` };
    // The backend grows the volume behind the service's back (as a lost extend answer would leave it).
    const grown = await fetch(`${t.simUrl}/api/v2/projects/default/volumes/${v.backend_uuid}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ size: '3 GiB' }),
    });
    assert.equal(grown.status, 200, await grown.text());
    assert.equal((await api.init(v.id, conn)).status, 200);
    assert.equal((await api.get(v.id)).body.size_gb, 3);
    const listed = (await t.http.get('/v1/agent/attachments').set(agent)).body.attachments;
    assert.deepEqual(
      listed.map((a: { size_gb: number }) => a.size_gb),
      [3],
    );
  });

  it('a volume left error by a failed delete is attachable again while the backend shows it healthy', async () => {
    const v = await api.created({ size_gb: 1 });
    await sim.faults({ failNext: { count: 1, status: 500, method: 'DELETE', path: `/volumes/${v.backend_uuid}` } });
    assert.equal((await api.del(v.id)).status, 502);
    assert.equal((await api.get(v.id)).body.status, 'error');
    const r = await api.init(v.id, connector());
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await api.get(v.id)).body.status, 'available');
    const e = await api.extend(v.id, 2);
    assert.equal(e.status, 200, JSON.stringify(e.body));
  });

  it('a volume the backend does not show healthy stays error and is refused', async () => {
    const v = await api.created({ size_gb: 1 });
    await sim.faults({ failNext: { count: 1, status: 500, method: 'DELETE', path: `/volumes/${v.backend_uuid}` } });
    assert.equal((await api.del(v.id)).status, 502);
    // The backend loses the volume meanwhile.
    const gone = await fetch(`${t.simUrl}/api/v2/projects/default/volumes/${v.backend_uuid}`, { method: 'DELETE' });
    assert.ok(gone.ok, String(gone.status));
    const r = await api.init(v.id, connector());
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'volume_not_ready');
    assert.equal((await api.get(v.id)).body.status, 'error');
  });
});

describe('a long poll re-checks its token when it wakes', () => {
  let t: Target;
  let api: LifecycleClient;
  before(async () => ({ t, api } = await startSuite()));
  after(async () => t?.close());

  const lastSeen = async (nqn: string) =>
    (await t.http.get(`/v1/hosts/${encodeURIComponent(nqn)}`).set(api.auth())).body.last_seen_at;

  async function waitingPoll(conn: Record<string, unknown>) {
    const issued = await t.http.post('/v1/hosts').set(api.auth()).send({ nqn: conn.nqn });
    const agent = { authorization: `Bearer ${issued.body.token}` };
    assert.equal((await t.http.post('/v1/agent/register').set(agent).send({ connector: conn })).status, 200);
    const first = await t.http.get('/v1/agent/attachments').set(agent);
    const seen = await lastSeen(conn.nqn as string);
    const poll = t.http.get('/v1/agent/attachments').query({ since: first.body.version, wait: 20 }).set(agent).then();
    // The poll has been authenticated once the host shows a new contact time.
    const deadline = Date.now() + 10_000;
    while ((await lastSeen(conn.nqn as string)) === seen) {
      assert.ok(Date.now() < deadline, 'the long poll never reached the service');
      await new Promise((r) => setImmediate(r));
    }
    return { agent, poll };
  }

  it('a token revoked during the wait gets 401, not the attachments made meanwhile', async () => {
    const conn = connector({ ...NATIVE, ...AGENT });
    const { poll } = await waitingPoll(conn);
    assert.equal(
      (await t.http.delete(`/v1/hosts/${encodeURIComponent(conn.nqn as string)}/token`).set(api.auth())).status,
      200,
    );
    const vol = await api.created();
    assert.equal((await api.init(vol.id, conn)).status, 200);
    const r = await poll;
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'unauthorized');
    assert.equal(r.body.attachments, undefined);
  });

  it('a token replaced by a new one during the wait gets 401 too; the new token polls', async () => {
    const conn = connector({ ...NATIVE, ...AGENT });
    const { poll } = await waitingPoll(conn);
    const reissued = await t.http.post('/v1/hosts').set(api.auth()).send({ nqn: conn.nqn });
    assert.equal(reissued.status, 201);
    const r = await poll;
    assert.equal(r.status, 401, JSON.stringify(r.body));
    const fresh = await t.http.get('/v1/agent/attachments').set({ authorization: `Bearer ${reissued.body.token}` });
    assert.equal(fresh.status, 200);
  });
});
