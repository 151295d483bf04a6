import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ManualClock } from '../shared/clock.ts';
import { connectorProperties } from './connector-properties.ts';
import { Attacher } from './attacher.ts';
import { createServer } from 'node:net';
import { runAgentCli } from './cli.ts';
import { loadDaemonSettings } from './config.ts';
import { AgentDaemon } from './daemon.ts';
import { AgentMetrics } from './metrics.ts';
import { FakeService } from './testing/fake-service.ts';
import { NQN, VOL, VOL2, nativeData, scenario } from './testing/scenario.ts';

async function elapse(clock: ManualClock, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    await clock.advance(step);
  }
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

/** The value of one sample of the exposition text, e.g. `x_total{result="ok"}`. */
function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} is exposed`);
  return Number(line.split(' ')[1]);
}

describe('agent metrics', () => {
  it('count connects, reconnected paths and refused and done teardowns, served over HTTP', async () => {
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    s.host.fabric.addNamespace(NQN, { nsid: 2, uuid: VOL2 });
    const service = new FakeService(s.clock);
    const metrics = new AgentMetrics();
    const server = await metrics.listen('127.0.0.1', 0);
    const daemon = new AgentDaemon({
      attacher: new Attacher(s.host, { deviceTimeoutMs: 20_000 }),
      service,
      connectorProperties: () => connectorProperties(s.host),
      clock: s.clock,
      recheckIntervalMs: 30_000,
      reportRefreshMs: 60_000,
      pollWaitSeconds: 30,
      observer: metrics,
    });
    const ac = new AbortController();
    const done = daemon.run(ac.signal);
    try {
      service.put('a1', nativeData());
      service.put('a2', nativeData({ vol_uuid: VOL2, ns_id: '2' }));
      await elapse(s.clock, 2_000);
      // A path lost and healed by the recheck.
      s.host.setPortalUp('10.0.0.3', false);
      s.host.expirePortal('10.0.0.3');
      await elapse(s.clock, 31_000, 500);
      s.host.fabric.portal('10.0.0.3').up = true;
      await elapse(s.clock, 31_000, 500);
      assert.equal(service.last('a1')?.health, 'optimal');
      // a2 mounted: its teardown is refused; a1's goes through.
      s.host.mount('/dev/nvme0n2', '/mnt/a2');
      service.put('a2', nativeData({ vol_uuid: VOL2, ns_id: '2' }), 'disconnected');
      await elapse(s.clock, 2_000);
      assert.equal(service.last('a2')?.error?.code, 'in_use');
      service.put('a1', nativeData(), 'disconnected');
      await elapse(s.clock, 2_000);
      assert.equal(service.last('a1')?.state, 'disconnected');

      const text = await (await fetch(server.url)).text();
      assert.equal(sample(text, 'portalis_agent_connects_total{result="ok"}'), 2);
      assert.equal(sample(text, 'portalis_agent_connects_total{result="failed"}'), 0);
      assert.ok(sample(text, 'portalis_agent_paths_reconnected_total') >= 2, 'one path per volume healed');
      assert.ok(sample(text, 'portalis_agent_disconnects_total{result="refused"}') >= 1);
      assert.equal(sample(text, 'portalis_agent_disconnects_total{result="ok"}'), 1);
      assert.equal(sample(text, 'portalis_agent_disconnect_duration_seconds_count{result="ok"}'), 1);
      assert.equal(sample(text, 'portalis_agent_connect_duration_seconds_count{result="ok"}'), 2);
      assert.match(text, /^portalis_agent_process_cpu_seconds_total /m, 'process metrics');
      assert.equal((await fetch(server.url.replace('/metrics', '/other'))).status, 404);
    } finally {
      ac.abort();
      await elapse(s.clock, 0);
      await done;
      await server.close();
    }
  });

  it('are off by default, and served by `portalis agent` on PORTALIS_AGENT_METRICS_PORT', async () => {
    const base = { PORTALIS_URL: 'http://svc:8080', PORTALIS_TOKEN: 'pth_x' };
    assert.equal(loadDaemonSettings(base).metrics, null);
    assert.throws(
      () => loadDaemonSettings({ ...base, PORTALIS_AGENT_METRICS_PORT: 'abc' }),
      /PORTALIS_AGENT_METRICS_PORT/,
    );
    // A port that was free a moment ago.
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const s = scenario();
    s.host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
    const service = new FakeService(s.clock);
    service.put('a1', nativeData());
    const ac = new AbortController();
    let err = '';
    const done = runAgentCli(
      [],
      { ...base, PORTALIS_AGENT_METRICS_PORT: String(port) },
      {
        stdout: { write: () => 0 },
        stderr: { write: (x: string) => (err += x) },
        host: s.host,
        service,
        signal: ac.signal,
      },
    );
    // A bound on turns, not time: the CLI's start-up (files, its HTTP listener) takes more turns on a loaded machine.
    for (let i = 0; i < 300 && service.last('a1')?.state !== 'connected'; i++) {
      await new Promise((r) => setImmediate(r));
      await s.clock.advance(100);
    }
    assert.equal(service.last('a1')?.state, 'connected');
    assert.match(err, /agent metrics listening/);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.equal(sample(text, 'portalis_agent_connects_total{result="ok"}'), 1);
    ac.abort();
    await s.clock.advance(0);
    assert.equal(await done, 0);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`), 'closed with the daemon');
  });
});
