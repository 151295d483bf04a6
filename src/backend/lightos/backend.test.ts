import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { isDriverError } from '../../driver/errors.ts';
import { SimError } from '../../sim/model.ts';
import { type SimServer, startSimServer } from '../../sim/server.ts';
import { call, SimClient } from '../../../test/support/sim-client.ts';
import { LightosBackend } from './backend.ts';
import type { LightosConfig } from './config.ts';

const HOST_A = 'nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const HOST_B = 'nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const MISSING = '00000000-0000-4000-8000-000000000000';

let sim: SimServer;
let admin: SimClient;
let backend: LightosBackend;

/** Fast polling, first endpoint first, short deadlines: failures show within a second. */
const make = (over: Partial<LightosConfig> = {}) =>
  new LightosBackend({
    endpoints: [sim.url],
    pollIntervalMs: 10,
    requestTimeoutMs: 2000,
    operationTimeoutMs: 3000,
    random: () => 0,
    ...over,
  });

/** Rejects with a DriverError of this code whose message names the operation. */
async function rejectsWith(
  p: Promise<unknown>,
  code: string,
  operation: string,
  message?: RegExp,
): Promise<Record<string, unknown>> {
  let details: Record<string, unknown> = {};
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isDriverError(e), `expected a DriverError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.startsWith(`LightOS ${operation}(`), e.message);
    if (message) assert.match(e.message, message);
    details = e.details ?? {};
    return true;
  });
  return details;
}

/** A TCP port that accepts and immediately drops every connection, counting them. */
async function droppingPort(): Promise<{ url: string; count: () => number; close: () => Promise<void> }> {
  let n = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    n++;
    sockets.add(s);
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, count: () => n, close: () => new Promise((r) => server.close(() => r())) };
}

/** A URL on which nothing listens. */
async function closedPortUrl(): Promise<string> {
  const d = await droppingPort();
  await d.close();
  return d.url;
}

before(async () => {
  sim = await startSimServer({ port: 0 });
  admin = new SimClient(sim.url);
});
after(() => sim.close());
beforeEach(async () => {
  await admin.reset();
  backend = make();
});

describe('cluster', () => {
  test('clusterInfo and ping read /api/v2/clusterinfo', async () => {
    assert.deepEqual(await backend.clusterInfo(), { uuid: sim.cluster.uuid, subsystemNqn: sim.cluster.subsystemNqn });
    await backend.ping();
  });

  test('capacity reports total and free GiB from the cluster statistics', async () => {
    await backend.createVolume({ name: 'volume-cap', sizeGb: 10, replicas: 1 });
    assert.deepEqual(await backend.capacity(), { totalGb: 10240, freeGb: 10230 });
  });
});

describe('volumes', () => {
  test('createVolume waits for Available and returns the volume; a second create returns the same one', async () => {
    await admin.faults({ stateDelayMs: 50 });
    const v = await backend.createVolume({ name: 'volume-1', sizeGb: 10, replicas: 2, compression: true });
    assert.equal(v.state, 'Available');
    assert.equal(v.sizeGb, 10);
    assert.equal(v.replicas, 2);
    assert.equal(v.compression, true);
    assert.deepEqual(v.acl, []);
    assert.ok(v.nsid && v.nsid > 0);
    const again = await backend.createVolume({ name: 'volume-1', sizeGb: 10, replicas: 2 });
    assert.equal(again.uuid, v.uuid);
    assert.equal((await admin.state()).volumes.length, 1);
  });

  test('concurrent creates of one name end with one volume', async () => {
    const [a, b] = await Promise.all([
      backend.createVolume({ name: 'volume-race', sizeGb: 1, replicas: 1 }),
      make().createVolume({ name: 'volume-race', sizeGb: 1, replicas: 1 }),
    ]);
    assert.equal(a.uuid, b.uuid);
    assert.equal((await admin.state()).volumes.length, 1);
  });

  test('a volume that ends Failed is deleted and reported as backend_error', async () => {
    await admin.faults({ failCreate: true });
    await rejectsWith(
      backend.createVolume({ name: 'volume-bad', sizeGb: 1, replicas: 1 }),
      'backend_error',
      'createVolume',
      /Failed \(deleted it\)/,
    );
    assert.deepEqual((await admin.state()).volumes, []);
  });

  test('getVolume and getVolumeByName return the volume, or null when absent', async () => {
    const v = await backend.createVolume({ name: 'volume-get', sizeGb: 1, replicas: 1 });
    assert.equal((await backend.getVolume(v.uuid))?.name, 'volume-get');
    assert.equal((await backend.getVolumeByName('volume-get'))?.uuid, v.uuid);
    assert.equal(await backend.getVolume(MISSING), null);
    assert.equal(await backend.getVolumeByName('volume-none'), null);
  });

  test('deleteVolume waits until it is gone; deleting again is fine', async () => {
    await admin.faults({ stateDelayMs: 50 });
    const v = await backend.createVolume({ name: 'volume-del', sizeGb: 1, replicas: 1 });
    await backend.deleteVolume(v.uuid);
    assert.equal(await backend.getVolume(v.uuid), null);
    await backend.deleteVolume(v.uuid);
  });

  test('extendVolume grows, is a no-op at the same size, refuses to shrink, and 404s as volume_not_found', async () => {
    const v = await backend.createVolume({ name: 'volume-ext', sizeGb: 10, replicas: 1 });
    assert.equal((await backend.extendVolume(v.uuid, 20)).sizeGb, 20);
    const etag = (await admin.state()).volumes[0].etag;
    assert.equal((await backend.extendVolume(v.uuid, 20)).sizeGb, 20);
    assert.equal((await admin.state()).volumes[0].etag, etag, 'no write for the same size');
    await rejectsWith(backend.extendVolume(v.uuid, 5), 'invalid_request', 'extendVolume', /shrink/);
    await rejectsWith(backend.extendVolume(MISSING, 5), 'volume_not_found', 'extendVolume');
  });
});

describe('access control', () => {
  test('grant is idempotent: one ACL entry, changed only the first time', async () => {
    const v = await backend.createVolume({ name: 'volume-acl', sizeGb: 1, replicas: 1 });
    assert.deepEqual(await backend.grantAccess(v.uuid, HOST_A), { changed: true });
    assert.deepEqual(await backend.grantAccess(v.uuid, HOST_A), { changed: false });
    assert.deepEqual((await backend.getVolume(v.uuid))!.acl, [HOST_A]);
  });

  test('revoke removes the host, puts ALLOW_NONE on the wire when empty, and is fine when absent', async () => {
    const v = await backend.createVolume({ name: 'volume-rev', sizeGb: 1, replicas: 1 });
    await backend.grantAccess(v.uuid, HOST_A);
    assert.deepEqual(await backend.revokeAccess(v.uuid, HOST_A), { changed: true });
    const wire = await call(sim.url, 'GET', `/api/v2/projects/default/volumes/${v.uuid}`);
    assert.deepEqual(wire.body.acl.values, ['ALLOW_NONE']);
    assert.deepEqual(await backend.revokeAccess(v.uuid, HOST_A), { changed: false });
    assert.deepEqual(await backend.revokeAccess(MISSING, HOST_A), { changed: false });
  });

  test('grant on a missing volume is volume_not_found', async () => {
    const details = await rejectsWith(
      backend.grantAccess(MISSING, HOST_A),
      'volume_not_found',
      'grantAccess',
      new RegExp(MISSING),
    );
    assert.equal(details.backend, 'lightos');
  });

  test('a volume being deleted counts as gone: grant is volume_not_found, revoke changes nothing', async () => {
    const v = await backend.createVolume({ name: 'volume-going', sizeGb: 1, replicas: 1 });
    await backend.grantAccess(v.uuid, HOST_A);
    await admin.faults({ stateDelayMs: 60_000 });
    await call(sim.url, 'DELETE', `/api/v2/projects/default/volumes/${v.uuid}`);
    await rejectsWith(backend.grantAccess(v.uuid, HOST_B), 'volume_not_found', 'grantAccess');
    assert.deepEqual(await backend.revokeAccess(v.uuid, HOST_A), { changed: false });
  });

  test('revokeAllAccess removes every host and reports them', async () => {
    const v = await backend.createVolume({ name: 'volume-all', sizeGb: 1, replicas: 1 });
    await backend.grantAccess(v.uuid, HOST_A);
    await backend.grantAccess(v.uuid, HOST_B);
    assert.deepEqual((await backend.revokeAllAccess(v.uuid)).removed.sort(), [HOST_A, HOST_B]);
    assert.deepEqual((await backend.getVolume(v.uuid))!.acl, []);
    assert.deepEqual(await backend.revokeAllAccess(v.uuid), { removed: [] });
    assert.deepEqual(await backend.revokeAllAccess(MISSING), { removed: [] });
  });

  test('concurrent grants of different hosts all land (ETag conflicts are retried)', async () => {
    const v = await backend.createVolume({ name: 'volume-conc', sizeGb: 1, replicas: 1 });
    let conflicts = 0;
    const original = sim.cluster.updateVolume.bind(sim.cluster);
    sim.cluster.updateVolume = (...args: Parameters<typeof original>) => {
      try {
        return original(...args);
      } catch (e) {
        if (e instanceof SimError && e.status === 412) conflicts++;
        throw e;
      }
    };
    try {
      const hosts = Array.from(
        { length: 6 },
        (_, i) => `nqn.2014-08.org.nvmexpress:uuid:0000000${i}-0000-4000-8000-000000000000`,
      );
      const results = await Promise.all(hosts.map((h) => make().grantAccess(v.uuid, h)));
      assert.ok(results.every((r) => r.changed));
      assert.deepEqual((await backend.getVolume(v.uuid))!.acl.sort(), hosts.sort());
      assert.ok(conflicts > 0, 'the test did exercise the If-Match retry');
    } finally {
      sim.cluster.updateVolume = original;
    }
  });
});

describe('attachAccess', () => {
  test('grants, answers the settled volume and its paths as volumePaths does, and is idempotent', async () => {
    const v = await backend.createVolume({ name: 'volume-attach', sizeGb: 1, replicas: 2 });
    const first = await backend.attachAccess(v.uuid, HOST_A);
    assert.equal(first.changed, true);
    assert.deepEqual(first.volume.acl, [HOST_A]);
    assert.equal(first.volume.nsid, v.nsid);
    assert.deepEqual(first.paths, await backend.volumePaths(v.uuid));
    assert.equal(first.paths.length, 2);
    const again = await backend.attachAccess(v.uuid, HOST_A);
    assert.equal(again.changed, false);
    assert.deepEqual(again.paths, first.paths);
    assert.deepEqual((await backend.getVolume(v.uuid))!.acl, [HOST_A]);
  });

  test('reads go ahead before ready, the ACL write waits for it, and a rejected ready writes nothing', async () => {
    const v = await backend.createVolume({ name: 'volume-ready', sizeGb: 1, replicas: 1 });
    const original = {
      get: sim.cluster.getVolume.bind(sim.cluster),
      update: sim.cluster.updateVolume.bind(sim.cluster),
    };
    let writes = 0;
    let readSeen!: () => void;
    const read = new Promise<void>((r) => (readSeen = r));
    sim.cluster.getVolume = (...args: Parameters<typeof original.get>) => (readSeen(), original.get(...args));
    sim.cluster.updateVolume = (...args: Parameters<typeof original.update>) => (writes++, original.update(...args));
    try {
      let release!: () => void;
      const ready = new Promise<void>((r) => (release = r));
      const granting = backend.attachAccess(v.uuid, HOST_A, ready);
      await read;
      // The volume was read; give the adapter every chance to write (its answer has arrived and been parsed).
      await backend.getVolume(v.uuid);
      assert.equal(writes, 0, 'no ACL write before ready');
      release();
      assert.equal((await granting).changed, true);
      assert.equal(writes, 1);

      const refused = new Error('the record could not be written');
      await assert.rejects(backend.attachAccess(v.uuid, HOST_B, Promise.reject(refused)), (e) => e === refused);
      assert.equal(writes, 1, 'a rejected ready writes nothing');
      assert.deepEqual((await backend.getVolume(v.uuid))!.acl, [HOST_A]);
      // Also when nothing needed writing: the caller's condition failed, so the call does.
      await assert.rejects(backend.attachAccess(v.uuid, HOST_A, Promise.reject(refused)), (e) => e === refused);
    } finally {
      sim.cluster.getVolume = original.get;
      sim.cluster.updateVolume = original.update;
    }
  });

  test('a missing volume is volume_not_found, named as the grant', async () => {
    await rejectsWith(backend.attachAccess(MISSING, HOST_A), 'volume_not_found', 'grantAccess', new RegExp(MISSING));
  });
});

describe('paths', () => {
  test('volumePaths lists replica portals, optimized first, and follows a node failure', async () => {
    const v = await backend.createVolume({ name: 'volume-paths', sizeGb: 1, replicas: 2 });
    const paths = await backend.volumePaths(v.uuid);
    assert.deepEqual(
      paths.map((p) => p.anaState),
      ['optimized', 'non-optimized'],
    );
    const node = (i: string) => sim.cluster.nodes.find((n) => n.uuid === i)!;
    for (const p of paths)
      assert.deepEqual(p.portal, { address: '127.0.0.1', port: node(p.nodeId).port, transport: 'tcp' });

    await admin.node(node(paths[0].nodeId).index, false);
    const failed = await backend.volumePaths(v.uuid);
    assert.deepEqual(
      failed.map((p) => [p.nodeId, p.anaState]),
      [
        [paths[1].nodeId, 'optimized'],
        [paths[0].nodeId, 'inaccessible'],
      ],
      'the down replica stays listed, last, so that hosts reconnect it when it is back',
    );

    await admin.node(node(paths[0].nodeId).index, true);
    const back = await backend.volumePaths(v.uuid);
    assert.deepEqual(
      back.map((p) => [p.nodeId, p.anaState]),
      [
        [paths[1].nodeId, 'optimized'],
        [paths[0].nodeId, 'non-optimized'],
      ],
    );
    await rejectsWith(backend.volumePaths(MISSING), 'volume_not_found', 'volumePaths');
  });
});

describe('snapshots', () => {
  test('createSnapshot is idempotent on name, clones work, deleteSnapshot is idempotent', async () => {
    const v = await backend.createVolume({ name: 'volume-src', sizeGb: 4, replicas: 1 });
    const s = await backend.createSnapshot(v.uuid, 'snapshot-1');
    assert.equal(s.state, 'Available');
    assert.equal(s.sourceVolumeUuid, v.uuid);
    assert.equal(s.sizeGb, 4);
    assert.equal((await backend.createSnapshot(v.uuid, 'snapshot-1')).uuid, s.uuid);
    assert.equal((await backend.getSnapshotByName('snapshot-1'))?.uuid, s.uuid);
    assert.equal(await backend.getSnapshotByName('snapshot-none'), null);
    const clone = await backend.createVolume({
      name: 'volume-clone',
      sizeGb: 8,
      replicas: 1,
      sourceSnapshotUuid: s.uuid,
    });
    assert.equal(clone.sourceSnapshotUuid, s.uuid);
    await backend.deleteSnapshot(s.uuid);
    assert.equal(await backend.getSnapshotByName('snapshot-1'), null);
    await backend.deleteSnapshot(s.uuid);
    await rejectsWith(backend.createSnapshot(MISSING, 'snapshot-2'), 'volume_not_found', 'createSnapshot');
    await rejectsWith(
      backend.createVolume({ name: 'volume-x', sizeGb: 8, replicas: 1, sourceSnapshotUuid: MISSING }),
      'snapshot_not_found',
      'createVolume',
    );
  });
});

describe('endpoints and failures', () => {
  test('fails over from a closed port to the sim, and stays on the one that answered', async () => {
    const dropping = await droppingPort();
    try {
      const b = make({ endpoints: [dropping.url, sim.url] });
      assert.equal((await b.clusterInfo()).uuid, sim.cluster.uuid);
      assert.equal(dropping.count(), 1);
      await b.clusterInfo();
      await b.ping();
      assert.equal(dropping.count(), 1, 'sticky: the dead endpoint is not tried again');
    } finally {
      await dropping.close();
    }
  });

  test('every endpoint refusing is backend_unavailable naming the operation and the endpoints', async () => {
    const [a, b] = [await closedPortUrl(), await closedPortUrl()];
    const details = await rejectsWith(
      make({ endpoints: [a, b] }).getVolume(MISSING),
      'backend_unavailable',
      'getVolume',
      /ECONNREFUSED/,
    );
    assert.deepEqual(details, { operation: 'getVolume', backend: 'lightos' });
  });

  test('a 5xx is backend_error with the status in details', async () => {
    await admin.faults({ failNext: { count: 1, status: 500, path: '/clusterinfo' } });
    const details = await rejectsWith(backend.clusterInfo(), 'backend_error', 'clusterInfo', /HTTP 500/);
    assert.deepEqual(details, { operation: 'clusterInfo', backend: 'lightos', status: 500 });
  });

  test('a transient 5xx while waiting for a state is ridden out', async () => {
    await admin.faults({ stateDelayMs: 100 });
    const posted = await call(sim.url, 'POST', '/api/v2/projects/default/volumes', {
      name: 'volume-flaky',
      size: '1 gib',
      replicaCount: 1,
    });
    // Only the polls of the volume by UUID fail, not the lookup by name that starts createVolume.
    await admin.faults({ failNext: { count: 2, status: 503, method: 'GET', path: `/volumes/${posted.body.UUID}` } });
    const v = await backend.createVolume({ name: 'volume-flaky', sizeGb: 1, replicas: 1 });
    assert.equal(v.uuid, posted.body.UUID);
    assert.equal(v.state, 'Available');
    assert.equal((await admin.state()).faults.failNext, null, 'both injected 503s were consumed by the wait');
  });

  test('a hanging API is backend_timeout after the request timeout', async () => {
    await admin.faults({ hangNext: { count: 1000 } });
    const b = make({ requestTimeoutMs: 150, operationTimeoutMs: 400 });
    await rejectsWith(b.getVolume(MISSING), 'backend_timeout', 'getVolume', /150 ms request timeout/);
    await admin.clearFaults();
  });

  test('a state wait past the deadline is backend_timeout naming the state', async () => {
    await admin.faults({ stateDelayMs: 60_000 });
    const b = make({ operationTimeoutMs: 300 });
    await rejectsWith(
      b.createVolume({ name: 'volume-stuck', sizeGb: 1, replicas: 1 }),
      'backend_timeout',
      'createVolume',
      /still in state Creating/,
    );
  });

  test('the JWT is sent when configured; without it the sim answers 401 → backend_rejected', async () => {
    const secured = await startSimServer({ port: 0, jwt: 'jwt-123' });
    try {
      const ok = make({ endpoints: [secured.url], jwt: 'jwt-123' });
      assert.equal((await ok.clusterInfo()).uuid, secured.cluster.uuid);
      const details = await rejectsWith(
        make({ endpoints: [secured.url] }).clusterInfo(),
        'backend_rejected',
        'clusterInfo',
        /HTTP 401/,
      );
      assert.equal(details.status, 401);
      await rejectsWith(
        make({ endpoints: [secured.url], jwt: 'wrong' }).ping(),
        'backend_rejected',
        'ping',
        /invalid JWT/,
      );
    } finally {
      await secured.close();
    }
  });
});
