import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConnectionData, toAttachSpec } from './connection-data.ts';
import { LinuxHost } from './host/linux.ts';
import { findTop } from './multipath/native.ts';
import { canonicalAddress, listControllers, listNamespaces, parseAddress, readBlockNamespace } from './sysfs.ts';

const VOL = '4c5e2f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6';

describe('parseAddress', () => {
  it('reads kernel 6.x TCP addresses with src_addr', () => {
    assert.deepEqual(parseAddress('traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1\n'), {
      traddr: '127.0.0.1',
      trsvcid: '4420',
      srcAddr: '127.0.0.1',
    });
  });
  it('reads host_traddr and host_iface', () => {
    assert.deepEqual(parseAddress('traddr=10.0.0.1,trsvcid=4420,host_traddr=10.0.0.9,host_iface=eth1'), {
      traddr: '10.0.0.1',
      trsvcid: '4420',
      hostTraddr: '10.0.0.9',
      hostIface: 'eth1',
    });
  });
  it('reads the old space-separated form', () => {
    assert.deepEqual(parseAddress('traddr=10.0.0.1 trsvcid=4420'), { traddr: '10.0.0.1', trsvcid: '4420' });
  });
  it('reads bracketed and bare IPv6', () => {
    assert.equal(parseAddress('traddr=[fd00::1],trsvcid=4420').traddr, 'fd00::1');
    assert.equal(parseAddress('traddr=fd00::1,trsvcid=4420,src_addr=fd00::9').srcAddr, 'fd00::9');
  });
  it('compares addresses canonically', () => {
    assert.equal(canonicalAddress('[FD00:0:0::1]'), 'fd00::1');
    assert.equal(canonicalAddress('fe80::1%eth0'), 'fe80::1%eth0');
    assert.equal(canonicalAddress(' 10.0.0.1 '), '10.0.0.1');
  });
});

// Static trees under test/fixtures/sysfs, read through the real host adapter (real symlinks).
const fixture = (name: string) => fileURLToPath(new URL(`../../test/fixtures/sysfs/${name}/`, import.meta.url));

describe('fixture trees through LinuxHost', () => {
  it('kernel 6.1, native multipath over three portals (the layout seen on a real 6.1 kernel)', async () => {
    const root = fixture('native-6.1');
    const host = new LinuxHost({
      sysRoot: `${root}sys`,
      devRoot: `${root}dev`,
      etcRoot: `${root}etc`,
      procRoot: `${root}proc`,
    });
    const ctrls = await listControllers(host);
    assert.deepEqual(
      ctrls.map((c) => [c.name, c.state, c.address.traddr, c.address.trsvcid, c.address.srcAddr]),
      [
        ['nvme0', 'live', '127.0.0.1', '4420', '127.0.0.1'],
        ['nvme1', 'live', '127.0.0.1', '4421', '127.0.0.1'],
        ['nvme2', 'connecting', '127.0.0.1', '4422', '127.0.0.1'],
      ],
    );
    const all = await listNamespaces(host);
    assert.deepEqual(all.map((n) => [n.name, n.kind, n.controller]).sort(), [
      ['nvme0c0n1', 'path', 'nvme0'],
      ['nvme0c1n1', 'path', 'nvme1'],
      ['nvme0c2n1', 'path', 'nvme2'],
      ['nvme0n1', 'head', null],
    ]);
    const spec = toAttachSpec(
      parseConnectionData({
        vol_uuid: VOL,
        target_nqn: 'nqn.2014-08.org.portalis:cluster',
        portals: [['127.0.0.1', 4420, 'tcp']],
        ns_id: '1',
      }),
    );
    const top = findTop(all, spec.targets[0]!);
    assert.equal(top.by, 'uuid');
    assert.deepEqual(
      top.devices.map((d) => [d.name, d.sizeBytes]),
      [['nvme0n1', 1073741824]],
    );
    assert.equal((await readBlockNamespace(host, 'nvme0c2n1'))?.anaState, 'inaccessible');
    assert.equal(await host.realpath('/sys/block/nvme0n1/device'), '/sys/devices/virtual/nvme-subsystem/nvme-subsys0');
  });

  it('an older layout: heads without `device`, controllers without hostnqn, space-separated address', async () => {
    const root = fixture('legacy-no-device-link');
    const host = new LinuxHost({ sysRoot: `${root}sys` });
    const [c] = await listControllers(host);
    assert.deepEqual([c!.address.traddr, c!.address.trsvcid, c!.hostNqn], ['10.0.0.1', '4420', null]);
    const head = await readBlockNamespace(host, 'nvme0n1');
    assert.equal(head?.kind, 'head');
    assert.equal(head?.subsysnqn, 'nqn.2014-08.org.portalis:legacy', 'found through the subsystem directory');
    assert.equal(head?.uuid, null);
    assert.equal(head?.nsid, '3');
  });
});
