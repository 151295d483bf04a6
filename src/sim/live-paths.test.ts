import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { MemoryDataPlane } from './memory-data-plane.ts';
import { type SimServer, startSimServer } from './server.ts';
import { availableVolume, call, SimClient } from '../../test/support/sim-client.ts';

const VOLS = '/api/v2/projects/default/volumes';

let sim: SimServer;
let admin: SimClient;
let dp: MemoryDataPlane;
const api = (method: string, path: string, body?: unknown) => call(sim.url, method, path, body);

async function create(name: string, replicaCount: number): Promise<string> {
  const r = await api('POST', VOLS, { name, size: '1 gib', replicaCount });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  await availableVolume(sim.url, r.body.UUID);
  return r.body.UUID as string;
}

before(async () => {
  dp = new MemoryDataPlane();
  sim = await startSimServer({ port: 0, dataPlane: dp });
  admin = new SimClient(sim.url);
});
after(() => sim.close());
beforeEach(async () => {
  await admin.reset();
  dp.calls.length = 0;
});

describe('nodes join and leave', () => {
  test('POST /sim/v1/nodes adds node 3 on the next port; LightOS lists it; the data plane is told', async () => {
    const r = await admin.addNode();
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.index, 3);
    assert.equal(r.body.address, '127.0.0.1');
    assert.equal(r.body.port, 4423);
    const nodes = (await api('GET', '/api/v2/nodes')).body.nodes;
    assert.deepEqual(
      nodes.map((n: any) => n.nvmeEndpoint),
      ['127.0.0.1:4420', '127.0.0.1:4421', '127.0.0.1:4422', '127.0.0.1:4423'],
    );
    assert.equal(nodes[3].UUID, r.body.uuid);
    await sim.cluster.settled();
    assert.deepEqual(
      dp.callsOf('addNode').map((c) => c.node),
      [{ nodeId: r.body.uuid, index: 3, address: '127.0.0.1', port: 4423 }],
    );
  });

  test('a node with an explicit endpoint; a taken endpoint is a 409, a bad one a 400', async () => {
    const r = await admin.addNode({ address: '::1', port: 5000 });
    assert.equal(r.status, 201);
    assert.equal((await api('GET', `/api/v2/nodes/${r.body.uuid}`)).body.nvmeEndpoint, '[::1]:5000');
    assert.equal((await admin.addNode({ address: '::1', port: 5000 })).status, 409);
    assert.equal((await admin.addNode({ address: 'not-an-ip', port: 5001 })).status, 400);
    assert.equal((await admin.addNode({ address: '127.0.0.1', port: 70000 })).status, 400);
    assert.equal((await call(sim.url, 'POST', '/sim/v1/nodes', '[1]')).status, 400);
  });

  test('DELETE removes a node without replicas (by index or uuid); one holding a replica is a 409', async () => {
    const vol = await create('held', 3);
    assert.equal((await admin.removeNode(1)).status, 409, 'node 1 holds a replica');
    const added = (await admin.addNode()).body;
    const r = await admin.removeNode(added.uuid);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await api('GET', `/api/v2/nodes/${added.uuid}`)).status, 404);
    assert.equal((await admin.removeNode(added.uuid)).status, 404);
    await sim.cluster.settled();
    assert.deepEqual(dp.callsOf('removeNode'), [{ op: 'removeNode', nodeId: added.uuid }]);
    // The volume's ANA view no longer names the removed node.
    const v = (await admin.state()).volumes.find((x: any) => x.uuid === vol);
    assert.equal(Object.keys(v.ana).length, 3);
  });

  test('reset drops added nodes and restores changed addresses', async () => {
    await admin.addNode();
    assert.equal((await admin.setNodeAddress(0, '127.0.0.2', 4430)).status, 200);
    await admin.reset();
    const nodes = (await api('GET', '/api/v2/nodes')).body.nodes;
    assert.deepEqual(
      nodes.map((n: any) => n.nvmeEndpoint),
      ['127.0.0.1:4420', '127.0.0.1:4421', '127.0.0.1:4422'],
    );
  });
});

describe('replica moves', () => {
  test('a non-primary replica moves: the new node serves non-optimized first, then the old one stops', async () => {
    const vol = await create('mv', 2);
    const before = (await admin.state()).volumes.find((x: any) => x.uuid === vol);
    const from = before.replicas.find((r: string) => r !== before.primaryNodeUUID);
    const to = (await admin.state()).nodes.find((n: any) => !before.replicas.includes(n.uuid)).uuid;
    dp.calls.length = 0;
    const r = await admin.moveReplica(vol, from, to);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(
      r.body.replicas,
      before.replicas.map((x: string) => (x === from ? to : x)),
    );
    assert.equal(r.body.primaryNodeUUID, before.primaryNodeUUID);
    await sim.cluster.settled();
    const steps = dp.callsOf('setAna').map((c) => c.ana);
    assert.equal(steps.length, 2);
    assert.equal(steps[0]![to], 'non-optimized', 'first the new node serves');
    assert.equal(steps[0]![from], 'non-optimized', 'while the old one still does');
    assert.equal(steps[1]![to], 'non-optimized');
    assert.equal(steps[1]![from], 'inaccessible', 'then the old one stops');
    // LightOS's view: the placement names the new node.
    const lv = (await api('GET', `${VOLS}/${vol}`)).body;
    assert.deepEqual(lv.replicaPlacement.map((p: any) => p.nodeUUID).sort(), [before.primaryNodeUUID, to].sort());
  });

  test('the primary replica moves: the new node ends optimized, never two optimized at once', async () => {
    const vol = await create('mvp', 3);
    const added = (await admin.addNode()).body;
    const before = (await admin.state()).volumes.find((x: any) => x.uuid === vol);
    dp.calls.length = 0;
    const r = await admin.moveReplica(vol, before.primaryNodeUUID, added.index);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.primaryNodeUUID, added.uuid);
    await sim.cluster.settled();
    const steps = dp.callsOf('setAna').map((c) => c.ana);
    assert.equal(steps[0]![added.uuid], 'non-optimized');
    assert.equal(steps[0]![before.primaryNodeUUID], 'optimized');
    assert.equal(steps[1]![added.uuid], 'optimized');
    assert.equal(steps[1]![before.primaryNodeUUID], 'inaccessible');
    for (const s of steps) assert.equal(Object.values(s).filter((x) => x === 'optimized').length, 1);
    const lv = (await api('GET', `${VOLS}/${vol}`)).body;
    assert.deepEqual(
      lv.replicaPlacement.find((p: any) => p.nodeUUID === added.uuid),
      {
        nodeUUID: added.uuid,
        anaState: 'optimized',
      },
    );
  });

  test('bad moves are refused: from without a replica, to with one, unknown nodes and volumes', async () => {
    const vol = await create('bad', 2);
    const st = (await admin.state()).volumes.find((x: any) => x.uuid === vol);
    const free = (await admin.state()).nodes.find((n: any) => !st.replicas.includes(n.uuid)).uuid;
    assert.equal((await admin.moveReplica(vol, free, st.replicas[0])).status, 409);
    assert.equal((await admin.moveReplica(vol, st.replicas[0], st.replicas[1])).status, 409);
    assert.equal((await admin.moveReplica(vol, 9, free)).status, 404);
    assert.equal((await admin.moveReplica('00000000-0000-4000-8000-000000000000', 0, 1)).status, 404);
    assert.equal(
      (await call(sim.url, 'POST', `/sim/v1/volumes/${vol}/replicas/move`, { from: true, to: 1 })).status,
      400,
    );
  });
});

describe('node addresses', () => {
  test('PUT address changes the endpoint LightOS reports and tells the data plane', async () => {
    const r = await admin.setNodeAddress(2, '127.0.0.5', 4499);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const nodes = (await api('GET', '/api/v2/nodes')).body.nodes;
    assert.equal(nodes[2].nvmeEndpoint, '127.0.0.5:4499');
    await sim.cluster.settled();
    assert.deepEqual(
      dp.callsOf('setNodeAddress').map((c) => c.node),
      [{ nodeId: nodes[2].UUID, index: 2, address: '127.0.0.5', port: 4499 }],
    );
    assert.equal((await admin.setNodeAddress(1, '127.0.0.5', 4499)).status, 409, 'taken by node 2');
    assert.equal((await admin.setNodeAddress(1, '127.0.0.1', 0)).status, 400);
    assert.equal((await admin.setNodeAddress(7, '127.0.0.1', 4000)).status, 404);
  });
});
