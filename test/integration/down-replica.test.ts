import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type LifecycleClient, startSuite } from '../support/lifecycle.ts';
import { connector, DM, NATIVE, type Target } from '../support/target.ts';
import type { SimClient } from '../support/sim-client.ts';

/**
 * A host attached while a replica's node is down still gets that node's portal (last), so that
 * it connects it once the node is back instead of staying with fewer paths for good.
 * In-process only: it takes a node of the simulator down.
 */
describe('attach while a replica node is down', () => {
  let t: Target;
  let sim: SimClient;
  let api: LifecycleClient;
  before(async () => ({ t, sim, api } = await startSuite()));
  after(async () => t?.close());

  it('lists every replica node, the down one last; single the same order; all down is 503 no_path', async () => {
    const id = randomUUID();
    const vol = (await api.create({ id, replicas: 3, multiattach: true })).body;
    const state = await sim.state();
    const v = state.volumes.find((x: { uuid: string }) => x.uuid === vol.backend_uuid);
    const endpoint = (node: string) => state.nodes.find((n: { uuid: string }) => n.uuid === node).nvmeEndpoint;
    const optimized = Object.keys(v.ana).find((n) => v.ana[n] === 'optimized')!;
    await sim.node(optimized, false);

    const native = await api.init(id, connector(NATIVE));
    assert.equal(native.status, 200);
    const portals = native.body.connection_info.data.portals.map((p: [string, number]) => `${p[0]}:${p[1]}`);
    assert.equal(portals.length, 3);
    assert.equal(portals[2], endpoint(optimized), 'the down node is listed last');
    const dm = await api.init(id, connector(DM));
    assert.equal(dm.body.connection_info.data.dm_replicas.length, 3);
    const single = await api.init(id, connector());
    const singlePortals = single.body.connection_info.data.portals.map((p: [string, number]) => `${p[0]}:${p[1]}`);
    assert.equal(singlePortals.length, 3, 'single lists every replica too');
    assert.notEqual(singlePortals[0], endpoint(optimized), 'a working portal first');
    assert.equal(singlePortals[2], endpoint(optimized), 'the down node is listed last');

    for (const n of v.replicas as string[]) await sim.node(n, false);
    const none = await api.init(id, connector(NATIVE));
    assert.equal(none.status, 503);
    assert.equal(none.body.error.code, 'no_path');
    for (const n of v.replicas as string[]) await sim.node(n, true);
  });
});
