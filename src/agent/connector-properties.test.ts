import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectorProperties, ensureHostIdentity, rootFsUuid } from './connector-properties.ts';
import { FAKE_HOSTNQN, FakeHost } from './host/testing/fake-host.ts';

const DMI = '4c4c4544-0042-3510-8052-b4c04f333532';
const rand = () => '0badc0de-0000-4000-8000-000000000001';

describe('host identity', () => {
  it('reads existing files and never rewrites them', async () => {
    const host = new FakeHost();
    const id = await ensureHostIdentity(host, rand);
    assert.deepEqual(id, { nqn: FAKE_HOSTNQN, hostid: '11111111-2222-3333-4444-555555555555' });
  });

  it('creates both from the DMI product_uuid when neither exists, mode 0644', async () => {
    const host = new FakeHost({ hostnqn: null, hostid: null });
    const id = await ensureHostIdentity(host, rand);
    assert.deepEqual(id, { nqn: `nqn.2014-08.org.nvmexpress:uuid:${DMI}`, hostid: DMI });
    assert.equal(host.fs.read('/etc/nvme/hostnqn'), `nqn.2014-08.org.nvmexpress:uuid:${DMI}\n`);
    assert.equal(host.fs.read('/etc/nvme/hostid'), `${DMI}\n`);
    assert.equal(host.fs.mode('/etc/nvme/hostnqn'), 0o644);
    assert.equal(host.fs.mode('/etc/nvme/hostid'), 0o644);
  });

  it('takes the hostid from the UUID inside an existing hostnqn', async () => {
    const host = new FakeHost({
      hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE',
      hostid: null,
    });
    assert.equal((await ensureHostIdentity(host, rand)).hostid, 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee');
    assert.equal(
      host.fs.read('/etc/nvme/hostnqn')?.trim(),
      'nqn.2014-08.org.nvmexpress:uuid:AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE',
      'untouched',
    );
  });

  it('derives the hostnqn from an existing hostid', async () => {
    const host = new FakeHost({ hostnqn: null, hostid: '12345678-1234-4234-8234-123456789abc' });
    assert.equal(
      (await ensureHostIdentity(host, rand)).nqn,
      'nqn.2014-08.org.nvmexpress:uuid:12345678-1234-4234-8234-123456789abc',
    );
  });

  it('falls back to a random UUID when DMI has none (or a useless all-zero one)', async () => {
    const host = new FakeHost({ hostnqn: null, hostid: null });
    host.fs.writeFile('/sys/class/dmi/id/product_uuid', '00000000-0000-0000-0000-000000000000\n');
    assert.deepEqual(await ensureHostIdentity(host, rand), {
      nqn: `nqn.2014-08.org.nvmexpress:uuid:${rand()}`,
      hostid: rand(),
    });
    const second = await ensureHostIdentity(host, () => 'ffffffff-0000-4000-8000-000000000000');
    assert.equal(second.hostid, rand(), 'stable once written');
  });

  it('a non-UUID hostnqn gets a hostid from DMI', async () => {
    const host = new FakeHost({ hostnqn: 'nqn.2020-01.com.example:host-7', hostid: null });
    assert.deepEqual(await ensureHostIdentity(host, rand), { nqn: 'nqn.2020-01.com.example:host-7', hostid: DMI });
  });
});

describe('connector properties', () => {
  it('builds the os-brick connector dict', async () => {
    const host = new FakeHost();
    const p = await connectorProperties(host, { enforceMultipath: true });
    assert.deepEqual(p, {
      platform: 'x86_64',
      os_type: 'linux',
      ip: '10.0.0.100',
      host_ips: ['10.0.0.100', 'fd00::100'],
      host: 'compute-1',
      multipath: true,
      enforce_multipath: true,
      nqn: FAKE_HOSTNQN,
      nvme_hostid: '11111111-2222-3333-4444-555555555555',
      uuid: null,
      nvme_native_multipath: true,
      dm_multipath: true,
    });
  });

  it('reports native multipath off, DM unusable without multipathd, no multipath at all', async () => {
    const host = new FakeHost({ kernel: { multipath: false }, dm: { installed: false } });
    const p = await connectorProperties(host);
    assert.equal(p.nvme_native_multipath, false);
    assert.equal(p.dm_multipath, false);
    assert.equal(p.multipath, false);
    assert.equal(p.enforce_multipath, false);

    const dm = new FakeHost({ kernel: { multipath: false } });
    assert.equal((await connectorProperties(dm)).multipath, true);
    assert.equal((await connectorProperties(dm)).dm_multipath, true);
  });

  it('finds the root filesystem UUID through mountinfo and /dev/disk/by-uuid', async () => {
    const host = new FakeHost();
    assert.equal(await rootFsUuid(host), null, 'overlay root');
    host.fs.writeFile('/dev/sda2', '');
    host.fs.symlink('/dev/disk/by-uuid/6f1e2d3c-aaaa-bbbb-cccc-0123456789ab', '../../sda2');
    host.fs.symlink('/dev/disk/by-uuid/0000-1111', '../../sda1');
    host.fs.writeFile('/proc/self/mountinfo', '22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw\n');
    assert.equal(await rootFsUuid(host), '6f1e2d3c-aaaa-bbbb-cccc-0123456789ab');
  });
});
