import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import type { ManualClock } from '../shared/clock.ts';
import { Attacher } from './attacher.ts';
import { connectorProperties } from './connector-properties.ts';
import { AgentDaemon } from './daemon.ts';
import { AgentError } from './errors.ts';
import type { Dhchap } from './host-auth.ts';
import { FAKE_HOSTNQN, type FakeHost } from './host/testing/fake-host.ts';
import { NVME_CONFIG_JSON, withHostKeys } from './nvme-config.ts';
import { FakeService } from './testing/fake-service.ts';
import { ADDRS, NQN, VOL, nativeData, scenario } from './testing/scenario.ts';

// DHHC-1 strings of the shape the service hands out (32 bytes + CRC, base64); the tests only compare them.
const key = (c: string) => `DHHC-1:00:${c.repeat(48)}:`;
const GEN1 = { generation: 1, host_secret: key('a'), ctrl_secret: key('b') };
const GEN2 = { generation: 2, host_secret: key('c'), ctrl_secret: key('d') };
const GEN3 = { generation: 3, host_secret: key('e'), ctrl_secret: key('f') };
/** A rotation from GEN1 as the service makes it: the host secret alone (2), then the controller secret (3). */
const HOST_HALF = { generation: 2, host_secret: GEN2.host_secret, ctrl_secret: GEN1.ctrl_secret };
const CTRL_HALF = { generation: 3, host_secret: GEN2.host_secret, ctrl_secret: GEN3.ctrl_secret };
const HOSTID = FAKE_HOSTNQN.split(':uuid:')[1];
const OTHER = { hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:other', hostid: 'x', dhchap_key: key('z'), mine: 'kept' };

async function elapse(clock: ManualClock, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    await clock.advance(step);
  }
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

/** A host whose target requires `secrets.current` (nvmet's host key), an agent, and its log lines. */
function setup(dhchap: Dhchap) {
  const s = scenario();
  s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
  if (dhchap) s.host.fabric.hostKeys.set(FAKE_HOSTNQN, dhchap.current.host_secret);
  const service = new FakeService(s.clock);
  service.dhchap = dhchap;
  const lines: string[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  const writes: string[] = [];
  const write = s.host.writeFile.bind(s.host);
  s.host.writeFile = (p, d, o) => {
    writes.push(p);
    return write(p, d, o);
  };
  return { ...s, service, lines, writes, log };
}

function start(t: ReturnType<typeof setup>) {
  const daemon = new AgentDaemon({
    attacher: new Attacher(t.host, { deviceTimeoutMs: 20_000 }),
    service: t.service,
    host: t.host,
    connectorProperties: () => connectorProperties(t.host),
    clock: t.clock,
    log: t.log,
  });
  const ac = new AbortController();
  const done = daemon.run(ac.signal);
  return async () => {
    ac.abort();
    await elapse(t.clock, 0);
    await done;
  };
}

/** An agent with one volume connected through three portals at generation 1. */
async function attachedAt1() {
  const t = setup({ current: GEN1, previous: null });
  t.service.put('a1', nativeData());
  const stop = start(t);
  await elapse(t.clock, 2_000);
  return { t, stop };
}

const config = (host: FakeHost) => JSON.parse(host.fs.read(NVME_CONFIG_JSON) ?? 'null');
const secretsOf = (host: FakeHost) =>
  host.controllers().map((c) => host.fs.read(`/sys/class/nvme/${c}/dhchap_secret`)?.trim());
const generations = (t: ReturnType<typeof setup>, id = 'a1') => t.service.last(id)?.paths.map((p) => p.auth_generation);

function assertNoSecretLeaked(t: ReturnType<typeof setup>): void {
  const secrets = [GEN1, GEN2].flatMap((g) => [g.host_secret, g.ctrl_secret]);
  for (const c of t.host.commands)
    for (const a of c.args) assert.ok(!secrets.some((s) => a.includes(s)), `secret on the command line: ${c.cmd}`);
  const text = t.lines.join('');
  assert.ok(t.lines.length > 0, 'the agent logged');
  for (const s of secrets) assert.ok(!text.includes(s.slice(10, 40)), 'secret in the logs');
}

describe('agent in-band authentication', () => {
  it('keeps config.json in step (0600, other entries kept), connects through it, reports the generation', async () => {
    const t = setup({ current: GEN1, previous: null });
    t.host.fs.writeFile(NVME_CONFIG_JSON, JSON.stringify([OTHER]));
    t.service.put('a1', nativeData());
    const stop = start(t);
    await elapse(t.clock, 2_000);
    const c = config(t.host);
    assert.deepEqual(c[0], OTHER, "another host's entry is kept as it was");
    assert.equal(c[1].hostnqn, FAKE_HOSTNQN);
    assert.equal(c[1].hostid, HOSTID, 'libnvme 1.3 ignores an entry without the hostid');
    assert.equal(c[1].dhchap_key, GEN1.host_secret);
    assert.deepEqual(
      c[1].subsystems[0].ports.map((p: Record<string, string>) => [p.traddr, p.trsvcid, p.dhchap_ctrl_key]),
      ADDRS.map((a) => [a, '4420', GEN1.ctrl_secret]),
    );
    assert.equal(t.host.fs.mode(NVME_CONFIG_JSON), 0o600);
    // The target requires the key: the connects authenticated with what the file holds.
    assert.equal(t.service.last('a1')?.state, 'connected');
    assert.deepEqual(
      secretsOf(t.host),
      ADDRS.map(() => GEN1.host_secret),
    );
    assert.deepEqual(generations(t), [1, 1, 1]);
    assertNoSecretLeaked(t);
    await stop();
  });

  it('rotates: file first, then each controller through sysfs, then reports the new generation', async () => {
    const { t, stop } = await attachedAt1();
    t.writes.length = 0;
    t.host.fabric.hostKeys.set(FAKE_HOSTNQN, GEN2.host_secret); // step 2: the backend has the new pair
    t.service.setSecrets({ current: GEN2, previous: GEN1 });
    await elapse(t.clock, 1_000);
    const ctrls = t.host.controllers();
    assert.deepEqual(t.writes, [
      NVME_CONFIG_JSON,
      ...ctrls.flatMap((c) => [`/sys/class/nvme/${c}/dhchap_secret`, `/sys/class/nvme/${c}/dhchap_ctrl_secret`]),
    ]);
    assert.equal(config(t.host)[0].dhchap_key, GEN2.host_secret);
    assert.deepEqual(
      secretsOf(t.host),
      ADDRS.map(() => GEN2.host_secret),
    );
    assert.deepEqual(generations(t), [2, 2, 2]);
    assertNoSecretLeaked(t);
    await stop();
  });

  it('a rotation in two halves: the host secret alone, then the controller secret alone, one write each', async () => {
    // Linux 6.1 re-authenticates on each sysfs write: moving both at once would run one exchange
    // with one new and one old secret. The service hands them over one generation at a time.
    const { t, stop } = await attachedAt1();
    const ctrls = t.host.controllers();
    t.writes.length = 0;
    t.host.fabric.hostKeys.set(FAKE_HOSTNQN, HOST_HALF.host_secret);
    t.service.setSecrets({ current: HOST_HALF, previous: GEN1 });
    await elapse(t.clock, 1_000);
    assert.deepEqual(t.writes, [NVME_CONFIG_JSON, ...ctrls.map((c) => `/sys/class/nvme/${c}/dhchap_secret`)]);
    assert.deepEqual(generations(t), [2, 2, 2]);
    t.writes.length = 0;
    t.service.setSecrets({ current: CTRL_HALF, previous: HOST_HALF });
    await elapse(t.clock, 1_000);
    assert.deepEqual(t.writes, [NVME_CONFIG_JSON, ...ctrls.map((c) => `/sys/class/nvme/${c}/dhchap_ctrl_secret`)]);
    assert.deepEqual(generations(t), [3, 3, 3]);
    assert.equal(config(t.host)[0].subsystems[0].ports[0].dhchap_ctrl_key, CTRL_HALF.ctrl_secret);
    await stop();
  });

  it('a controller on the host secret of both halves reports the generation whose two secrets it holds', async () => {
    const { t, stop } = await attachedAt1();
    t.service.setSecrets({ current: HOST_HALF, previous: GEN1 });
    await elapse(t.clock, 1_000);
    const [, second] = t.host.controllers();
    t.host.kernel.failDhchapWrite.add(second!); // keeps generation 2 while the others move to 3
    t.service.setSecrets({ current: CTRL_HALF, previous: HOST_HALF });
    await elapse(t.clock, 1_000);
    assert.deepEqual(generations(t), [3, 2, 3], 'generation 2, not none: its host secret is also the current one');
    await stop();
  });

  it('a controller that is down is not written (6.1 races its reconnect); once live again it moves', async () => {
    const { t, stop } = await attachedAt1();
    const ctrls = t.host.controllers();
    t.host.setPortalUp(ADDRS[1]!, false);
    t.writes.length = 0;
    t.service.setSecrets({ current: GEN2, previous: GEN1 });
    await elapse(t.clock, 1_000);
    assert.equal(t.writes.filter((w) => w.startsWith(`/sys/class/nvme/${ctrls[1]}/`)).length, 0);
    assert.equal(t.host.fs.read(`/sys/class/nvme/${ctrls[1]}/dhchap_secret`)?.trim(), GEN1.host_secret);
    t.host.setPortalUp(ADDRS[1]!, true);
    await elapse(t.clock, 30_000); // the recheck
    assert.deepEqual(generations(t), [2, 2, 2]);
    await stop();
  });

  it('a path down through a rotation comes back refused on the retired secret and is replaced by a new connect', async () => {
    const { t, stop } = await attachedAt1();
    const [, second] = t.host.controllers();
    t.host.setPortalUp(ADDRS[1]!, false);
    t.host.fabric.hostKeys.set(FAKE_HOSTNQN, GEN2.host_secret); // the backend holds only the new pair
    t.service.setSecrets({ current: GEN2, previous: GEN1 });
    await elapse(t.clock, 1_000);
    t.host.setPortalUp(ADDRS[1]!, true);
    assert.equal(t.host.fs.read(`/sys/class/nvme/${second}/state`)?.trim(), 'connecting', 'refused on generation 1');
    t.writes.length = 0;
    await elapse(t.clock, 31_000); // the recheck, and its report
    assert.ok(t.writes.includes(`/sys/class/nvme/${second}/delete_controller`), t.writes.join('\n'));
    assert.equal(t.host.calls(`nvme connect -t tcp -a ${ADDRS[1]} `).length, 2, 'connected again, once');
    assert.deepEqual(generations(t), [2, 2, 2]);
    assert.equal(t.service.last('a1')?.paths.filter((p) => p.state === 'live').length, 3);
    assertNoSecretLeaked(t);
    await stop();
  });

  it('every path down through a rotation: none is disconnected, none is written (6.1 oopses), the warning says so', async () => {
    const { t, stop } = await attachedAt1();
    const ctrls = t.host.controllers();
    for (const a of ADDRS) t.host.setPortalUp(a, false);
    t.host.fabric.hostKeys.set(FAKE_HOSTNQN, GEN2.host_secret);
    t.service.setSecrets({ current: GEN2, previous: GEN1 });
    await elapse(t.clock, 1_000);
    for (const a of ADDRS) t.host.setPortalUp(a, true); // refused: they hold generation 1
    t.writes.length = 0;
    await elapse(t.clock, 30_000);
    assert.deepEqual(
      t.writes.filter((w) => w.startsWith('/sys/')),
      [],
      'no controller of a device without another path is deleted or written',
    );
    assert.deepEqual(t.host.controllers(), ctrls);
    const seen = t.lines.filter((l) => l.includes('controllers refused on a retired secret'));
    assert.match(seen.at(-1) ?? '', /the only usable path of a namespace behind it/);
    await stop();
  });

  it('a controller whose write fails keeps the old generation, with the error, until a recheck moves it', async () => {
    const { t, stop } = await attachedAt1();
    const [, second] = t.host.controllers();
    t.host.kernel.failDhchapWrite.add(second!);
    t.service.setSecrets({ current: GEN2, previous: GEN1 });
    await elapse(t.clock, 1_000);
    assert.deepEqual(generations(t), [2, 1, 2]);
    assert.equal(t.service.last('a1')?.error?.code, 'auth_rotation_failed');
    assert.match(t.service.last('a1')?.error?.message ?? '', new RegExp(`${second} \\(EIO\\)`));
    t.host.kernel.failDhchapWrite.clear();
    await elapse(t.clock, 30_000); // the recheck retries it
    assert.deepEqual(generations(t), [2, 2, 2]);
    assert.equal(t.service.last('a1')?.error, null);
    await stop();
  });

  it('a controller whose controller-secret write fails after its host secret reports no new generation', async () => {
    const { t, stop } = await attachedAt1();
    const [, second] = t.host.controllers();
    t.host.kernel.failDhchapCtrlWrite.add(second!);
    t.service.setSecrets({ current: GEN2, previous: GEN1 });
    await elapse(t.clock, 1_000);
    assert.equal(t.host.fs.read(`/sys/class/nvme/${second}/dhchap_secret`)?.trim(), GEN2.host_secret);
    assert.deepEqual(generations(t), [2, null, 2], 'half-moved: neither generation');
    assert.equal(t.service.last('a1')?.error?.code, 'auth_rotation_failed');
    t.host.kernel.failDhchapCtrlWrite.clear();
    await elapse(t.clock, 30_000); // the recheck writes the controller secret
    assert.deepEqual(generations(t), [2, 2, 2]);
    await stop();
  });

  it('a port of a gone attachment moves to the current controller key even when `previous` never came', async () => {
    const { t, stop } = await attachedAt1();
    t.service.remove('a1'); // no live paths: the rotation goes staged→idle at once
    await elapse(t.clock, 1_000);
    t.service.setSecrets({ current: GEN2, previous: null });
    await elapse(t.clock, 1_000);
    const c = config(t.host);
    assert.equal(c[0].dhchap_key, GEN2.host_secret);
    assert.deepEqual(
      c[0].subsystems[0].ports.map((p: Record<string, string>) => [p.traddr, p.dhchap_ctrl_key]),
      ADDRS.map((a) => [a, GEN2.ctrl_secret]),
    );
    await stop();
  });

  it('a recheck still writing the old secret never lands after the poll brings a newer one', async () => {
    const { t, stop } = await attachedAt1();
    const [, second] = t.host.controllers();
    t.host.kernel.failDhchapWrite.add(second!);
    t.service.setSecrets({ current: GEN2, previous: GEN1 });
    await elapse(t.clock, 1_000);
    t.host.kernel.failDhchapWrite.clear();
    // The recheck's retry of `second` with GEN2 is held in its sysfs write...
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    let holding = false;
    const write = t.host.writeFile.bind(t.host);
    t.host.writeFile = async (p, d, o) => {
      if (p === `/sys/class/nvme/${second}/dhchap_secret` && d === GEN2.host_secret) {
        holding = true;
        await held;
      }
      return write(p, d, o);
    };
    await elapse(t.clock, 30_000);
    assert.ok(holding, 'the recheck is writing GEN2');
    // ...while the poll brings GEN3, then the write goes on.
    t.host.fabric.hostKeys.set(FAKE_HOSTNQN, GEN3.host_secret);
    t.service.setSecrets({ current: GEN3, previous: GEN2 });
    await elapse(t.clock, 1_000);
    release();
    await elapse(t.clock, 1_000);
    assert.deepEqual(
      secretsOf(t.host),
      ADDRS.map(() => GEN3.host_secret),
    );
    assert.equal(config(t.host)[0].dhchap_key, GEN3.host_secret);
    assert.deepEqual(generations(t), [3, 3, 3]);
    await stop();
  });

  it('a restarted agent finds the file and the controllers in step and writes nothing', async () => {
    const first = await attachedAt1();
    const t = first.t;
    let stop = first.stop;
    t.service.setSecrets({ current: GEN2, previous: GEN1 });
    await elapse(t.clock, 1_000);
    await stop();
    t.writes.length = 0;
    t.service.reports.clear();
    stop = start(t);
    await elapse(t.clock, 2_000);
    assert.deepEqual(t.writes, []);
    assert.deepEqual(generations(t), [2, 2, 2]);
    await stop();
  });

  it('a connect the target refuses at authentication is auth_rejected, and leaves no controller', async () => {
    const t = setup({ current: GEN1, previous: null });
    t.host.fabric.hostKeys.set(FAKE_HOSTNQN, GEN2.host_secret); // the target wants another secret
    t.service.put('a1', nativeData());
    const stop = start(t);
    await elapse(t.clock, 2_000);
    assert.equal(t.service.last('a1')?.state, 'error');
    assert.equal(t.service.last('a1')?.error?.code, 'auth_rejected');
    assert.deepEqual(t.host.controllers(), []);
    await stop();
  });

  it('nvme-cli 3.x: config.json is not written and the refusal is logged with its code', async () => {
    const t = setup({ current: GEN1, previous: null });
    t.host.fabric.hostKeys.clear();
    t.host.script((cmd, a) => cmd === 'nvme' && a[0] === 'version', {
      code: 0,
      stdout: 'nvme version 3.0 (git 3.0)\n',
      stderr: '',
    });
    t.service.put('a1', nativeData());
    const stop = start(t);
    await elapse(t.clock, 2_000);
    assert.equal(t.host.fs.read(NVME_CONFIG_JSON), null);
    assert.ok(t.lines.some((l) => l.includes('"code":"auth_unsupported"')));
    await stop();
  });

  it('a config.json that is not a list of host entries is refused, never overwritten', () => {
    const k = {
      hostNqn: FAKE_HOSTNQN,
      hostId: HOSTID!,
      hostSecret: GEN1.host_secret,
      ctrlSecret: GEN1.ctrl_secret,
      subsystems: [],
    };
    assert.throws(
      () => withHostKeys('{"hostnqn": 1', k),
      (e) => e instanceof AgentError && e.code === 'nvme_config_invalid',
    );
    assert.equal(withHostKeys(withHostKeys(null, k), k), withHostKeys(null, k), 'the same text when in step');
  });
});
