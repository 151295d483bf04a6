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
import { systemClock } from '../../src/shared/clock.ts';
import { poll } from '../../src/shared/poll.ts';
import { FabricDataPlane } from '../support/fabric-data-plane.ts';
import { startTarget, type Target } from '../support/target.ts';
import { SimClient } from '../support/sim-client.ts';
import { GiB } from '../../src/shared/units.ts';

/**
 * The whole chain without a kernel: orchestrator API → service → simulator, whose data plane is
 * the fake host's target fabric, and the real agent daemon talking to the service over HTTP.
 */
describe('service, simulator and agent together', () => {
  const host = new FakeHost({ clock: systemClock, hostname: 'compute-e2e' });
  let t: Target;
  let server: Server;
  let url: string;
  let daemon: AgentDaemon;
  const stop = new AbortController();
  let running: Promise<void>;
  const admin = () => ({ authorization: `Bearer ${t.token}` });

  before(async () => {
    t = await startTarget({ dataPlane: new FabricDataPlane(host) });
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

  async function attachment(id: string) {
    return (await t.http.get(`/v1/attachments/${id}`).set(admin())).body;
  }

  /** Waits until the attachment satisfies `ok`, with a deadline. */
  async function until(id: string, ok: (a: any) => boolean, what: string) {
    const r = await poll(
      async () => {
        const a = await attachment(id);
        return ok(a) ? { done: true as const, value: a } : { done: false as const, last: a };
      },
      { deadlineMs: 15_000, intervalMs: 50 },
    );
    assert.ok(r.done, `${what}; last seen: ${JSON.stringify(r.done ? null : r.last)}`);
    return r.value;
  }

  it('attaches with every path, follows a node failure and recovery, and detaches', async () => {
    const conn = await connectorProperties(host);
    assert.equal(conn.nvme_native_multipath, true);
    const issued = await t.http.post('/v1/hosts').set(admin()).send({ nqn: conn.nqn, name: conn.host });
    daemon = new AgentDaemon({
      connector: new Connector(host, { deviceTimeoutMs: 5000 }),
      service: new HttpServiceClient({ url, token: issued.body.token }),
      connectorProperties: () => connectorProperties(host),
      clock: systemClock,
      recheckIntervalMs: 100,
      pollWaitSeconds: 5,
    });
    running = daemon.run(stop.signal);

    const volumeId = randomUUID();
    const vol = await t.http.post('/v1/volumes').set(admin()).send({ id: volumeId, size_gb: 1, replicas: 3 });
    assert.equal(vol.status, 201);
    const init = await t.http
      .post(`/v1/volumes/${volumeId}/initialize_connection`)
      .set(admin())
      .send({ connector: { ...conn, multipath: true } });
    assert.equal(init.status, 200, JSON.stringify(init.body));
    const id = init.body.attachment_id;

    const connected = await until(
      id,
      (a) => a.agent?.state === 'connected' && a.health === 'optimal',
      'connected and optimal',
    );
    assert.equal(connected.agent.paths.length, 3);
    assert.match(connected.agent.device_path, /^\/dev\/nvme\d+n\d+$/);
    assert.equal(connected.agent.size_bytes, GiB);
    assert.equal(host.controllers().length, 3);

    // The optimized node fails: one path down, the volume still served by the others.
    const sim = new SimClient(t.simUrl, { jwt: t.simJwt });
    const state = await sim.state();
    const v = state.volumes.find((x: { uuid: string }) => x.uuid === vol.body.backend_uuid);
    const optimizedNode = Object.keys(v.ana).find((n) => v.ana[n] === 'optimized')!;
    await sim.node(optimizedNode, false);
    const degraded = await until(id, (a) => a.health === 'degraded', 'degraded after the node failed');
    assert.equal(degraded.agent.paths.filter((p: { state: string }) => p.state === 'live').length, 2);
    assert.ok(
      degraded.agent.paths.some((p: { ana_state: string }) => p.ana_state === 'optimized'),
      'the optimized path moved to a survivor',
    );

    await sim.node(optimizedNode, true);
    await until(
      id,
      (a) => a.health === 'optimal' && a.agent.paths.every((p: { state: string }) => p.state === 'live'),
      'optimal after recovery',
    );

    const term = await t.http
      .post(`/v1/volumes/${volumeId}/terminate_connection`)
      .set(admin())
      .send({ connector: conn });
    assert.equal(term.status, 200);
    await until(id, (a) => a.agent?.state === 'disconnected', 'disconnected by the agent');
    assert.deepEqual(host.controllers(), []);
  });
});
