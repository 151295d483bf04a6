import { toAttachSpec } from './connection-data.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AlreadyForm, FakeNvmeCliVersion } from './host/testing/nvme-cli.ts';
import { ADDRS, NQN, NQN_B, VOL, VOL2, drive, nativeData, portals, scenario } from './testing/scenario.ts';
import { GiB } from '../shared/units.ts';

const isConnect = (addr: string) => (cmd: string, args: readonly string[]) =>
  cmd === 'nvme' && args[0] === 'connect' && args.includes(addr);

describe('native multipath connect', () => {
  it('connects every portal in parallel and returns the head, never a per-path device', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL, sizeBytes: 10 * GiB });
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    assert.equal(r.devicePath, '/dev/nvme0n1');
    assert.equal(r.sizeBytes, 10 * GiB);
    assert.equal(r.health, 'optimal');
    assert.deepEqual(
      r.paths.map((p) => [p.address, p.state, p.anaState]),
      ADDRS.map((a) => [a, 'live', 'optimized']),
    );
    assert.equal(s.host.controllers(NQN).length, 3);
    assert.ok(s.host.fs.list('/sys/block').includes('nvme0c1n1'), 'per-path devices exist in /sys/block');
    assert.ok(!(await s.host.exists('/dev/nvme0c1n1')), 'and have no /dev node');
    assert.equal(s.host.calls('nvme disconnect -n').length, 0);
  });

  it('passes the connect options (Lightbits defaults) and -q when the connection has host_nqn', async () => {
    const s = scenario({
      attacher: {
        tunables: { ctrlLossTmo: 600, reconnectDelay: 2, keepAliveTmo: 15, fastIoFailTmo: 5, nrIoQueues: 4 },
      },
    });
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    const hostNqn = 'nqn.2014-08.org.nvmexpress:uuid:99999999-8888-7777-6666-555555555555';
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ host_nqn: hostNqn }))));
    const line = s.host.calls('nvme connect')[0]!;
    for (const opt of [
      '--keep-alive-tmo=15',
      '--reconnect-delay=2',
      '--ctrl-loss-tmo=600',
      '--fast_io_fail_tmo=5',
      '--nr-io-queues=4',
      `-q ${hostNqn}`,
    ])
      assert.ok(line.includes(opt), `${opt} in ${line}`);
    assert.equal(s.host.fs.read('/sys/class/nvme/nvme0/hostnqn')?.trim(), hostNqn);
    assert.equal(s.host.fs.read('/sys/class/nvme/nvme0/fast_io_fail_tmo')?.trim(), '5');

    const d = scenario();
    d.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    await drive(d.clock, d.attacher.connect(toAttachSpec(nativeData())));
    const def = d.host.calls('nvme connect')[0]!;
    assert.ok(def.endsWith('--keep-alive-tmo=30 --reconnect-delay=10 --ctrl-loss-tmo=-1'), def);
    assert.equal(d.host.fs.read('/sys/class/nvme/nvme0/ctrl_loss_tmo')?.trim(), 'off');
  });

  it('is idempotent: a second connect adopts live controllers and issues no nvme connect', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    const before = s.host.commands.length;
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    assert.equal(r.devicePath, '/dev/nvme0n1');
    assert.deepEqual(
      s.host.commands.slice(before).map((c) => c.cmd + ' ' + c.args[0]),
      [],
    );
  });

  const forms: [FakeNvmeCliVersion, AlreadyForm | undefined][] = [
    ['1', undefined], // exit 114 (EALREADY), no message
    ['1', 'exit70'],
    ['2.0', undefined], // "Operation already in progress", exit 1
    ['2', undefined], // "already connected" on stderr, exit 1
    ['2', 'stdout'], // … on stdout
  ];
  for (const [version, form] of forms) {
    const name = `treats "already connected" (nvme-cli ${version}, ${form ?? 'default form'}) as success`;
    it(`${name} once sysfs shows the controller`, async () => {
      const s = scenario({ nvmeCli: version, alreadyForm: form });
      s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
      // Someone else (udev autoconnect) connects portal 2 between our sysfs read and our connect.
      const args = ['connect', '-t', 'tcp', '-a', '10.0.0.2', '-s', '4420', '-n', NQN];
      s.host.script(isConnect('10.0.0.2'), () => {
        s.host.answer('nvme', args);
        return s.host.answer('nvme', args);
      });
      const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
      assert.equal(r.health, 'optimal');
      assert.equal(r.paths.filter((p) => p.state === 'live').length, 3);
      assert.equal(s.host.controllers(NQN).length, 3, 'no duplicate controller');
    });
  }

  it('does not believe "already connected" when sysfs has no controller: the portal counts as failed', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    s.host.script(isConnect('10.0.0.3'), { code: 1, stdout: '', stderr: 'already connected\n' });
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    assert.equal(r.health, 'degraded');
    assert.deepEqual(
      r.paths.find((p) => p.address === '10.0.0.3'),
      { address: '10.0.0.3', port: 4420, transport: 'tcp', controller: null, state: 'missing', anaState: null },
    );
  });

  it('retries a failed portal on a later pass, connecting only that one', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    s.host.fabric.portal('10.0.0.3').up = false;
    const first = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    assert.equal(first.health, 'degraded');
    assert.equal(first.paths.find((p) => p.address === '10.0.0.3')?.state, 'missing');
    s.host.fabric.portal('10.0.0.3').up = true;
    const n = s.host.calls('nvme connect').length;
    const second = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    assert.equal(second.health, 'optimal');
    assert.deepEqual(
      s.host
        .calls('nvme connect')
        .slice(n)
        .map((l) => l.split(' ')[5]),
      ['10.0.0.3'],
    );
  });

  it('fails with connect_failed naming each portal when none connects', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    for (const a of ADDRS) s.host.fabric.portal(a).up = false;
    await assert.rejects(
      drive(s.clock, s.attacher.connect(toAttachSpec(nativeData()))),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'connect_failed');
        for (const a of ADDRS) assert.match(e.message, new RegExp(a.replace(/\./g, '\\.')));
        return true;
      },
    );
  });

  it('finds the namespace by NGUID when it has no UUID, and by NSID when it has neither', async () => {
    const nguid = '0123456789abcdef0123456789abcdef';
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 3, nguid, sizeBytes: GiB });
    s.host.fabric.addNamespace(NQN, { nsid: 4, sizeBytes: 2 ** 31 });
    s.host.fabric.addNamespace(NQN, { nsid: 5, uuid: VOL2, sizeBytes: 2 ** 32 });
    const byNguid = await drive(
      s.clock,
      s.attacher.connect(toAttachSpec(nativeData({ vol_uuid: VOL, volume_nguid: nguid, ns_id: '4' }))),
    );
    assert.equal(byNguid.sizeBytes, GiB, 'nguid wins over nsid');
    const byNsid = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ vol_uuid: VOL, ns_id: '4' }))));
    assert.equal(byNsid.sizeBytes, 2 ** 31);
    const byUuid = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '4' }))));
    assert.equal(byUuid.sizeBytes, 2 ** 32, 'uuid wins over nsid');
  });

  it('refuses a namespace at the expected NSID that is another volume (wrong_volume)', async () => {
    const s = scenario({ attacher: { deviceTimeoutMs: 2000 } });
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL2 });
    await assert.rejects(drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ ns_id: '1' })))), {
      code: 'wrong_volume',
    });
  });

  it('parses src_addr, host_traddr, the old space-separated form and bracketed IPv6 portals', async () => {
    for (const style of ['src_addr', 'host_traddr', 'space', 'plain'] as const) {
      const s = scenario({ kernel: { addressStyle: style }, addrs: ['10.0.0.1', 'fd00::a'] });
      s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
      const data = nativeData({
        portals: [
          ['10.0.0.1', 4420, 'tcp'],
          ['[FD00:0::A]', 4420, 'tcp'],
        ],
      });
      const r = await drive(s.clock, s.attacher.connect(toAttachSpec(data)));
      assert.equal(r.health, 'optimal', style);
      assert.deepEqual(
        r.paths.map((p) => p.controller),
        ['nvme0', 'nvme1'],
        style,
      );
      const n = s.host.commands.length;
      await drive(s.clock, s.attacher.connect(toAttachSpec(data)));
      assert.equal(s.host.commands.length, n, `${style}: both portals recognised as connected`);
    }
  });

  it('rescans a live controller that does not show a namespace added after it connected', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    // A target without namespace-attribute AENs: new namespaces show only after a rescan.
    s.host.fabric.addNamespace(NQN, { nsid: 2, uuid: VOL2, discovery: 'rescan' });
    const n = s.host.calls('nvme connect').length;
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '2' }))));
    assert.equal(r.devicePath, '/dev/nvme0n2');
    assert.equal(s.host.calls('nvme connect').length, n, 'no reconnect');
    assert.deepEqual(s.host.calls('nvme ns-rescan').sort(), [
      'nvme ns-rescan /dev/nvme0',
      'nvme ns-rescan /dev/nvme1',
      'nvme ns-rescan /dev/nvme2',
    ]);
  });

  it('waits for a namespace that appears late, without fixed sleeps, and gives up at the deadline', async () => {
    const s = scenario({ attacher: { deviceTimeoutMs: 20_000 } });
    s.host.publishNamespaceAt(NQN, { nsid: 1, uuid: VOL }, 3_000);
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())), 50);
    assert.equal(r.devicePath, '/dev/nvme0n1');
    assert.ok(r.elapsedMs >= 3_000 && r.elapsedMs < 4_000, `found soon after it appeared (${r.elapsedMs} ms)`);

    const never = scenario({ attacher: { deviceTimeoutMs: 5_000 } });
    never.host.fabric.addNamespace(NQN, { nsid: 9, uuid: VOL2 });
    const started = never.clock.now();
    await assert.rejects(drive(never.clock, never.attacher.connect(toAttachSpec(nativeData()))), {
      code: 'device_not_found',
    });
    const took = never.clock.now() - started;
    assert.ok(took >= 5_000 && took < 6_000, `gave up at the deadline (${took} ms)`);
  });

  it('reports device_not_found when every path is ANA-inaccessible (the kernel creates no head)', async () => {
    const s = scenario({ attacher: { deviceTimeoutMs: 2_000 } });
    s.host.fabric.addNamespace(NQN, {
      nsid: 1,
      uuid: VOL,
      ana: Object.fromEntries(ADDRS.map((a) => [`tcp:${a}:4420`, 'inaccessible'])),
    });
    await assert.rejects(
      drive(s.clock, s.attacher.connect(toAttachSpec(nativeData()))),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'device_not_found');
        assert.match(e.message, /ANA/);
        return true;
      },
    );
  });

  it('reports ANA per path: optimal needs one optimized, non-optimized only is degraded', async () => {
    const s = scenario();
    const ns = s.host.fabric.addNamespace(NQN, {
      nsid: 1,
      uuid: VOL,
      ana: {
        'tcp:10.0.0.1:4420': 'optimized',
        'tcp:10.0.0.2:4420': 'non-optimized',
        'tcp:10.0.0.3:4420': 'inaccessible',
      },
    });
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    assert.deepEqual(
      r.paths.map((p) => p.anaState),
      ['optimized', 'non-optimized', 'inaccessible'],
    );
    assert.equal(r.health, 'degraded');
    ns.ana.set('tcp:10.0.0.3:4420', 'non-optimized');
    s.host.kernel.render();
    assert.equal((await s.attacher.getPaths(toAttachSpec(nativeData()))).health, 'optimal');
    ns.ana.set('tcp:10.0.0.1:4420', 'non-optimized');
    s.host.kernel.render();
    assert.equal((await s.attacher.getPaths(toAttachSpec(nativeData()))).health, 'degraded');
  });

  it('leaves controllers that are connecting to the kernel and reports them', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    s.host.setPortalUp('10.0.0.2', false);
    const n = s.host.calls('nvme connect').length;
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    assert.equal(s.host.calls('nvme connect').length, n);
    assert.equal(r.paths[1]!.state, 'connecting');
    assert.equal(r.health, 'degraded');
  });

  it('sets the subsystem iopolicy only when configured', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    assert.equal(s.host.fs.read('/sys/class/nvme-subsystem/nvme-subsys0/iopolicy')?.trim(), 'numa');
    const rr = scenario({ attacher: { iopolicy: 'round-robin' } });
    rr.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    await drive(rr.clock, rr.attacher.connect(toAttachSpec(nativeData())));
    assert.equal(rr.host.fs.read('/sys/class/nvme-subsystem/nvme-subsys0/iopolicy')?.trim(), 'round-robin');
  });

  it('keeps volumes of several subsystems apart (same NSID in each)', async () => {
    const s = scenario();
    s.host.fabric.addSubsystem(NQN_B, [{ address: '10.0.1.1' }, { address: '10.0.1.2' }]);
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL, sizeBytes: GiB });
    s.host.fabric.addNamespace(NQN_B, { nsid: 1, uuid: VOL2, sizeBytes: 2 ** 31 });
    const a = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    const b = await drive(
      s.clock,
      s.attacher.connect(
        toAttachSpec(nativeData({ vol_uuid: VOL2, target_nqn: NQN_B, portals: portals(['10.0.1.1', '10.0.1.2']) })),
      ),
    );
    assert.notEqual(a.devicePath, b.devicePath);
    assert.equal(b.sizeBytes, 2 ** 31);
    assert.deepEqual(
      b.paths.map((p) => p.controller),
      ['nvme3', 'nvme4'],
    );
  });

  it('works on older sysfs layouts: no head `device` link, no controller hostnqn, cntlid in per-path names, own subsysnqn', async () => {
    for (const kernel of [
      { headDeviceLink: false, ctrlHostnqn: false },
      { perPathCntlid: true },
      { nsSubsysnqn: true, headDeviceLink: false },
      { multipathLinks: true },
    ]) {
      const s = scenario({ kernel });
      s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
      const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
      assert.equal(r.devicePath, '/dev/nvme0n1', JSON.stringify(kernel));
      assert.equal(r.health, 'optimal', JSON.stringify(kernel));
      assert.deepEqual(
        r.paths.map((p) => p.controller),
        ['nvme0', 'nvme1', 'nvme2'],
        JSON.stringify(kernel),
      );
    }
  });
});

describe('extend', () => {
  it('rescans the live controllers and waits for the new size', async () => {
    const s = scenario();
    const ns = s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL, sizeBytes: GiB });
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData())));
    ns.sizeBytes = 2 ** 31; // grown on the target; no AEN reaches the host
    assert.equal((await s.attacher.getPaths(toAttachSpec(nativeData()))).sizeBytes, GiB);
    const r = await drive(s.clock, s.attacher.extend(toAttachSpec(nativeData()), 2 ** 31));
    assert.equal(r.sizeBytes, 2 ** 31);
    assert.equal(s.host.calls('nvme ns-rescan').length, 3);
  });
});

describe('single path', () => {
  it('connects only the first portal that connects', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    s.host.fabric.portal('10.0.0.1').up = false;
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ multipath_mode: 'single' }))));
    assert.equal(r.devicePath, '/dev/nvme0n1');
    assert.deepEqual(
      r.paths.map((p) => p.address),
      ['10.0.0.2'],
    );
    assert.equal(s.host.controllers().length, 1);
    assert.equal(r.health, 'optimal');
    const n = s.host.commands.length;
    await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ multipath_mode: 'single' }))));
    assert.equal(s.host.calls('nvme connect').length, 2, 'no further connects');
    assert.ok(s.host.commands.length === n);
  });

  it('with every replica portal listed: the next one when the connected node is gone for good', async () => {
    const s = scenario({ kernel: { multipath: false } });
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    const data = nativeData({ multipath_mode: 'single' });
    const first = await drive(s.clock, s.attacher.connect(toAttachSpec(data)));
    assert.deepEqual(
      first.paths.map((p) => p.address),
      [ADDRS[0]],
    );
    s.host.setPortalUp(ADDRS[0]!, false);
    s.host.expirePortal(ADDRS[0]!);
    const again = await drive(s.clock, s.attacher.connect(toAttachSpec(data)));
    assert.deepEqual(
      again.paths.map((p) => p.address),
      [ADDRS[1]],
      'one path, on the next portal in the list',
    );
    assert.equal(s.host.controllers().length, 1);
    assert.ok(again.devicePath);
    assert.equal(again.health, 'optimal');
  });

  it('works with nvme_core.multipath=N (a plain namespace device)', async () => {
    const s = scenario({ kernel: { multipath: false } });
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    const r = await drive(s.clock, s.attacher.connect(toAttachSpec(nativeData({ multipath_mode: 'single' }))));
    assert.equal(r.devicePath, '/dev/nvme0n1');
    assert.equal(r.paths[0]!.anaState, null);
    assert.equal(r.health, 'optimal');
  });

  it('a failed attach: undone when asked (the one-shot CLI), kept otherwise (the daemon retries)', async () => {
    const failing = () => {
      const s = scenario({ attacher: { deviceTimeoutMs: 2_000 } });
      // The volume's namespace never shows; another volume's does, through the first portal.
      s.host.fabric.addNamespace(NQN, { nsid: 9, uuid: VOL2 });
      return s;
    };
    const kept = failing();
    await assert.rejects(drive(kept.clock, kept.attacher.connect(toAttachSpec(nativeData()))), {
      code: 'device_not_found',
    });
    assert.equal(kept.host.controllers(NQN).length, 3, 'the daemon keeps them: its next pass retries from there');

    const undone = failing();
    const other = toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '9', portals: portals([ADDRS[0]!]) }));
    await drive(undone.clock, undone.attacher.connect(other));
    const before = undone.host.controllers(NQN);
    undone.host.openDevice(4242, '/dev/nvme0n1');
    await assert.rejects(
      drive(undone.clock, undone.attacher.connect(toAttachSpec(nativeData()), { undoOnFailure: true })),
      { code: 'device_not_found' },
    );
    assert.deepEqual(undone.host.controllers(NQN), before, 'the two it created are gone, the one in use before stays');
    assert.equal(undone.host.disconnects().length, 2);
  });
});
