import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { MemoryDataPlane } from './memory-data-plane.ts';
import { type SimServer, startSimServer } from './server.ts';
import { availableVolume, call, SimClient, startTestSim, waitUntil } from '../../test/support/sim-client.ts';
import { GiB } from '../shared/units.ts';

const VOLS = '/api/v2/projects/default/volumes';
const HOST = 'nqn.2014-08.org.nvmexpress:uuid:33333333-3333-4333-8333-333333333333';

let sim: SimServer;
let admin: SimClient;
let dp: MemoryDataPlane;
const api = (method: string, path: string, body?: unknown) => call(sim.url, method, path, body);

async function create(name: string, replicaCount: number, extra: Record<string, unknown> = {}) {
  const r = await api('POST', VOLS, { name, size: '1 gib', replicaCount, ...extra });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.UUID as string;
}

async function stateOf(uuid: string) {
  return (await admin.state()).volumes.find((v: any) => v.uuid === uuid);
}

before(async () => ({ sim, dp, admin } = await startTestSim()));
after(() => sim.close());
beforeEach(() => admin.reset());

describe('placement and ANA', () => {
  test('replicas spread evenly and primaries land on different nodes', async () => {
    const uuids = [await create('p1', 2), await create('p2', 2), await create('p3', 2)];
    const state = await admin.state();
    const load = new Map<string, number>();
    for (const v of state.volumes) for (const r of v.replicas) load.set(r, (load.get(r) ?? 0) + 1);
    assert.deepEqual([...load.values()], [2, 2, 2], 'each of the 3 nodes holds 2 of the 6 replicas');
    const primaries = new Set(state.volumes.map((v: any) => v.primaryNodeUUID));
    assert.equal(primaries.size, 3);
    for (const u of uuids) {
      const v = state.volumes.find((x: any) => x.uuid === u);
      assert.equal(new Set(v.replicas).size, 2, 'replicas on distinct nodes');
    }
  });

  test('primary node optimized, other replica non-optimized, the rest inaccessible', async () => {
    const uuid = await create('ana', 2);
    const v = await stateOf(uuid);
    const other = v.replicas.find((r: string) => r !== v.primaryNodeUUID);
    const outside = sim.cluster.nodes.find((n) => !v.replicas.includes(n.uuid))!.uuid;
    assert.equal(v.ana[v.primaryNodeUUID], 'optimized');
    assert.equal(v.ana[other], 'non-optimized');
    assert.equal(v.ana[outside], 'inaccessible');
    const wire = (await api('GET', `${VOLS}/${uuid}`)).body;
    assert.deepEqual(wire.replicaPlacement, [
      { nodeUUID: v.replicas[0], anaState: v.ana[v.replicas[0]] },
      { nodeUUID: v.replicas[1], anaState: v.ana[v.replicas[1]] },
    ]);
  });

  test('node down moves the optimized path to the surviving replica; back up it stays non-optimized', async () => {
    const uuid = await create('fo', 2);
    await availableVolume(sim.url, uuid);
    const before = await stateOf(uuid);
    const primary = sim.cluster.nodes.find((n) => n.uuid === before.primaryNodeUUID)!;
    const survivor = before.replicas.find((r: string) => r !== primary.uuid);

    const down = await admin.node(primary.index, false);
    assert.equal(down.status, 200);
    assert.equal(down.body.up, false);
    const during = await stateOf(uuid);
    assert.equal(during.primaryNodeUUID, survivor);
    assert.equal(during.ana[survivor], 'optimized');
    assert.equal(during.ana[primary.uuid], 'inaccessible');
    const wire = (await api('GET', `${VOLS}/${uuid}`)).body;
    assert.equal(wire.protectionState, 'Degraded');
    assert.equal(wire.replicaPlacement.find((p: any) => p.nodeUUID === primary.uuid).anaState, 'inaccessible');
    const nodes = (await api('GET', '/api/v2/nodes')).body.nodes;
    assert.equal(nodes[primary.index].state, 'Inactive');

    const up = await admin.node(primary.uuid, true); // by UUID this time
    assert.equal(up.body.up, true);
    const afterUp = await stateOf(uuid);
    assert.equal(afterUp.primaryNodeUUID, survivor, 'no automatic failback');
    assert.equal(afterUp.ana[primary.uuid], 'non-optimized');
    assert.equal((await api('GET', `${VOLS}/${uuid}`)).body.protectionState, 'FullyProtected');
  });

  test('with every replica node down there is no optimized path', async () => {
    const uuid = await create('dark', 1);
    const v = await stateOf(uuid);
    const node = sim.cluster.nodes.find((n) => n.uuid === v.replicas[0])!;
    await admin.node(node.index, false);
    const dark = await stateOf(uuid);
    assert.ok(Object.values(dark.ana).every((s) => s === 'inaccessible'));
    assert.equal((await api('GET', `${VOLS}/${uuid}`)).body.protectionState, 'NotAvailable');
  });

  test('an unknown node is a 404 on the admin API', async () => {
    assert.equal((await admin.request('POST', '/sim/v1/nodes/no-such-node/down')).status, 404);
    assert.equal((await admin.request('POST', '/sim/v1/nodes/7/down')).status, 404);
  });
});

describe('data plane', () => {
  test('is told about namespaces, ACL hosts, resizes, ANA changes, node state and removal', async () => {
    const uuid = await create('dp', 2, { acl: { values: [HOST] } });
    const vol = await availableVolume(sim.url, uuid);
    await sim.cluster.settled();
    const ns = dp.namespaces.get(uuid)!;
    assert.equal(ns.nsid, vol.nsid);
    assert.equal(ns.sizeBytes, GiB);
    assert.deepEqual(ns.ana, (await stateOf(uuid)).ana);
    assert.deepEqual(dp.allowedHosts, [HOST]);

    const v = await stateOf(uuid);
    const primary = sim.cluster.nodes.find((n) => n.uuid === v.primaryNodeUUID)!;
    const before = dp.calls.length;
    await admin.node(primary.index, false);
    await sim.cluster.settled();
    const ops = dp.calls.slice(before).map((c) => c.op);
    assert.deepEqual(ops, ['setNodeUp', 'setAna'], 'the port goes first, then the survivors ANA');
    assert.equal(dp.nodeUp.get(primary.uuid), false);
    assert.equal(dp.namespaces.get(uuid)!.ana[primary.uuid], 'inaccessible');

    await admin.node(primary.index, true);
    await sim.cluster.settled();
    assert.deepEqual(
      dp.calls.slice(-2).map((c) => c.op),
      ['setAna', 'setNodeUp'],
      'ANA is set before the port serves again',
    );

    await api('DELETE', `${VOLS}/${uuid}`);
    await waitUntil(async () => (await api('GET', `${VOLS}/${uuid}`)).status === 404);
    await sim.cluster.settled();
    assert.equal(dp.namespaces.has(uuid), false);
    assert.deepEqual(dp.allowedHosts, []);
    assert.equal(dp.kind, (await admin.state()).dataPlane.kind);
  });

  test('reset drops every volume and brings every node up', async () => {
    const uuid = await create('r', 1);
    await availableVolume(sim.url, uuid);
    await admin.node(0, false);
    await admin.reset();
    await sim.cluster.settled();
    const s = await admin.state();
    assert.deepEqual(s.volumes, []);
    assert.ok(s.nodes.every((n: any) => n.up));
    assert.equal(dp.namespaces.size, 0);
  });
});

describe('lifecycle faults', () => {
  test('stateDelayMs keeps a volume Creating until it passes', async () => {
    await admin.faults({ stateDelayMs: 150 });
    const started = performance.now();
    const uuid = await create('slow', 1);
    assert.equal((await api('GET', `${VOLS}/${uuid}`)).body.state, 'Creating');
    await availableVolume(sim.url, uuid);
    assert.ok(performance.now() - started >= 140, 'stayed Creating for the configured delay');
  });

  test('failCreate makes the next created volume end Failed, and only that one', async () => {
    await admin.faults({ failCreate: true });
    const bad = await create('bad', 1);
    await waitUntil(async () => (await api('GET', `${VOLS}/${bad}`)).body.state === 'Failed');
    const good = await create('good', 1);
    assert.equal((await availableVolume(sim.url, good)).state, 'Available');
    await sim.cluster.settled();
    assert.equal(dp.namespaces.has(bad), false, 'a Failed volume is never exposed');
  });

  test('a Failed volume refuses updates with 400 (FailedPrecondition)', async () => {
    await admin.faults({ failCreate: true });
    const bad = await create('bad-put', 1);
    await waitUntil(async () => (await api('GET', `${VOLS}/${bad}`)).body.state === 'Failed');
    const r = await api('PUT', `${VOLS}/${bad}`, { acl: { values: [HOST] } });
    assert.equal(r.status, 400);
    assert.match(r.body.message, /is Failed/);
  });

  test('nsids are never reused, even across delete and reset', async () => {
    const a = await availableVolume(sim.url, await create('n1', 1));
    await api('DELETE', `${VOLS}/${a.UUID}`);
    await admin.reset();
    const b = await availableVolume(sim.url, await create('n2', 1));
    assert.ok(b.nsid > a.nsid);
  });
});

describe('data plane capacity and failures', () => {
  test('a create beyond the plane capacity is refused with a 400, and a delete frees the slot', async () => {
    const small = await startSimServer({ port: 0, dataPlane: new MemoryDataPlane({ maxNamespaces: 2 }) });
    try {
      const post = (name: string) => call(small.url, 'POST', VOLS, { name, size: '1 gib', replicaCount: 1 });
      const a = (await post('c1')).body.UUID;
      assert.equal((await post('c2')).status, 200);
      const refused = await post('c3');
      assert.equal(refused.status, 400);
      assert.match(refused.body.message, /holds at most 2 volumes/);
      assert.equal((await call(small.url, 'GET', `${VOLS}?name=c3`)).status, 404, 'nothing half-created');
      assert.equal((await new SimClient(small.url).state()).dataPlane.maxNamespaces, 2);

      small.cluster.stateDelayMs = 60_000;
      await call(small.url, 'DELETE', `${VOLS}/${a}`);
      assert.equal((await call(small.url, 'GET', `${VOLS}/${a}`)).body.state, 'Deleting');
      assert.equal((await post('c3')).status, 400, 'a Deleting volume still holds its namespace');
      small.cluster.reset();
      small.cluster.stateDelayMs = 0;
      const b = (await post('c4')).body.UUID;
      assert.equal((await post('c5')).status, 200);
      await call(small.url, 'DELETE', `${VOLS}/${b}`);
      await waitUntil(async () => (await call(small.url, 'GET', `${VOLS}/${b}`)).status === 404);
      assert.equal((await post('c6')).status, 200, 'a deleted volume frees its slot');
    } finally {
      await small.close();
    }
  });

  test('an addNamespace that fails leaves the volume Failed, removes what it left, and frees the slot', async () => {
    const plane = new MemoryDataPlane({ maxNamespaces: 1 });
    let failNext = true;
    const add = plane.addNamespace.bind(plane);
    plane.addNamespace = async (ns) => {
      await add(ns); // something was set up before it failed
      if (failNext) {
        failNext = false;
        throw new Error('configfs said no');
      }
    };
    const own = await startSimServer({ port: 0, dataPlane: plane });
    try {
      const bad = (await call(own.url, 'POST', VOLS, { name: 'f1', size: '1 gib', replicaCount: 1 })).body.UUID;
      await waitUntil(async () => (await call(own.url, 'GET', `${VOLS}/${bad}`)).body.state === 'Failed');
      await own.cluster.settled();
      assert.deepEqual(
        plane.calls.slice(-2).map((c) => c.op),
        ['addNamespace', 'removeNamespace'],
      );
      assert.equal(plane.namespaces.size, 0);
      const good = await call(own.url, 'POST', VOLS, { name: 'f2', size: '1 gib', replicaCount: 1 });
      assert.equal(good.status, 200, 'the Failed volume holds no slot');
      // Deleting the Failed volume does not remove anything twice.
      await call(own.url, 'DELETE', `${VOLS}/${bad}`);
      await waitUntil(async () => (await call(own.url, 'GET', `${VOLS}/${bad}`)).status === 404);
      await own.cluster.settled();
      assert.equal(plane.callsOf('removeNamespace').length, 1);
      assert.equal(plane.namespaces.has(good.body.UUID), true);
    } finally {
      await own.close();
    }
  });
});
