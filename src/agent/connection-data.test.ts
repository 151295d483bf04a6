import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConnectionData, toAttachSpec } from './connection-data.ts';

const VOL = '4c5e2f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6';
const data = {
  vol_uuid: VOL,
  target_nqn: 'nqn.x',
  portals: [['10.0.0.1', 4420, 'tcp']],
  ns_id: '7',
  host_nqn: 'nqn.h',
  multipath_mode: 'native',
  access_mode: 'rw',
  discard: true,
};

describe('connection data', () => {
  it('accepts the data dict or the whole connection_info', () => {
    assert.equal(parseConnectionData(data).target_nqn, 'nqn.x');
    assert.equal(parseConnectionData({ driver_volume_type: 'nvmeof', data }).target_nqn, 'nqn.x');
  });

  it('normalises identifiers, IPv6 brackets and transports', () => {
    const spec = toAttachSpec(
      parseConnectionData({
        ...data,
        vol_uuid: VOL.toUpperCase().replace(/-/g, ''),
        volume_nguid: '0011-2233-4455-6677-8899-AABB-CCDD-EEFF'.replace(/-/g, ''),
        portals: [['[fd00::1]', '4420', 'RoCEv2']],
      }),
    );
    assert.equal(spec.volUuid, VOL);
    assert.equal(spec.targets[0]!.nguid, '00112233445566778899aabbccddeeff');
    assert.deepEqual(spec.targets[0]!.portals, [{ address: 'fd00::1', port: 4420, transport: 'rdma' }]);
    assert.equal(spec.hostNqn, 'nqn.h');
  });

  it('derives the mode when missing: dm with dm_replicas, else native', () => {
    const { multipath_mode: _, ...noMode } = data;
    assert.equal(parseConnectionData(noMode).multipath_mode, 'native');
    assert.equal(
      parseConnectionData({
        vol_uuid: VOL,
        dm_replicas: [{ vol_uuid: VOL, target_nqn: 'nqn.x', portals: [['10.0.0.1', 4420, 'tcp']] }],
      }).multipath_mode,
      'dm',
    );
  });

  it('names the offending field', () => {
    const bad: [unknown, RegExp][] = [
      [{ ...data, vol_uuid: 'nope' }, /vol_uuid/],
      [{ ...data, target_nqn: undefined }, /target_nqn/],
      [{ ...data, portals: [['10.0.0.1', 4420]] }, /portals\[0\]/],
      [{ ...data, portals: [['10.0.0.1', 70000, 'tcp']] }, /portals\[0\]\[1\]/],
      [{ ...data, portals: [['10.0.0.1', 4420, 'fc']] }, /portals\[0\]\[2\]/],
      [{ ...data, ns_id: 'x' }, /ns_id/],
      [{ ...data, dm_replicas: [], volume_replicas: [] }, /dm_replicas/],
      [{ ...data, multipath_mode: 'raid' }, /multipath_mode/],
    ];
    for (const [input, field] of bad) {
      assert.throws(
        () => toAttachSpec(parseConnectionData(input)),
        (e: Error & { code?: string }) => e.code === 'invalid_connection_info' && field.test(e.message),
        String(field),
      );
    }
  });
});
