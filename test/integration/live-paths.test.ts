import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connectorProperties } from '../../src/agent/connector-properties.ts';
import { Connector } from '../../src/agent/connector.ts';
import { AgentDaemon } from '../../src/agent/daemon.ts';
import { FakeHost } from '../../src/agent/host/testing/fake-host.ts';
import { HttpServiceClient } from '../../src/agent/service-client.ts';
import { refreshPortals } from '../../src/driver/refresh-portals.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { poll } from '../../src/shared/poll.ts';
import { FabricDataPlane } from '../support/fabric-data-plane.ts';
import { SimClient } from '../support/sim-client.ts';
import { startTarget, type Target } from '../support/target.ts';

/**
 * Live paths without a kernel: the simulator moves a replica, adds a node, readdresses one; the
 * service's periodic refresh (PORTALIS_PORTAL_REFRESH_MS, small here) rebuilds the connection
 * info, the agent's long poll wakes with it, connects the new portals and prunes the old ones,
 * keeping the controllers another attached volume still uses.
 */
describe('live paths: attached hosts follow the backend', () => {
  const host = new FakeHost({ clock: systemClock, hostname: 'compute-live' });
  let t: Target;
  let server: Server;
  let url: string;
  const stop = new AbortController();
  let running: Promise<void> = Promise.resolve();
  const admin = () => ({ authorization: `Bearer ${t.token}` });

  before(async () => {
    t = await startTarget({ dataPlane: new FabricDataPlane(host), portalRefreshMs: 200 });
    server = await new Promise((resolve) => {
      const s = t.app!.listen(0, '127.0.0.1', () => resolve(s));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    stop.abort();
    await running;
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await t?.close();
  });

  const attachment = async (id: string) => (await t.http.get(`/v1/attachments/${id}`).set(admin())).body;
  const ports = (a: any): number[] =>
    (a.connection_info.data.portals as [string, number, string][]).map((p) => p[1]).sort();
  const livePorts = (a: any): number[] =>
    (a.agent?.paths ?? [])
      .filter((p: any) => p.state === 'live')
      .map((p: any) => p.port)
      .sort();

  async function until(id: string, ok: (a: any) => boolean, what: string) {
    const r = await poll(
      async () => {
        const a = await attachment(id);
        return ok(a) ? { done: true as const, value: a } : { done: false as const, last: a };
      },
      { deadlineMs: 20_000, intervalMs: 50 },
    );
    assert.ok(r.done, `${what}; last seen: ${JSON.stringify(r.done ? null : r.last)}`);
    return r.value;
  }

  it('a replica move, a new node and a changed address reach the host; the other volume keeps its paths', async () => {
    const conn = await connectorProperties(host);
    const issued = await t.http.post('/v1/hosts').set(admin()).send({ nqn: conn.nqn, name: conn.host });
    const daemon = new AgentDaemon({
      connector: new Connector(host, { deviceTimeoutMs: 5000 }),
      service: new HttpServiceClient({ url, token: issued.body.token }),
      connectorProperties: () => connectorProperties(host),
      clock: systemClock,
      recheckIntervalMs: 60_000, // the long poll, not the recheck, must bring the change
      pollWaitSeconds: 30,
    });
    running = daemon.run(stop.signal);

    const attach = async () => {
      const volumeId = randomUUID();
      const vol = await t.http.post('/v1/volumes').set(admin()).send({ id: volumeId, size_gb: 1, replicas: 3 });
      assert.equal(vol.status, 201);
      const init = await t.http
        .post(`/v1/volumes/${volumeId}/initialize_connection`)
        .set(admin())
        .send({ connector: { ...conn, multipath: true } });
      assert.equal(init.status, 200, JSON.stringify(init.body));
      return { id: init.body.attachment_id as string, backend: vol.body.backend_uuid as string };
    };
    const a = await attach();
    const b = await attach();
    for (const x of [a, b])
      await until(x.id, (v) => v.health === 'optimal' && livePorts(v).length === 3, 'connected, 3 live paths');
    assert.equal(host.controllers().length, 3, 'one controller per node, shared by both volumes');
    const firstChange = (await attachment(a.id)).portals_changed_at;
    assert.ok(firstChange, 'portals_changed_at is set at attach');

    // A fourth node joins: no volume is placed there, nothing changes.
    const sim = new SimClient(t.simUrl, { jwt: t.simJwt });
    const node3 = (await sim.addNode()).body;
    assert.equal(node3.port, 4423);
    const pass = await refreshPortals(t.deps!);
    assert.deepEqual([pass.volumes, pass.attachments, pass.changed], [2, 2, 0]);

    // A's replica moves from node 2 to node 3: A follows, B keeps node 2.
    assert.equal((await sim.moveReplica(a.backend, 2, 3)).status, 200);
    const moved = await until(
      a.id,
      (v) => ports(v).join() === '4420,4421,4423' && livePorts(v).join() === '4420,4421,4423' && v.health === 'optimal',
      'A served through nodes 0, 1, 3 only',
    );
    assert.ok(Date.parse(moved.portals_changed_at) > Date.parse(firstChange), 'portals_changed_at moved');
    const bNow = await attachment(b.id);
    assert.deepEqual(ports(bNow), [4420, 4421, 4422]);
    assert.deepEqual(livePorts(bNow), [4420, 4421, 4422], "B's path through node 2 never dropped");
    assert.equal(host.controllers().length, 4, 'the node-2 controller stays for B; node 3 has one');

    // Node 1 is readdressed: both volumes follow; the old controller goes, the new one serves both.
    assert.equal((await sim.setNodeAddress(1, '127.0.0.1', 4431)).status, 200);
    await until(a.id, (v) => livePorts(v).join() === '4420,4423,4431' && v.health === 'optimal', 'A on 4431');
    await until(b.id, (v) => livePorts(v).join() === '4420,4422,4431' && v.health === 'optimal', 'B on 4431');
    await poll(
      async () =>
        host.controllers().length === 4 ? { done: true as const, value: true } : { done: false as const, last: null },
      { deadlineMs: 5000, intervalMs: 20 },
    );
    assert.equal(host.controllers().length, 4, 'no controller is left to the old address');
  });
});
