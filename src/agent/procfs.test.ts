import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMountinfo } from './procfs.ts';

describe('parseMountinfo', () => {
  it('finds the fields after a variable number of optional fields and unescapes paths', () => {
    const text = [
      '22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw',
      '40 22 259:3 / /var/lib/my\\040disk rw,relatime shared:5 master:2 - xfs /dev/nvme0n1 rw',
      '41 22 0:45 / /srv rw - btrfs /dev/mapper/uuid.x rw',
      'garbage',
    ].join('\n');
    assert.deepEqual(parseMountinfo(text), [
      { majMin: '8:2', mountPoint: '/', fstype: 'ext4', source: '/dev/sda2' },
      { majMin: '259:3', mountPoint: '/var/lib/my disk', fstype: 'xfs', source: '/dev/nvme0n1' },
      { majMin: '0:45', mountPoint: '/srv', fstype: 'btrfs', source: '/dev/mapper/uuid.x' },
    ]);
  });
});
