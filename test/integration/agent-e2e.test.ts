import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeHost } from '../../src/agent/host/testing/fake-host.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { GiB } from '../../src/shared/units.ts';
import { type AgentStack, startAgentStack } from '../support/agent-stack.ts';
import { SimClient } from '../support/sim-client.ts';

/**
 * The whole chain without a kernel: orchestrator API → service → simulator, whose data plane is
 * the fake host's target fabric, and the real agent daemon talking to the service over HTTP.
 */
describe('service, simulator and agent together', () => {
  const host = new FakeHost({ clock: systemClock, hostname: 'compute-e2e' });
  let stack: AgentStack;
  before(async () => {
    stack = await startAgentStack(host, { untilDeadlineMs: 15_000 });
  });
  after(async () => {
    await stack?.close();
  });

  it('attaches with every path, follows a node failure and recovery, and detaches', async () => {
    const { t, admin, until } = stack;
    const conn = await stack.startAgent({ recheckIntervalMs: 100, pollWaitSeconds: 5 });
    assert.equal(conn.nvme_native_multipath, true);
    const { id, volumeId, backend } = await stack.attach(conn);

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
    const v = state.volumes.find((x: { uuid: string }) => x.uuid === backend);
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
