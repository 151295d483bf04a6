import { toAttachSpec } from './connection-data.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RunResult } from './host/port.ts';
import { KeyedMutex } from '../shared/keyed-mutex.ts';
import { NQN, NQN_B, VOL, VOL2, nativeData, portals, scenario } from './testing/scenario.ts';

const flush = () => new Promise((r) => setImmediate(r));

describe('KeyedMutex', () => {
  it('serialises one key and lets others run', async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    let releaseA!: () => void;
    const a = m.run('x', () => new Promise<void>((r) => (releaseA = () => (log.push('a done'), r()))));
    const b = m.run('x', async () => void log.push('b'));
    const c = m.run('y', async () => void log.push('c'));
    await flush();
    assert.deepEqual(log, ['c']);
    releaseA();
    await Promise.all([a, b, c]);
    assert.deepEqual(log, ['c', 'a done', 'b']);
    assert.deepEqual(m.busyKeys, []);
  });

  it('releases the key when the holder throws', async () => {
    const m = new KeyedMutex();
    await assert.rejects(
      m.run('k', async () => {
        throw new Error('boom');
      }),
    );
    assert.equal(await m.run('k', async () => 7), 7);
  });

  it('takes several keys in a fixed order (no deadlock between overlapping sets)', async () => {
    const m = new KeyedMutex();
    const done: string[] = [];
    await Promise.all([
      m.runAll(['b', 'a'], async () => void done.push('1')),
      m.runAll(['a', 'b'], async () => void done.push('2')),
      m.runAll(['b'], async () => void done.push('3')),
    ]);
    assert.equal(done.length, 3);
  });
});

describe('connector serialisation', () => {
  it('connects on one subsystem one after the other, and on two subsystems at once', async () => {
    const s = scenario();
    s.host.fabric.addSubsystem(NQN_B, [{ address: '10.0.1.1' }]);
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    s.host.fabric.addNamespace(NQN, { nsid: 2, uuid: VOL2 });
    s.host.fabric.addNamespace(NQN_B, { nsid: 1, uuid: '6e7f8091-3d4e-4f60-8b12-c3d4e5f60718' });

    // Every nvme connect waits until the test lets it finish.
    const gates: { args: readonly string[]; open: () => void }[] = [];
    s.host.script(
      (cmd, args) => cmd === 'nvme' && args[0] === 'connect',
      () =>
        new Promise<RunResult>((resolve) => {
          const args = s.host.running[s.host.running.length - 1]!.args;
          gates.push({ args, open: () => resolve(s.host.answer('nvme', args)) });
        }),
      100,
    );
    const v1 = s.attacher.connect(toAttachSpec(nativeData()));
    const v2 = s.attacher.connect(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '2' })));
    const v3 = s.attacher.connect(
      toAttachSpec(
        nativeData({
          vol_uuid: '6e7f8091-3d4e-4f60-8b12-c3d4e5f60718',
          target_nqn: NQN_B,
          portals: portals(['10.0.1.1']),
        }),
      ),
    );
    for (let i = 0; i < 10; i++) await flush();

    const nqnsInFlight = () =>
      s.host.running.filter((r) => r.args[0] === 'connect').map((r) => r.args[r.args.indexOf('-n') + 1]);
    // Volume 1's three portals (in parallel) and volume 3's subsystem at the same time; volume 2
    // (same subsystem as 1) waits for the lock.
    assert.deepEqual(nqnsInFlight().sort(), [NQN, NQN, NQN, NQN_B].sort());
    for (const g of gates.splice(0)) g.open();
    await Promise.all([v1, v3]);
    for (let i = 0; i < 10; i++) await flush();
    // Volume 2 found everything connected by volume 1: nothing more to connect.
    assert.deepEqual(nqnsInFlight(), []);
    assert.equal((await v2).devicePath, '/dev/nvme0n2');
    assert.equal(s.host.calls('nvme connect').length, 4);
  });

  it('a disconnect on a subsystem waits for a connect in progress there', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    s.host.fabric.addNamespace(NQN, { nsid: 2, uuid: VOL2 });
    await s.attacher.connect(toAttachSpec(nativeData()));
    let release!: () => void;
    // Portal 3 is lost; volume 2's attach reconnects it, and that connect hangs until released.
    s.host.script(
      (cmd, args) => cmd === 'nvme' && args[0] === 'connect',
      () => new Promise<RunResult>((r) => (release = () => r({ code: 1, stdout: '', stderr: 'already connected' }))),
    );
    s.host.expirePortal('10.0.0.3');
    const attach = s.attacher.connect(toAttachSpec(nativeData({ vol_uuid: VOL2, ns_id: '2' })));
    for (let i = 0; i < 10; i++) await flush();
    const detach = s.attacher.disconnect(toAttachSpec(nativeData()));
    for (let i = 0; i < 10; i++) await flush();
    assert.equal(s.host.calls('blockdev').length + s.host.disconnects().length, 0, 'detach waits for the lock');
    release();
    await attach;
    const r = await detach;
    assert.deepEqual(r.flushed, ['/dev/nvme0n1']);
    assert.equal(r.disconnected.length, 0, 'volume 2 uses every remaining controller');
  });
});
