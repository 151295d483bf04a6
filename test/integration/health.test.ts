import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import knexFactory, { type Knex } from 'knex';
import { pruneHealthEvents } from '../../src/driver/health.ts';
import { healthClient } from '../support/health.ts';
import { startTarget, type Target } from '../support/target.ts';

/** Path-health history and the health matrix, through the real agent API and a real PostgreSQL. */
describe('path-health history and the health matrix', () => {
  let t: Target;
  let h: ReturnType<typeof healthClient>;
  let sql: Knex;

  before(async () => {
    t = await startTarget();
    h = healthClient(t);
    sql = knexFactory({ client: 'pg', connection: t.databaseUrl!, pool: { min: 0, max: 2 } });
  });
  after(async () => {
    await sql?.destroy();
    await t?.close();
  });

  const events = (id: string, token?: string, q: Record<string, unknown> = {}) =>
    t.http
      .get(`/v1/attachments/${id}/events`)
      .query(q)
      .set(token ? h.as(token) : h.admin());
  const matrix = (q: Record<string, unknown> = {}) => t.http.get('/v1/health/multipath').query(q).set(h.admin());

  it('serves the dashboard page and its two files without a token, and nothing else from there', async () => {
    const page = await t.http.get('/');
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type']!, /^text\/html/);
    assert.match(page.text, /<script src="\/ui\/app.js"/);
    assert.doesNotMatch(page.text, /https?:\/\//, 'no third-party origin in the page');
    assert.match(page.headers['content-security-policy']!, /script-src 'self'/);
    const js = await t.http.get('/ui/app.js');
    assert.equal(js.status, 200);
    assert.match(js.headers['content-type']!, /javascript/);
    assert.match(js.text, /sessionStorage/);
    assert.equal((await t.http.get('/ui/style.css')).status, 200);
    for (const bad of ['/ui/index.ts', '/ui/..%2F..%2Fpackage.json', '/ui/secret'])
      assert.equal((await t.http.get(bad)).status, 400, bad);
    assert.equal((await t.http.get('/v1/health/multipath')).status, 401, 'the data still needs the token');
  });

  it('records each change of state, health or a path, newest first, and nothing for a repeated report', async () => {
    const host = await h.newHost();
    const { attachmentId: id } = await h.attach(host);
    assert.deepEqual((await events(id)).body.events, [], 'no report, no history');

    await h.report(host.token, id, h.body(null, 0, 3, { state: 'connecting', device_path: null }));
    await h.report(host.token, id, h.body('optimal'));
    await h.report(host.token, id, h.body('optimal')); // a refresh: no change
    await h.report(host.token, id, h.body('degraded', 2, 3));
    await h.report(host.token, id, h.body('degraded', 1, 3)); // another path lost: same health, still recorded
    const err = { code: 'connect_failed', message: 'no path answered' };
    await h.report(host.token, id, h.body(null, 0, 3, { state: 'error', device_path: null, error: err }));

    const r = await events(id);
    assert.equal(r.status, 200);
    const ev = r.body.events as {
      at: string;
      from: { state: string | null; health: string | null };
      to: { state: string; health: string | null };
      paths: { port: number; state: string }[];
      error: unknown;
    }[];
    assert.deepEqual(
      ev.map((e) => `${e.from.state}/${e.from.health} -> ${e.to.state}/${e.to.health}`),
      [
        'connected/degraded -> error/null',
        'connected/degraded -> connected/degraded',
        'connected/optimal -> connected/degraded',
        'connecting/null -> connected/optimal',
        'null/null -> connecting/null',
      ],
    );
    assert.deepEqual(ev[0]!.error, err);
    assert.deepEqual(
      ev[1]!.paths.map((p) => p.state),
      ['live', 'missing', 'missing'],
      'the paths as reported with the change',
    );
    assert.ok(Date.parse(ev[0]!.at) >= Date.parse(ev[1]!.at));
    assert.equal((await events(id, undefined, { limit: 2 })).body.events.length, 2);
  });

  it("a host reads its own attachment's history; another host's is a 404 to it", async () => {
    const host = await h.newHost();
    const other = await h.newHost();
    const { attachmentId: id } = await h.attach(host);
    await h.report(host.token, id, h.body('optimal'));
    const own = await events(id, host.token);
    assert.equal(own.status, 200);
    assert.equal(own.body.events.length, 1);
    const foreign = await events(id, other.token);
    assert.equal(foreign.status, 404);
    assert.equal(foreign.body.error.code, 'attachment_not_found');
    assert.equal((await events(randomUUID())).status, 404);
    assert.equal((await events('not-a-uuid')).status, 400);
    assert.equal((await t.http.get(`/v1/attachments/${id}/events`)).status, 401);
  });

  it('prunes events older than the retention and keeps the rest', async () => {
    const host = await h.newHost();
    const { attachmentId: id } = await h.attach(host);
    await h.report(host.token, id, h.body('optimal'));
    await h.report(host.token, id, h.body('degraded', 2, 3));
    // Age one of the two as if it had been recorded eight days ago.
    const [oldest] = (await sql('attachment_events').where({ attachment_id: id }).orderBy('id').limit(1)) as {
      id: string;
    }[];
    await sql('attachment_events')
      .where({ id: oldest!.id })
      .update({ at: sql.raw("now() - interval '8 days'") });
    const removed = await pruneHealthEvents({ ...t.deps!, eventRetentionMs: 7 * 24 * 3600_000 });
    assert.ok(removed >= 1);
    const left = (await events(id)).body.events;
    assert.equal(left.length, 1);
    assert.equal(left[0].to.health, 'degraded');
  });

  it('shows each cell as optimal, degraded, failed, unknown or pending, with roll-ups, filters and paging', async () => {
    const a = await h.newHost();
    const b = await h.newHost();
    const v1 = await h.attach(a); // optimal on a
    const v1b = await h.attach(b, v1.volumeId); // degraded on b → v1 degraded
    const v2 = await h.attach(a); // failed on a
    const v3 = await h.attach(b); // unknown (aged) on b
    const v4 = await h.attach(a); // pending on a
    await h.report(a.token, v1.attachmentId, h.body('optimal'));
    await h.report(b.token, v1b.attachmentId, h.body('degraded', 2, 3));
    await h.report(a.token, v2.attachmentId, h.body('failed', 0, 3, { device_path: null }));
    await h.report(b.token, v3.attachmentId, h.body('optimal'));
    await sql('attachments')
      .where({ id: v3.attachmentId })
      .update({ reported_at: sql.raw("now() - interval '10 minutes'") });

    const all = await matrix({ host_nqn: a.nqn });
    assert.equal(all.status, 200, JSON.stringify(all.body));
    assert.deepEqual(all.body.summary, { optimal: 1, degraded: 0, failed: 1, unknown: 0, pending: 1, detached: 0 });
    const both = await matrix({ health: 'optimal,degraded,failed,unknown,pending' });
    const mineOnly = both.body.volumes.filter((v: { volume_id: string }) =>
      [v1.volumeId, v2.volumeId, v3.volumeId, v4.volumeId].includes(v.volume_id),
    );
    assert.equal(mineOnly.length, 4);
    assert.ok(both.body.volume_summary.degraded >= 1, 'v1 counts as a degraded volume');
    assert.equal(
      Object.values(both.body.volume_summary as Record<string, number>).reduce((x, y) => x + y, 0),
      both.body.page.total_volumes,
      'every volume counted once, by its worst cell',
    );

    const cellOf = async (vol: string) => {
      const m = await matrix({ volume_id: vol });
      assert.equal(m.status, 200);
      return m.body.volumes[0];
    };
    const row1 = await cellOf(v1.volumeId);
    assert.equal(row1.health, 'degraded', 'a volume rolls up to the worst of its hosts');
    assert.deepEqual(row1.counts, { optimal: 1, degraded: 1, failed: 0, unknown: 0, pending: 0, detached: 0 });
    const byHost = Object.fromEntries(row1.hosts.map((c: { host_nqn: string }) => [c.host_nqn, c]));
    assert.equal(byHost[a.nqn].health, 'optimal');
    assert.equal(byHost[a.nqn].state, 'connected');
    assert.equal(byHost[a.nqn].multipath_mode, 'native');
    assert.equal(byHost[a.nqn].device_path, '/dev/nvme0n1');
    assert.equal(byHost[a.nqn].host_stale, false);
    assert.equal(byHost[b.nqn].health, 'degraded');
    assert.equal(byHost[b.nqn].paths_live, 2);
    assert.equal(byHost[b.nqn].paths_total, 3);
    assert.ok(Date.parse(byHost[b.nqn].since) <= Date.parse(byHost[b.nqn].reported_at));

    assert.equal((await cellOf(v2.volumeId)).health, 'failed');
    const unknown = (await cellOf(v3.volumeId)).hosts[0];
    assert.equal(unknown.health, 'unknown');
    assert.equal(unknown.reported_health, 'optimal', 'what the agent last said stays visible');
    assert.ok(Date.parse(unknown.since) > Date.parse(unknown.reported_at), 'unknown since the report went stale');
    const pending = (await cellOf(v4.volumeId)).hosts[0];
    assert.equal(pending.health, 'pending');
    assert.equal(pending.state, null);
    assert.equal(pending.reported_at, null);

    // Host roll-ups, and a host whose agent stopped contacting the service is stale.
    await sql('hosts')
      .where({ nqn: b.nqn })
      .update({ last_seen_at: sql.raw("now() - interval '10 minutes'") });
    const mine = await matrix({ health: 'degraded,unknown' });
    const hb = mine.body.hosts.find((x: { host_nqn: string }) => x.host_nqn === b.nqn);
    assert.equal(hb.stale, true);
    assert.equal(hb.health, 'unknown');
    assert.deepEqual(hb.counts, { optimal: 0, degraded: 1, failed: 0, unknown: 1, pending: 0, detached: 0 });
    assert.ok(
      mine.body.volumes.every((v: { hosts: { health: string }[] }) =>
        v.hosts.every((c) => c.health === 'degraded' || c.health === 'unknown'),
      ),
      'the health filter keeps only those cells',
    );
    assert.equal(
      mine.body.hosts.find((x: { host_nqn: string }) => x.host_nqn === a.nqn),
      undefined,
      'a has no degraded or unknown cell',
    );

    // Paging over volumes, worst first.
    const p1 = await matrix({ host_nqn: a.nqn, limit: 2, order: 'worst' });
    assert.equal(p1.body.volumes.length, 2);
    assert.equal(p1.body.volumes[0].health, 'failed');
    assert.equal(p1.body.page.total_volumes, 3);
    assert.equal(p1.body.page.next_offset, 2);
    const p2 = await matrix({ host_nqn: a.nqn, limit: 2, order: 'worst', offset: 2 });
    assert.equal(p2.body.volumes.length, 1);
    assert.equal(p2.body.volumes[0].health, 'optimal');
    assert.equal(p2.body.page.next_offset, null);

    assert.equal((await matrix({ health: 'bad' })).status, 400);
    assert.equal((await matrix({ limit: 0 })).status, 400);
  });

  it('answers for 5,000 attachments (100 volumes × 50 hosts) in one query; the timing is reported, not asserted', async () => {
    const hosts = Array.from({ length: 50 }, (_, i) => `nqn.2014-08.org.example:bulk-${randomUUID()}-${i}`);
    const vols = Array.from({ length: 100 }, () => randomUUID());
    await sql('volumes').insert(
      vols.map((id) => ({ id, name: `volume-${id}`, size_gb: 1, replicas: 3, status: 'available', multiattach: true })),
    );
    await sql('hosts').insert(hosts.map((nqn, i) => ({ nqn, name: `bulk-${i}`, last_seen_at: sql.fn.now() })));
    const paths = (live: number) =>
      JSON.stringify(
        [0, 1, 2].map((i) => ({
          controller: `nvme${i}`,
          address: '127.0.0.1',
          port: 4420 + i,
          transport: 'tcp',
          state: i < live ? 'live' : 'missing',
          ana_state: 'optimized',
        })),
      );
    const rows = [];
    for (const [vi, v] of vols.entries())
      for (const [hi, nqn] of hosts.entries()) {
        const degraded = (vi * 50 + hi) % 10 === 0; // 500 of them
        rows.push({
          id: randomUUID(),
          volume_id: v,
          host_nqn: nqn,
          host_name: `bulk-${hi}`,
          connector: JSON.stringify({ nqn, host: `bulk-${hi}` }),
          multipath_mode: 'native',
          status: 'attached',
          agent_state: 'connected',
          health: degraded ? 'degraded' : 'optimal',
          paths: paths(degraded ? 2 : 3),
          device_path: '/dev/nvme0n1',
          reported_at: sql.fn.now(),
        });
      }
    await sql.batchInsert('attachments', rows, 1000);
    await sql.raw('ANALYZE attachments');

    const q = { health: 'optimal,degraded', limit: 100 };
    await matrix(q); // warm the validators and the plan cache
    const times: number[] = [];
    let last:
      | { body: { summary: Record<string, number>; volumes: unknown[]; page: { total_cells: number } } }
      | undefined;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      last = await matrix(q);
      times.push(performance.now() - t0);
    }
    assert.ok(last!.body.summary.degraded >= 500);
    assert.ok(last!.body.page.total_cells >= 5000);
    assert.equal(last!.body.volumes.length, 100);
    times.sort((x, y) => x - y);
    const direct: number[] = [];
    for (let i = 0; i < 5; i++) {
      const s0 = performance.now();
      await t.deps!.health.healthMatrix(
        { health: ['optimal', 'degraded'], offset: 0, limit: 100, order: 'volume', staleMs: 180_000 },
        new Date(),
      );
      direct.push(performance.now() - s0);
    }
    direct.sort((x, y) => x - y);
    const t0 = performance.now();
    const one = await matrix({ volume_id: vols[7], limit: 1 });
    const oneMs = performance.now() - t0;
    assert.equal(one.body.volumes[0].hosts.length, 50);
    const plan = (await sql.raw(
      `EXPLAIN SELECT id FROM attachments WHERE status IN ('attaching', 'attached') AND volume_id = ?`,
      [vols[7]],
    )) as { rows: { 'QUERY PLAN': string }[] };
    console.log(
      `# health matrix, 5,000 live attachments: whole matrix (100 volumes × 50 hosts) over HTTP median ` +
        `${times[2]!.toFixed(0)} ms (min ${times[0]!.toFixed(0)} ms), the query alone median ${direct[2]!.toFixed(0)} ms; ` +
        `one volume ${oneMs.toFixed(0)} ms; plan: ${plan.rows.map((r) => r['QUERY PLAN']).join(' | ')}`,
    );
  });
});
