import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { SimNodeEndpoint } from '../data-plane.ts';
import { ConfigfsStandIn, type StandInOptions } from './testing/configfs-stand-in.ts';
import { NvmetDataPlane, type NvmetDataPlaneOptions } from './nvmet-data-plane.ts';
import { MiB } from '../../shared/units.ts';

const NQN = 'nqn.2016-01.com.lightbitslabs:uuid:7b0c5b1e-3f0a-4c55-9b86-2f5d0cbd1a11';
const HOST_A = 'nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-000000000001';
const HOST_B = 'nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-4000-8000-000000000002';
const VOL = '5a8f3c2e-91d4-4b7a-8e6f-0c1d2e3f4a5b';
const VOL2 = '0e4b1c9a-7d2f-4e8a-b5c6-1a2b3c4d5e6f';
const NODES: SimNodeEndpoint[] = [0, 1, 2].map((index) => ({
  nodeId: `node-${index + 1}`,
  index,
  address: '127.0.0.1',
  port: 4420 + index,
}));
const ANA = { 'node-1': 'optimized', 'node-2': 'non-optimized', 'node-3': 'inaccessible' } as const;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function setup(standIn: StandInOptions = {}, plane: Partial<NvmetDataPlaneOptions> = {}) {
  const fs = await ConfigfsStandIn.create(standIn);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'nvmet-data-'));
  cleanups.push(
    () => fs.destroy(),
    () => rm(dataDir, { recursive: true, force: true }),
  );
  const dp = new NvmetDataPlane({ configfs: fs, dataDir, bufferedIo: standIn.odirect === false, ...plane });
  await dp.start(NQN, NODES);
  const sub = `subsystems/${NQN}`;
  const anaOf = async (nodeIndex: number, group: number) =>
    fs.read(`ports/${nodeIndex + 1}/ana_groups/${group}/ana_state`);
  return { fs, dp, dataDir, sub, anaOf };
}

describe('NvmetDataPlane', () => {
  it('start makes the subsystem closed to unknown hosts and one linked tcp port per node', async () => {
    const { fs, sub } = await setup();
    assert.equal(await fs.read(`${sub}/attr_allow_any_host`), '0');
    for (const n of NODES) {
      const port = `ports/${n.index + 1}`;
      assert.equal(await fs.read(`${port}/addr_trtype`), 'tcp');
      assert.equal(await fs.read(`${port}/addr_adrfam`), 'ipv4');
      assert.equal(await fs.read(`${port}/addr_traddr`), '127.0.0.1');
      assert.equal(await fs.read(`${port}/addr_trsvcid`), String(n.port));
      assert.deepEqual(await fs.list(`${port}/subsystems`), [NQN]);
    }
  });

  it('gives an IPv6 node an ipv6 port', async () => {
    const fs = await ConfigfsStandIn.create();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'nvmet-data-'));
    cleanups.push(
      () => fs.destroy(),
      () => rm(dataDir, { recursive: true, force: true }),
    );
    const dp = new NvmetDataPlane({ configfs: fs, dataDir, bufferedIo: false });
    await dp.start(NQN, [{ nodeId: 'n1', index: 0, address: 'fd00::1', port: 4420 }]);
    assert.equal(await fs.read('ports/1/addr_adrfam'), 'ipv6');
    assert.equal(await fs.read('ports/1/addr_traddr'), 'fd00::1');
  });

  it('exposes a volume as an enabled namespace backed by a sparse file, in its own ANA group', async () => {
    const { fs, dp, dataDir, sub, anaOf } = await setup({ odirect: false });
    await dp.addNamespace({ volumeUuid: VOL, nsid: 7, sizeBytes: 64 * MiB, ana: ANA });
    const ns = `${sub}/namespaces/7`;
    const file = path.join(dataDir, `${VOL}.img`);
    assert.equal(await fs.read(`${ns}/device_path`), file);
    assert.equal(await fs.read(`${ns}/device_uuid`), VOL);
    assert.equal(await fs.read(`${ns}/device_nguid`), VOL);
    assert.equal(await fs.read(`${ns}/buffered_io`), '1');
    assert.equal(await fs.read(`${ns}/enable`), '1');
    const group = Number(await fs.read(`${ns}/ana_grpid`));
    assert.ok(group >= 2, 'not the ports default group 1');
    assert.equal(dp.volume(VOL)?.anaGroup, group);
    assert.deepEqual(
      [await anaOf(0, group), await anaOf(1, group), await anaOf(2, group)],
      ['optimized', 'non-optimized', 'inaccessible'],
    );
    const st = await stat(file);
    assert.equal(st.size, 64 * MiB);
    assert.ok(st.blocks * 512 < MiB, 'sparse');
  });

  it('sets the ANA states before it enables the namespace', async () => {
    const { fs, dp, sub } = await setup();
    await dp.addNamespace({ volumeUuid: VOL, nsid: 1, sizeBytes: MiB, ana: ANA });
    const order = fs.writes.map((w) => w.rel);
    const enable = order.indexOf(`${sub}/namespaces/1/enable`);
    const lastAna = Math.max(...order.map((rel, i) => (rel.endsWith('/ana_state') ? i : -1)));
    const grpid = order.indexOf(`${sub}/namespaces/1/ana_grpid`);
    assert.ok(lastAna < enable && grpid < enable, order.join('\n'));
  });

  it('addNamespace is idempotent and refuses an nsid held by another volume', async () => {
    const { fs, dp } = await setup();
    const spec = { volumeUuid: VOL, nsid: 1, sizeBytes: MiB, ana: ANA };
    await dp.addNamespace(spec);
    const before = await fs.tree();
    const writes = fs.writes.length;
    await dp.addNamespace(spec);
    await dp.addNamespace({ ...spec, volumeUuid: VOL.toUpperCase() });
    assert.deepEqual(await fs.tree(), before);
    assert.equal(fs.writes.length, writes, 'nothing rewritten');
    await assert.rejects(dp.addNamespace({ ...spec, volumeUuid: VOL2 }), /nsid 1 already holds/);
    await assert.rejects(dp.addNamespace({ ...spec, nsid: 2 }), /already nsid 1/);
  });

  it('gives concurrent volumes distinct ANA groups', async () => {
    const { dp } = await setup();
    const uuids = Array.from({ length: 6 }, (_, i) => `${VOL.slice(0, -2)}${String(i).padStart(2, '0')}`);
    await Promise.all(
      uuids.map((volumeUuid, i) => dp.addNamespace({ volumeUuid, nsid: i + 1, sizeBytes: MiB, ana: ANA })),
    );
    const groups = uuids.map((u) => dp.volume(u)?.anaGroup);
    assert.equal(new Set(groups).size, uuids.length);
  });

  it('rejects ANA states nvmet cannot take and nodes it does not know', async () => {
    const { dp } = await setup();
    await assert.rejects(
      dp.addNamespace({ volumeUuid: VOL, nsid: 1, sizeBytes: MiB, ana: { 'node-1': 'unknown' } }),
      /unknown cannot be set/,
    );
    await assert.rejects(
      dp.addNamespace({ volumeUuid: VOL, nsid: 1, sizeBytes: MiB, ana: { 'node-9': 'optimized' } }),
      /unknown node node-9/,
    );
    await assert.rejects(dp.setAna(VOL2, ANA), /no namespace for volume/);
  });

  it('setAna moves the optimized path; a node left out is inaccessible', async () => {
    const { dp, anaOf } = await setup();
    await dp.addNamespace({ volumeUuid: VOL, nsid: 1, sizeBytes: MiB, ana: ANA });
    const g = dp.volume(VOL)!.anaGroup;
    await dp.setAna(VOL, { 'node-1': 'non-optimized', 'node-2': 'optimized' });
    assert.deepEqual(
      [await anaOf(0, g), await anaOf(1, g), await anaOf(2, g)],
      ['non-optimized', 'optimized', 'inaccessible'],
    );
  });

  it('setAllowedHosts links and unlinks hosts, and removes host entries no one uses', async () => {
    const { fs, dp, sub } = await setup();
    await dp.setAllowedHosts([HOST_A, HOST_B]);
    assert.deepEqual(await fs.list(`${sub}/allowed_hosts`), [HOST_A, HOST_B].sort());
    await dp.setAllowedHosts([HOST_B]);
    await dp.setAllowedHosts([HOST_B]);
    assert.deepEqual(await fs.list(`${sub}/allowed_hosts`), [HOST_B]);
    assert.deepEqual(await fs.list('hosts'), [HOST_B]);
    await dp.setAllowedHosts([]);
    assert.deepEqual(await fs.list('hosts'), []);
    await assert.rejects(dp.setAllowedHosts(['a/b']), /bad NQN/);
  });

  it('with allowAnyHost the subsystem is open and host lists are only remembered', async () => {
    const { fs, dp, sub } = await setup({}, { allowAnyHost: true });
    assert.equal(await fs.read(`${sub}/attr_allow_any_host`), '1');
    await dp.setAllowedHosts([HOST_A]);
    assert.deepEqual(await fs.list(`${sub}/allowed_hosts`), []);
    assert.deepEqual(dp.hosts, [HOST_A]);
  });

  it('a node down unlinks its port and makes its paths inaccessible; up restores both', async () => {
    const { fs, dp, anaOf } = await setup();
    await dp.addNamespace({ volumeUuid: VOL, nsid: 1, sizeBytes: MiB, ana: ANA });
    const g = dp.volume(VOL)!.anaGroup;
    await dp.setNodeUp('node-1', false);
    await dp.setNodeUp('node-1', false);
    assert.deepEqual(await fs.list('ports/1/subsystems'), []);
    assert.equal(await anaOf(0, g), 'inaccessible');
    // The cluster fails over while the node is down; the node keeps serving nothing.
    await dp.setAna(VOL, { 'node-1': 'optimized', 'node-2': 'optimized' });
    assert.equal(await anaOf(0, g), 'inaccessible');
    assert.equal(await anaOf(1, g), 'optimized');
    await dp.setNodeUp('node-1', true);
    assert.deepEqual(await fs.list('ports/1/subsystems'), [NQN]);
    assert.equal(await anaOf(0, g), 'optimized');
    await assert.rejects(dp.setNodeUp('node-9', true), /unknown node/);
  });

  it('resize grows the file and asks nvmet to revalidate; never shrinks', async () => {
    const { fs, dp, dataDir, sub } = await setup();
    await dp.addNamespace({ volumeUuid: VOL, nsid: 1, sizeBytes: 64 * MiB, ana: ANA });
    await dp.resizeNamespace(VOL, 96 * MiB);
    assert.equal((await stat(path.join(dataDir, `${VOL}.img`))).size, 96 * MiB);
    assert.ok(fs.writes.some((w) => w.rel === `${sub}/namespaces/1/revalidate_size` && w.value === '1'));
    await assert.rejects(dp.resizeNamespace(VOL, 32 * MiB), /cannot shrink/);
    // A bigger size through addNamespace (a replayed create) also reaches the hosts.
    const n = fs.writes.length;
    await dp.addNamespace({ volumeUuid: VOL, nsid: 1, sizeBytes: 128 * MiB, ana: ANA });
    assert.deepEqual(
      fs.writes.slice(n).map((w) => w.rel),
      [`${sub}/namespaces/1/revalidate_size`],
    );
  });

  it('resize without revalidate_size cycles the namespace', async () => {
    const { fs, dp, sub } = await setup({ revalidateSize: false });
    await dp.addNamespace({ volumeUuid: VOL, nsid: 1, sizeBytes: MiB, ana: ANA });
    const n = fs.writes.length;
    await dp.resizeNamespace(VOL, 2 * MiB);
    assert.deepEqual(fs.writes.slice(n), [
      { rel: `${sub}/namespaces/1/enable`, value: '0' },
      { rel: `${sub}/namespaces/1/enable`, value: '1' },
    ]);
  });

  it('removeNamespace removes the namespace, its groups and its file; absent is fine', async () => {
    const { fs, dp, dataDir, sub } = await setup();
    await dp.addNamespace({ volumeUuid: VOL, nsid: 1, sizeBytes: MiB, ana: ANA });
    const g = dp.volume(VOL)!.anaGroup;
    await dp.removeNamespace(VOL);
    await dp.removeNamespace(VOL);
    await dp.removeNamespace(VOL2);
    assert.deepEqual(await fs.list(`${sub}/namespaces`), []);
    for (const n of NODES) assert.deepEqual(await fs.list(`ports/${n.index + 1}/ana_groups`), ['1'], `group ${g} gone`);
    await assert.rejects(stat(path.join(dataDir, `${VOL}.img`)), /ENOENT/);
    assert.equal(dp.volume(VOL), undefined);
  });

  it('stop tears everything down, links before folders, and may be repeated', async () => {
    const { fs, dp, dataDir } = await setup();
    await dp.setAllowedHosts([HOST_A]);
    await dp.addNamespace({ volumeUuid: VOL, nsid: 1, sizeBytes: MiB, ana: ANA });
    await dp.addNamespace({ volumeUuid: VOL2, nsid: 2, sizeBytes: MiB, ana: ANA });
    await dp.setNodeUp('node-2', false);
    await dp.stop();
    await dp.stop();
    assert.deepEqual(await fs.tree(), ['hosts/', 'ports/', 'subsystems/']);
    assert.deepEqual(await readdir(dataDir), []);
  });

  it('a restarted plane adopts what is in configfs and can tear it down', async () => {
    const { fs, dp, dataDir, sub } = await setup();
    await dp.setAllowedHosts([HOST_A]);
    await dp.addNamespace({ volumeUuid: VOL, nsid: 3, sizeBytes: MiB, ana: ANA });
    const group = dp.volume(VOL)!.anaGroup;
    // A create that stopped before `enable`.
    await fs.mkdir(`${sub}/namespaces/9`);

    const again = new NvmetDataPlane({ configfs: fs, dataDir, bufferedIo: false });
    await again.start(NQN, NODES);
    assert.deepEqual(await fs.list(`${sub}/namespaces`), ['3']);
    assert.equal(again.volume(VOL)?.anaGroup, group);
    await again.addNamespace({ volumeUuid: VOL, nsid: 3, sizeBytes: MiB, ana: ANA });
    await again.addNamespace({ volumeUuid: VOL2, nsid: 4, sizeBytes: MiB, ana: ANA });
    assert.notEqual(again.volume(VOL2)?.anaGroup, group);
    await again.stop();
    assert.deepEqual(await fs.tree(), ['hosts/', 'ports/', 'subsystems/']);
  });

  it('moving a node to another address re-creates its port binding', async () => {
    const { fs, dp } = await setup();
    await dp.stop();
    const moved = NODES.map((n) => (n.index === 0 ? { ...n, port: 5420 } : n));
    await dp.start(NQN, NODES);
    await dp.start(NQN, moved);
    assert.equal(await fs.read('ports/1/addr_trsvcid'), '5420');
    assert.deepEqual(await fs.list('ports/1/subsystems'), [NQN]);
  });

  it('methods before start fail clearly; stop before start is a no-op', async () => {
    const fs = await ConfigfsStandIn.create();
    cleanups.push(() => fs.destroy());
    const dp = new NvmetDataPlane({ configfs: fs, dataDir: os.tmpdir() });
    await dp.stop();
    await assert.rejects(dp.setAllowedHosts([]), /start\(\) first/);
    await assert.rejects(dp.addNamespace({ volumeUuid: VOL, nsid: 1, sizeBytes: 1, ana: {} }), /start\(\) first/);
  });
});
