import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { portalKey } from './host/testing/fabric.ts';
import { NQN, VOL, VOL2, dmData, drive, nativeData, portals, scenario } from './testing/scenario.ts';
import { type PortalSpec, toAttachSpec } from './connection-data.ts';
import { GiB } from '../shared/units.ts';

const A = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'];
const spec = (address: string): PortalSpec => ({ address, port: 4420, transport: 'tcp' });

function liveScenario(kernel: { multipath?: boolean } = {}) {
  const s = scenario({ addrs: A, kernel });
  s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL, sizeBytes: GiB });
  s.host.fabric.addNamespace(NQN, { nsid: 2, uuid: VOL2, sizeBytes: GiB });
  const ana = (vol: number, addr: string, state: 'optimized' | 'non-optimized' | 'inaccessible') => {
    s.host.fabric
      .subsystem(NQN)
      .namespaces.get(vol)!
      .ana.set(portalKey('tcp', addr, 4420), state);
    s.host.kernel.render();
  };
  return { ...s, ana };
}

/**
 * Two volumes on the same three controllers, volume 2 open (being written); `before` runs, then
 * node 2's old address stops answering and both volumes' connection infos name node 4 instead.
 */
async function readdressed(before: (s: ReturnType<typeof liveScenario>) => void = () => {}) {
  const s = liveScenario();
  const vol1 = nativeData({ portals: portals(A.slice(0, 3)) });
  const vol2 = nativeData({ vol_uuid: VOL2, ns_id: '2', portals: portals(A.slice(0, 3)) });
  await drive(s.clock, s.attacher.connect(toAttachSpec(vol1)));
  const v2 = await drive(s.clock, s.attacher.connect(toAttachSpec(vol2)));
  s.host.openDevice(777, v2.devicePath);
  before(s);
  s.host.setPortalUp(A[1]!, false);
  const moved1 = nativeData({ portals: portals([A[0]!, A[2]!, A[3]!]) });
  const moved2 = nativeData({ vol_uuid: VOL2, ns_id: '2', portals: portals([A[0]!, A[2]!, A[3]!]) });
  return { s, v2, moved1, moved2 };
}

describe('prunePortals: following a replica move', () => {
  it('connects the new portal, then drops the old controller only when no other attachment uses it', async () => {
    const s = liveScenario();
    const vol1 = nativeData({ portals: portals(A.slice(0, 3)) });
    const vol2 = nativeData({ vol_uuid: VOL2, ns_id: '2', portals: portals(A.slice(0, 3)) });
    await drive(s.clock, s.attacher.connect(toAttachSpec(vol1)));
    await drive(s.clock, s.attacher.connect(toAttachSpec(vol2)));
    assert.equal(s.host.controllers().length, 3);

    // The replica on node 3 moves to node 4: 4 serves, 3 no longer does.
    s.ana(1, A[3]!, 'non-optimized');
    s.ana(1, A[2]!, 'inaccessible');
    const moved = nativeData({ portals: portals([A[0]!, A[1]!, A[3]!]) });
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(moved)));
    assert.equal(r.paths.filter((p) => p.state === 'live').length, 3);
    assert.equal(s.host.controllers().length, 4, 'new portal connected first; the old one still there');

    const kept = await drive(
      s.clock,
      s.attacher.prunePortals(toAttachSpec(moved), [spec(A[2]!)], [vol2].map(toAttachSpec)),
    );
    assert.deepEqual(kept.disconnected, []);
    assert.equal(kept.kept.length, 1);
    assert.match(kept.kept[0]!.reason, new RegExp(`volume ${VOL2}`));
    assert.equal(s.host.controllers().length, 4, "volume 2's path through node 3 stays");
    const v2 = await s.attacher.getPaths(toAttachSpec(vol2));
    assert.equal(v2.paths.filter((p) => p.state === 'live').length, 3);

    const pruned = await drive(
      s.clock,
      s.attacher.prunePortals(toAttachSpec(moved), [spec(A[2]!)], [].map(toAttachSpec)),
    );
    assert.equal(pruned.disconnected.length, 1);
    assert.equal(s.host.controllers().length, 3);
    const after = await s.attacher.getPaths(toAttachSpec(moved));
    assert.deepEqual(
      after.paths.map((p) => [p.address, p.state]),
      [
        [A[0], 'live'],
        [A[1], 'live'],
        [A[3], 'live'],
      ],
    );
    assert.equal(after.health, 'optimal');
  });

  it('never removes the last live path: with no live path at the new portals nothing is pruned', async () => {
    const s = liveScenario();
    const old = nativeData({ portals: portals([A[0]!]) });
    await drive(s.clock, s.attacher.connect(toAttachSpec(old)));
    s.host.setPortalUp(A[3]!, false);
    const moved = nativeData({ portals: portals([A[3]!]) });
    const r = await drive(s.clock, s.attacher.prunePortals(toAttachSpec(moved), [spec(A[0]!)], [].map(toAttachSpec)));
    assert.equal(r.pending, true);
    assert.deepEqual(r.disconnected, []);
    assert.equal(s.host.controllers().length, 1, 'the old path stays until a new one is live');
  });

  it('DM: the new path device joins the map before the old one leaves it (multipathd del path), then its controller goes', async () => {
    const s = liveScenario({ multipath: false });
    const old = dmData();
    const first = await drive(s.clock, s.attacher.connect(toAttachSpec(old)));
    assert.match(first.devicePath, /^\/dev\/mapper\//);
    const moved = dmData({
      dm_replicas: [A[1]!, A[2]!].map((a) => ({ vol_uuid: VOL, target_nqn: NQN, portals: [[a, 4420, 'tcp']] })),
    });
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(moved)));
    assert.equal(r.devicePath, first.devicePath);
    assert.equal(r.paths.filter((p) => p.state === 'live').length, 2);
    const before = s.host.calls('').length;
    const pruned = await drive(
      s.clock,
      s.attacher.prunePortals(toAttachSpec(moved), [spec(A[0]!)], [].map(toAttachSpec)),
    );
    assert.deepEqual(pruned.disconnected, ['nvme0']);
    const cmds = s.host.calls('').slice(before);
    const del = cmds.findIndex((c) => c.startsWith('multipathd del path nvme0n1'));
    const disc = cmds.indexOf('write /sys/class/nvme/nvme0/delete_controller');
    assert.ok(del >= 0 && disc > del, `del path before disconnect: ${cmds.join(' | ')}`);
    const after = await s.attacher.getPaths(toAttachSpec(moved));
    assert.equal(after.devicePath, first.devicePath);
    assert.deepEqual(
      after.paths.map((p) => [p.address, p.state]),
      [
        [A[1], 'live'],
        [A[2], 'live'],
      ],
    );
  });

  it("deadOnly: a readdressed node's dead controller goes (another path is live); a live stale one stays", async () => {
    const s = liveScenario();
    const old = nativeData({ portals: portals(A.slice(0, 3)) });
    await drive(s.clock, s.attacher.connect(toAttachSpec(old)));
    s.host.setPortalUp(A[1]!, false); // node 2's old address stops answering
    const moved = nativeData({ portals: portals([A[0]!, A[3]!]) });
    const r = await drive(
      s.clock,
      s.attacher.prunePortals(toAttachSpec(moved), [spec(A[1]!), spec(A[2]!)], [].map(toAttachSpec), {
        deadOnly: true,
      }),
    );
    assert.equal(r.disconnected.length, 1, 'only the connecting controller to the old address');
    assert.equal(s.host.controllers().length, 2, 'the live stale controller to node 3 stays for now');
  });
  it('readdress: the dead controller shared with another volume in use goes while that volume has another usable path', async () => {
    const { s, v2, moved1, moved2 } = await readdressed();

    const r = await drive(
      s.clock,
      s.attacher.prunePortals(toAttachSpec(moved1), [spec(A[1]!)], [moved2].map(toAttachSpec), { deadOnly: true }),
    );
    assert.equal(r.disconnected.length, 1, JSON.stringify(r));
    assert.equal(s.host.controllers().length, 2);
    const after2 = await s.attacher.getPaths(toAttachSpec(moved2));
    assert.equal(after2.devicePath, v2.devicePath);
    assert.deepEqual(
      after2.paths.filter((p) => p.state === 'live').map((p) => p.address),
      [A[0], A[2]],
    );
  });

  it('readdress: the dead controller stays while it is the only path the other volume in use has', async () => {
    const { s, moved1, moved2 } = await readdressed((s) => {
      s.ana(2, A[0]!, 'inaccessible');
      s.ana(2, A[2]!, 'inaccessible');
    });

    const r = await drive(
      s.clock,
      s.attacher.prunePortals(toAttachSpec(moved1), [spec(A[1]!)], [moved2].map(toAttachSpec), { deadOnly: true }),
    );
    assert.deepEqual(r.disconnected, []);
    assert.equal(r.kept.length, 1);
    assert.match(r.kept[0]!.reason, /other namespaces behind it/);
    assert.equal(s.host.controllers().length, 3);
  });
  it("DM: a stale controller kept for another volume still loses this volume's path device from its map, for good", async () => {
    const s = liveScenario({ multipath: false });
    const replicas = (vol: string, addrs: string[]) =>
      addrs.map((a) => ({ vol_uuid: vol, target_nqn: NQN, portals: [[a, 4420, 'tcp'] as [string, number, string]] }));
    const a = dmData({ dm_replicas: replicas(VOL, [A[0]!, A[1]!]) });
    const b = dmData({ vol_uuid: VOL2, dm_replicas: replicas(VOL2, [A[0]!, A[1]!]) });
    const first = await drive(s.clock, s.attacher.connect(toAttachSpec(a)));
    await drive(s.clock, s.attacher.connect(toAttachSpec(b)));
    const slaves = () => s.host.fs.list(`/sys/block/${s.host.fs.realpath(first.devicePath)!.split('/').pop()}/slaves`);
    assert.equal(slaves().length, 2);

    // A's replica on node 1 moves to node 3; B stays on node 1.
    const moved = dmData({ dm_replicas: replicas(VOL, [A[1]!, A[2]!]) });
    await drive(s.clock, s.attacher.connect(toAttachSpec(moved)));
    assert.equal(slaves().length, 3, 'the new path joins first');
    const r = await drive(s.clock, s.attacher.prunePortals(toAttachSpec(moved), [spec(A[0]!)], [b].map(toAttachSpec)));
    assert.deepEqual(r.disconnected, []);
    assert.match(r.kept[0]!.reason, new RegExp(`volume ${VOL2}`));
    assert.equal(slaves().length, 2, "A's device behind the kept controller left A's map");
    await drive(s.clock, s.attacher.connect(toAttachSpec(moved))); // the daemon's next pass
    assert.equal(slaves().length, 2, 'and is not added back');
    const bPaths = await s.attacher.getPaths(toAttachSpec(b));
    assert.deepEqual(
      bPaths.paths.map((p) => [p.address, p.state]),
      [
        [A[0], 'live'],
        [A[1], 'live'],
      ],
    );
  });
});
