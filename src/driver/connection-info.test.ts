import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConnectionInfo, chooseMultipathMode, orderPaths } from './connection-info.ts';
import { isDriverError } from './errors.ts';
import type { Connector, VolumePath } from './model.ts';

const NQN = 'nqn.2014-08.org.nvmexpress:uuid:0b7a6f4e-1f1e-4c55-9d0b-0f3b7e1f5a11';
const SUBSYS = 'nqn.2014-08.org.nvmexpress:NVMf:uuid:f4a89ce0-9fc2-4900-bfa3-00ad27995e7b';
const conn = (over: Partial<Connector> = {}): Connector => ({ nqn: NQN, host: 'compute-1', ...over });
const path = (nodeId: string, address: string, anaState: VolumePath['anaState']): VolumePath => ({
  nodeId,
  portal: { address, port: 4420, transport: 'tcp' },
  anaState,
});
const PATHS = [
  path('n1', '10.0.0.1', 'non-optimized'),
  path('n2', '10.0.0.2', 'inaccessible'),
  path('n3', '10.0.0.3', 'optimized'),
];

describe('chooseMultipathMode', () => {
  it('native when multipath and nvme_native_multipath are both true', () => {
    assert.equal(chooseMultipathMode(conn({ multipath: true, nvme_native_multipath: true })), 'native');
  });
  it('dm only when multipath is true, native multipath off and the connector offers dm_multipath', () => {
    assert.equal(
      chooseMultipathMode(conn({ multipath: true, nvme_native_multipath: false, dm_multipath: true })),
      'dm',
    );
    assert.equal(chooseMultipathMode(conn({ multipath: true, dm_multipath: true })), 'dm');
  });
  it('native wins over dm when both are offered', () => {
    assert.equal(
      chooseMultipathMode(conn({ multipath: true, nvme_native_multipath: true, dm_multipath: true })),
      'native',
    );
  });
  it('single for os-brick with native multipath off (no dm_multipath key): it cannot read dm_replicas', () => {
    assert.equal(chooseMultipathMode(conn({ multipath: true, nvme_native_multipath: false })), 'single');
    assert.equal(chooseMultipathMode(conn({ multipath: true })), 'single');
  });
  it('single otherwise: no multipath, or a host that reports no DM', () => {
    assert.equal(chooseMultipathMode(conn()), 'single');
    assert.equal(chooseMultipathMode(conn({ multipath: false, nvme_native_multipath: true })), 'single');
    assert.equal(chooseMultipathMode(conn({ multipath: false, dm_multipath: true })), 'single');
    assert.equal(
      chooseMultipathMode(conn({ multipath: true, nvme_native_multipath: false, dm_multipath: false })),
      'single',
    );
  });
  it('refuses enforce_multipath on a host that cannot multipath, naming the field', () => {
    assert.throws(
      () => chooseMultipathMode(conn({ multipath: false, enforce_multipath: true })),
      (e) => isDriverError(e, 'multipath_required') && e.httpStatus === 400 && /enforce_multipath/.test(e.message),
    );
    assert.throws(
      () =>
        chooseMultipathMode(
          conn({ multipath: true, nvme_native_multipath: false, dm_multipath: false, enforce_multipath: true }),
        ),
      (e) => isDriverError(e, 'multipath_required'),
    );
    // os-brick with native off: its own check_multipath refuses this connector too.
    assert.throws(
      () => chooseMultipathMode(conn({ multipath: true, nvme_native_multipath: false, enforce_multipath: true })),
      (e) => isDriverError(e, 'multipath_required') && /nvme_native_multipath/.test(e.message),
    );
  });
  it('accepts enforce_multipath on a host that can', () => {
    assert.equal(
      chooseMultipathMode(conn({ multipath: true, nvme_native_multipath: true, enforce_multipath: true })),
      'native',
    );
    assert.equal(
      chooseMultipathMode(
        conn({ multipath: true, nvme_native_multipath: false, dm_multipath: true, enforce_multipath: true }),
      ),
      'dm',
    );
  });
});

describe('orderPaths', () => {
  it('puts the optimized path first and the inaccessible ones last, stable otherwise', () => {
    const ordered = orderPaths([...PATHS, path('n4', '10.0.0.4', 'non-optimized')]);
    assert.deepEqual(
      ordered.map((p) => p.nodeId),
      ['n3', 'n1', 'n4', 'n2'],
    );
  });
});

describe('buildConnectionInfo', () => {
  const base = {
    volumeUuid: '4c5e2f9a-0000-4000-8000-000000000001',
    subsystemNqn: SUBSYS,
    nsid: 7,
    paths: PATHS,
    hostNqn: NQN,
    accessMode: 'rw' as const,
  };

  it('native: one target_nqn, every replica portal, optimized first, a down one last, ns_id a string', () => {
    const info = buildConnectionInfo({ ...base, mode: 'native' });
    assert.equal(info.driver_volume_type, 'nvmeof');
    assert.deepEqual(info.data, {
      vol_uuid: base.volumeUuid,
      target_nqn: SUBSYS,
      portals: [
        ['10.0.0.3', 4420, 'tcp'],
        ['10.0.0.1', 4420, 'tcp'],
        ['10.0.0.2', 4420, 'tcp'],
      ],
      ns_id: '7',
      host_nqn: NQN,
      multipath_mode: 'native',
      access_mode: 'rw',
      discard: true,
    });
  });

  it('single: every replica portal in the same order as native (the host connects the first that answers)', () => {
    const info = buildConnectionInfo({ ...base, mode: 'single' });
    assert.equal(info.data.target_nqn, SUBSYS);
    assert.deepEqual(info.data.portals, [
      ['10.0.0.3', 4420, 'tcp'],
      ['10.0.0.1', 4420, 'tcp'],
      ['10.0.0.2', 4420, 'tcp'],
    ]);
    assert.equal(info.data.multipath_mode, 'single');
    assert.equal(info.data.dm_replicas, undefined);
  });

  it('dm: dm_replicas, one entry per path, no top-level target_nqn or portals', () => {
    const info = buildConnectionInfo({ ...base, mode: 'dm' });
    assert.equal(info.data.target_nqn, undefined);
    assert.equal(info.data.portals, undefined);
    assert.deepEqual(info.data.dm_replicas, [
      { vol_uuid: base.volumeUuid, target_nqn: SUBSYS, portals: [['10.0.0.3', 4420, 'tcp']] },
      { vol_uuid: base.volumeUuid, target_nqn: SUBSYS, portals: [['10.0.0.1', 4420, 'tcp']] },
      { vol_uuid: base.volumeUuid, target_nqn: SUBSYS, portals: [['10.0.0.2', 4420, 'tcp']] },
    ]);
    assert.equal((info.data as unknown as Record<string, unknown>).volume_replicas, undefined);
  });

  it('omits ns_id when the backend does not report one, and carries the NGUID when it does', () => {
    const info = buildConnectionInfo({ ...base, nsid: undefined, nguid: 'abcd', mode: 'native' });
    assert.equal('ns_id' in info.data, false);
    assert.equal(info.data.volume_nguid, 'abcd');
  });

  it('no usable path is a retryable no_path error', () => {
    assert.throws(
      () => buildConnectionInfo({ ...base, paths: [path('n2', '10.0.0.2', 'inaccessible')], mode: 'native' }),
      (e) => isDriverError(e, 'no_path') && e.retryable,
    );
  });
});
