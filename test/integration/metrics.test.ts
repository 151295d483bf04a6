import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import knexFactory from 'knex';
import { healthClient } from '../support/health.ts';
import { startTarget, type Target } from '../support/target.ts';
import { SimClient } from '../support/sim-client.ts';

/** The value of one sample of the exposition text (`name{labels}`), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** GET /metrics: Prometheus figures of the service, from a real run against the simulator. */
describe('GET /metrics', () => {
  let t: Target;
  let h: ReturnType<typeof healthClient>;
  const METRICS_TOKEN = `metrics-${randomUUID()}`;

  before(async () => {
    t = await startTarget({ metricsToken: METRICS_TOKEN });
    h = healthClient(t);
  });
  after(async () => t?.close());

  const scrape = async (token = t.token) => {
    const r = await t.http.get('/metrics').set({ authorization: `Bearer ${token}` });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['content-type']!, /^text\/plain/);
    return r.text;
  };

  it('needs the admin token or the metrics token; the metrics token reads nothing else', async () => {
    const host = await h.newHost();
    assert.equal((await t.http.get('/metrics')).status, 401);
    assert.equal((await t.http.get('/metrics').set(h.as('wrong-token-xxxxxxxxxxxx'))).status, 401);
    assert.equal((await t.http.get('/metrics').set(h.as(host.token))).status, 403, 'a host token may not');
    assert.match(await scrape(METRICS_TOKEN), /portalis_http_requests_total/);
    assert.match(await scrape(), /portalis_http_requests_total/);
    const other = await t.http.get('/v1/attachments').set(h.as(METRICS_TOKEN));
    assert.equal(other.status, 403);
    assert.equal(other.body.error.code, 'forbidden');
    assert.equal((await t.http.get('/v1/health/multipath').set(h.as(METRICS_TOKEN))).status, 403);
  });

  it('counts HTTP requests by route and status, and backend calls and errors by operation', async () => {
    await h.api.created();
    const sim = new SimClient(t.simUrl);
    await sim.faults({ failCreate: true });
    try {
      const r = await h.api.create();
      assert.ok(r.status >= 500, `a failed backend create is an error (${r.status})`);
    } finally {
      await sim.faults({ failCreate: false });
    }
    const text = await scrape();
    assert.ok(
      (sample(text, 'portalis_http_requests_total{route="createVolume",method="POST",status="201"}') ?? 0) >= 1,
    );
    assert.ok(
      (sample(text, 'portalis_http_request_duration_seconds_count{route="createVolume",method="POST",status="201"}') ??
        0) >= 1,
    );
    assert.ok((sample(text, 'portalis_backend_calls_total{operation="createVolume"}') ?? 0) >= 2);
    assert.ok(
      text.split('\n').some((l) => l.startsWith('portalis_backend_errors_total{operation="createVolume"')),
      'the failed create is counted as a backend error',
    );
    assert.ok((sample(text, 'portalis_backend_call_duration_seconds_count{operation="createVolume"}') ?? 0) >= 2);
    assert.match(text, /^portalis_process_cpu_seconds_total /m, 'process metrics');
    assert.notEqual(sample(text, 'portalis_db_pool_connections{state="used"}'), undefined);
    assert.notEqual(sample(text, 'portalis_db_pool_connections{state="waiting"}'), undefined);
  });

  it('shows attachments by status, paths by state and ANA state, agents seen and stale, and open long polls', async () => {
    const host = await h.newHost();
    const { attachmentId } = await h.attach(host);
    await h.report(host.token, attachmentId, h.body('degraded', 2, 3));
    const text = await scrape();
    assert.ok((sample(text, 'portalis_attachments{status="attached"}') ?? 0) >= 1);
    assert.ok((sample(text, 'portalis_paths{state="live"}') ?? 0) >= 2);
    assert.ok((sample(text, 'portalis_paths{state="missing"}') ?? 0) >= 1);
    assert.ok((sample(text, 'portalis_paths_ana{ana_state="optimized"}') ?? 0) >= 1);
    assert.ok((sample(text, 'portalis_attachment_cells{health="degraded"}') ?? 0) >= 1);
    assert.ok((sample(text, 'portalis_volumes_by_health{health="degraded"}') ?? 0) >= 1);
    assert.ok((sample(text, 'portalis_agents{state="seen"}') ?? 0) >= 1);
    assert.notEqual(sample(text, 'portalis_agents{state="stale"}'), undefined);

    // A long poll held open shows while it waits.
    const first = await t.http.get('/v1/agent/attachments').set(h.as(host.token));
    const polling = t.http
      .get('/v1/agent/attachments')
      .query({ since: first.body.version, wait: 60 })
      .set(h.as(host.token));
    const answered = polling.then((r) => r.status);
    const deadline = Date.now() + 10_000;
    let open = 0;
    while (Date.now() < deadline && open < 1) {
      open = sample(await scrape(), 'portalis_agent_long_polls_open') ?? 0;
      if (open < 1) await new Promise((r) => setImmediate(r));
    }
    assert.equal(open, 1, 'the long poll is counted while open');
    // A change answers it; then it is no longer open.
    await h.attach(host);
    assert.equal(await answered, 200);
    assert.equal(sample(await scrape(), 'portalis_agent_long_polls_open'), 0);
  });

  it('keeps the same series with 1,000 hosts as with 10: counts by state, no host or volume label', async () => {
    const sql = knexFactory({ client: 'pg', connection: t.databaseUrl!, pool: { min: 0, max: 2 } });
    /** `hosts` new hosts, each with one live attachment of its own volume; every third stale and degraded. */
    const seed = async (hosts: number) => {
      const tag = randomUUID();
      const rows = Array.from({ length: hosts }, (_, i) => ({
        i,
        nqn: `nqn.2014-08.org.example:fleet-${tag}-${i}`,
        volume: randomUUID(),
        odd: i % 3 === 0,
      }));
      await sql.batchInsert(
        'volumes',
        rows.map((r) => ({ id: r.volume, name: `volume-${r.volume}`, size_gb: 1, replicas: 3, status: 'available' })),
        500,
      );
      const longAgo = new Date(Date.now() - 3600_000);
      await sql.batchInsert(
        'hosts',
        rows.map((r) => ({ nqn: r.nqn, name: `fleet-${r.i}`, last_seen_at: r.odd ? longAgo : new Date() })),
        500,
      );
      await sql.batchInsert(
        'attachments',
        rows.map((r) => ({
          id: randomUUID(),
          volume_id: r.volume,
          host_nqn: r.nqn,
          host_name: `fleet-${r.i}`,
          connector: JSON.stringify({ nqn: r.nqn, host: `fleet-${r.i}` }),
          multipath_mode: 'native',
          status: 'attached',
          agent_state: 'connected',
          health: r.odd ? 'degraded' : 'optimal',
          device_path: '/dev/nvme0n1',
          reported_at: new Date(),
        })),
        500,
      );
      return rows.map((r) => r.nqn);
    };
    /**
     * The series (name and labels, not values) of the gauges read from the database, where hosts
     * would show. The process metrics, and the request and backend series (labelled by the API's
     * operations and statuses, a bounded set), are left aside: a background pass between the two
     * scrapes may add a backend operation's first series.
     */
    const series = async () => {
      const text = await scrape();
      const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
      return {
        text,
        set: lines
          .map((l) => l.slice(0, l.lastIndexOf(' ')))
          .filter((s) => !/^portalis_(process|nodejs|http|backend)_/.test(s))
          .sort(),
      };
    };
    try {
      const few = await seed(10);
      await scrape(); // the first scrape of /metrics adds its own request series
      const ten = await series();
      const many = await seed(990);
      const thousand = await series();
      assert.deepEqual(thousand.set, ten.set, 'the same series with 1,000 hosts as with 10');
      assert.ok(ten.set.length > 20, `${ten.set.length} series compared`);
      for (const nqn of [...few, ...many.slice(0, 50)]) assert.ok(!thousand.text.includes(nqn), `${nqn} is no label`);
      assert.ok((sample(thousand.text, 'portalis_attachment_cells{health="degraded"}') ?? 0) >= 330 + 4);
      assert.ok((sample(thousand.text, 'portalis_volumes_by_health{health="degraded"}') ?? 0) >= 330 + 4);
      assert.ok((sample(thousand.text, 'portalis_agents{state="stale"}') ?? 0) >= 330 + 4);
      assert.ok((sample(thousand.text, 'portalis_agents{state="seen"}') ?? 0) >= 1000);
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        await scrape();
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      console.log(
        `# /metrics: ${ten.set.length} series with 10 seeded hosts, ${thousand.set.length} with 1,000; ` +
          `a scrape with 1,000 live attachments: median ${Math.round(times[2]!)} ms of 5 (reported, not asserted)`,
      );
    } finally {
      await sql.destroy();
    }
  });
});
