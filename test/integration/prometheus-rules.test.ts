import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startTarget, type Target } from '../support/target.ts';

const run = promisify(execFile);
const DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';

/** promtool from Debian's `prometheus` package (.ci/run installs it). */
async function promtool(...args: string[]): Promise<string> {
  try {
    const r = await run(PROMTOOL, args, { cwd: DIR });
    return r.stdout + r.stderr;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (err.code === 'ENOENT') throw new Error(`${PROMTOOL} not found: install the Debian package "prometheus"`);
    throw new Error(`promtool ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

/** The shipped alert rules (deploy/prometheus/) are valid, fire when they should, and read real series. */
describe('Prometheus alert rules', () => {
  let t: Target;
  before(async () => {
    t = await startTarget();
  });
  after(async () => t?.close());

  it('pass promtool check rules, with the five alerts', async () => {
    const out = await promtool('check', 'rules', 'portalis-rules.yml');
    assert.match(out, /SUCCESS: 5 rules found/);
  });

  it('pass promtool test rules: each alert fires after its hold time and not before', async () => {
    const out = await promtool('test', 'rules', 'portalis-rules.test.yml');
    assert.match(out, /SUCCESS/);
    const tests = readFileSync(`${DIR}/portalis-rules.test.yml`, 'utf8');
    for (const name of [
      'PortalisPathDegraded',
      'PortalisVolumeFailedOnHost',
      'PortalisAttachmentHealthUnknown',
      'PortalisAgentStale',
      'PortalisBackendErrors',
    ])
      assert.match(
        tests,
        new RegExp(`alertname: ${name}\\n\\s+exp_alerts:\\n\\s+- exp_labels`),
        `${name} is shown firing`,
      );
  });

  it('use only metrics the service exposes', async () => {
    const rules = readFileSync(`${DIR}/portalis-rules.yml`, 'utf8');
    const used = new Set([...rules.matchAll(/\b(portalis_[a-z_]+)\b/g)].map((m) => m[1]!));
    assert.ok(used.size >= 3);
    const r = await t.http.get('/metrics').set({ authorization: `Bearer ${t.token}` });
    assert.equal(r.status, 200);
    for (const name of used) assert.match(r.text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exposed`);
  });
});
