import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeHost } from '../../src/agent/host/testing/fake-host.ts';
import { refreshPortals } from '../../src/driver/refresh-portals.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { poll } from '../../src/shared/poll.ts';
import { type AgentStack, startAgentStack } from '../support/agent-stack.ts';
import { SimClient } from '../support/sim-client.ts';

/**
 * Live paths without a kernel: the simulator moves a replica, adds a node, readdresses one; the
 * service's periodic refresh (PORTALIS_PORTAL_REFRESH_MS, small here) rebuilds the connection
 * info, the agent's long poll wakes with it, connects the new portals and prunes the old ones,
 * keeping the controllers another attached volume still uses.
 */
describe('live paths: attached hosts follow the backend', () => {
  const host = new FakeHost({ clock: systemClock, hostname: 'compute-live' });
  let stack: AgentStack;
  before(async () => {
    stack = await startAgentStack(host, { untilDeadlineMs: 20_000, portalRefreshMs: 200 });
  });
  after(async () => {
    await stack?.close();
  });

  const ports = (a: any): number[] =>
    (a.connection_info.data.portals as [string, number, string][]).map((p) => p[1]).sort();
  const livePorts = (a: any): number[] =>
    (a.agent?.paths ?? [])
      .filter((p: any) => p.state === 'live')
      .map((p: any) => p.port)
      .sort();

  it('a replica move, a new node and a changed address reach the host; the other volume keeps its paths', async () => {
    const { t, attachment, until } = stack;
    // The long poll, not the recheck, must bring the change.
    const conn = await stack.startAgent({ recheckIntervalMs: 60_000, pollWaitSeconds: 30 });
    const attach = () => stack.attach(conn);
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
