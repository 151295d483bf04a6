import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type LifecycleClient, startSuite } from '../support/lifecycle.ts';
import { connector, DM, NATIVE, OSBRICK_NO_NATIVE, type Target } from '../support/target.ts';
import type { SimClient } from '../support/sim-client.ts';

/**
 * The orchestrator's view of initialize/terminate_connection, through the real app, a real
 * PostgreSQL and the simulator over HTTP. Runs in-process or against a running service by URL
 * (see test/support/target.ts).
 */
describe('initialize_connection / terminate_connection', () => {
  let t: Target;
  let sim: SimClient;
  let api: LifecycleClient;
  before(async () => ({ t, sim, api } = await startSuite()));
  after(async () => t?.close());

  async function createVolume(body: Record<string, unknown> = {}) {
    const v = await api.created(body);
    assert.equal(v.status, 'available');
    return v;
  }

  /** The simulator's own view (admin API): the nodes holding the volume and the optimized one. */
  async function simVolume(backendUuid: string): Promise<{ optimized: string; portals: string[] }> {
    const state = await sim.state();
    const vol = state.volumes.find((v: any) => v.uuid === backendUuid);
    assert.ok(vol, 'volume visible in the simulator state');
    const byNode = new Map<string, string>(state.nodes.map((n: any) => [n.uuid, n.nvmeEndpoint]));
    const ana: Record<string, string> = vol.ana;
    const optimized = Object.keys(ana).find((node) => ana[node] === 'optimized');
    assert.ok(optimized, 'the simulator has an optimized replica');
    return { optimized: byNode.get(optimized)!, portals: (vol.replicas as string[]).map((n) => byNode.get(n)!) };
  }

  const endpoint = (p: [string, number, string]) => `${p[0]}:${p[1]}`;

  it('native connector: one target_nqn, a portal per replica node, the optimized one first, ns_id a string', async () => {
    const vol = await createVolume({ replicas: 3 });
    const conn = connector(NATIVE);
    const r = await api.init(vol.id, conn);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const { connection_info: info, attachment_id } = r.body;
    assert.match(attachment_id, /^[0-9a-f-]{36}$/);
    assert.equal(info.driver_volume_type, 'nvmeof');
    const cluster = await sim.clusterInfo();
    assert.equal(info.data.target_nqn, cluster.subsystemNQN);
    assert.equal(info.data.vol_uuid, vol.backend_uuid);
    assert.equal(typeof info.data.ns_id, 'string');
    assert.match(info.data.ns_id, /^\d+$/);
    assert.equal(info.data.host_nqn, conn.nqn);
    assert.equal(info.data.multipath_mode, 'native');
    assert.equal(info.data.access_mode, 'rw');
    assert.equal(info.data.dm_replicas, undefined);
    const expected = await simVolume(vol.backend_uuid);
    assert.equal(info.data.portals.length, 3);
    assert.equal(endpoint(info.data.portals[0]), expected.optimized);
    assert.deepEqual(info.data.portals.map(endpoint).sort(), expected.portals.sort());
    for (const p of info.data.portals) assert.equal(p[2], 'tcp');
    assert.deepEqual(await sim.acl(vol.backend_uuid), [conn.nqn]);
  });

  it('native connector on a 2-replica volume lists only the nodes that hold it', async () => {
    const vol = await createVolume({ replicas: 2 });
    const r = await api.init(vol.id, connector(NATIVE));
    assert.equal(r.status, 200);
    const expected = await simVolume(vol.backend_uuid);
    assert.equal(r.body.connection_info.data.portals.length, 2);
    assert.deepEqual(r.body.connection_info.data.portals.map(endpoint).sort(), expected.portals.sort());
  });

  it('DM connector: dm_replicas with one entry per path and no top-level portals', async () => {
    const vol = await createVolume({ replicas: 3 });
    const r = await api.init(vol.id, connector(DM));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const data = r.body.connection_info.data;
    assert.equal(data.multipath_mode, 'dm');
    assert.equal(data.target_nqn, undefined);
    assert.equal(data.portals, undefined);
    assert.equal(data.volume_replicas, undefined);
    assert.equal(data.dm_replicas.length, 3);
    const cluster = await sim.clusterInfo();
    const expected = await simVolume(vol.backend_uuid);
    for (const rep of data.dm_replicas) {
      assert.equal(rep.vol_uuid, vol.backend_uuid);
      assert.equal(rep.target_nqn, cluster.subsystemNQN);
      assert.equal(rep.portals.length, 1);
    }
    assert.equal(endpoint(data.dm_replicas[0].portals[0]), expected.optimized);
  });

  it('DM connector (the Portalis agent): dm_replicas; the same host without dm_multipath gets portals', async () => {
    const vol = await createVolume({ replicas: 3, multiattach: true });
    const agent = connector(DM);
    const osbrick = connector(OSBRICK_NO_NATIVE);
    assert.equal((await api.init(vol.id, agent)).body.connection_info.data.multipath_mode, 'dm');
    const r = await api.init(vol.id, osbrick);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const data = r.body.connection_info.data;
    assert.equal(data.multipath_mode, 'single');
    assert.equal(data.dm_replicas, undefined);
    assert.equal(data.target_nqn, (await sim.clusterInfo()).subsystemNQN);
    const expected = await simVolume(vol.backend_uuid);
    assert.equal(endpoint(data.portals[0]), expected.optimized);
    assert.deepEqual(data.portals.map(endpoint).sort(), expected.portals.sort());
  });

  it('plain connector: every replica portal, the optimized one first', async () => {
    const vol = await createVolume({ replicas: 3 });
    const r = await api.init(vol.id, connector());
    assert.equal(r.status, 200);
    const data = r.body.connection_info.data;
    assert.equal(data.multipath_mode, 'single');
    const expected = await simVolume(vol.backend_uuid);
    assert.equal(data.portals.length, 3);
    assert.equal(endpoint(data.portals[0]), expected.optimized);
    assert.deepEqual(data.portals.map(endpoint).sort(), expected.portals.sort());
  });

  it('enforce_multipath on a host that cannot multipath: 400 that says why, nothing granted or recorded', async () => {
    const vol = await createVolume();
    const conn = connector({ multipath: false, enforce_multipath: true });
    const r = await api.init(vol.id, conn);
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'multipath_required');
    assert.match(r.body.error.message, /cannot multipath/);
    assert.deepEqual(await sim.acl(vol.backend_uuid), []);
    assert.deepEqual(await api.attachments(vol.id), []);
  });

  it('repeating the call returns the same attachment and adds no second ACL entry', async () => {
    const vol = await createVolume();
    const conn = connector(NATIVE);
    const a = await api.init(vol.id, conn);
    const b = await api.init(vol.id, conn);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(b.body.attachment_id, a.body.attachment_id);
    assert.deepEqual(b.body.connection_info, a.body.connection_info);
    assert.deepEqual(await sim.acl(vol.backend_uuid), [conn.nqn]);
  });

  it('50 identical concurrent calls give exactly one attachment and one ACL entry', async () => {
    const vol = await createVolume();
    const conn = connector(NATIVE);
    const results = await Promise.all(Array.from({ length: 50 }, () => api.init(vol.id, conn)));
    for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(new Set(results.map((r) => r.body.attachment_id)).size, 1);
    assert.deepEqual(await sim.acl(vol.backend_uuid), [conn.nqn]);
    const list = await api.attachments(vol.id);
    assert.equal(list.length, 1);
    assert.equal(list[0].status, 'attached');
  });

  it('a volume without multiattach refuses a second host with 409', async () => {
    const vol = await createVolume();
    assert.equal((await api.init(vol.id, connector())).status, 200);
    const r = await api.init(vol.id, connector());
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'volume_in_use');
  });

  it('a volume without multiattach takes the same instance on a second host (live migration), no other', async () => {
    const vol = await createVolume();
    const source = connector(NATIVE);
    const destination = connector(NATIVE);
    const instance = randomUUID();
    const a1 = await api.init(vol.id, source, { instance_uuid: instance });
    assert.equal(a1.status, 200, JSON.stringify(a1.body));
    const refused = await api.init(vol.id, destination, { instance_uuid: randomUUID() });
    assert.equal(refused.status, 409, 'another instance is refused');
    assert.equal(refused.body.error.code, 'volume_in_use');
    assert.equal((await api.init(vol.id, destination)).status, 409, 'no instance at all is refused');

    const a2 = await api.init(vol.id, destination, { instance_uuid: instance.toUpperCase() });
    assert.equal(a2.status, 200, JSON.stringify(a2.body));
    assert.notEqual(a2.body.attachment_id, a1.body.attachment_id);
    assert.deepEqual(
      (await sim.acl(vol.backend_uuid)).sort(),
      [source.nqn as string, destination.nqn as string].sort(),
    );

    // The migration ends: the source host detaches, the destination keeps its access.
    const done = await api.term(vol.id, { connector: source });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.deepEqual(done.body.detached, [a1.body.attachment_id]);
    assert.deepEqual(await sim.acl(vol.backend_uuid), [destination.nqn]);
    const refusedAfter = await api.init(vol.id, source, { instance_uuid: randomUUID() });
    assert.equal(refusedAfter.status, 409, 'still one instance only');
  });

  it("terminate revokes only the host's last live attachment of the volume", async () => {
    const vol = await createVolume({ multiattach: true });
    const conn = connector(NATIVE);
    const other = connector(NATIVE);
    const i1 = randomUUID();
    const i2 = randomUUID();
    const a1 = await api.init(vol.id, conn, { instance_uuid: i1 });
    const a2 = await api.init(vol.id, conn, { instance_uuid: i2 });
    assert.notEqual(a1.body.attachment_id, a2.body.attachment_id);
    assert.equal((await api.init(vol.id, other)).status, 200);
    assert.deepEqual((await sim.acl(vol.backend_uuid)).sort(), [conn.nqn as string, other.nqn as string].sort());

    const first = await api.term(vol.id, { connector: conn, attachment_id: a1.body.attachment_id });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(first.body, {
      revoked: false,
      shared: true,
      detached: [a1.body.attachment_id],
      revoked_hosts: [],
      pending: [],
    });
    assert.ok(
      (await sim.acl(vol.backend_uuid)).includes(conn.nqn as string),
      'host keeps access while another attachment of it is live',
    );

    const second = await api.term(vol.id, { connector: conn, instance_uuid: i2 });
    assert.deepEqual(second.body, {
      revoked: true,
      shared: false,
      detached: [a2.body.attachment_id],
      revoked_hosts: [conn.nqn],
      pending: [],
    });
    assert.deepEqual(await sim.acl(vol.backend_uuid), [other.nqn]);

    const again = await api.term(vol.id, { connector: conn });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { revoked: false, shared: false, detached: [], revoked_hosts: [], pending: [] });

    const a = await t.http.get(`/v1/attachments/${a1.body.attachment_id}`).set(api.auth());
    assert.equal(a.body.status, 'detached');
    assert.ok(a.body.detached_at);
  });

  it('connector null with force revokes every host; without force it is a 400', async () => {
    const vol = await createVolume({ multiattach: true });
    const h1 = connector(NATIVE);
    const h2 = connector(DM);
    await api.init(vol.id, h1);
    await api.init(vol.id, h2);
    const refused = await api.term(vol.id, { connector: null });
    assert.equal(refused.status, 400);
    assert.match(refused.body.error.message, /connector/);
    assert.equal((await sim.acl(vol.backend_uuid)).length, 2);

    const r = await api.term(vol.id, { connector: null, force: true });
    assert.equal(r.status, 200);
    assert.equal(r.body.revoked, true);
    assert.deepEqual(r.body.revoked_hosts.sort(), [h1.nqn as string, h2.nqn as string].sort());
    assert.equal(r.body.detached.length, 2);
    assert.deepEqual(await sim.acl(vol.backend_uuid), []);
    const live = await t.http.get('/v1/attachments').query({ volume_id: vol.id, status: 'attached' }).set(api.auth());
    assert.deepEqual(live.body.attachments, []);
  });

  it('lists and reads attachments with their connection info and status', async () => {
    const vol = await createVolume();
    const conn = connector(NATIVE);
    const r = await api.init(vol.id, conn);
    const id = r.body.attachment_id;
    const one = await t.http.get(`/v1/attachments/${id}`).set(api.auth());
    assert.equal(one.status, 200);
    assert.equal(one.body.volume_id, vol.id);
    assert.equal(one.body.host_nqn, conn.nqn);
    assert.equal(one.body.host, conn.host);
    assert.equal(one.body.status, 'attached');
    assert.deepEqual(one.body.connection_info, r.body.connection_info);
    const byHost = await t.http.get('/v1/attachments').query({ host_nqn: conn.nqn }).set(api.auth());
    assert.deepEqual(
      byHost.body.attachments.map((a: any) => a.id),
      [id],
    );
    const missing = await t.http.get(`/v1/attachments/${randomUUID()}`).set(api.auth());
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'attachment_not_found');
  });

  it('unknown volume: 404 on initialize and terminate', async () => {
    const id = randomUUID();
    assert.equal((await api.init(id, connector())).status, 404);
    assert.equal((await api.term(id, { connector: connector() })).status, 404);
  });
});
