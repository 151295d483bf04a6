import { toAttachSpec } from './connection-data.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADDRS, NQN, VOL, VOL2, drive, nativeData, scenario } from './testing/scenario.ts';

describe('self-healing', () => {
  it('reconnects a path lost past ctrl-loss-tmo once its portal answers again', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));

    // Node 2 goes away: its controller reconnects in the background, then ctrl-loss-tmo expires.
    s.host.setPortalUp('10.0.0.2', false);
    assert.equal((await s.attacher.getPaths(toAttachSpec(nativeData()))).paths[1]!.state, 'connecting');
    s.host.expirePortal('10.0.0.2');
    const lost = await s.attacher.getPaths(toAttachSpec(nativeData()));
    assert.equal(lost.devicePath, '/dev/nvme0n1', 'the head survives on the other paths');
    assert.equal(lost.paths[1]!.state, 'missing');
    assert.equal(lost.health, 'degraded');

    // A pass while the portal is still down: tried, fails, nothing else changes.
    const down = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    assert.equal(down.health, 'degraded');

    // The node is back: the next pass reconnects that portal only.
    s.host.fabric.portal('10.0.0.2').up = true;
    const n = s.host.calls('nvme connect').length;
    const back = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    assert.equal(back.health, 'optimal');
    assert.equal(back.devicePath, '/dev/nvme0n1');
    assert.deepEqual(
      s.host
        .calls('nvme connect')
        .slice(n)
        .map((l) => l.split(' ')[5]),
      ['10.0.0.2'],
    );
    assert.equal(s.host.controllers(NQN).length, 3);
  });

  it('does not count a reconnected path whose namespace is now another volume', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    s.host.setPortalUp('10.0.0.3', false);
    s.host.expirePortal('10.0.0.3');
    // The node reboots with NSID 1 now holding another volume; the kernel refuses to add it to
    // the head ("IDs don't match"), so the controller comes back without our namespace.
    s.host.fabric.subsystem(NQN).namespaces.get(1)!.uuid = VOL2;
    s.host.fabric.portal('10.0.0.3').up = true;
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    assert.equal(r.paths[2]!.controller !== null, true);
    assert.equal(r.paths[2]!.state, 'no-namespace');
    assert.equal(r.health, 'degraded');
  });

  it('with a plain device (single path, multipath=N) refuses a reconnected namespace of another volume', async () => {
    const s = scenario({ kernel: { multipath: false }, attacher: { deviceTimeoutMs: 2_000 } });
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    const data = nativeData({ multipath_mode: 'single' });
    const first = await drive(s.clock, s.attacher.connect(toAttachSpec(data)));
    assert.equal(first.devicePath, '/dev/nvme0n1');
    s.host.setPortalUp(ADDRS[0]!, false);
    s.host.expirePortal(ADDRS[0]!);
    s.host.fabric.subsystem(NQN).namespaces.get(1)!.uuid = VOL2;
    s.host.fabric.portal(ADDRS[0]!).up = true;
    // Same subsystem, same NSID, same device name even: but another volume. Never hand it out.
    await assert.rejects(drive(s.clock, s.attacher.connect(toAttachSpec(data))), { code: 'wrong_volume' });
    const p = await s.attacher.getPaths(toAttachSpec(data));
    assert.equal(p.devicePath, null);
    assert.equal(p.paths[0]!.state, 'wrong-volume');
  });

  it('a head that went away with its last path comes back (possibly renamed) and is reported anew', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    s.host.fabric.addNamespace(NQN, { nsid: 2, uuid: VOL2 });
    const a = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '2' }))));
    assert.equal(a.devicePath, '/dev/nvme0n2');
    for (const addr of ADDRS) {
      s.host.setPortalUp(addr, false);
      s.host.expirePortal(addr);
    }
    assert.equal(
      (await s.attacher.getPaths(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '2' })))).health,
      'failed',
    );
    for (const addr of ADDRS) s.host.fabric.portal(addr).up = true;
    const b = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '2' }))));
    assert.equal(b.health, 'optimal');
    assert.match(b.devicePath, /^\/dev\/nvme\d+n\d+$/);
    assert.equal((await s.host.readFile(`/sys/block/${b.devicePath.slice(5)}/uuid`))?.trim(), VOL2);
  });
});
