import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { type SimServer, startSimServer } from './server.ts';
import { call, SimClient, waitUntil } from '../../test/support/sim-client.ts';

let sim: SimServer;
let admin: SimClient;
const api = (method: string, path: string, body?: unknown) => call(sim.url, method, path, body);

before(async () => {
  sim = await startSimServer({ port: 0 });
  admin = new SimClient(sim.url);
});
after(() => sim.close());
beforeEach(() => admin.reset());

describe('faults', () => {
  test('failNext fails exactly the next N matching requests with the given status', async () => {
    const r = await admin.faults({ failNext: { count: 2, status: 500, path: '/clusterinfo' } });
    assert.equal(r.status, 200);
    assert.equal((await api('GET', '/api/v2/nodes')).status, 200, 'a non-matching path is untouched');
    const first = await api('GET', '/api/v2/clusterinfo');
    assert.equal(first.status, 500);
    assert.match(first.body.message, /simulated failure/);
    assert.equal((await api('GET', '/api/v2/clusterinfo')).status, 500);
    assert.equal((await api('GET', '/api/v2/clusterinfo')).status, 200);
  });

  test('failNext can match on the method', async () => {
    await admin.faults({ failNext: { count: 1, status: 503, method: 'post' } });
    assert.equal((await api('GET', '/api/v2/clusterinfo')).status, 200);
    assert.equal(
      (await api('POST', '/api/v2/projects/default/volumes', { name: 'x', size: '1 gib', replicaCount: 1 })).status,
      503,
    );
  });

  test('skip lets the first matching requests through, then failNext fails the next ones', async () => {
    await admin.faults({ failNext: { count: 1, status: 500, path: '/clusterinfo', skip: 2 } });
    assert.equal((await api('GET', '/api/v2/nodes')).status, 200, 'a non-matching request does not count');
    assert.equal((await api('GET', '/api/v2/clusterinfo')).status, 200);
    assert.equal((await api('GET', '/api/v2/clusterinfo')).status, 200);
    assert.equal((await api('GET', '/api/v2/clusterinfo')).status, 500);
    assert.equal((await api('GET', '/api/v2/clusterinfo')).status, 200);
    assert.equal((await admin.request('PUT', '/sim/v1/faults', { failNext: { count: 1, skip: -1 } })).status, 400);
  });

  test('errorRate is deterministic for a seed and uses errorStatus', async () => {
    const run = async () => {
      await admin.faults({ errorRate: 0.5, seed: 42, errorStatus: 502 });
      const out: number[] = [];
      for (let i = 0; i < 20; i++) out.push((await api('GET', '/api/v2/clusterinfo')).status);
      return out;
    };
    const a = await run();
    const b = await run();
    assert.deepEqual(a, b, 'the same seed gives the same sequence');
    const failed = a.filter((s) => s === 502).length;
    assert.ok(failed > 0 && failed < 20, `some but not all fail (${failed}/20)`);
    assert.ok(a.every((s) => s === 200 || s === 502));
    await admin.faults({ errorRate: 1 });
    assert.equal((await api('GET', '/api/v2/clusterinfo')).status, 502);
  });

  test('latencyMs delays /api/v2 answers but not the admin API', async () => {
    await admin.faults({ latencyMs: 400 });
    const t0 = performance.now();
    assert.equal((await api('GET', '/api/v2/clusterinfo')).status, 200);
    assert.ok(performance.now() - t0 >= 390, 'delayed by the configured latency');
    const t1 = performance.now();
    await admin.state();
    assert.ok(performance.now() - t1 < 390, 'admin calls are not faulted');
  });

  test('hangNext accepts a request and never answers until the client gives up', async () => {
    await admin.faults({ hangNext: { count: 1, path: '/nodes' } });
    await assert.rejects(
      fetch(`${sim.url}/api/v2/nodes`, { signal: AbortSignal.timeout(200) }),
      (e: Error) => e.name === 'TimeoutError',
    );
    assert.equal((await api('GET', '/api/v2/nodes')).status, 200, 'only the next one hangs');
  });

  test('close releases a request that is still hanging', async () => {
    const own = await startSimServer({ port: 0 });
    await call(own.url, 'PUT', '/sim/v1/faults', { hangNext: { count: 1 } });
    const pending = fetch(`${own.url}/api/v2/clusterinfo`).then(
      () => 'answered',
      () => 'dropped',
    );
    await waitUntil(() => own.faults.view().hung === 1, { what: 'request hung' });
    await own.close();
    assert.equal(await pending, 'dropped');
  });

  test('bad fault settings are 400 and change nothing; DELETE clears everything', async () => {
    for (const body of [
      { errorRate: 2 },
      { latencyMs: -1 },
      { failNext: { count: 1, status: 200 } },
      { bogus: 1 },
      { failCreate: 'yes' },
    ]) {
      const r = await admin.request('PUT', '/sim/v1/faults', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.ok(r.body.message.length > 0);
    }
    assert.equal((await call(sim.url, 'GET', '/sim/v1/faults')).body.errorRate, 0);
    await admin.faults({ latencyMs: 5, errorRate: 0.1, stateDelayMs: 10, failCreate: true });
    await admin.clearFaults();
    const f = (await admin.state()).faults;
    assert.deepEqual(
      [f.latencyMs, f.errorRate, f.failNext, f.hangNext, f.stateDelayMs, f.failCreate],
      [0, 0, null, null, 0, false],
    );
  });

  test('faults apply to /api/v2 only, never to /sim/v1', async () => {
    await admin.faults({ errorRate: 1, errorStatus: 500 });
    assert.equal((await api('GET', '/api/v2/clusterinfo')).status, 500);
    assert.equal((await call(sim.url, 'GET', '/sim/v1/state')).status, 200);
  });
});
