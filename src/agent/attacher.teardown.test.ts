import { toAttachSpec } from './connection-data.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TeardownError } from './attacher.ts';
import { ADDRS, NQN, VOL, VOL2, drive, nativeData, portals, scenario } from './testing/scenario.ts';

async function attached(opts: Parameters<typeof scenario>[0] = {}) {
  const s = scenario(opts);
  s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
  const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
  return { ...s, dev: r.devicePath };
}

/** A kernel whose controllers have no writable delete_controller: the agent uses nvme-cli. */
const NVME_CLI_ONLY = { kernel: { deleteController: false } };

describe('teardown', () => {
  it('flushes, disconnects each controller with -d and checks sysfs', async () => {
    const s = await attached();
    const r = await drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData())));
    assert.deepEqual(r.flushed, ['/dev/nvme0n1']);
    assert.deepEqual(r.disconnected.sort(), ['nvme0', 'nvme1', 'nvme2']);
    assert.deepEqual(s.host.controllers(), []);
    assert.equal(s.host.calls('nvme disconnect -n').length, 0, 'never subsystem-wide');
    assert.deepEqual(
      s.host.calls('write /sys/class/nvme/').sort(),
      ['nvme0', 'nvme1', 'nvme2'].map((c) => `write /sys/class/nvme/${c}/delete_controller`),
      "through each controller's delete_controller, as nvme disconnect -d does",
    );
    assert.equal(s.host.calls('nvme disconnect').length, 0, 'no nvme-cli process');
    assert.ok(!s.host.fs.exists('/sys/block/nvme0n1'));
  });

  it('falls back to nvme disconnect -d where delete_controller cannot be written', async () => {
    const s = await attached(NVME_CLI_ONLY);
    const r = await drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData())));
    assert.deepEqual(r.disconnected.sort(), ['nvme0', 'nvme1', 'nvme2']);
    assert.equal(s.host.calls('nvme disconnect -d').length, 3);
    assert.deepEqual(s.host.controllers(), []);
  });

  it('is not an error when nothing is attached', async () => {
    const s = scenario();
    const r = await drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData())));
    const { trace, ...rest } = r;
    assert.deepEqual(rest, { devices: [], flushed: [], removedMaps: [], disconnected: [], kept: [], errors: [] });
    assert.ok(trace.length > 0, 'the steps it took are traced');
  });

  const uses: [string, (s: Awaited<ReturnType<typeof attached>>) => void, RegExp][] = [
    ['open by a process', (s) => s.host.openDevice(777, s.dev), /open by pid 777/],
    ['mounted', (s) => s.host.mount(s.dev, '/var/lib/instances/disk 1'), /mounted at \/var\/lib\/instances\/disk 1/],
    ['held (LVM on top)', (s) => s.host.addHolder('nvme0n1', 'dm-7'), /held by dm-7/],
    [
      'swap',
      (s) => s.host.fs.writeFile('/proc/swaps', 'Filename Type Size Used Priority\n/dev/nvme0n1 partition 1024 0 -2\n'),
      /swap/,
    ],
  ];
  for (const [what, use, msg] of uses) {
    it(`refuses while the device is ${what}, doing nothing; force overrides`, async () => {
      const s = await attached();
      use(s);
      await assert.rejects(
        drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData()))),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, 'in_use');
          assert.match(e.message, msg);
          return true;
        },
      );
      assert.equal(s.host.controllers().length, 3);
      assert.equal(s.host.calls('blockdev').length + s.host.disconnects().length, 0);
      const r = await drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData()), { force: true }));
      assert.equal(r.disconnected.length, 3);
    });
  }

  it('sees a mounted partition of the device', async () => {
    const s = await attached();
    s.host.fs.mkdirp('/sys/block/nvme0n1/nvme0n1p1');
    s.host.fs.writeFile('/sys/block/nvme0n1/nvme0n1p1/dev', '259:42\n');
    s.host.fs.writeFile(
      '/proc/self/mountinfo',
      '22 1 0:21 / / rw - overlay overlay rw\n40 22 259:42 / /mnt rw - xfs /dev/nvme0n1p1 rw\n',
    );
    await assert.rejects(drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData()))), { code: 'in_use' });
  });

  it('sees a btrfs mount (anonymous 0:N device) by its source', async () => {
    const s = await attached();
    s.host.fs.writeFile(
      '/proc/self/mountinfo',
      '22 1 0:21 / / rw - overlay overlay rw\n41 22 0:45 / /srv rw - btrfs /dev/nvme0n1 rw\n',
    );
    await assert.rejects(drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData()))), /mounted at \/srv/);
  });

  it('stops before disconnecting when the flush fails, unless forced', async () => {
    const s = await attached();
    s.host.dm.opts.failFlush.add('nvme0n1');
    await assert.rejects(drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData()))), /flushbufs/);
    assert.equal(s.host.controllers().length, 3);
    await assert.rejects(
      drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData()), { force: true })),
      (e: unknown) => {
        assert.ok(e instanceof TeardownError);
        assert.equal(e.result.disconnected.length, 3, 'forced: went on and disconnected');
        assert.match(e.result.errors[0]!.message, /flushbufs/);
        return true;
      },
    );
  });

  it('keeps controllers another namespace of a shared subsystem still uses', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    s.host.fabric.addNamespace(NQN, { nsid: 2, uuid: VOL2 });
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    const other = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '2' }))));

    const r = await drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData())));
    assert.deepEqual(r.disconnected, []);
    assert.equal(r.kept.length, 3);
    assert.match(r.kept[0]!.reason, /other namespaces/);
    assert.equal(s.host.disconnects().length, 0);
    assert.equal(
      (await s.attacher.getPaths(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '2' })))).devicePath,
      other.devicePath,
    );

    // VOL's namespace stays visible until the service revokes the host's access: until then the
    // controllers still carry it and stay.
    const early = await drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '2' }))));
    assert.equal(early.kept.length, 3);
    s.host.unpublishNamespace(NQN, 1);
    const last = await drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '2' }))));
    assert.equal(last.disconnected.length, 3);
  });

  it("given the host's complete attachment list, a visible namespace nobody wants or uses does not keep the controllers", async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    s.host.fabric.addNamespace(NQN, { nsid: 2, uuid: VOL2 });
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    // VOL2's namespace is visible (detached, but its access not yet gone), and nothing uses it.
    const r = await drive(
      s.clock,
      s.attacher.disconnect(toAttachSpec(nativeData()), { otherAttachments: [].map(toAttachSpec) }),
    );
    assert.equal(r.disconnected.length, 3);
    assert.deepEqual(s.host.controllers(), []);
  });

  it('given the complete list, keeps the controllers while another namespace behind them is open', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    s.host.fabric.addNamespace(NQN, { nsid: 2, uuid: VOL2 });
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    const other = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '2' }))));
    s.host.openDevice(777, other.devicePath!);
    const r = await drive(
      s.clock,
      s.attacher.disconnect(toAttachSpec(nativeData()), { otherAttachments: [].map(toAttachSpec) }),
    );
    assert.deepEqual(r.disconnected, []);
    assert.equal(r.kept.length, 3);
    assert.match(r.kept[0]!.reason, /open/);
    assert.equal(
      (await s.attacher.getPaths(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '2' })))).devicePath,
      other.devicePath,
    );
  });

  it('given the complete list, the last detach also removes a controller no attachment names (kept earlier for it)', async () => {
    // Volume 1 moved to node 4; volume 2 stayed on nodes 1-3 but is visible through node 4 too
    // (one subsystem), so detaching volume 1 kept that controller while volume 2 was open.
    const s = scenario({ addrs: [...ADDRS, '10.0.0.4'] });
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    s.host.fabric.addNamespace(NQN, { nsid: 2, uuid: VOL2 });
    const vol1 = nativeData({ portals: portals(['10.0.0.1', '10.0.0.2', '10.0.0.4']) });
    const vol2 = nativeData({ vol_uuid: VOL2, ns_id: '2' });
    await drive(s.clock, s.attacher.connect(toAttachSpec(vol1)));
    const other = await drive(s.clock, s.attacher.connect(toAttachSpec(vol2)));
    s.host.openDevice(777, other.devicePath!);
    const first = await drive(
      s.clock,
      s.attacher.disconnect(toAttachSpec(vol1), { otherAttachments: [vol2].map(toAttachSpec) }),
    );
    assert.deepEqual(first.disconnected, [], JSON.stringify(first));
    assert.equal(s.host.controllers().length, 4, "node 4's controller carries an open path of volume 2");

    s.host.closeAll(777);
    const last = await drive(
      s.clock,
      s.attacher.disconnect(toAttachSpec(vol2), { otherAttachments: [].map(toAttachSpec) }),
    );
    assert.equal(last.disconnected.length, 4, JSON.stringify(last));
    assert.deepEqual(s.host.controllers(), [], 'nothing left behind');
  });

  it("without the complete list (the CLI), a controller outside the volume's portals is never touched", async () => {
    const s = scenario({ addrs: [...ADDRS, '10.0.0.4'] });
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ portals: portals(['10.0.0.4']) }))));
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    const r = await drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData())));
    assert.equal(r.disconnected.length, 3);
    assert.equal(s.host.controllers().length, 1, "node 4's controller is not this call's to remove");
  });

  it('keeps controllers another local attachment of the subsystem needs', async () => {
    const s = await attached();
    const r = await drive(
      s.clock,
      s.attacher.disconnect(toAttachSpec(nativeData()), {
        otherAttachments: [nativeData({ vol_uuid: VOL2, ns_id: '2', portals: [['10.0.0.1', 4420, 'tcp']] })].map(
          toAttachSpec,
        ),
      }),
    );
    assert.deepEqual(
      r.kept.map((k) => k.controller),
      ['nvme0'],
    );
    assert.match(r.kept[0]!.reason, /another attachment/);
    assert.deepEqual(r.disconnected.sort(), ['nvme1', 'nvme2']);
  });

  it('nvme-cli fallback: reports a disconnect nvme-cli claimed (exit 0) but the kernel did not do, and goes on', async () => {
    const s = await attached(NVME_CLI_ONLY);
    s.host.cli.failDisconnect.add('nvme1');
    await assert.rejects(drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData()))), (e: unknown) => {
      assert.ok(e instanceof TeardownError);
      assert.deepEqual(e.result.disconnected.sort(), ['nvme0', 'nvme2']);
      assert.equal(e.result.errors.length, 1);
      assert.match(
        e.result.errors[0]!.message,
        /nvme disconnect -d nvme1 exited 0 but nvme1 is still present \(state live\)/,
      );
      return true;
    });
    assert.deepEqual(s.host.controllers(), ['nvme1']);
  });

  it('nvme-cli fallback: does not mistake a controller that reused the name for the one it disconnected', async () => {
    const s = await attached(NVME_CLI_ONLY);
    // While nvme1 goes away, another subsystem's connect takes the number: that is not a failure.
    s.host.fabric.addSubsystem('nqn.other', [{ address: '10.9.9.9' }]);
    s.host.script(
      (cmd, args) => cmd === 'nvme' && args[0] === 'disconnect' && args[2] === 'nvme1',
      () => {
        const r = s.host.answer('nvme', ['disconnect', '-d', 'nvme1']);
        s.host.answer('nvme', ['connect', '-t', 'tcp', '-a', '10.9.9.9', '-s', '4420', '-n', 'nqn.other']);
        return r;
      },
    );
    const r = await drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData())));
    assert.deepEqual(r.disconnected.sort(), ['nvme0', 'nvme1', 'nvme2']);
    assert.equal(s.host.fs.read('/sys/class/nvme/nvme1/subsysnqn')?.trim(), 'nqn.other');
  });

  // Seen in the kernel scenarios (Debian 12: nvme-cli 2.3, libnvme 1.3): `nvme disconnect -d`
  // scans the whole sysfs topology first, and libnvme 1.3 double-frees (SIGABRT, exit 134) when
  // a controller directory vanishes during that scan (libnvme issue #840), i.e. while another
  // controller is being removed: parallel disconnects of one volume's controllers crashed it.
  it('nvme-cli fallback: disconnects one controller at a time (no nvme-cli scans sysfs while another controller goes)', async () => {
    const s = await attached(NVME_CLI_ONLY);
    let most = 0;
    s.host.script(
      (cmd, args) => cmd === 'nvme' && args[0] === 'disconnect',
      () => {
        const inFlight = s.host.running.filter((r) => r.cmd === 'nvme' && r.args[0] === 'disconnect');
        most = Math.max(most, inFlight.length);
        return Promise.resolve(s.host.answer('nvme', inFlight.at(-1)!.args));
      },
      3,
    );
    const r = await drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData())));
    assert.deepEqual(r.disconnected.sort(), ['nvme0', 'nvme1', 'nvme2']);
    assert.equal(most, 1, 'disconnects in flight at once');
  });

  it('nvme-cli fallback: runs nvme disconnect again when nvme-cli aborted before disconnecting (libnvme 1.3 double free)', async () => {
    const s = await attached(NVME_CLI_ONLY);
    s.host.script((cmd, args) => cmd === 'nvme' && args[0] === 'disconnect' && args[2] === 'nvme1', {
      code: 134,
      stdout: '',
      stderr: 'free(): double free detected in tcache 2\n',
    });
    const t0 = s.clock.now();
    const r = await drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData())));
    assert.deepEqual(r.disconnected.sort(), ['nvme0', 'nvme1', 'nvme2']);
    assert.deepEqual(r.errors, []);
    assert.equal(s.host.calls('nvme disconnect -d nvme1').length, 2);
    assert.ok(s.clock.now() - t0 < 5000, 'not after waiting out the sysfs check of the crashed attempt');
    assert.deepEqual(s.host.controllers(), []);
  });

  it('nvme-cli fallback: gives up after three aborted attempts and reports the controller still there', async () => {
    const s = await attached(NVME_CLI_ONLY);
    s.host.script(
      (cmd, args) => cmd === 'nvme' && args[0] === 'disconnect' && args[2] === 'nvme1',
      { code: 134, stdout: '', stderr: 'free(): double free detected in tcache 2\n' },
      5,
    );
    await assert.rejects(drive(s.clock, s.attacher.disconnect(toAttachSpec(nativeData()))), (e: unknown) => {
      assert.ok(e instanceof TeardownError);
      assert.match(
        e.result.errors[0]!.message,
        /nvme disconnect -d nvme1 exited 134 but nvme1 is still present .*double free/,
      );
      return true;
    });
    assert.equal(s.host.calls('nvme disconnect -d nvme1').length, 3);
    assert.deepEqual(s.host.controllers(), ['nvme1']);
  });
});
