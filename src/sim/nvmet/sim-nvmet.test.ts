/**
 * The simulator over the nvmet data plane, driven only through its HTTP APIs (LightOS and the
 * fault API), against the configfs stand-in: every change a client can make reaches configfs.
 * test/kernel's `sim-nvmet` scenario does the same against the real kernel target.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type SimServer, startSimServer } from '../server.ts';
import { call, SimClient, waitUntil } from '../../../test/support/sim-client.ts';
import { ConfigfsStandIn } from './testing/configfs-stand-in.ts';
import { NvmetDataPlane } from './nvmet-data-plane.ts';
import { GiB } from '../../shared/units.ts';

const VOLS = '/api/v2/projects/default/volumes';
const HOST = 'nqn.2014-08.org.nvmexpress:uuid:44444444-4444-4444-8444-444444444444';

let fs: ConfigfsStandIn;
let dataDir: string;
let sim: SimServer;
let admin: SimClient;
const api = (method: string, p: string, body?: unknown, headers?: Record<string, string>) =>
  call(sim.url, method, p, body, headers);

before(async () => {
  fs = await ConfigfsStandIn.create({ odirect: false });
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'sim-nvmet-'));
  sim = await startSimServer({
    port: 0,
    nodes: 3,
    dataPlane: new NvmetDataPlane({ configfs: fs, dataDir, bufferedIo: true }),
  });
  admin = new SimClient(sim.url);
});
after(async () => {
  await sim?.close();
  await fs?.destroy();
  await rm(dataDir, { recursive: true, force: true });
});

describe('the simulator on the nvmet data plane', () => {
  test('create, ACL, extend, node down and up, delete: each reaches configfs', async () => {
    const nqn = sim.cluster.subsystemNqn;
    const sub = `subsystems/${nqn}`;
    const state = await admin.state();
    assert.deepEqual(state.dataPlane, { kind: 'nvmet', maxNamespaces: 127 });
    for (const n of sim.cluster.nodes) {
      assert.equal(await fs.read(`ports/${n.index + 1}/addr_trsvcid`), String(n.port));
      assert.deepEqual(await fs.list(`ports/${n.index + 1}/subsystems`), [nqn]);
    }

    // create (3 replicas) with the host in the ACL
    const created = await api('POST', VOLS, { name: 'v1', size: '1 gib', replicaCount: 3, acl: { values: [HOST] } });
    assert.equal(created.status, 200);
    const uuid: string = created.body.UUID;
    await waitUntil(async () => (await api('GET', `${VOLS}/${uuid}`)).body.state === 'Available');
    await sim.cluster.settled();
    const nsid = created.body.nsid;
    const ns = `${sub}/namespaces/${nsid}`;
    assert.equal(await fs.read(`${ns}/device_uuid`), uuid);
    assert.equal(await fs.read(`${ns}/enable`), '1');
    assert.equal((await stat(path.join(dataDir, `${uuid}.img`))).size, GiB);
    assert.deepEqual(await fs.list(`${sub}/allowed_hosts`), [HOST]);
    const group = Number(await fs.read(`${ns}/ana_grpid`));
    const anaOnPorts = async () => {
      const out: Record<string, string> = {};
      for (const n of sim.cluster.nodes)
        out[n.uuid] = await fs.read(`ports/${n.index + 1}/ana_groups/${group}/ana_state`);
      return out;
    };
    const simAna = async () => (await admin.state()).volumes.find((v: any) => v.uuid === uuid).ana;
    assert.deepEqual(await anaOnPorts(), await simAna());
    assert.deepEqual(Object.values(await anaOnPorts()).sort(), ['non-optimized', 'non-optimized', 'optimized']);

    // extend through PUT with If-Match
    const etag = created.body.ETag;
    const stale = await api('PUT', `${VOLS}/${uuid}`, { size: '2 gib' }, { 'If-Match': '"0"' });
    assert.equal(stale.status, 412);
    const current = (await api('GET', `${VOLS}/${uuid}`)).body.ETag;
    assert.notEqual(current, undefined);
    const grown = await api('PUT', `${VOLS}/${uuid}`, { UUID: uuid, size: '2 gib' }, { 'If-Match': `"${current}"` });
    assert.equal(grown.status, 200, JSON.stringify(grown.body));
    assert.notEqual(grown.body.ETag, etag);
    await sim.cluster.settled();
    assert.equal((await stat(path.join(dataDir, `${uuid}.img`))).size, 2 * GiB);
    assert.ok(fs.writes.some((w) => w.rel === `${ns}/revalidate_size`));

    // the optimized node goes down, then comes back
    const optimized = Object.entries(await simAna()).find(([, s]) => s === 'optimized')![0];
    const node = sim.cluster.nodes.find((n) => n.uuid === optimized)!;
    assert.equal((await admin.node(node.uuid, false)).status, 200);
    await sim.cluster.settled();
    assert.deepEqual(await fs.list(`ports/${node.index + 1}/subsystems`), [], 'the down node serves nothing');
    const during = await anaOnPorts();
    assert.equal(during[node.uuid], 'inaccessible');
    assert.equal(Object.values(during).filter((s) => s === 'optimized').length, 1, 'the optimized path moved');
    assert.deepEqual(during, await simAna());
    assert.equal((await admin.node(node.index, true)).status, 200);
    await sim.cluster.settled();
    assert.deepEqual(await fs.list(`ports/${node.index + 1}/subsystems`), [nqn]);
    assert.equal((await anaOnPorts())[node.uuid], 'non-optimized', 'back as a non-optimized replica');
    assert.deepEqual(await anaOnPorts(), await simAna());

    // ACL: the last host revoked
    const etag2 = (await api('GET', `${VOLS}/${uuid}`)).body.ETag;
    assert.equal(
      (await api('PUT', `${VOLS}/${uuid}`, { acl: { values: ['ALLOW_NONE'] } }, { 'If-Match': etag2 })).status,
      200,
    );
    await sim.cluster.settled();
    assert.deepEqual(await fs.list(`${sub}/allowed_hosts`), []);
    assert.deepEqual(await fs.list('hosts'), []);

    // delete
    assert.equal((await api('DELETE', `${VOLS}/${uuid}`)).status, 200);
    await waitUntil(async () => (await api('GET', `${VOLS}/${uuid}`)).status === 404);
    await sim.cluster.settled();
    assert.deepEqual(await fs.list(`${sub}/namespaces`), []);
    for (const n of sim.cluster.nodes) assert.deepEqual(await fs.list(`ports/${n.index + 1}/ana_groups`), ['1']);
    assert.deepEqual(await readdir(dataDir), []);
  });

  test('close tears the target down', async () => {
    const own = await ConfigfsStandIn.create({ odirect: false });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'sim-nvmet-'));
    const s = await startSimServer({
      port: 0,
      nodes: 2,
      dataPlane: new NvmetDataPlane({ configfs: own, dataDir: dir, bufferedIo: true }),
    });
    try {
      const r = await call(s.url, 'POST', VOLS, { name: 'c', size: '1 gib', replicaCount: 2, acl: { values: [HOST] } });
      await waitUntil(async () => (await call(s.url, 'GET', `${VOLS}/${r.body.UUID}`)).body.state === 'Available');
      assert.notDeepEqual(await own.tree(), ['hosts/', 'ports/', 'subsystems/']);
      await s.close();
      assert.deepEqual(await own.tree(), ['hosts/', 'ports/', 'subsystems/']);
      assert.deepEqual(await readdir(dir), []);
    } finally {
      await s.close();
      await own.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
