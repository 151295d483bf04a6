import { toAttachSpec } from './connection-data.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TeardownError } from './attacher.ts';
import { NQN, NQN_B, VOL, dmData, drive, scenario } from './testing/scenario.ts';
import { GiB } from '../shared/units.ts';

const MAP = `uuid.${VOL}`;

function dmScenario(opts: Parameters<typeof scenario>[0] = {}) {
  const s = scenario({ kernel: { multipath: false }, ...opts });
  s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL, sizeBytes: 4 * GiB });
  return s;
}

describe('DM multipath', () => {
  it('connects each replica, finds the paths by WWID, has multipathd assemble the map and returns /dev/mapper', async () => {
    const s = dmScenario();
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(dmData())));
    assert.equal(r.devicePath, `/dev/mapper/${MAP}`);
    assert.equal(r.sizeBytes, 4 * GiB);
    assert.equal(r.health, 'optimal');
    assert.deepEqual(
      r.paths.map((p) => [p.controller, p.state, p.dmState]),
      [
        ['nvme0', 'live', 'active'],
        ['nvme1', 'live', 'active'],
      ],
    );
    assert.deepEqual(s.host.calls('multipathd add path').sort(), [
      'multipathd add path nvme0n1',
      'multipathd add path nvme1n1',
    ]);
    // the dm is found from the path devices' holders
    assert.deepEqual(s.host.fs.list('/sys/block/nvme0n1/holders'), ['dm-0']);
  });

  it('a controller the kernel made while nvme-cli failed its own lookup (libnvme race) joins the map at once', async () => {
    const s = dmScenario();
    const args = ['connect', '-t', 'tcp', '-a', '10.0.0.2', '-s', '4420', '-n', NQN];
    s.host.script(
      (cmd, a) => cmd === 'nvme' && a[0] === 'connect' && a.includes('10.0.0.2'),
      () => {
        s.host.answer('nvme', args); // the kernel connects…
        return { code: 1, stdout: '', stderr: 'failed to lookup subsystem for controller nvme1\n' }; // …nvme-cli fails
      },
    );
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(dmData())));
    assert.equal(r.health, 'optimal', 'both paths in the map now, not on a later pass');
    assert.deepEqual(
      r.paths.map((p) => [p.address, p.state, p.dmState]),
      [
        ['10.0.0.1', 'live', 'active'],
        ['10.0.0.2', 'live', 'active'],
      ],
    );
    assert.equal(s.host.calls('nvme connect').length, 2, 'no second connect');
  });

  it('online extend: rescans the paths, then has multipathd reload the map at the new size', async () => {
    const s = dmScenario();
    await drive(s.clock, s.attacher.connect(toAttachSpec(dmData())));
    s.host.fabric.subsystem(NQN).namespaces.get(1)!.sizeBytes = 8 * GiB; // grown on the target, no AEN
    const r = await drive(s.clock, s.attacher.extend(toAttachSpec(dmData()), 8 * GiB));
    assert.equal(r.sizeBytes, 8 * GiB);
    assert.equal(s.host.calls('nvme ns-rescan').length, 2);
    assert.deepEqual(s.host.calls('multipathd resize map'), [`multipathd resize map ${MAP}`]);
  });

  it('falls back to multipathd reconfigure when adding paths does not build the map', async () => {
    const s = dmScenario({ dm: { assembleOn: 'reconfigure' } });
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(dmData())));
    assert.equal(r.devicePath, `/dev/mapper/${MAP}`);
    assert.equal(s.host.calls('multipathd reconfigure').length, 1);
  });

  it('fails with dm_map_missing at the deadline when multipathd never assembles it', async () => {
    const s = dmScenario({ dm: { assembleOn: 'never' }, attacher: { deviceTimeoutMs: 3_000 } });
    await assert.rejects(drive(s.clock, s.attacher.connect(toAttachSpec(dmData()))), { code: 'dm_map_missing' });
  });

  it('refuses DM while native NVMe multipath is on (multipath-tools ignores NVMe then)', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    await assert.rejects(drive(s.clock, s.attacher.connect(toAttachSpec(dmData()))), { code: 'dm_unavailable' });
    assert.equal(s.host.calls('nvme connect').length, 0);
  });

  it('works across replicas in different subsystems', async () => {
    const s = dmScenario();
    s.host.fabric.addSubsystem(NQN_B, [{ address: '10.0.1.1' }]);
    s.host.fabric.addNamespace(NQN_B, { nsid: 7, uuid: VOL, sizeBytes: 4 * GiB });
    const data = dmData({
      dm_replicas: [
        { vol_uuid: VOL, target_nqn: NQN, portals: [['10.0.0.1', 4420, 'tcp']] },
        { vol_uuid: VOL, target_nqn: NQN_B, portals: [['10.0.1.1', 4420, 'tcp']] },
      ],
    });
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(data)));
    assert.equal(r.devicePath, `/dev/mapper/${MAP}`);
    assert.equal(r.paths.length, 2);
    assert.equal(r.health, 'optimal');
  });

  it('reports health from multipathd and re-adds a path that comes back', async () => {
    const s = dmScenario();
    await drive(s.clock, s.attacher.connect(toAttachSpec(dmData())));
    s.host.setPortalUp('10.0.0.2', false);
    const down = await s.attacher.getPaths(toAttachSpec(dmData()));
    assert.equal(down.health, 'degraded');
    assert.deepEqual(
      down.paths.map((p) => [p.state, p.dmState]),
      [
        ['live', 'active'],
        ['connecting', 'failed'],
      ],
    );

    s.host.expirePortal('10.0.0.2');
    s.host.fabric.portal('10.0.0.2').up = true;
    const back = await drive(s.clock, s.attacher.connect(toAttachSpec(dmData())));
    assert.equal(back.health, 'optimal');
    assert.deepEqual(s.host.fs.list('/sys/block/dm-0/slaves').sort(), ['nvme0n1', 'nvme1n1']);
  });

  it('reads path states from `show paths` when `show maps json` is not available', async () => {
    const s = dmScenario();
    await drive(s.clock, s.attacher.connect(toAttachSpec(dmData())));
    s.host.setPortalUp('10.0.0.1', false);
    s.host.script((cmd, args) => cmd === 'multipathd' && args.join(' ') === 'show maps json', {
      code: 1,
      stdout: '',
      stderr: 'unknown command\n',
    });
    const r = await s.attacher.getPaths(toAttachSpec(dmData()));
    assert.deepEqual(
      r.paths.map((p) => p.dmState),
      ['failed', 'active'],
    );
    assert.equal(s.host.calls('multipathd show paths raw format').length, 1);
  });

  it('tears down: flushes and removes the map before disconnecting its paths', async () => {
    const s = dmScenario();
    await drive(s.clock, s.attacher.connect(toAttachSpec(dmData())));
    const r = await drive(s.clock, s.attacher.disconnect(toAttachSpec(dmData())));
    assert.deepEqual(r.flushed, [`/dev/mapper/${MAP}`]);
    assert.deepEqual(r.removedMaps, [MAP]);
    assert.deepEqual(r.disconnected.sort(), ['nvme0', 'nvme1']);
    assert.equal(s.host.kernel.maps.size, 0);
  });

  it('tears down with every attachment of the host known (the daemon): each controller once', async () => {
    const s = dmScenario();
    await drive(s.clock, s.attacher.connect(toAttachSpec(dmData())));
    const r = await drive(s.clock, s.attacher.disconnect(toAttachSpec(dmData()), { otherAttachments: [] }));
    assert.deepEqual(
      r.disconnected.sort(),
      ['nvme0', 'nvme1'],
      'a replica of one subsystem does not repeat the others',
    );
    assert.deepEqual(s.host.disconnects().sort(), ['nvme0', 'nvme1']);
  });

  it('finds the map to tear down from sysfs alone: no multipathd query before the flush', async () => {
    const s = dmScenario();
    await drive(s.clock, s.attacher.connect(toAttachSpec(dmData())));
    const before = s.host.calls('multipathd show').length;
    await drive(s.clock, s.attacher.disconnect(toAttachSpec(dmData())));
    assert.equal(s.host.calls('multipathd show').length, before, 'the per-path states are a report’s, not a detach’s');
  });

  it('refuses while the map is open or mounted; a map that will not go keeps its paths', async () => {
    const s = dmScenario();
    await drive(s.clock, s.attacher.connect(toAttachSpec(dmData())));
    s.host.openDevice(900, '/dev/dm-0');
    await assert.rejects(drive(s.clock, s.attacher.disconnect(toAttachSpec(dmData()))), { code: 'in_use' });
    s.host.closeAll(900);
    s.host.mount(`/dev/mapper/${MAP}`, '/srv');
    await assert.rejects(drive(s.clock, s.attacher.disconnect(toAttachSpec(dmData()))), /mounted at \/srv/);
    s.host.umount('/srv');

    s.host.dm.opts.stuck.add(MAP);
    await assert.rejects(drive(s.clock, s.attacher.disconnect(toAttachSpec(dmData()))), (e: unknown) => {
      assert.ok(e instanceof TeardownError);
      assert.match(e.message, /still present/);
      assert.deepEqual(e.result.disconnected, []);
      return true;
    });
    assert.equal(s.host.controllers().length, 2, 'paths stay under a map that is still there');
    assert.ok(s.host.calls('dmsetup remove').every((l) => !l.includes('--force')));
  });
});
