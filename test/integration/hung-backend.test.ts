import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type supertest from 'supertest';
import { aclMismatches } from '../support/consistency.ts';
import { type CreatedVolume, type LifecycleClient, startSuite } from '../support/lifecycle.ts';
import { type SimClient, waitUntil } from '../support/sim-client.ts';
import { connector, NATIVE, type Target } from '../support/target.ts';

/**
 * A backend that accepts every request and never answers, with 30 initialize_connection calls in
 * flight: three times the main pool's 10 connections, every one of them held by a volume lock
 * waiting on the backend and 20 more calls queued for one. What needs no backend still answers
 * from the database, and `/readyz` answers in its bound naming the backend. The bounds here are
 * deadlines against a hang, generous for a loaded 2-core machine; the targets (2 s for the reads,
 * 5 s for `/readyz`) are measured by `npm run bench` (bench/hung-backend.ts).
 */
const BOUND_MS = 10_000;
const IN_FLIGHT = 30;

describe('a hung backend starves nothing that does not need it', () => {
  let t: Target;
  let sim: SimClient;
  let api: LifecycleClient;
  let attached: { volume: CreatedVolume; attachmentId: string };
  const pairs: { volume: CreatedVolume; conn: Record<string, unknown> }[] = [];

  before(async () => {
    // The backend's own timeouts far beyond the test: the hung calls stay hung until the proxy drops them.
    ({ t, sim, api } = await startSuite({ proxy: true, requestTimeoutMs: 120_000, operationTimeoutMs: 120_000 }));
    const volume = await api.created();
    const init = await api.init(volume.id, connector(NATIVE));
    assert.equal(init.status, 200, JSON.stringify(init.body));
    attached = { volume, attachmentId: init.body.attachment_id };
    for (let i = 0; i < IN_FLIGHT; i++) pairs.push({ volume: await api.created(), conn: connector(NATIVE) });
  });
  after(async () => {
    // A failed check leaves the hang in place: release the hung calls so that the service can close.
    await sim?.clearFaults().catch(() => undefined);
    await t?.close();
  });

  /** The answer to `req` and how long it took; a request that outlives the bound fails the test by name. */
  async function timed(
    what: string,
    req: supertest.Test,
  ): Promise<{ status: number; body: any; text: string; ms: number }> {
    const start = performance.now();
    const r = await req.timeout(BOUND_MS).catch((e: Error) => {
      throw new Error(`${what}: no answer within ${BOUND_MS} ms (${e.message})`);
    });
    return { status: r.status, body: r.body, text: r.text, ms: performance.now() - start };
  }

  it('with 30 initialize calls hung on the backend, reads, the scrape and /readyz answer in their bounds', async () => {
    await sim.faults({ hangNext: { count: 100_000, path: '/api/v2/' } });
    const calls = pairs.map((p) => api.init(p.volume.id, p.conn).then((r) => r));
    const metric = async (line: RegExp): Promise<number> => {
      const m = await timed('GET /metrics', t.http.get('/metrics').set(api.auth()));
      assert.equal(m.status, 200, m.text);
      return Number(line.exec(m.text)?.[1] ?? Number.NaN);
    };
    // Every connection of the main pool held by a lock holder waiting on the backend, and callers queued
    // behind them: the starvation the reads must not share.
    // Both at once: while the pool still opens connections, callers wait with fewer than all used.
    await waitUntil(
      async () =>
        (await metric(/portalis_db_pool_connections\{state="waiting"\} (\d+)/)) > 0 &&
        (await metric(/portalis_db_pool_connections\{state="used"\} (\d+)/)) === 10,
      { timeoutMs: 30_000, intervalMs: 100, what: 'the main pool all held, initialize calls queued for it' },
    );
    assert.ok((await sim.faultsNow()).hung >= 10, 'the lock holders are hung on the backend');

    const reads = {
      'GET /v1/volumes/{id}': () => api.get(attached.volume.id),
      'GET /v1/attachments': () => t.http.get('/v1/attachments').set(api.auth()),
      'GET /v1/health/multipath': () => t.http.get('/v1/health/multipath').set(api.auth()),
      'GET /v1/attachments/{id}': () => t.http.get(`/v1/attachments/${attached.attachmentId}`).set(api.auth()),
      'GET /metrics': () => t.http.get('/metrics').set(api.auth()),
    };
    for (const [what, req] of Object.entries(reads)) {
      const r = await timed(what, req());
      assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.body)}`);
      assert.ok(r.ms < BOUND_MS, `${what} took ${Math.round(r.ms)} ms`);
    }
    assert.equal((await api.get(attached.volume.id)).body.id, attached.volume.id);

    // Twice: the second probe joins the first's still hung ping rather than adding one.
    for (let i = 0; i < 2; i++) {
      const ready = await timed('GET /readyz', t.http.get('/readyz'));
      assert.equal(ready.status, 503, JSON.stringify(ready.body));
      assert.deepEqual(ready.body.not_ready, ['backend']);
      assert.deepEqual(ready.body.checks.backend, { ok: false, timed_out: true });
      assert.deepEqual(ready.body.checks.database, { ok: true });
      assert.ok(ready.ms < BOUND_MS, `/readyz took ${Math.round(ready.ms)} ms`);
    }

    // The backend comes back: the proxy drops the hung calls (each answers as the backend being
    // unavailable), the queued ones go through, and a retry of every pair converges.
    await sim.clearFaults();
    await t.proxy!.stop();
    await t.proxy!.start();
    const first = await Promise.all(calls);
    for (const r of first) assert.ok([200, 503, 504].includes(r.status), JSON.stringify(r.body));
    for (const p of pairs) {
      const again = await api.init(p.volume.id, p.conn);
      assert.equal(again.status, 200, JSON.stringify(again.body));
      const live = (await api.attachments(p.volume.id)).filter((a) => a.status === 'attached');
      assert.equal(live.length, 1, `one attachment of volume ${p.volume.id}`);
    }
    assert.deepEqual(await aclMismatches(t), []);
    const ready = await timed('GET /readyz', t.http.get('/readyz'));
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
  });
});
