import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import type { ManualClock } from '../shared/clock.ts';
import { connectorProperties } from './connector-properties.ts';
import { Attacher } from './attacher.ts';
import { AgentDaemon } from './daemon.ts';
import type { FakeHost } from './host/testing/fake-host.ts';
import { FakeService } from './testing/fake-service.ts';
import { NQN, VOL2, nativeData, portals, scenario } from './testing/scenario.ts';

/**
 * Host-connected attachments (docs/DECISIONS.md, "Who connects an attachment"): os-brick connects
 * and disconnects the volume on a Nova host; the agent never connects a portal the host was
 * handed, never brings back what the host detached, adds the paths a portal change brings, and
 * after terminate removes only the controllers it added. "os-brick" here is the fake host's
 * nvme-cli run with the commands os-brick issues (`nvme connect -a -s -t -n -q`, `nvme disconnect
 * -d`), outside the agent.
 */

const RECHECK_MS = 30_000;

async function elapse(clock: ManualClock, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    await clock.advance(step);
  }
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

function setup() {
  const s = scenario();
  s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: nativeData().vol_uuid });
  const service = new FakeService(s.clock);
  const daemon = new AgentDaemon({
    attacher: new Attacher(s.host, { deviceTimeoutMs: 20_000 }),
    service,
    connectorProperties: () => connectorProperties(s.host),
    clock: s.clock,
    recheckIntervalMs: RECHECK_MS,
    reportRefreshMs: 60_000,
    pollWaitSeconds: 30,
  });
  const ac = new AbortController();
  const done = daemon.run(ac.signal);
  const stop = async () => {
    ac.abort();
    await elapse(s.clock, 0);
    await done;
  };
  return { ...s, service, daemon, signal: ac.signal, stop };
}

/** The `nvme connect` os-brick runs for each portal (os_brick/initiator/connectors/nvmeof.py). */
async function osBrickConnect(host: FakeHost, addrs: string[]): Promise<void> {
  const hostnqn = host.fs.read('/etc/nvme/hostnqn')!.trim();
  for (const a of addrs) {
    const r = await host.run('nvme', ['connect', '-a', a, '-s', '4420', '-t', 'tcp', '-n', NQN, '-q', hostnqn]);
    assert.equal(r.code, 0, r.stderr);
  }
}

/** A running daemon on a host where os-brick has connected the two portals it was handed. */
async function osBrickConnected() {
  const s = setup();
  await elapse(s.clock, 500);
  const handed = portals(['10.0.0.1', '10.0.0.2']);
  await osBrickConnect(s.host, ['10.0.0.1', '10.0.0.2']);
  return { ...s, handed };
}

/** os-brick's disconnect_volume: `nvme disconnect -d` for the controller of each of its portals. */
async function osBrickDisconnect(host: FakeHost, addrs: string[]): Promise<void> {
  for (const name of host.controllers(NQN)) {
    const address = host.fs.read(`/sys/class/nvme/${name}/address`) ?? '';
    if (addrs.some((a) => address.includes(`traddr=${a},`)))
      await host.run('nvme', ['disconnect', '-d', `/dev/${name}`]);
  }
}

const connectsTo = (host: FakeHost) =>
  host.calls('nvme connect').map((c) => c.match(/(?:-a|--traddr)[ =](\S+)/)?.[1] ?? c);
const livePorts = (r: { paths: { address: string; state: string }[] } | undefined) =>
  (r?.paths ?? []).filter((p) => p.state === 'live').map((p) => p.address);

describe('agent daemon: host-connected attachments', () => {
  it('never runs the first connect: awaiting_host until the host connected, then what it sees', async () => {
    const { host, clock, service, stop } = setup();
    await elapse(clock, 1_000); // registered: /etc/nvme/hostnqn exists, as os-brick's would
    service.putHostConnected('a1', nativeData());
    await elapse(clock, 5_000);
    assert.equal(service.last('a1')?.state, 'awaiting_host');
    assert.equal(service.last('a1')?.health, null);
    assert.deepEqual(connectsTo(host), [], 'the agent connected nothing');
    assert.deepEqual(host.controllers(NQN), []);

    await osBrickConnect(host, ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    // Watched every 2 s while awaiting the host, not at the next 30 s recheck.
    await elapse(clock, 2_500);
    const r = service.last('a1')!;
    assert.equal(r.state, 'connected');
    assert.equal(r.device_path, '/dev/nvme0n1');
    assert.equal(r.health, 'optimal');
    assert.deepEqual(livePorts(r), ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    assert.deepEqual(connectsTo(host), ['10.0.0.1', '10.0.0.2', '10.0.0.3'], "only os-brick's three connects");
    await stop();
  });

  it('while the host is still connecting its portals it is awaiting_host, never a passing degraded', async () => {
    const { host, clock, service, stop } = setup();
    await elapse(clock, 500);
    service.putHostConnected('a1', nativeData());
    await elapse(clock, 1_000);
    await osBrickConnect(host, ['10.0.0.1']);
    await elapse(clock, 3_000);
    assert.equal(service.last('a1')?.state, 'awaiting_host', 'one of three portals: still connecting');
    await osBrickConnect(host, ['10.0.0.2', '10.0.0.3']);
    await elapse(clock, 2_500);
    assert.equal(service.last('a1')?.health, 'optimal');
    assert.ok(!(service.reports.get('a1') ?? []).some((r) => r.health === 'degraded'), 'no degraded on the way');
    await stop();
  });

  it('a portal the host never connects: after the settle time the device is reported, degraded', async () => {
    const { host, clock, service, stop } = setup();
    await elapse(clock, 500);
    service.putHostConnected('a1', nativeData());
    await osBrickConnect(host, ['10.0.0.1', '10.0.0.2']);
    await elapse(clock, 5_000);
    assert.equal(service.last('a1')?.state, 'awaiting_host');
    await elapse(clock, 7_000);
    assert.equal(service.last('a1')?.state, 'connected');
    assert.equal(service.last('a1')?.health, 'degraded');
    await stop();
  });

  it('an agent started after the host connected observes without connecting anything', async () => {
    const { host, clock, service, stop } = await osBrickConnected();
    service.putHostConnected('a1', nativeData({ portals: portals(['10.0.0.1', '10.0.0.2']) }));
    await elapse(clock, 1_000);
    assert.equal(service.last('a1')?.state, 'connected');
    assert.deepEqual(connectsTo(host), ['10.0.0.1', '10.0.0.2']);
    await stop();
  });

  it('the host detached it while still live: host_detached, and nothing comes back', async () => {
    const { host, clock, service, stop } = setup();
    await elapse(clock, 500);
    await osBrickConnect(host, ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    service.putHostConnected('a1', nativeData());
    await elapse(clock, 1_000);
    assert.equal(service.last('a1')?.state, 'connected');

    await osBrickDisconnect(host, ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    assert.deepEqual(host.controllers(NQN), []);
    await elapse(clock, 2 * RECHECK_MS + 1_000, 500);
    const r = service.last('a1')!;
    assert.equal(r.state, 'host_detached');
    assert.equal(r.health, null, 'not optimal, not failed');
    assert.equal(r.device_path, null);
    assert.deepEqual(host.controllers(NQN), [], 'no controller came back in two recheck periods');
    assert.equal(connectsTo(host).length, 3, "only os-brick's connects, ever");
    await stop();
  });

  it("live paths: the new portal is added to the host device, the dead stale one pruned, the host's live one kept", async () => {
    const { host, clock, service, stop, handed } = await osBrickConnected();
    service.putHostConnected('a1', nativeData({ portals: handed }));
    await elapse(clock, 1_000);
    assert.equal(service.last('a1')?.state, 'connected');

    // The replica on 10.0.0.2 moved to 10.0.0.3: the service's portals change, the host's do not.
    service.putHostConnected('a1', nativeData({ portals: portals(['10.0.0.1', '10.0.0.3']) }), { hostPortals: handed });
    await elapse(clock, 1_000);
    assert.deepEqual(connectsTo(host), ['10.0.0.1', '10.0.0.2', '10.0.0.3'], 'the agent connected only the new portal');
    const r = service.last('a1')!;
    assert.equal(r.state, 'connected');
    assert.equal(r.device_path, '/dev/nvme0n1', "the new path joined the host's head device");
    assert.deepEqual(livePorts(r), ['10.0.0.1', '10.0.0.3']);
    assert.equal(host.controllers(NQN).length, 3, "the host's live controller to 10.0.0.2 is the host's to remove");

    // Node 2 goes away: the host's controller there is dead and stale, and goes under the
    // agent's rules (another usable path exists).
    host.setPortalUp('10.0.0.2', false);
    await elapse(clock, RECHECK_MS + 500, 500);
    assert.equal(host.controllers(NQN).length, 2);
    assert.equal(service.last('a1')?.state, 'connected');
    await stop();
  });

  it("after terminate it removes only the controllers it added; the host's stay the host's", async () => {
    const { host, clock, service, stop, handed } = await osBrickConnected();
    service.putHostConnected('a1', nativeData({ portals: portals(['10.0.0.1', '10.0.0.2', '10.0.0.3']) }), {
      hostPortals: handed,
    });
    await elapse(clock, 1_000);
    assert.equal(host.controllers(NQN).length, 3, 'the agent added 10.0.0.3');
    const added = host
      .controllers(NQN)
      .filter((c) => host.fs.read(`/sys/class/nvme/${c}/address`)?.includes('10.0.0.3'));

    // Terminated while the host still has its controllers (it did not disconnect): only the
    // agent's goes.
    service.putHostConnected('a1', nativeData({ portals: portals(['10.0.0.1', '10.0.0.2', '10.0.0.3']) }), {
      hostPortals: handed,
      desired: 'disconnected',
    });
    await elapse(clock, 1_000);
    assert.deepEqual(host.disconnects(), added, 'only the added controller was disconnected');
    assert.equal(host.controllers(NQN).length, 2);
    assert.equal(service.last('a1')?.state, 'disconnected');
    await stop();
  });

  it("a dead controller of the host's pruned while another of its own stays: os-brick's disconnect is still seen", async () => {
    const { host, clock, service, stop, handed } = await osBrickConnected();
    service.putHostConnected('a1', nativeData({ portals: handed }));
    await elapse(clock, 1_000);
    service.putHostConnected('a1', nativeData({ portals: portals(['10.0.0.1', '10.0.0.3']) }), { hostPortals: handed });
    host.setPortalUp('10.0.0.2', false);
    await elapse(clock, RECHECK_MS + 500, 500);
    assert.equal(host.controllers(NQN).length, 2, "the host's dead stale one pruned, the new one added");
    await osBrickDisconnect(host, ['10.0.0.1', '10.0.0.2']);
    await elapse(clock, RECHECK_MS + 500, 500);
    assert.equal(service.last('a1')?.state, 'host_detached', "the device left on the added path is not the host's");
    assert.equal(connectsTo(host).length, 3);
    await stop();
  });

  it("an agent started after the portals moved prunes the host's dead stale controller", async () => {
    const { host, clock, service, stop } = setup();
    const handed = portals(['10.0.0.1', '10.0.0.2']);
    await elapse(clock, 500);
    await osBrickConnect(host, ['10.0.0.1', '10.0.0.2']);
    host.setPortalUp('10.0.0.2', false);
    // The first version the agent sees already has the new portals.
    service.putHostConnected('a1', nativeData({ portals: portals(['10.0.0.1', '10.0.0.3']) }), { hostPortals: handed });
    await elapse(clock, 1_000);
    const addresses = host.controllers(NQN).map((c) => host.fs.read(`/sys/class/nvme/${c}/address`));
    assert.ok(!addresses.some((a) => a?.includes('10.0.0.2,')), `the dead one is gone: ${addresses.join(' | ')}`);
    assert.equal(service.last('a1')?.state, 'connected');
    await stop();
  });

  it('never adds a portal the host connects for another of its attachments (os-brick may be at it)', async () => {
    const { host, clock, service, stop } = setup();
    host.fabric.addNamespace(NQN, { nsid: 2, uuid: VOL2 });
    await elapse(clock, 500);
    await osBrickConnect(host, ['10.0.0.1', '10.0.0.2']);
    service.putHostConnected('a1', nativeData({ portals: portals(['10.0.0.1', '10.0.0.3']) }), {
      hostPortals: portals(['10.0.0.1', '10.0.0.2']),
    });
    service.putHostConnected('b1', nativeData({ vol_uuid: VOL2, ns_id: '2' }));
    await elapse(clock, 1_000);
    assert.deepEqual(connectsTo(host), ['10.0.0.1', '10.0.0.2'], "10.0.0.3 is b1's host's to connect");
    await stop();
  });

  it('a terminated instance of a volume another attachment still wants here touches nothing', async () => {
    const { host, clock, service, stop, handed } = await osBrickConnected();
    const moved = nativeData({ portals: portals(['10.0.0.1', '10.0.0.2', '10.0.0.3']) });
    service.putHostConnected('i1', moved, { hostPortals: handed });
    service.putHostConnected('i2', moved, { hostPortals: handed });
    await elapse(clock, 1_000);
    assert.equal(host.controllers(NQN).length, 3);
    host.openDevice(777, '/dev/nvme0n1');
    service.putHostConnected('i1', moved, { hostPortals: handed, desired: 'disconnected' });
    await elapse(clock, 1_000);
    assert.deepEqual(host.disconnects(), []);
    assert.equal(service.last('i1')?.state, 'disconnected');
    await stop();
  });

  it("without host_portals (an older service) every portal is the host's: nothing added, nothing removed", async () => {
    const { host, clock, service, stop } = await osBrickConnected();
    service.putHostConnected('a1', nativeData(), { hostPortals: null });
    // The host connected two of the three portals it counts as the host's: after the settle time.
    await elapse(clock, 11_000, 500);
    assert.equal(service.last('a1')?.state, 'connected');
    assert.deepEqual(connectsTo(host), ['10.0.0.1', '10.0.0.2'], "the missing portal is the host's to connect");
    service.putHostConnected('a1', nativeData(), { hostPortals: null, desired: 'disconnected' });
    await elapse(clock, 1_000);
    assert.deepEqual(host.disconnects(), []);
    assert.equal(service.last('a1')?.state, 'disconnected');
    await stop();
  });

  it('the daemon keeps its abort listeners flat over many poll cycles and reports', async () => {
    const { host, clock, service, signal, stop } = setup();
    service.put('own', nativeData());
    await osBrickConnect(host, []);
    await elapse(clock, 1_000);
    const counts: number[] = [];
    for (let i = 0; i < 40; i++) {
      // A change every round (a path lost or back, a new version of the attachment): the long
      // poll answers, the attachment is reconciled, a new report wakes the reporter.
      host.setPortalUp('10.0.0.2', i % 2 === 1);
      service.put('own', nativeData(), 'connected', i % 2 === 0);
      await elapse(clock, 3_000, 500);
      counts.push(getEventListeners(signal, 'abort').length);
    }
    assert.ok(service.listCalls > 40, `the long poll went round (${service.listCalls} calls)`);
    assert.ok((service.reports.get('own') ?? []).length > 20, 'reports were sent');
    assert.ok(Math.max(...counts) <= 4, `abort listeners stay flat: ${counts.join(' ')}`);
    assert.equal(counts.at(-1), counts[0], `abort listeners stay flat: ${counts.join(' ')}`);
    await stop();
  });
});
