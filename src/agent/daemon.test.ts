import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ManualClock } from '../shared/clock.ts';
import { connectorProperties } from './connector-properties.ts';
import { Attacher } from './attacher.ts';
import { AgentDaemon } from './daemon.ts';
import type { FakeHost } from './host/testing/fake-host.ts';
import type { RunResult } from './host/port.ts';
import { FakeService } from './testing/fake-service.ts';
import { NQN, VOL, VOL2, nativeData, scenario } from './testing/scenario.ts';
import { GiB } from '../shared/units.ts';

/** Lets the clock run for `ms`, in steps, letting every non-waiting task finish in between. */
async function elapse(clock: ManualClock, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    await clock.advance(step);
  }
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

function start(host: FakeHost, clock: ManualClock, service: FakeService) {
  const attacher = new Attacher(host, { deviceTimeoutMs: 20_000 });
  const daemon = new AgentDaemon({
    attacher,
    service,
    connectorProperties: () => connectorProperties(host),
    clock,
    recheckIntervalMs: 30_000,
    reportRefreshMs: 60_000,
    pollWaitSeconds: 30,
  });
  const ac = new AbortController();
  const done = daemon.run(ac.signal);
  return {
    daemon,
    stop: async () => {
      ac.abort();
      await elapse(clock, 0);
      await done;
    },
  };
}

function setup(second = false) {
  const s = scenario();
  s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
  if (second) s.host.fabric.addNamespace(NQN, { nsid: 2, uuid: VOL2 });
  const service = new FakeService(s.clock);
  return { ...s, service };
}

describe('agent daemon', () => {
  it('an option passed as undefined keeps its default', async () => {
    const { host, clock, service } = setup();
    const waits: number[] = [];
    const list = service.listAttachments.bind(service);
    service.listAttachments = (since, waitSeconds, signal) => {
      waits.push(waitSeconds);
      return list(since, waitSeconds, signal);
    };
    const daemon = new AgentDaemon({
      attacher: new Attacher(host),
      service,
      connectorProperties: () => connectorProperties(host),
      clock,
      pollWaitSeconds: undefined,
    });
    await daemon.syncOnce();
    assert.deepEqual(waits, [30]);
  });

  it('reports connecting only for an attach that takes longer than the delay', async () => {
    const { host, clock, service } = setup(true);
    // Volume 2's connect to one portal hangs 5 s (a slow target); volume 1's connects are quick.
    let held = false;
    host.script(
      (cmd, a) => cmd === 'nvme' && a[0] === 'connect' && a.includes('10.0.0.3') && !held,
      async () => {
        held = true;
        await clock.sleep(5_000);
        return { code: 1, stdout: '', stderr: 'Failed to write to /dev/nvme-fabrics: Connection timed out\n' };
      },
    );
    service.put('slow', nativeData({ vol_uuid: VOL2, ns_id: '2' }));
    const d = start(host, clock, service);
    await elapse(clock, 900);
    assert.deepEqual(service.states('slow'), [], 'nothing reported within the delay');
    await elapse(clock, 300);
    assert.deepEqual(service.states('slow'), ['connecting'], 'connecting once the attach took longer than 1 s');
    await elapse(clock, 5_000);
    assert.equal(service.last('slow')?.state, 'connected');
    await d.stop();

    const quick = setup();
    quick.service.put('a1', nativeData());
    const q = start(quick.host, quick.clock, quick.service);
    await elapse(quick.clock, 3_000);
    assert.deepEqual(quick.service.states('a1'), ['connected'], 'a quick attach never says connecting');
    await q.stop();
  });

  it('registers, connects what the service wants and reports the device and its paths', async () => {
    const { host, clock, service } = setup();
    service.put('a1', nativeData());
    const d = start(host, clock, service);
    await elapse(clock, 2_000);
    assert.equal(service.registered[0]?.nqn, host.fs.read('/etc/nvme/hostnqn')?.trim());
    const r = service.last('a1')!;
    assert.equal(r.state, 'connected');
    assert.equal(r.device_path, '/dev/nvme0n1');
    assert.equal(r.health, 'optimal');
    assert.equal(r.size_bytes, GiB);
    assert.deepEqual(r.paths[0], {
      controller: 'nvme0',
      address: '10.0.0.1',
      port: 4420,
      transport: 'tcp',
      state: 'live',
      ana_state: 'optimized',
    });
    // `connecting` may be superseded before it is sent; nothing else may appear.
    assert.ok(['connecting,connected', 'connected'].includes(service.states('a1').join()), service.states('a1').join());
    await d.stop();
  });

  it('reacts to a change at once (long poll) and tears down what is no longer wanted', async () => {
    const { host, clock, service } = setup();
    service.put('a1', nativeData());
    const d = start(host, clock, service);
    await elapse(clock, 2_000);
    service.put('a1', nativeData(), 'disconnected');
    await elapse(clock, 500);
    assert.equal(service.last('a1')?.state, 'disconnected');
    assert.deepEqual(host.controllers(), []);
    await d.stop();
  });

  it('rescans an attached device when the service lists a larger volume (online extend)', async () => {
    const s = scenario();
    const ns = s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL, sizeBytes: GiB });
    const service = new FakeService(s.clock);
    service.put('a1', nativeData(), 'connected', false, 1);
    const d = start(s.host, s.clock, service);
    await elapse(s.clock, 2_000);
    assert.equal(service.last('a1')?.size_bytes, GiB);
    assert.equal(s.host.calls('nvme ns-rescan').length, 0);
    ns.sizeBytes = 2 ** 31; // grown on the target; no AEN reaches the host
    service.put('a1', nativeData(), 'connected', false, 2);
    await elapse(s.clock, 2_000);
    assert.ok(s.host.calls('nvme ns-rescan').length > 0, 'the agent rescanned');
    assert.equal(service.last('a1')?.size_bytes, 2 ** 31);
    assert.equal(service.last('a1')?.state, 'connected');
    await d.stop();
  });

  it('does not tear down a volume that another attachment on this host still wants', async () => {
    const { host, clock, service } = setup();
    service.put('a1', nativeData());
    service.put('a2', nativeData());
    const d = start(host, clock, service);
    await elapse(clock, 2_000);
    const dev = service.last('a2')?.device_path;
    assert.ok(dev);
    service.put('a1', nativeData(), 'disconnected');
    await elapse(clock, 1_000);
    assert.equal(service.last('a1')?.state, 'disconnected');
    assert.equal(host.calls('blockdev').length, 0, 'the shared device was not even flushed');
    assert.equal(host.disconnects().length, 0);
    assert.equal(host.controllers().length, 3);
    assert.equal(service.last('a2')?.device_path, dev);
    await d.stop();
  });

  it('adopts on restart what is already connected: no nvme connect, no "connecting" blip', async () => {
    const { host, clock, service } = setup();
    service.put('a1', nativeData());
    const first = start(host, clock, service);
    await elapse(clock, 2_000);
    await first.stop();
    const reports = service.reports.get('a1')!.length;
    const connects = host.calls('nvme connect').length;

    const second = start(host, clock, service);
    await elapse(clock, 2_000);
    assert.equal(host.calls('nvme connect').length, connects);
    assert.deepEqual(
      service.reports
        .get('a1')!
        .slice(reports)
        .map((r) => r.state),
      ['connected'],
    );
    await second.stop();
  });

  it('converges after being killed mid-attach, without duplicate controllers', async () => {
    const { host, clock, service } = setup();
    service.put('a1', nativeData());
    // The connect to portal 3 reaches the kernel, then the agent dies before it sees the answer.
    host.script(
      (cmd, args) => cmd === 'nvme' && args[0] === 'connect' && args.includes('10.0.0.3'),
      () => {
        host.answer('nvme', host.running[host.running.length - 1]!.args);
        return new Promise<RunResult>(() => {});
      },
    );
    const first = start(host, clock, service);
    await elapse(clock, 1_500);
    assert.equal(host.controllers().length, 3);
    assert.notEqual(service.last('a1')?.state, 'connected');
    void first.stop(); // never finishes: the "process" is gone
    const connects = host.calls('nvme connect').length;

    const second = start(host, clock, service);
    await elapse(clock, 2_000);
    assert.equal(service.last('a1')?.state, 'connected');
    assert.equal(host.controllers().length, 3, 'no duplicate controllers');
    assert.equal(host.calls('nvme connect').length, connects, 'everything adopted');
    await second.stop();
  });

  it('on restart tears down a detached volume, but not one in use unless forced', async () => {
    const { host, clock, service } = setup(true);
    service.put('a1', nativeData());
    service.put('a2', nativeData({ vol_uuid: VOL2, ns_id: '2' }));
    const first = start(host, clock, service);
    await elapse(clock, 2_000);
    await first.stop();
    host.mount('/dev/nvme0n2', '/mnt/a2');
    host.unpublishNamespace(NQN, 1); // a1's access revoked while the agent was down
    service.put('a1', nativeData(), 'disconnected');
    service.put('a2', nativeData({ vol_uuid: VOL2, ns_id: '2' }), 'disconnected');

    const second = start(host, clock, service);
    await elapse(clock, 2_000);
    assert.equal(service.last('a2')?.state, 'error');
    assert.equal(service.last('a2')?.error?.code, 'in_use');
    assert.equal(host.controllers().length, 3, 'nothing disconnected under a mounted volume');

    service.put('a2', nativeData({ vol_uuid: VOL2, ns_id: '2' }), 'disconnected', true);
    await elapse(clock, 2_000);
    assert.equal(service.last('a2')?.state, 'disconnected');
    assert.deepEqual(host.controllers(), []);
    await second.stop();
  });

  it('keeps devices while the service is down, backs off, and reports when it is back', async () => {
    const { host, clock, service } = setup();
    service.put('a1', nativeData());
    const d = start(host, clock, service);
    await elapse(clock, 2_000);
    const reports = service.reports.get('a1')!.length;

    service.down = true;
    const calls = service.listCalls;
    host.setPortalUp('10.0.0.2', false); // something worth reporting happens meanwhile
    await elapse(clock, 180_000, 500);
    assert.equal(host.controllers().length, 3, 'nothing dropped');
    assert.equal(host.disconnects().length, 0);
    const polls = service.listCalls - calls;
    assert.ok(polls >= 4 && polls <= 12, `backed off: ${polls} list calls in 180 s`);
    assert.equal(service.reports.get('a1')!.length, reports);

    service.down = false;
    await elapse(clock, 65_000, 500);
    const r = service.last('a1')!;
    assert.equal(r.state, 'connected');
    assert.equal(r.health, 'degraded');
    assert.equal(r.paths[1]!.state, 'connecting');
    await d.stop();
  });

  it('heals a lost path on a re-check pass and refreshes reports at least every 60 s', async () => {
    const { host, clock, service } = setup();
    service.put('a1', nativeData());
    const d = start(host, clock, service);
    await elapse(clock, 2_000);
    host.setPortalUp('10.0.0.3', false);
    host.expirePortal('10.0.0.3');
    await elapse(clock, 31_000, 500);
    assert.equal(service.last('a1')?.health, 'degraded');
    assert.equal(service.last('a1')!.paths[2]!.state, 'missing');

    host.fabric.portal('10.0.0.3').up = true;
    await elapse(clock, 31_000, 500);
    assert.equal(service.last('a1')?.health, 'optimal');

    const n = service.reports.get('a1')!.length;
    await elapse(clock, 185_000, 1_000);
    assert.ok(service.reports.get('a1')!.length - n >= 3, 'unchanged reports refreshed');
    await d.stop();
  });

  it('leaves the kernel alone when an attachment disappears from the list', async () => {
    const { host, clock, service } = setup();
    service.put('a1', nativeData());
    const d = start(host, clock, service);
    await elapse(clock, 2_000);
    service.remove('a1');
    await elapse(clock, 65_000, 500);
    assert.equal(host.controllers().length, 3);
    assert.equal(host.disconnects().length, 0);
    await d.stop();
  });

  it('does nothing to the kernel before the service has answered (403 → retried)', async () => {
    const { host, clock, service } = setup();
    service.tokenHost = 'nqn.someone-else';
    service.put('a1', nativeData(), 'disconnected');
    host.fabric.addNamespace(NQN, { nsid: 3, uuid: '6e7f8091-3d4e-4f60-8b12-c3d4e5f60718' });
    await host.run('nvme', ['connect', '-t', 'tcp', '-a', '10.0.0.1', '-s', '4420', '-n', NQN]);
    const d = start(host, clock, service);
    await elapse(clock, 20_000, 500);
    assert.equal(host.controllers().length, 1);
    assert.equal(service.reports.size, 0);
    service.tokenHost = null;
    await elapse(clock, 70_000, 1_000);
    assert.equal(service.last('a1')?.state, 'disconnected');
    await d.stop();
  });
});
