import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { type SimServer, startSimServer } from './server.ts';
import { availableVolume, call, type SimClient, startTestSim, waitUntil } from '../../test/support/sim-client.ts';
import type { MemoryDataPlane } from './memory-data-plane.ts';
import { GiB } from '../shared/units.ts';

const VOLS = '/api/v2/projects/default/volumes';
const HOST_A = 'nqn.2014-08.org.nvmexpress:uuid:11111111-1111-4111-8111-111111111111';
const HOST_B = 'nqn.2014-08.org.nvmexpress:uuid:22222222-2222-4222-8222-222222222222';

let sim: SimServer;
let admin: SimClient;
let dp: MemoryDataPlane;
const api = (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
  call(sim.url, method, path, body, headers);

async function createAvailable(name: string, extra: Record<string, unknown> = {}) {
  const r = await api('POST', VOLS, { name, size: '10 gib', replicaCount: '2', compression: 'False', ...extra });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return availableVolume(sim.url, r.body.UUID);
}

before(async () => ({ sim, dp, admin } = await startTestSim()));
after(() => sim.close());
beforeEach(() => admin.reset());

describe('cluster and nodes', () => {
  test('clusterinfo names the cluster and its single subsystem NQN', async () => {
    const r = await api('GET', '/api/v2/clusterinfo');
    assert.equal(r.status, 200);
    assert.equal(r.body.UUID, sim.cluster.uuid);
    assert.equal(r.body.subsystemNQN, `nqn.2014-08.org.nvmexpress:NVMf:uuid:${sim.cluster.uuid}`);
  });

  test('nodes are node-<i> at 127.0.0.1:4420+i, Active, and readable one by one', async () => {
    const r = await api('GET', '/api/v2/nodes');
    assert.deepEqual(
      r.body.nodes.map((n: any) => [n.name, n.nvmeEndpoint, n.state]),
      [
        ['node-0', '127.0.0.1:4420', 'Active'],
        ['node-1', '127.0.0.1:4421', 'Active'],
        ['node-2', '127.0.0.1:4422', 'Active'],
      ],
    );
    const one = await api('GET', `/api/v2/nodes/${r.body.nodes[1].UUID}`);
    assert.equal(one.body.name, 'node-1');
    assert.equal((await api('GET', '/api/v2/nodes/nope')).status, 404);
  });

  test('cluster statistics report total and free bytes; used is the sum of volume sizes', async () => {
    await createAvailable('cap-a');
    const r = await api('GET', '/api/v2/cluster');
    assert.equal(r.body.statistics.estimatedLogicalStorage, String(10 * 1024 ** 4));
    assert.equal(r.body.statistics.logicalUsedStorage, String(10 * GiB));
    assert.equal(r.body.statistics.estimatedFreeLogicalStorage, String(10 * 1024 ** 4 - 10 * GiB));
    // The physical pair Cinder's LightOS driver names for its capacity report.
    assert.equal(r.body.statistics.effectivePhysicalStorage, String(10 * 1024 ** 4));
    assert.equal(r.body.statistics.freePhysicalStorage, String(10 * 1024 ** 4 - 10 * GiB));
  });

  test('a volume larger than the free capacity is refused with 400', async () => {
    const r = await api('POST', VOLS, { name: 'huge', size: '11 TiB', replicaCount: 1 });
    assert.equal(r.status, 400);
    assert.match(r.body.message, /capacity/);
  });
});

describe('volumes', () => {
  test('create answers 200 Creating with LightOS fields, then becomes Available', async () => {
    const r = await api('POST', VOLS, {
      name: 'volume-a',
      size: '10 gib',
      replicaCount: '2',
      compression: 'True',
      sourceSnapshotUUID: null,
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.state, 'Creating');
    assert.equal(r.body.size, String(10 * GiB));
    assert.equal(r.body.replicaCount, 2);
    assert.equal(r.body.compression, 'true');
    assert.deepEqual(r.body.acl, { values: ['ALLOW_NONE'] });
    assert.deepEqual(r.body.IPAcl, { values: ['ALLOW_ANY'] });
    assert.equal(r.headers.get('etag'), `"${r.body.ETag}"`);
    assert.equal(typeof r.body.nsid, 'number');
    assert.equal(r.body.protectionState, 'FullyProtected');
    const v = await createAvailable('volume-b');
    assert.equal(v.state, 'Available');
    assert.ok(v.nsid > r.body.nsid, 'nsid increases');
  });

  test('size is accepted as "N GiB", bytes as a number, and bytes as a digit string', async () => {
    for (const [name, size] of [
      ['s1', '1 GiB'],
      ['s2', GiB],
      ['s3', String(GiB)],
    ] as const) {
      const r = await api('POST', VOLS, { name, size, replicaCount: 1 });
      assert.equal(r.status, 200, `${name}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.size, String(GiB));
    }
  });

  test('a second create with the same name is a 409 name conflict', async () => {
    await createAvailable('dup');
    const r = await api('POST', VOLS, { name: 'dup', size: '1 gib', replicaCount: 1 });
    assert.equal(r.status, 409);
    assert.match(r.body.message, /already exists/);
  });

  test('list returns every volume; ?name= returns the one volume or 404', async () => {
    const a = await createAvailable('list-a');
    await createAvailable('list-b');
    const all = await api('GET', VOLS);
    assert.deepEqual(all.body.volumes.map((v: any) => v.name).sort(), ['list-a', 'list-b']);
    const one = await api('GET', `${VOLS}/?name=list-a`);
    assert.equal(one.status, 200);
    assert.equal(one.body.UUID, a.UUID);
    assert.equal((await api('GET', `${VOLS}/?name=nope`)).status, 404);
    assert.equal(
      (await api('GET', '/api/v2/projects/other/volumes/?name=list-a')).status,
      404,
      'names are per project',
    );
  });

  test('list pages by UUID: limit (at most 1000) and offsetUUID, the next page after that volume', async () => {
    const uuids: string[] = [];
    for (let i = 0; i < 5; i++) uuids.push((await createAvailable(`page-${i}`)).UUID);
    uuids.sort();
    const first = await api('GET', `${VOLS}?limit=2`);
    assert.deepEqual(
      first.body.volumes.map((v: any) => v.UUID),
      uuids.slice(0, 2),
    );
    const next = await api('GET', `${VOLS}?limit=2&offsetUUID=${uuids[1]}`);
    assert.deepEqual(
      next.body.volumes.map((v: any) => v.UUID),
      uuids.slice(2, 4),
    );
    // An offset whose volume is gone still places the page: the list is ordered by UUID.
    await api('DELETE', `${VOLS}/${uuids[3]}`);
    await waitUntil(async () => (await api('GET', `${VOLS}/${uuids[3]}`)).status === 404, { what: 'delete' });
    const after = await api('GET', `${VOLS}?limit=2&offsetUUID=${uuids[3]}`);
    assert.deepEqual(
      after.body.volumes.map((v: any) => v.UUID),
      [uuids[4]],
    );
    assert.equal((await api('GET', `${VOLS}?limit=5000`)).body.volumes.length, 4, 'a larger limit is 1000');
    for (const bad of ['limit=-1', 'limit=x', 'offsetUUID=nope', 'limit=1&limit=2'])
      assert.equal((await api('GET', `${VOLS}?${bad}`)).status, 400, bad);
  });

  test('the admin API counts the LightOS requests by route, UUIDs folded', async () => {
    const v = await createAvailable('counted');
    await api('DELETE', '/sim/v1/requests');
    await api('GET', `${VOLS}/${v.UUID}`);
    await api('GET', `${VOLS}?limit=10`);
    await api('GET', '/api/v2/nodes');
    const r = await api('GET', '/sim/v1/requests');
    assert.deepEqual(r.body, {
      total: 3,
      byRoute: {
        'GET /api/v2/projects/default/volumes/{uuid}': 1,
        'GET /api/v2/projects/default/volumes': 1,
        'GET /api/v2/nodes': 1,
      },
    });
  });

  test('delete answers 200, the volume is Deleting and then gone (404)', async () => {
    const v = await createAvailable('del');
    const r = await api('DELETE', `${VOLS}/${v.UUID}`);
    assert.equal(r.status, 200);
    await waitUntil(async () => (await api('GET', `${VOLS}/${v.UUID}`)).status === 404, { what: 'volume gone' });
    assert.equal((await api('DELETE', `${VOLS}/${v.UUID}`)).status, 404);
  });

  test('PUT with a stale If-Match is 412; with the current ETag it applies and changes the ETag', async () => {
    const v = await createAvailable('etag');
    const ok = await api('PUT', `${VOLS}/${v.UUID}`, { acl: { values: [HOST_A] } }, { 'If-Match': v.ETag });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.notEqual(ok.body.ETag, v.ETag);
    const stale = await api('PUT', `${VOLS}/${v.UUID}`, { acl: { values: [HOST_B] } }, { 'If-Match': v.ETag });
    assert.equal(stale.status, 412);
    assert.match(stale.body.message, /ETag mismatch/);
    const quoted = await api(
      'PUT',
      `${VOLS}/${v.UUID}`,
      { acl: { values: [HOST_A, HOST_B] } },
      { 'If-Match': `"${ok.body.ETag}"` },
    );
    assert.equal(quoted.status, 200, 'a quoted ETag (RFC 9110 form) matches too');
    const unconditional = await api('PUT', `${VOLS}/${v.UUID}`, { acl: { values: [HOST_B] } });
    assert.equal(unconditional.status, 200, 'without If-Match the PUT applies');
    assert.deepEqual(unconditional.body.acl.values, [HOST_B]);
  });

  test('ACL: ALLOW_NONE means nobody both ways; mixed, ALLOW_ANY and non-NQN values are 400', async () => {
    const v = await createAvailable('acl', { acl: { values: [HOST_A] } });
    assert.deepEqual(v.acl.values, [HOST_A]);
    const none = await api('PUT', `${VOLS}/${v.UUID}`, { acl: { values: ['ALLOW_NONE'] } });
    assert.deepEqual(none.body.acl.values, ['ALLOW_NONE']);
    assert.deepEqual(sim.cluster.getVolume('default', v.UUID)!.acl, []);
    for (const values of [['ALLOW_NONE', HOST_A], ['ALLOW_ANY'], ['iqn.bogus'], ['nqn.2014-08.org.example:a/b']]) {
      const r = await api('PUT', `${VOLS}/${v.UUID}`, { acl: { values } });
      assert.equal(r.status, 400, JSON.stringify(values));
      assert.match(r.body.message, /acl\.values/);
    }
  });

  test('size grows through PUT (Cinder extend body) and never shrinks', async () => {
    const v = await createAvailable('grow');
    const r = await api('PUT', `${VOLS}/${v.UUID}`, { UUID: v.UUID, size: '20 gib' });
    assert.equal(r.status, 200);
    assert.equal(r.body.size, String(20 * GiB));
    await sim.cluster.settled();
    assert.equal(dp.namespaces.get(v.UUID)!.sizeBytes, 20 * GiB, 'data plane resized');
    const shrink = await api('PUT', `${VOLS}/${v.UUID}`, { size: '5 gib' });
    assert.equal(shrink.status, 400);
    assert.match(shrink.body.message, /only grow/);
  });

  test('PUT on a missing volume is 404', async () => {
    const r = await api('PUT', `${VOLS}/00000000-0000-4000-8000-000000000000`, { acl: { values: [HOST_A] } });
    assert.equal(r.status, 404);
  });
});

describe('bad input', () => {
  const cases: [string, unknown, RegExp][] = [
    ['missing name', { size: '1 gib', replicaCount: 1 }, /name is required/],
    ['bad name', { name: 'a b', size: '1 gib', replicaCount: 1 }, /name must be/],
    ['bad size', { name: 'x', size: 'ten', replicaCount: 1 }, /size must be/],
    ['size not 4 KiB aligned', { name: 'x', size: 1000, replicaCount: 1 }, /multiple of 4096/],
    ['replicaCount 4', { name: 'x', size: '1 gib', replicaCount: 4 }, /replicaCount must be 1, 2 or 3/],
    ['bad compression', { name: 'x', size: '1 gib', replicaCount: 1, compression: 'maybe' }, /compression/],
    ['acl not a list', { name: 'x', size: '1 gib', replicaCount: 1, acl: { values: 'nqn.x' } }, /acl must look like/],
    ['bad IPAcl', { name: 'x', size: '1 gib', replicaCount: 1, IPAcl: { values: ['10.0.0.300'] } }, /IPAcl.values/],
    ['bad qos', { name: 'x', size: '1 gib', replicaCount: 1, qosPolicyUUID: 'nope' }, /qosPolicyUUID must be a UUID/],
    ['array body', [1, 2], /JSON object/],
  ];
  for (const [what, body, message] of cases) {
    test(`create with ${what} is a 400 naming the field`, async () => {
      const r = await api('POST', VOLS, body);
      assert.equal(r.status, 400);
      assert.match(r.body.message, message);
      assert.equal(r.body.code, 3, 'gRPC InvalidArgument, as grpc-gateway reports it');
    });
  }

  test('invalid JSON is a 400, an oversized body a 413, an unknown route a JSON 404', async () => {
    const bad = await api('POST', VOLS, '{"name":', { 'content-type': 'application/json' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /not valid JSON/);
    const big = await api('POST', VOLS, { name: 'x', pad: 'y'.repeat(100_000) });
    assert.equal(big.status, 413);
    const none = await api('GET', '/api/v2/nothing');
    assert.equal(none.status, 404);
    assert.match(none.body.message, /no route/);
  });

  test('a replicaCount above the node count is refused on a 2-node cluster', async () => {
    const small = await startSimServer({ port: 0, nodes: 2 });
    try {
      const r = await call(small.url, 'POST', VOLS, { name: 'x', size: '1 gib', replicaCount: 3 });
      assert.equal(r.status, 400);
      assert.match(r.body.message, /max 2/);
    } finally {
      await small.close();
    }
  });
});

describe('snapshots', () => {
  test('create, read by UUID and by ?Name=, clone with size >= snapshot, delete', async () => {
    const v = await createAvailable('src');
    const s = await api('POST', '/api/v2/projects/default/snapshots', { name: 'snap-1', sourceVolumeUUID: v.UUID });
    assert.equal(s.status, 200);
    assert.equal(s.body.sourceVolumeUUID, v.UUID);
    await waitUntil(
      async () => (await api('GET', `/api/v2/projects/default/snapshots/${s.body.UUID}`)).body.state === 'Available',
    );
    const byName = await api('GET', '/api/v2/projects/default/snapshots/?Name=snap-1');
    assert.equal(byName.body.UUID, s.body.UUID);
    assert.equal((await api('GET', '/api/v2/projects/default/snapshots/?Name=nope')).status, 404);
    const small = await api('POST', VOLS, {
      name: 'clone-small',
      size: '5 gib',
      replicaCount: 1,
      sourceSnapshotUUID: s.body.UUID,
    });
    assert.equal(small.status, 400);
    assert.match(small.body.message, /smaller than the source snapshot/);
    const clone = await api('POST', VOLS, {
      name: 'clone',
      size: '20 gib',
      replicaCount: 1,
      sourceSnapshotName: 'snap-1',
    });
    assert.equal(clone.status, 200);
    assert.equal(clone.body.sourceSnapshotUUID, s.body.UUID);
    assert.equal((await api('DELETE', `/api/v2/projects/default/snapshots/${s.body.UUID}`)).status, 200);
    await waitUntil(async () => (await api('GET', `/api/v2/projects/default/snapshots/${s.body.UUID}`)).status === 404);
  });

  test('a snapshot of a missing volume is 404', async () => {
    const r = await api('POST', '/api/v2/projects/default/snapshots', {
      name: 's',
      sourceVolumeUUID: '00000000-0000-4000-8000-000000000000',
    });
    assert.equal(r.status, 404);
  });
});

describe('JWT', () => {
  test('when configured, /api/v2 needs the bearer token; /sim/v1 does not', async () => {
    const secured = await startSimServer({ port: 0, jwt: 'secret-token' });
    try {
      const missing = await call(secured.url, 'GET', '/api/v2/clusterinfo');
      assert.equal(missing.status, 401);
      assert.match(missing.body.message, /Authorization/);
      const wrong = await call(secured.url, 'GET', '/api/v2/clusterinfo', undefined, { authorization: 'Bearer other' });
      assert.equal(wrong.status, 401);
      const right = await call(secured.url, 'GET', '/api/v2/clusterinfo', undefined, {
        authorization: 'Bearer secret-token',
      });
      assert.equal(right.status, 200);
      assert.equal((await call(secured.url, 'GET', '/sim/v1/state')).status, 200);
    } finally {
      await secured.close();
    }
  });
});
