import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LinuxHost } from './linux.ts';

describe('LinuxHost', () => {
  let root: string;
  let host: LinuxHost;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'portalis-linuxhost-'));
    for (const d of ['sys/devices/x', 'sys/block', 'dev', 'etc', 'proc'])
      await mkdir(path.join(root, d), { recursive: true });
    await writeFile(path.join(root, 'sys/devices/x/size'), '2048\n');
    await symlink('../devices/x', path.join(root, 'sys/block/nvme0n1'));
    host = new LinuxHost({
      sysRoot: path.join(root, 'sys'),
      devRoot: path.join(root, 'dev'),
      etcRoot: path.join(root, 'etc'),
      procRoot: path.join(root, 'proc'),
    });
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('runs commands without rejecting on a non-zero exit', async () => {
    assert.deepEqual(await host.run('sh', ['-c', 'echo out; echo err >&2; exit 3']), {
      code: 3,
      stdout: 'out\n',
      stderr: 'err\n',
    });
  });

  it('answers 127 for a binary that is not there, and 124 on timeout', async () => {
    assert.equal((await host.run('/nonexistent/portalis-nvme', [])).code, 127);
    const t = await host.run('sleep', ['5'], { timeoutMs: 100 });
    assert.equal(t.code, 124);
  });

  it('maps logical paths onto the roots, both ways', async () => {
    assert.equal(await host.readFile('/sys/block/nvme0n1/size'), '2048\n');
    assert.equal(await host.readFile('/sys/block/nvme9n1/size'), null);
    assert.deepEqual(await host.readdir('/sys/block'), ['nvme0n1']);
    assert.deepEqual(await host.readdir('/sys/block/nvme9n1/holders'), []);
    assert.equal(await host.readlink('/sys/block/nvme0n1'), '../devices/x');
    assert.equal(await host.readlink('/sys/block/nvme0n1/size'), null);
    assert.equal(await host.realpath('/sys/block/nvme0n1'), '/sys/devices/x');
    assert.equal(await host.realpath('/sys/block/gone'), null);
    assert.equal(await host.exists('/sys/block/nvme0n1/size'), true);
  });

  it('writes /etc files atomically with their mode, creating directories', async () => {
    await host.writeFile('/etc/nvme/hostnqn', 'nqn.x\n', { mode: 0o644 });
    assert.equal(await host.readFile('/etc/nvme/hostnqn'), 'nqn.x\n');
    assert.equal((await stat(path.join(root, 'etc/nvme/hostnqn'))).mode & 0o777, 0o644);
  });

  it('concurrent writes of one file each rename a whole file of their own, 0600, no temporary left', async () => {
    const texts = Array.from({ length: 16 }, (_, i) => `${String(i).repeat(4096)}\n`);
    const results = await Promise.allSettled(
      texts.map((t) => host.writeFile('/etc/nvme/config.json', t, { mode: 0o600 })),
    );
    assert.deepEqual(
      results.filter((r) => r.status === 'rejected'),
      [],
      'no write lost its temporary file to another',
    );
    assert.ok(texts.includes((await host.readFile('/etc/nvme/config.json')) ?? ''), 'one whole text');
    assert.equal((await stat(path.join(root, 'etc/nvme/config.json'))).mode & 0o777, 0o600);
    assert.deepEqual(
      (await readdir(path.join(root, 'etc/nvme'))).filter((n) => n.includes('config.json')),
      ['config.json'],
    );
  });

  it('gives the machine facts the connector dict needs', () => {
    assert.ok(host.hostname().length > 0);
    assert.ok(host.networkAddresses().some((a) => a.internal));
    assert.match(host.machine(), /\w+/);
    assert.equal(host.pid(), process.pid);
  });
});
