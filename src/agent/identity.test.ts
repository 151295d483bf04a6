import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { identify, isMatch, isOtherVolume, MATCH_TIERS, wantOf } from './identity.ts';
import { usedThrough } from './sysfs.ts';

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

describe('the identity tiers', () => {
  const want = wantOf({ uuid: VOL, nsid: '7' });
  const other = { uuid: '11111111-1111-1111-1111-111111111111', nguid: null, wwid: null };
  it('a match at any tier is the volume; conflict and none are not', () => {
    assert.deepEqual([...MATCH_TIERS], ['uuid', 'nguid', 'nsid']);
    assert.deepEqual((['uuid', 'nguid', 'nsid', 'conflict', 'none'] as const).map(isMatch), [
      true,
      true,
      true,
      false,
      false,
    ]);
  });
  it('another volume counts only at the volume NSID, or at any NSID when none is named', () => {
    assert.equal(isOtherVolume({ ...other, nsid: '7' }, want), true);
    assert.equal(isOtherVolume({ ...other, nsid: '8' }, want), false);
    assert.equal(isOtherVolume({ ...other, nsid: '8' }, wantOf({ uuid: VOL })), true);
    assert.equal(isOtherVolume({ uuid: VOL, nguid: null, nsid: '7', wwid: null }, want), false);
  });
});

describe('usedThrough', () => {
  it('maps a hidden per-path device to its head and leaves other names alone', () => {
    assert.equal(usedThrough('nvme0c2n1'), 'nvme0n1');
    assert.equal(usedThrough('nvme12c3n10'), 'nvme12n10');
    assert.equal(usedThrough('nvme1n1'), 'nvme1n1');
    assert.equal(usedThrough('dm-0'), 'dm-0');
  });
});
