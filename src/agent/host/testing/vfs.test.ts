import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemFs } from './vfs.ts';

describe('MemFs', () => {
  it('resolves relative link chains and .. the way the kernel does', () => {
    const fs = new MemFs();
    fs.writeFile('/sys/devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1/size', '8\n');
    fs.link('/sys/block/nvme0n1', '/sys/devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1');
    fs.link(
      '/sys/devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1/device',
      '/sys/devices/virtual/nvme-subsystem/nvme-subsys0',
    );
    assert.equal(fs.readlink('/sys/block/nvme0n1'), '../devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1');
    assert.equal(fs.read('/sys/block/nvme0n1/size'), '8\n');
    assert.equal(fs.realpath('/sys/block/nvme0n1/device'), '/sys/devices/virtual/nvme-subsystem/nvme-subsys0');
    assert.deepEqual(fs.list('/sys/block/nvme0n1/device'), ['nvme0n1']);
    fs.rm('/sys/block/nvme0n1');
    assert.equal(fs.exists('/sys/block/nvme0n1'), false);
    assert.equal(fs.exists('/sys/devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1/size'), true);
  });

  it('gives up on link loops and sends attribute writes to their hook', () => {
    const fs = new MemFs();
    fs.symlink('/a', 'b');
    fs.symlink('/b', 'a');
    assert.equal(fs.read('/a'), null);
    let got = '';
    fs.writeFile('/sys/x/iopolicy', 'numa\n', { onWrite: (v) => (got = v) });
    fs.writeFile('/sys/x/iopolicy', 'round-robin');
    assert.equal(got, 'round-robin');
  });
});
