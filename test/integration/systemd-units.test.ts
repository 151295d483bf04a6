import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { loadAgentSettings, loadDaemonSettings } from '../../src/agent/config.ts';
import { loadConfig } from '../../src/config.ts';
import { ROOT } from '../support/cli.ts';

const DIR = path.join(ROOT, 'deploy', 'systemd');
const UNITS = ['portalis.service', 'portalis-agent.service'];

/** The unit's `key=value` lines of one section, in order (repeated keys kept). */
function section(unit: string, name: string): [string, string][] {
  const text = readFileSync(path.join(DIR, unit), 'utf8');
  const body = text.split(/^\[/m).find((s) => s.startsWith(`${name}]`));
  assert.ok(body, `${unit} has a [${name}] section`);
  return body
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() && !l.startsWith('#'))
    .map((l) => {
      const i = l.indexOf('=');
      return [l.slice(0, i), l.slice(i + 1)];
    });
}
const value = (kv: [string, string][], key: string) => kv.filter(([k]) => k === key).map(([, v]) => v);

/** KEY=value lines of an example environment file. */
function envFile(name: string): Record<string, string> {
  const lines = readFileSync(path.join(DIR, name), 'utf8').split('\n');
  return Object.fromEntries(lines.filter((l) => /^[A-Z_]+=/.test(l)).map((l) => l.split(/=(.*)/s).slice(0, 2)));
}

describe('deploy/systemd units', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'portalis-units-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('pass systemd-analyze verify without a warning', (t) => {
    const probe = spawnSync('systemd-analyze', ['--version']);
    if (probe.error) {
      if (process.env.PORTALIS_REQUIRE_SYSTEMD === '1')
        assert.fail('systemd-analyze is missing (Debian package systemd)');
      t.skip('systemd-analyze is not installed (Debian package systemd)');
      return;
    }
    // verify checks that ExecStart's program exists: the units name the install paths
    // (/opt/portalis, Debian's /usr/bin/node); here they point at this checkout and this node.
    const files = UNITS.map((u) => {
      const text = readFileSync(path.join(DIR, u), 'utf8')
        .replaceAll('/opt/portalis', ROOT)
        .replaceAll('/usr/bin/node', process.execPath);
      const f = path.join(tmp, u);
      writeFileSync(f, text);
      return f;
    });
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...files], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // Unknown keys and bad values are only warnings (exit 0): none is allowed either.
    assert.equal(r.stderr.trim(), '', 'no warnings');
  });

  it('run the programs from the compiled build with their settings from an environment file', () => {
    for (const [unit, cmd, env] of [
      ['portalis.service', 'serve', '/etc/portalis/service.env'],
      ['portalis-agent.service', 'agent', '/etc/portalis/agent.env'],
    ] as const) {
      const s = section(unit, 'Service');
      assert.deepEqual(value(s, 'ExecStart'), [`/usr/bin/node /opt/portalis/bin/portalis.mjs ${cmd}`]);
      assert.deepEqual(value(s, 'EnvironmentFile'), [env]);
      assert.ok(['on-failure', 'always'].includes(value(s, 'Restart')[0]!), `${unit} restarts`);
      assert.deepEqual(value(section(unit, 'Install'), 'WantedBy'), ['multi-user.target']);
    }
  });

  it('the service runs unprivileged and reloads TLS on SIGHUP', () => {
    const s = section('portalis.service', 'Service');
    assert.deepEqual(value(s, 'User'), ['portalis']);
    assert.deepEqual(value(s, 'CapabilityBoundingSet'), ['']);
    assert.deepEqual(value(s, 'ExecReload'), ['/bin/kill -HUP $MAINPID']);
    for (const k of ['PrivateDevices', 'ProtectKernelModules', 'ProtectKernelTunables', 'NoNewPrivileges'])
      assert.deepEqual(value(s, k), ['yes'], k);
  });

  it('the agent starts after the network, before the hypervisor, with the devices and sysfs it needs', () => {
    const u = section('portalis-agent.service', 'Unit');
    assert.ok(value(u, 'After')[0]!.split(' ').includes('network-online.target'));
    assert.ok(value(u, 'Wants')[0]!.split(' ').includes('network-online.target'));
    assert.deepEqual(value(u, 'Before')[0]!.split(' ').sort(), ['libvirtd.service', 'nova-compute.service']);
    const s = section('portalis-agent.service', 'Service');
    assert.deepEqual(value(s, 'User'), [], 'root: nvme-cli, sysfs writes, modules, device-mapper');
    // Each of these would stop nvme connect (/dev/nvme-fabrics), the iopolicy/rescan writes in
    // /sys, the module load or dmsetup.
    for (const k of [
      'PrivateDevices',
      'ProtectKernelTunables',
      'ProtectKernelModules',
      'CapabilityBoundingSet',
      'DevicePolicy',
    ])
      assert.deepEqual(value(s, k), [], `${k} is not set`);
    assert.ok(value(s, 'RestrictAddressFamilies')[0]!.split(' ').includes('AF_UNIX'), 'multipathd socket');
    assert.deepEqual(value(s, 'KillMode'), ['mixed']);
  });

  it('the example environment files are accepted by the programs as they are', () => {
    const svc = loadConfig(envFile('service.env.example'));
    assert.equal(svc.backend, 'lightos');
    const agent = envFile('agent.env.example');
    assert.equal(loadDaemonSettings({ ...agent, PORTALIS_CA_FILE: '' }).url, agent.PORTALIS_URL);
    assert.ok(loadAgentSettings(agent));
  });
});
