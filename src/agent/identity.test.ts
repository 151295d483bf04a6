import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { identify } from './identity.ts';

const VOL = '4c5e2f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6';

describe('identify', () => {
  const want = { uuid: VOL, nguid: '00112233445566778899aabbccddeeff', nsid: '7' };
  it('uuid, then nguid, then nsid', () => {
    assert.equal(identify({ uuid: VOL, nguid: null, nsid: '1', wwid: `uuid.${VOL}` }, want), 'uuid');
    // no UUID: sysfs `uuid` shows the NGUID, wwid says eui.
    assert.equal(
      identify(
        {
          uuid: '00112233-4455-6677-8899-aabbccddeeff',
          nguid: '00112233445566778899aabbccddeeff',
          nsid: '1',
          wwid: 'eui.00112233445566778899aabbccddeeff',
        },
        want,
      ),
      'nguid',
    );
    assert.equal(identify({ uuid: null, nguid: null, nsid: '7', wwid: 'nvme.0000-3-00000007' }, want), 'nsid');
  });
  it('a namespace with a different identifier is another volume, whatever its NSID', () => {
    assert.equal(
      identify(
        {
          uuid: '11111111-1111-1111-1111-111111111111',
          nguid: null,
          nsid: '7',
          wwid: 'uuid.11111111-1111-1111-1111-111111111111',
        },
        want,
      ),
      'conflict',
    );
    assert.equal(
      identify(
        {
          uuid: null,
          nguid: 'ffffffffffffffffffffffffffffffff',
          nsid: '7',
          wwid: 'eui.ffffffffffffffffffffffffffffffff',
        },
        want,
      ),
      'conflict',
    );
    assert.equal(identify({ uuid: null, nguid: null, nsid: '8', wwid: null }, want), 'none');
  });
  it('without wwid a uuid attribute is taken as a UUID (refuse rather than guess)', () => {
    assert.equal(
      identify(
        { uuid: '11111111-1111-1111-1111-111111111111', nguid: null, nsid: '7', wwid: null },
        { uuid: VOL, nsid: '7' },
      ),
      'conflict',
    );
  });
});
