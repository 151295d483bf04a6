import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type SimServer, startSimServer } from '../../src/sim/server.ts';
import { type CliProcess, cleanEnv, startCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/db.ts';
import { checkConfig, type Haproxy, HAPROXY_CONFIG, renderConfig, startHaproxy } from '../support/haproxy.ts';
import { SimClient, waitUntil } from '../support/sim-client.ts';
import { connector, NATIVE } from '../support/target.ts';

/**
 * The three-replica layout of docs/deployment.md, for real: three `portalis serve` processes on one
 * PostgreSQL and one simulator (over HTTP), behind HAProxy started from deploy/haproxy/haproxy.cfg
 * (only its addresses replaced). The periodic jobs run once per period across the fleet; a replica
 * SIGKILLed during an initialize/terminate storm through the balancer loses, duplicates and
 * strands nothing, and the balancer stops sending to it once its /readyz check fails.
 */
const REFRESH_MS = 500;
const CAPACITY_MS = 1000;

describe('three replicas behind HAProxy', () => {
  const token = `admin-${randomUUID()}`;
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'portalis-fleet-'));
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let sim: SimServer;
  let lb: Haproxy;
  const replicas: { p: CliProcess; url: string; env: NodeJS.ProcessEnv }[] = [];

  before(async () => {
    database = await createTestDatabase();
    sim = await startSimServer({ port: 0, nodes: 3 });
    // One after the other: each runs the migrations at start (the first one does the work).
    for (let i = 0; i < 3; i++) {
      const env = cleanEnv({
        DATABASE_URL: database.url,
        PORTALIS_SIM_URL: sim.url,
        PORTALIS_ADMIN_TOKEN: token,
        PORTALIS_PORT: '0',
        PORTALIS_DATA_DIR: dataDir,
        PORTALIS_PORTAL_REFRESH_MS: String(REFRESH_MS),
        PORTALIS_CAPABILITIES_REFRESH_MS: String(CAPACITY_MS),
        PORTALIS_LIGHTOS_POLL_INTERVAL_MS: '20',
        PORTALIS_LOG_LEVEL: 'warn',
      });
      const p = startCli(['serve'], env);
      replicas.push({ p, url: '', env });
      const [, url] = await p.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      replicas[i]!.url = url!;
    }
    lb = await startHaproxy(replicas.map((r) => new URL(r.url).host));
  });
  after(async () => {
    await lb?.close();
    for (const r of replicas) await r.p.stop();
    await sim?.close();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** The sample `series` (name{labels}) of replica `i`'s /metrics, read from the replica itself. */
  const sample = async (i: number, series: string) => {
    const text = await (await fetch(`${replicas[i]!.url}/metrics`, { headers: auth })).text();
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return Number(line?.split(' ')[1] ?? Number.NaN);
  };
  const ran = (i: number, job: string) => sample(i, `portalis_periodic_runs_total{job="${job}",outcome="ran"}`);
  const fleetRan = async (job: string) => {
    const each = await Promise.all([0, 1, 2].map((i) => ran(i, job)));
    return { each, total: each.reduce((a, b) => a + b, 0) };
  };

  it('the committed config is valid HAProxy and the test changes only its addresses', async () => {
    const cfg = renderConfig(18080, 18404, ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3']);
    assert.match(await checkConfig(cfg), /Configuration file is valid/);
    const strip = (s: string) => s.replace(/bind \S+/g, 'bind X').replace(/(server replica\d) \S+/g, '$1 X');
    assert.equal(strip(cfg), strip(readFileSync(HAPROXY_CONFIG, 'utf8')));
    assert.match(cfg, /^\s+balance roundrobin$/m);
    assert.match(cfg, /^\s+option httpchk GET \/readyz$/m);
  });

  it('spreads requests round robin over the three replicas', async () => {
    const before = await lb.servers();
    for (let i = 0; i < 30; i++)
      assert.equal((await fetch(`${lb.url}/v1/capabilities`, { headers: auth })).status, 200);
    const now = await lb.servers();
    const sent = Object.keys(now).map((s) => now[s]!.sessions - before[s]!.sessions);
    assert.deepEqual(sent, [10, 10, 10], `requests per replica: ${sent}`);
  });

  it('runs the periodic jobs once per period across the fleet', async () => {
    // The window runs from before the first reading to after the last (each reads three replicas
    // one after the other), so that every pass counted ended inside it.
    const t0 = performance.now();
    const refresh0 = await fleetRan('portal-refresh');
    const capacity0 = await fleetRan('capacity');
    await waitUntil(async () => (await fleetRan('portal-refresh')).total >= refresh0.total + 8, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: '8 portal refresh passes across the fleet',
    });
    const refresh = await fleetRan('portal-refresh');
    const capacity = await fleetRan('capacity');
    const elapsed = performance.now() - t0;
    const refreshPasses = refresh.total - refresh0.total;
    const capacityPasses = capacity.total - capacity0.total;
    // Each replica on its own schedule would run three passes a period.
    assert.ok(
      refreshPasses <= elapsed / REFRESH_MS + 1,
      `${refreshPasses} refresh passes in ${Math.round(elapsed)} ms: at most one per ${REFRESH_MS} ms period`,
    );
    assert.ok(capacityPasses >= 1, 'the capacity job runs too');
    assert.ok(
      capacityPasses <= elapsed / CAPACITY_MS + 1,
      `${capacityPasses} capacity passes in ${Math.round(elapsed)} ms: at most one per ${CAPACITY_MS} ms period`,
    );
    // The history prune (hourly, and at each replica's start): one pass in the whole fleet.
    const prune = await fleetRan('event-prune');
    assert.equal(prune.total, 1, `event-prune passes per replica ${prune.each}`);
    console.log(
      `# fleet: ${refreshPasses} portal refresh passes (per replica ${refresh.each.map((n, i) => n - refresh0.each[i]!)}), ` +
        `${capacityPasses} capacity passes in ${Math.round(elapsed)} ms; event-prune per replica ${prune.each}`,
    );
  });

  it('a replica SIGKILLed during an initialize/terminate storm loses, duplicates and strands nothing', async () => {
    const VOLUMES = 4;
    const HOSTS = 4;
    const call = async (method: string, p: string, body?: unknown) => {
      try {
        const r = await fetch(`${lb.url}${p}`, {
          method,
          headers: auth,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(60_000),
        });
        return { status: r.status, body: (await r.json().catch(() => null)) as any };
      } catch (e) {
        const cause = (e as Error & { cause?: { code?: string; message?: string } }).cause;
        return { status: 0, body: { error: cause?.code ?? cause?.message ?? (e as Error).message } };
      }
    };
    const volumes: { id: string; backendUuid: string }[] = [];
    for (let v = 0; v < VOLUMES; v++) {
      const id = randomUUID();
      const r = await call('POST', '/v1/volumes', { id, size_gb: 1, multiattach: true });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      volumes.push({ id, backendUuid: r.body.backend_uuid });
    }
    const hosts = Array.from({ length: HOSTS }, () => connector(NATIVE) as { nqn: string } & Record<string, unknown>);

    const statuses = new Map<string, number>();
    let successes = 0;
    let stopping = false;
    /** Per (volume, host): what the last successful call did. */
    const last = new Map<string, 'init' | 'term'>();
    const stuck: string[] = [];
    const worker = async (v: (typeof volumes)[number], h: (typeof hosts)[number]) => {
      let attach = true;
      while (!stopping) {
        // Mostly alternating; now and then the same call again (both are idempotent).
        if (Math.random() < 0.2) attach = !attach;
        const op = attach ? 'init' : 'term';
        const started = performance.now();
        // A failed call is retried as Cinder retries it, until it succeeds: then it is the pair's
        // last word. A call the dying replica had taken fails as a 502 on a fresh connection to
        // HAProxy, and as a connection closed without an answer on one that served a request
        // before (HAProxy's way of telling an HTTP/1.1 client it may retry: haproxy/haproxy#3414).
        for (;;) {
          const r = await call('POST', `/v1/volumes/${v.id}/${attach ? 'initialize' : 'terminate'}_connection`, {
            connector: h,
          });
          const key = r.status === 0 ? `network ${r.body.error}` : String(r.status);
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
          if (r.status === 200) break;
          if (performance.now() - started > 60_000) {
            stuck.push(`${op} of ${v.id} on ${h.nqn}: ${r.status} ${JSON.stringify(r.body)}`);
            return;
          }
        }
        last.set(`${v.id} ${h.nqn}`, op);
        successes++;
        attach = !attach;
      }
    };
    const storm = volumes.flatMap((v) => hosts.map((h) => worker(v, h)));

    // Mid-storm, replica2 dies without a word.
    await waitUntil(() => successes >= 40 || stuck.length > 0, { timeoutMs: 60_000, what: '40 calls before the kill' });
    const victim = replicas[1]!;
    const killed = performance.now();
    victim.p.child.kill('SIGKILL');
    await victim.p.exit();
    const killedAt = successes;
    // The balancer's /readyz checks find it gone, and it is taken out of the rotation.
    await waitUntil(async () => (await lb.servers()).replica2!.status === 'DOWN', {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'HAProxy to mark replica2 DOWN',
    });
    const down = await lb.servers();
    const downAfter = performance.now() - killed;
    const downAt = successes;
    await waitUntil(() => successes >= downAt + 60 || stuck.length > 0, {
      timeoutMs: 60_000,
      what: '60 more calls after replica2 went DOWN',
    });
    stopping = true;
    await Promise.all(storm);
    const end = await lb.servers();
    assert.deepEqual(stuck, [], 'every call eventually succeeded');
    assert.equal(statuses.get('500') ?? 0, 0, `no 500: ${JSON.stringify([...statuses])}`);
    assert.equal(end.replica2!.sessions, down.replica2!.sessions, 'nothing was sent to replica2 once it was DOWN');
    assert.notEqual(down.replica2!.checkStatus, 'L7OK');

    // Each pair ends as its last successful call said, in the record and in the backend's ACL:
    // one attached attachment or none, none left half-way (attaching, detaching).
    const problems: string[] = [];
    const simClient = new SimClient(sim.url);
    for (const v of volumes) {
      const list = await call('GET', `/v1/attachments?volume_id=${v.id}`);
      assert.equal(list.status, 200);
      const attachments = list.body.attachments as { id: string; host_nqn: string; status: string }[];
      const acl = new Set(await simClient.acl(v.backendUuid));
      for (const a of attachments)
        if (a.status === 'attaching' || a.status === 'detaching')
          problems.push(`attachment ${a.id} of ${v.id} is stuck ${a.status}`);
      for (const h of hosts) {
        const want = last.get(`${v.id} ${h.nqn}`);
        const live = attachments.filter((a) => a.host_nqn === h.nqn && a.status === 'attached');
        if (want === 'init' && live.length !== 1)
          problems.push(`${v.id} on ${h.nqn}: last initialized, ${live.length} attached attachments`);
        if (want !== 'init' && live.length !== 0)
          problems.push(`${v.id} on ${h.nqn}: last terminated (or never attached), ${live.length} attached`);
        if ((want === 'init') !== acl.has(h.nqn))
          problems.push(`${v.id} on ${h.nqn}: last ${want ?? 'nothing'}, in the backend ACL: ${acl.has(h.nqn)}`);
      }
      for (const nqn of acl)
        if (!hosts.some((h) => h.nqn === nqn)) problems.push(`${v.id}: unknown ${nqn} in the backend ACL`);
    }
    assert.deepEqual(problems, []);
    // Nothing is stuck: every pair moves on at once, the other way, through the balancer.
    const moves = await Promise.all(
      volumes.flatMap((v) =>
        hosts.map(async (h) => {
          const op = last.get(`${v.id} ${h.nqn}`) === 'init' ? 'terminate' : 'initialize';
          const r = await call('POST', `/v1/volumes/${v.id}/${op}_connection`, { connector: h });
          return r.status === 200 ? null : `${op} of ${v.id} on ${h.nqn}: ${r.status} ${JSON.stringify(r.body)}`;
        }),
      ),
    );
    assert.deepEqual(
      moves.filter((m) => m !== null),
      [],
    );
    const sum = (k: 'retries' | 'redispatches') => Object.values(end).reduce((n, x) => n + x[k], 0);
    console.log(
      `# storm: ${successes} calls succeeded (${killedAt} before the SIGKILL, ${downAt - killedAt} in the ` +
        `${Math.round(downAfter)} ms until HAProxy marked it DOWN (${down.replica2!.checkStatus}), ` +
        `${successes - downAt} after); answers ${JSON.stringify(Object.fromEntries(statuses))}; ` +
        `HAProxy retries ${sum('retries')}, redispatches ${sum('redispatches')}`,
    );
  });

  it('a replica restarted at its address is back in the rotation after two good checks', async () => {
    const victim = replicas[1]!;
    assert.equal((await lb.servers()).replica2!.status, 'DOWN');
    const port = new URL(victim.url).port;
    victim.p = startCli(['serve'], { ...victim.env, PORTALIS_PORT: port });
    await victim.p.waitFor(/listening on http:\/\/127\.0\.0\.1:\d+/);
    await waitUntil(async () => (await lb.servers()).replica2!.status === 'UP', {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'HAProxy to mark replica2 UP again',
    });
    const before = await lb.servers();
    for (let i = 0; i < 30; i++)
      assert.equal((await fetch(`${lb.url}/v1/capabilities`, { headers: auth })).status, 200);
    const now = await lb.servers();
    assert.deepEqual(
      Object.keys(now).map((s) => now[s]!.sessions - before[s]!.sessions),
      [10, 10, 10],
    );
  });
});
