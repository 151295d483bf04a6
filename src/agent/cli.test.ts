import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AgentIo, runAgentCli } from './cli.ts';
import { loadAgentSettings } from './config.ts';
import { FakeService } from './testing/fake-service.ts';
import { NQN, VOL, nativeData, scenario } from './testing/scenario.ts';
import { GiB } from '../shared/units.ts';

function io(extra: Partial<AgentIo> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: {
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
      ...extra,
    } as AgentIo,
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

function attachedHost() {
  const s = scenario();
  s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL, sizeBytes: GiB });
  s.host.fs.writeFile('/var/tmp/conn.json', JSON.stringify({ driver_volume_type: 'nvmeof', data: nativeData() }));
  return s;
}

describe('portalis agent CLI', () => {
  it('connector-properties prints the connector dict', async () => {
    const s = scenario();
    const t = io({ host: s.host });
    assert.equal(await runAgentCli(['connector-properties'], { PORTALIS_AGENT_ENFORCE_MULTIPATH: 'true' }, t.io), 0);
    const p = JSON.parse(t.out());
    assert.equal(p.nqn, s.host.fs.read('/etc/nvme/hostnqn')?.trim());
    assert.equal(p.enforce_multipath, true);
    assert.equal(p.nvme_native_multipath, true);
  });

  it('attach takes the whole connection_info from a file and prints the device', async () => {
    const s = attachedHost();
    const t = io({ host: s.host });
    assert.equal(await runAgentCli(['attach', '--connection-info', '/var/tmp/conn.json'], {}, t.io), 0);
    const r = JSON.parse(t.out());
    assert.equal(r.device_path, '/dev/nvme0n1');
    assert.equal(r.size_bytes, GiB);
    assert.equal(r.health, 'optimal');
    assert.equal(r.paths.length, 3);
    assert.equal(typeof r.elapsed_ms, 'number');
  });

  it('attach reads just the data dict from stdin; detach --force prints what it did', async () => {
    const s = attachedHost();
    const stdin = (async function* () {
      yield JSON.stringify(nativeData());
    })();
    const a = io({ host: s.host, stdin });
    assert.equal(await runAgentCli(['attach', '--connection-info', '-'], {}, a.io), 0);
    s.host.mount('/dev/nvme0n1', '/mnt');
    const refused = io({ host: s.host });
    assert.equal(await runAgentCli(['detach', '--connection-info', '/var/tmp/conn.json'], {}, refused.io), 1);
    assert.equal(JSON.parse(refused.out()).error.code, 'in_use');
    const d = io({ host: s.host });
    assert.equal(await runAgentCli(['detach', '--connection-info=/var/tmp/conn.json', '--force'], {}, d.io), 0);
    const r = JSON.parse(d.out());
    assert.deepEqual(r.disconnected.sort(), ['nvme0', 'nvme1', 'nvme2']);
    assert.deepEqual(r.flushed, ['/dev/nvme0n1']);
  });

  it('fails clearly on bad usage, bad input and bad configuration', async () => {
    const s = scenario();
    const cases: [string[], Record<string, string>, number, RegExp][] = [
      [['attach'], {}, 2, /--connection-info/],
      [['attach', '--connection-info', '/nope.json'], {}, 2, /does not exist/],
      [['frobnicate'], {}, 2, /unknown subcommand/],
      [['attach', '--connection-info', '/etc/nvme/hostnqn'], {}, 2, /not JSON/],
      [
        ['connector-properties'],
        { PORTALIS_AGENT_KEEP_ALIVE_TMO: 'abc' },
        2,
        /PORTALIS_AGENT_KEEP_ALIVE_TMO: must be a whole number/,
      ],
      [['connector-properties'], { PORTALIS_AGENT_IOPOLICY: 'fastest' }, 2, /PORTALIS_AGENT_IOPOLICY/],
      [[], {}, 2, /PORTALIS_URL: is required/],
      [[], { PORTALIS_URL: 'ftp://x' }, 2, /PORTALIS_URL: must be an http/],
      [[], { PORTALIS_URL: 'http://svc:8080' }, 2, /PORTALIS_TOKEN: is required/],
    ];
    for (const [argv, env, code, msg] of cases) {
      const t = io({ host: s.host });
      assert.equal(await runAgentCli(argv, env, t.io), code, argv.join(' '));
      assert.match(t.err(), msg, argv.join(' '));
    }
    s.host.fs.writeFile('/var/tmp/bad.json', JSON.stringify({ ...nativeData(), vol_uuid: 'x' }));
    const t = io({ host: s.host });
    assert.equal(await runAgentCli(['attach', '--connection-info', '/var/tmp/bad.json'], {}, t.io), 1);
    assert.equal(JSON.parse(t.out()).error.code, 'invalid_connection_info');
  });

  it('documents defaults: Lightbits connect options, iopolicy unchanged', () => {
    const s = loadAgentSettings({});
    assert.deepEqual(s.tunables, {
      ctrlLossTmo: -1,
      reconnectDelay: 10,
      keepAliveTmo: 30,
      fastIoFailTmo: undefined,
      nrIoQueues: undefined,
    });
    assert.equal(s.iopolicy, undefined);
    assert.equal(s.recheckIntervalMs, 30_000);
    assert.equal(s.reportRefreshMs, 60_000);
  });

  it('runs the daemon with no subcommand, never logging the token', async () => {
    const s = attachedHost();
    const service = new FakeService(s.clock);
    service.put('a1', nativeData());
    const ac = new AbortController();
    const token = 'ptl_very_secret_token';
    const t = io({ host: s.host, service, signal: ac.signal });
    const done = runAgentCli(
      [],
      { PORTALIS_URL: 'http://svc:8080', PORTALIS_TOKEN: token, PORTALIS_LOG_LEVEL: 'debug' },
      t.io,
    );
    for (let i = 0; i < 30; i++) {
      await new Promise((r) => setImmediate(r));
      await s.clock.advance(100);
    }
    assert.equal(service.last('a1')?.device_path, '/dev/nvme0n1');
    ac.abort();
    await s.clock.advance(0);
    assert.equal(await done, 0);
    assert.match(t.err(), /portalis agent starting/);
    assert.ok(!t.err().includes(token));
  });
});
