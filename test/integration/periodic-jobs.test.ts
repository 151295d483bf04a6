import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import client from 'prom-client';
import { runFleetJob } from '../../src/driver/fleet-jobs.ts';
import { CapabilitiesCache, DEFAULT_CAPABILITY_SETTINGS } from '../../src/driver/get-capabilities.ts';
import type { StorageBackend } from '../../src/driver/ports.ts';
import { periodicJobMetrics } from '../../src/server/periodic-metrics.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import type { Periodic } from '../../src/shared/periodic.ts';
import { createDb, type Db } from '../../src/store/db.ts';
import { PgPeriodicJobs, sharedCapacity } from '../../src/store/periodic-jobs.ts';
import { randomUUID } from 'node:crypto';
import type supertest from 'supertest';
import type { ServiceMetrics } from '../../src/server/metrics.ts';
import { createTestDatabase } from '../support/db.ts';
import { waitUntil } from '../support/sim-client.ts';
import { startReplicas } from '../support/replicas.ts';
import { connector, NATIVE } from '../support/target.ts';

/**
 * Periodic work once per fleet: three replicas (each its own pool, its own `PgPeriodicJobs` and
 * metrics registry) run one job on one database with a short period and lease. The passes are
 * counted: one at a time, each a full period after the last one ended whichever replica ran it,
 * and when the runner stops (between passes) or dies (mid-pass) another replica takes over within
 * a period plus the lease. Times are `performance.now()` of this one process, which runs on the
 * same machine's clock as the database's now().
 */
const PERIOD = 250;
const LEASE = 600;
/** Scheduling slack for the upper bounds (a loaded CI machine); a lower bound allows at most a claim's round trip. */
const SLACK = 2000;

interface Pass {
  replica: number;
  start: number;
  end: number | null;
}

describe('periodic jobs once per fleet: three replicas on one database', () => {
  let t: Awaited<ReturnType<typeof createTestDatabase>>;
  const pools: Db[] = [];
  const registries: client.Registry[] = [];
  const runners: (Periodic | null)[] = [];
  /** Ends a pass left hanging by a failed assertion, so that the runners stop. */
  let releaseHung = () => {};
  before(async () => {
    t = await createTestDatabase();
  });
  after(async () => {
    releaseHung();
    for (const r of runners) await r?.stop();
    for (const p of pools) await p.destroy().catch(() => undefined);
    await t.drop();
  });

  /** `ran`, `skipped`, `failed` of `job` as replica `i`'s /metrics shows them. */
  const counts = async (i: number, job: string) => {
    const text = await registries[i]!.metrics();
    const n = (outcome: string) => {
      const m = text.match(
        new RegExp(`^portalis_periodic_runs_total\\{job="${job}",outcome="${outcome}"\\} (\\d+)$`, 'm'),
      );
      return Number(m?.[1] ?? Number.NaN);
    };
    return { ran: n('ran'), skipped: n('skipped'), failed: n('failed'), text };
  };

  it('runs each pass on one replica, a period after the last ended, and hands over when the runner stops or dies', async () => {
    const job = 'refresh-test';
    const passes: Pass[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    /** Set: the next pass to start waits for this before it ends (a replica "dying" mid-pass). */
    let hang: Promise<void> | null = null;
    for (let i = 0; i < 3; i++) {
      pools.push(createDb(t.url, { poolMax: 2 }));
      const registry = new client.Registry();
      registries.push(registry);
      const jobs = new PgPeriodicJobs(pools[i]!, `replica-${i}`);
      const pass = async () => {
        const p: Pass = { replica: i, start: performance.now(), end: null };
        passes.push(p);
        // Only a pass that starts after the test asked for it hangs.
        const hangs = hang;
        hang = null;
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        try {
          await pools[i]!.raw('select 1');
          if (hangs !== null) await hangs;
        } finally {
          inFlight--;
          p.end = performance.now();
        }
      };
      const observer = periodicJobMetrics(registry, [job]);
      runners.push(
        runFleetJob(
          jobs,
          { name: job, periodMs: PERIOD, leaseMs: LEASE, atStart: true, pass },
          {
            logger: silentLogger,
            observer,
            clock: systemClock,
          },
        ),
      );
    }

    // Twelve passes across the three replicas.
    await waitUntil(() => passes.filter((p) => p.end !== null).length >= 12, { timeoutMs: 30_000, what: '12 passes' });
    const done = passes.filter((p) => p.end !== null).slice(0, 12);
    const gaps = done.slice(1).map((p, k) => p.start - done[k]!.end!);
    assert.equal(maxInFlight, 1, 'one pass at a time across the fleet');
    for (const g of gaps) assert.ok(g >= PERIOD - 2, `a full period between passes: gaps ${gaps.map(Math.round)}`);
    for (const g of gaps)
      assert.ok(g <= PERIOD + SLACK, `the next pass comes about a period later: gaps ${gaps.map(Math.round)}`);
    const byReplica = [0, 1, 2].map((i) => done.filter((p) => p.replica === i).length);
    const metrics = await Promise.all([0, 1, 2].map((i) => counts(i, job)));
    assert.ok(
      metrics.reduce((n, m) => n + m.skipped, 0) >= done.length,
      'the replicas that did not run a pass counted it skipped',
    );
    assert.ok(metrics.every((m) => m.failed === 0));
    assert.match(metrics[0]!.text, /^portalis_periodic_pass_duration_seconds_count\{job="refresh-test"\} \d+$/m);
    console.log(`passes per replica ${byReplica}; gaps (ms) ${gaps.map(Math.round)}`);

    // The runner of the last pass stops (between passes): another replica runs the next one a
    // period after that pass ended, within the period plus the lease.
    const last = passes.at(-1)!;
    await waitUntil(() => last.end !== null, { what: 'the last pass to end' });
    const stopped = last.replica;
    await runners[stopped]!.stop();
    runners[stopped] = null;
    const lastEnd = passes.filter((p) => p.end !== null).at(-1)!.end!;
    const countBefore = passes.length;
    await waitUntil(() => passes.length > countBefore, { timeoutMs: 10_000, what: 'a pass after the runner stopped' });
    const next = passes[countBefore]!;
    assert.notEqual(next.replica, stopped);
    await waitUntil(() => next.end !== null, { what: 'that pass to end' });
    const handOver = next.start - lastEnd;
    assert.ok(
      handOver >= PERIOD - 2 && handOver <= PERIOD + LEASE + SLACK,
      `stopped runner handed over in ${handOver} ms`,
    );

    // The next pass hangs and its replica loses the database (it cannot renew its lease or end
    // the pass): once the lease has run out, a live replica runs the job.
    hang = new Promise<void>((r) => (releaseHung = r));
    const hungAt = passes.length;
    await waitUntil(() => passes.length > hungAt, { timeoutMs: 10_000, what: 'the hung pass to start' });
    const hung = passes[hungAt]!;
    await pools[hung.replica]!.destroy();
    await waitUntil(() => passes.length > hungAt + 1, { timeoutMs: 10_000, what: 'a pass after the runner died' });
    const taker = passes[hungAt + 1]!;
    assert.notEqual(taker.replica, hung.replica);
    assert.equal(hung.end, null, 'taken over while the dead replica was still in its pass');
    const takeOver = taker.start - hung.start;
    assert.ok(takeOver >= LEASE - 200, `the lease held for ${takeOver} ms: no second runner before it ran out`);
    assert.ok(takeOver <= PERIOD + LEASE + SLACK, `died mid-pass, taken over in ${takeOver} ms`);
    console.log(
      `hand-over after a stop: ${Math.round(handOver)} ms; after a death mid-pass: ${Math.round(takeOver)} ms`,
    );
    releaseHung();
    for (let i = 0; i < 3; i++) {
      await runners[i]?.stop();
      runners[i] = null;
    }
    // Every pass has ended (the hung one too: it succeeded, though its end could not be recorded).
    const ran = await Promise.all([0, 1, 2].map(async (i) => (await counts(i, job)).ran));
    assert.deepEqual(
      ran,
      [0, 1, 2].map((i) => passes.filter((p) => p.replica === i).length),
      "each replica's /metrics counts the passes it ran",
    );
  });

  it('a pass longer than the lease keeps its claim while it renews', async () => {
    const job = 'long-pass';
    const [poolA, poolB] = [createDb(t.url, { poolMax: 2 }), createDb(t.url, { poolMax: 2 })];
    pools.push(poolA, poolB);
    const a = new PgPeriodicJobs(poolA, 'a');
    const b = new PgPeriodicJobs(poolB, 'b');
    let release = () => {};
    const released = new Promise<void>((r) => (release = r));
    let aPasses = 0;
    let bPasses = 0;
    registries.push(new client.Registry());
    const observer = periodicJobMetrics(registries.at(-1)!, [job]);
    const lease = 1000;
    const ra = runFleetJob(
      a,
      { name: job, periodMs: 100, leaseMs: lease, atStart: true, pass: () => (aPasses++, released) },
      { logger: silentLogger },
    );
    await waitUntil(() => aPasses === 1, { what: "a's pass" });
    const rb = runFleetJob(
      b,
      { name: job, periodMs: 100, leaseMs: lease, atStart: true, pass: async () => void bPasses++ },
      { logger: silentLogger, observer },
    );
    const started = performance.now();
    // b keeps trying as the lease moves and is refused each time, for several leases.
    await waitUntil(
      async () => (await counts(registries.length - 1, job)).skipped >= 4 && performance.now() - started > 3 * lease,
      { timeoutMs: 15_000, what: 'b refused for three leases' },
    );
    assert.equal(bPasses, 0, 'no second runner while the first renews its lease');
    release();
    await waitUntil(() => bPasses + aPasses > 1, { what: 'the next pass' });
    await ra.stop();
    await rb.stop();
  });

  it('publishes a result that the other replicas read (the capacity figures)', async () => {
    const pool = createDb(t.url, { poolMax: 2 });
    pools.push(pool);
    const jobs = new PgPeriodicJobs(pool, 'reader');
    let reads = 0;
    const r = runFleetJob(
      jobs,
      {
        name: 'capacity-test',
        periodMs: 60_000,
        atStart: true,
        publish: true,
        pass: async () => (reads++, { totalGb: 1000.5, freeGb: 250 }),
      },
      { logger: silentLogger },
    );
    const shared = sharedCapacity(new PgPeriodicJobs(pool, 'other'), 'capacity-test');
    await waitUntil(async () => (await shared()) !== null, { what: 'the published figures' });
    await r.stop();
    const noBackend = {
      capacity: () => Promise.reject(new Error('a replica with the fleet figures must not ask the backend')),
    } as unknown as StorageBackend;
    const cache = new CapabilitiesCache(noBackend, DEFAULT_CAPABILITY_SETTINGS, systemClock, silentLogger, shared);
    const caps = await cache.get();
    assert.equal(caps.total_capacity_gb, 1000);
    assert.equal(caps.free_capacity_gb, 250);
    assert.equal(reads, 1);
    assert.equal(await sharedCapacity(jobs, 'never-ran')(), null);
  });
});

/**
 * The service's own wiring (`composeDeps`, as `portalis serve` builds it) three times on one
 * database, with a 300 ms portal refresh: the fleet runs about one pass per period, not three,
 * and the backend sees one listing (`listVolumePaths`) per pass and no volume read on its own.
 */
describe('serve: three replicas refresh the portals once per period', () => {
  const PERIOD_MS = 300;
  const VOLUMES = 4;
  const token = `admin-${randomUUID()}`;
  let replicas: ServiceMetrics[] = [];
  let app: supertest.Agent;
  let close: (() => Promise<void>) | undefined;

  before(async () => {
    const started = await startReplicas(3, token, { PORTALIS_PORTAL_REFRESH_MS: String(PERIOD_MS) });
    close = started.close;
    replicas = started.replicas.map((r) => r.metrics);
    app = started.replicas[0]!.app;
  });
  after(async () => close?.());

  /** Sum over the replicas of the series `name{labels}`. */
  const fleetSum = async (series: string) => {
    let n = 0;
    for (const m of replicas) {
      const line = (await m.scrape()).text.split('\n').find((l) => l.startsWith(`${series} `));
      n += Number(line?.split(' ')[1] ?? 0);
    }
    return n;
  };
  const ranPasses = () => fleetSum('portalis_periodic_runs_total{job="portal-refresh",outcome="ran"}');
  const listings = () => fleetSum('portalis_backend_calls_total{operation="listVolumePaths"}');
  const volumeReads = () => fleetSum('portalis_backend_calls_total{operation="volumePaths"}');

  it('runs about one refresh pass per period across the fleet, one listing each, no volume read on its own', async () => {
    const auth = { authorization: `Bearer ${token}` };
    for (let i = 0; i < VOLUMES; i++) {
      const id = randomUUID();
      assert.equal((await app.post('/v1/volumes').set(auth).send({ id, size_gb: 1 })).status, 201);
      const r = await app
        .post(`/v1/volumes/${id}/initialize_connection`)
        .set(auth)
        .send({ connector: connector(NATIVE) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const ran0 = await ranPasses();
    const calls0 = await listings();
    const reads0 = await volumeReads();
    const t0 = performance.now();
    await waitUntil(async () => (await ranPasses()) >= ran0 + 8, { timeoutMs: 30_000, what: '8 refresh passes' });
    const elapsed = performance.now() - t0;
    const passes = (await ranPasses()) - ran0;
    const calls = (await listings()) - calls0;
    const reads = (await volumeReads()) - reads0;
    // Three replicas each on its own schedule would run three passes a period.
    assert.ok(
      passes <= elapsed / PERIOD_MS + 1,
      `${passes} passes in ${Math.round(elapsed)} ms: at most one per period`,
    );
    // A pass in flight at either reading may have made its listing outside the window.
    assert.ok(Math.abs(calls - passes) <= 1, `${calls} listings for ${passes} passes`);
    assert.equal(reads, 0, 'nothing changed: no volume locked and read on its own');
    const perReplica = await Promise.all(
      replicas.map(async (m) =>
        (await m.scrape()).text.match(
          /^portalis_periodic_runs_total\{job="portal-refresh",outcome="(ran|skipped)"\} (\d+)$/gm,
        ),
      ),
    );
    console.log(
      `${passes} passes in ${Math.round(elapsed)} ms, ${calls} listings; per replica ${JSON.stringify(perReplica)}`,
    );
  });
});
