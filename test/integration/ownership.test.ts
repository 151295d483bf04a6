import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { refreshPortals } from '../../src/driver/refresh-portals.ts';
import { TsMigrationSource, migrateLatest } from '../../src/store/migrations.ts';
import { createTestDatabase } from '../support/db.ts';
import { type LifecycleClient, startSuite } from '../support/lifecycle.ts';
import type { SimClient } from '../support/sim-client.ts';
import { AGENT, NATIVE, type Target, connector } from '../support/target.ts';

/**
 * Who connects an attachment (docs/DECISIONS.md): decided by the service from the connector at
 * the first initialize_connection, kept across repeats, shown to the operator and the agent; a
 * host-connected attachment's terminate does not wait for the agent, and its health says when
 * the host let go of it.
 */
describe('who connects an attachment', () => {
  let t: Target;
  let sim: SimClient;
  let api: LifecycleClient;
  before(async () => ({ t, sim, api } = await startSuite()));
  after(async () => t?.close());

  /** Registers the host's agent; its token's calls. */
  async function agentOf(conn: Record<string, unknown>) {
    const issued = await t.http.post('/v1/hosts').set(api.auth()).send({ nqn: conn.nqn });
    const auth = { authorization: `Bearer ${issued.body.token}` };
    assert.equal((await t.http.post('/v1/agent/register').set(auth).send({ connector: conn })).status, 200);
    return {
      list: async () => (await t.http.get('/v1/agent/attachments').set(auth)).body,
      report: (id: string, state: string, health: string | null = null) =>
        t.http
          .put(`/v1/agent/attachments/${id}/report`)
          .set(auth)
          .send({ state, device_path: null, size_bytes: null, health, paths: [], error: null }),
    };
  }

  it("os-brick's connector is host-connected, the agent's is agent-connected; both shown to operator and agent", async () => {
    const vol = await api.created({ replicas: 3, multiattach: true });
    const osBrick = connector(NATIVE);
    const agent = await agentOf(osBrick);
    const host = await api.init(vol.id, osBrick);
    assert.equal(host.status, 200);
    const a = await api.attachment(host.body.attachment_id);
    assert.equal(a.connected_by, 'host');
    assert.deepEqual(a.host_portals, host.body.connection_info.data.portals, 'the portals the host was handed');

    const own = connector({ ...NATIVE, ...AGENT });
    const mine = await api.attachment((await api.init(vol.id, own)).body.attachment_id);
    assert.equal(mine.connected_by, 'agent');
    assert.equal(mine.host_portals, null);

    const listed = (await agent.list()).attachments;
    assert.deepEqual(
      listed.map((x: any) => [x.id, x.connected_by, x.host_portals]),
      [[a.id, 'host', a.host_portals]],
    );
    const cell = (await t.http.get('/v1/health/multipath').query({ volume_id: vol.id }).set(api.auth())).body.volumes[0]
      .hosts;
    assert.deepEqual(cell.map((c: any) => c.connected_by).sort(), ['agent', 'host']);

    // A repeat keeps it, whatever the connector says this time.
    const again = await api.init(vol.id, { ...osBrick, ...AGENT });
    assert.equal(again.body.attachment_id, a.id);
    assert.equal((await api.attachment(a.id)).connected_by, 'host');
  });

  it('the portal refresh moves connection_info, not host_portals; a repeated initialize hands the host the new ones', async () => {
    const vol = await api.created({ replicas: 2 });
    const osBrick = connector(NATIVE);
    const agent = await agentOf(osBrick);
    const first = await api.init(vol.id, osBrick);
    const id = first.body.attachment_id;
    const handed: [string, number, string][] = first.body.connection_info.data.portals;
    // The simulator's node i listens on 4420 + i (three nodes): move the last replica to the free one.
    const from = handed[handed.length - 1]![1] - 4420;
    const to = [0, 1, 2].find((i) => !handed.some((p) => p[1] === 4420 + i))!;
    assert.equal((await sim.moveReplica(vol.backend_uuid, from, to)).status, 200);
    await refreshPortals(t.deps!);
    const moved = await api.attachment(id);
    assert.notDeepEqual(moved.connection_info.data.portals, handed, 'the service follows the backend');
    assert.deepEqual(moved.host_portals, handed, 'the host still has what it was handed');
    const before = (await agent.list()).version;

    const repeat = await api.init(vol.id, osBrick);
    const now = await api.attachment(id);
    assert.deepEqual(now.host_portals, repeat.body.connection_info.data.portals);
    assert.ok((await agent.list()).version > before, "the host's agent is woken for the new host_portals");
  });

  it("a host-connected attachment's terminate revokes at once, also on a host with a registered agent", async () => {
    const vol = await api.created();
    const osBrick = connector(NATIVE);
    const agent = await agentOf(osBrick);
    const id = (await api.init(vol.id, osBrick)).body.attachment_id;
    assert.equal((await agent.report(id, 'connected', 'optimal')).status, 200);
    const r = await api.term(vol.id, { connector: osBrick });
    assert.deepEqual(r.body, {
      revoked: true,
      shared: false,
      detached: [id],
      revoked_hosts: [osBrick.nqn],
      pending: [],
    });
    assert.deepEqual(await sim.acl(vol.backend_uuid), []);
  });

  it('awaiting_host is pending; host_detached is detached, in the attachment, the matrix and its counts', async () => {
    const vol = await api.created();
    const osBrick = connector(NATIVE);
    const agent = await agentOf(osBrick);
    const id = (await api.init(vol.id, osBrick)).body.attachment_id;
    const matrix = async () =>
      (await t.http.get('/v1/health/multipath').query({ volume_id: vol.id }).set(api.auth())).body;

    assert.equal((await agent.report(id, 'awaiting_host')).status, 200);
    assert.equal((await matrix()).volumes[0].hosts[0].health, 'pending');

    assert.equal((await agent.report(id, 'host_detached')).status, 200);
    const m = await matrix();
    assert.equal(m.volumes[0].hosts[0].health, 'detached');
    assert.equal(m.volumes[0].health, 'detached');
    assert.equal(m.summary.detached, 1);
    assert.equal(m.volume_summary.detached, 1);
    assert.equal((await api.attachment(id)).health, 'detached');
    const only = await t.http
      .get('/v1/health/multipath')
      .query({ volume_id: vol.id, health: 'detached' })
      .set(api.auth());
    assert.equal(only.body.volumes.length, 1);
  });

  it('the migration gives existing rows the same rule: dm_multipath in the connector → agent, else host', async () => {
    const { db, drop } = await createTestDatabase();
    try {
      const source = new TsMigrationSource();
      // That migration undone by name: later migrations (periodic_jobs) do not touch attachments.
      await db.migrate.down({ migrationSource: source, name: '20261207000000_attachment_connected_by.ts' });
      const volumeId = randomUUID();
      await db('volumes').insert({
        id: volumeId,
        name: `volume-${volumeId}`,
        size_gb: 1,
        replicas: 1,
        status: 'available',
      });
      const portals = [['10.0.0.1', 4420, 'tcp']];
      const row = (c: Record<string, unknown>) => ({
        id: randomUUID(),
        volume_id: volumeId,
        host_nqn: c.nqn,
        host_name: c.host,
        connector: JSON.stringify(c),
        multipath_mode: 'native',
        status: 'attached',
        connection_info: JSON.stringify({ driver_volume_type: 'nvmeof', data: { portals } }),
      });
      const [osBrick, own] = [row(connector(NATIVE)), row(connector({ ...NATIVE, ...AGENT }))];
      await db('attachments').insert([osBrick, own]);
      await migrateLatest(db);
      const rows = await db('attachments').select('id', 'connected_by', 'host_portals');
      const by = Object.fromEntries(rows.map((r: any) => [r.id, [r.connected_by, r.host_portals]]));
      assert.deepEqual(by[osBrick.id], ['host', portals]);
      assert.deepEqual(by[own.id], ['agent', null]);

      // A replica of the previous release inserts without the column: the same rule, by trigger.
      const [oldOsBrick, oldOwn] = [row(connector(NATIVE)), row(connector({ ...NATIVE, ...AGENT }))];
      await db('attachments').insert([oldOsBrick, oldOwn]);
      const later = await db('attachments').whereIn('id', [oldOsBrick.id, oldOwn.id]).select('id', 'connected_by');
      const laterBy = Object.fromEntries(later.map((r: any) => [r.id, r.connected_by]));
      assert.deepEqual([laterBy[oldOsBrick.id], laterBy[oldOwn.id]], ['host', 'agent']);
    } finally {
      await drop();
    }
  });
});
