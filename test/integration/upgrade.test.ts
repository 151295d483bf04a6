import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import knexFactory, { type Knex } from 'knex';
import supertest from 'supertest';
import { HttpServiceClient } from '../../src/agent/service-client.ts';
import { type SimServer, startSimServer } from '../../src/sim/server.ts';
import { VERSION } from '../../src/shared/version.ts';
import { type CliProcess, cleanEnv, startCli } from '../support/cli.ts';
import { buildRelease, type Release, releases } from '../support/previous-release.ts';
import { SimClient } from '../support/sim-client.ts';
import { AGENT, connector, NATIVE } from '../support/target.ts';

/** The agent's client as release 0.1.0 built it (its own dist/ and node_modules). */
interface OldClient {
  register(c: Record<string, unknown>): Promise<{ host: { nqn: string } }>;
  listAttachments(since: number | null, wait: number): Promise<{ version: number; attachments: { id: string }[] }>;
  report(id: string, r: Record<string, unknown>): Promise<void>;
}

interface Replica {
  release: string;
  proc: CliProcess;
  http: supertest.Agent;
  url: string;
}

/**
 * A rolling upgrade from the previous release (CHANGELOG.md's second entry, built from its own
 * commit and lock file) to this checkout, on one PostgreSQL and one simulator: two old replicas
 * serve, a new one starts and migrates beside them, then the old ones are replaced one by one,
 * with initialize/terminate and agent polls through old and new replicas at every step, and the
 * old release's agent client against the new service.
 */
describe('rolling upgrade from the previous release', () => {
  const token = `admin-${randomUUID()}`;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'portalis-upgrade-'));
  let previous: Release;
  let oldRoot: string;
  let sim: SimServer;
  let admin: Knex;
  let dbName: string;
  let dbUrl: string;
  const running = new Set<Replica>();

  before(
    async () => {
      const all = releases();
      // The newest entry is this checkout's release (or unreleased); the previous is the next with a commit.
      previous = all.find((r) => r.version !== VERSION)!;
      assert.ok(previous, 'CHANGELOG.md names no earlier release with a commit');
      oldRoot = await buildRelease(previous);
      sim = await startSimServer({ port: 0, nodes: 3 });
      admin = knexFactory({ client: 'pg', connection: process.env.DATABASE_URL, pool: { min: 0, max: 1 } });
      dbName = `portalis_test_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
      await admin.raw(`CREATE DATABASE ${dbName}`);
      const u = new URL(process.env.DATABASE_URL ?? '');
      u.pathname = `/${dbName}`;
      dbUrl = u.toString();
    },
    { timeout: 600_000 },
  );
  after(async () => {
    for (const r of running) await r.proc.stop();
    await sim?.close();
    if (admin) {
      await admin.raw(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.destroy();
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  const env = () =>
    cleanEnv({
      DATABASE_URL: dbUrl,
      PORTALIS_SIM_URL: sim.url,
      PORTALIS_ADMIN_TOKEN: token,
      PORTALIS_PORT: '0',
      PORTALIS_DATA_DIR: dataDir,
      PORTALIS_LIGHTOS_POLL_INTERVAL_MS: '20',
      PORTALIS_LOG_LEVEL: 'warn',
    });

  async function start(release: 'old' | 'new'): Promise<Replica> {
    const proc = startCli(['serve'], env(), release === 'old' ? oldRoot : undefined);
    const [, url] = await proc.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    const r = { release, proc, http: supertest.agent(url!), url: url! };
    running.add(r);
    return r;
  }
  async function stop(r: Replica): Promise<void> {
    running.delete(r);
    assert.equal(await r.proc.stop(), 0, r.proc.output());
  }

  const as = (t: string) => ({ authorization: `Bearer ${t}` });
  const sims = () => new SimClient(sim.url);

  /** Creates a volume through `a`, attaches it through `b` and detaches it through `c`; checks the ACL at each step. */
  async function lifecycle(a: Replica, b: Replica, c: Replica, conn: Record<string, unknown>): Promise<void> {
    const id = randomUUID();
    const created = await a.http.post('/v1/volumes').set(as(token)).send({ id, size_gb: 1 });
    assert.equal(created.status, 201, `${a.release}: ${JSON.stringify(created.body)}`);
    const init = await b.http.post(`/v1/volumes/${id}/initialize_connection`).set(as(token)).send({ connector: conn });
    assert.equal(init.status, 200, `${b.release}: ${JSON.stringify(init.body)}`);
    assert.deepEqual(await sims().acl(created.body.backend_uuid), [conn.nqn]);
    const again = await c.http.post(`/v1/volumes/${id}/initialize_connection`).set(as(token)).send({ connector: conn });
    assert.equal(
      again.body.attachment_id,
      init.body.attachment_id,
      'a retry through another release is the same attachment',
    );
    const term = await c.http
      .post(`/v1/volumes/${id}/terminate_connection`)
      .set(as(token))
      .send({ connector: conn, force: true });
    assert.equal(term.status, 200, `${c.release}: ${JSON.stringify(term.body)}`);
    assert.deepEqual(await sims().acl(created.body.backend_uuid), []);
    assert.equal((await a.http.delete(`/v1/volumes/${id}`).set(as(token))).status, 204);
  }

  /** A host with an agent token issued through `r`. */
  async function newHost(r: Replica): Promise<{ conn: Record<string, unknown>; hostToken: string }> {
    const conn = connector({ ...NATIVE, ...AGENT });
    const issued = await r.http.post('/v1/hosts').set(as(token)).send({ nqn: conn.nqn });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    return { conn, hostToken: issued.body.token };
  }

  /** A long poll through `poller` parked on the host's version, woken by an initialize through `changer`. */
  async function wokenAcross(
    client: { listAttachments: OldClient['listAttachments'] },
    changer: Replica,
    conn: Record<string, unknown>,
  ): Promise<string> {
    const v0 = (await client.listAttachments(null, 0)).version;
    const waiting = client.listAttachments(v0, 60);
    const id = randomUUID();
    assert.equal((await changer.http.post('/v1/volumes').set(as(token)).send({ id, size_gb: 1 })).status, 201);
    const init = await changer.http
      .post(`/v1/volumes/${id}/initialize_connection`)
      .set(as(token))
      .send({ connector: conn });
    assert.equal(init.status, 200, JSON.stringify(init.body));
    const woken = await waiting;
    assert.notEqual(woken.version, v0);
    assert.ok(woken.attachments.some((a) => a.id === init.body.attachment_id));
    return init.body.attachment_id as string;
  }

  /** What an agent reports once connected, over one path. */
  const report = {
    state: 'connected',
    device_path: '/dev/nvme0n1',
    size_bytes: 1 << 30,
    health: 'optimal',
    paths: [
      {
        controller: 'nvme0',
        address: '127.0.0.1',
        port: 4420,
        transport: 'tcp',
        state: 'live',
        ana_state: 'optimized',
      },
    ],
    error: null,
  };

  it('CHANGELOG.md names the previous release by a full commit; a commit missing from the clone fails with what to do', async () => {
    assert.deepEqual(
      releases().find((r) => r.version === '0.1.0'),
      { version: '0.1.0', commit: '256f0134d2bcb6c99106b3b2c6a90e850e8b57b1' },
    );
    // As in a shallow clone without the release's commit: a failure, never a skip.
    await assert.rejects(
      buildRelease({ version: '0.0.1', commit: 'f'.repeat(40) }),
      /release 0\.0\.1's commit f{40} \(CHANGELOG\.md\) is not in the clone at .*(git fetch --unshallow|fetch the history)/,
    );
  });

  it('old replicas serve beside a new one that migrated, are replaced one by one, and an old agent keeps working', async () => {
    const oldClientModule = (await import(
      pathToFileURL(path.join(oldRoot, 'dist', 'src', 'agent', 'service-client.js')).href
    )) as { HttpServiceClient: new (o: { url: string; token: string }) => OldClient };

    // The previous release alone, as the fleet runs before the roll (started one at a time: its
    // knex migration lock fails a second replica migrating at once).
    const old1 = await start('old');
    const old2 = await start('old');
    const before = await old1.http.get('/v1/capabilities').set(as(token));
    assert.equal(before.body.driver_version, previous.version);
    const hostA = await newHost(old1);
    const oldAgent = new oldClientModule.HttpServiceClient({ url: old2.url, token: hostA.hostToken });
    await oldAgent.register(hostA.conn);
    const attachedByOld = await wokenAcross(oldAgent, old1, hostA.conn);

    // The first new replica migrates while the old ones serve: lifecycles through them go on
    // until it listens (each step asserted, so a 5xx or a stuck ACL fails here).
    let migrating = true;
    const traffic = (async () => {
      let rounds = 0;
      while (migrating) {
        await lifecycle(old1, old2, old1, connector(NATIVE));
        rounds++;
      }
      return rounds;
    })();
    const new1 = await start('new').finally(() => {
      migrating = false;
    });
    assert.ok((await traffic) >= 1);
    const db = knexFactory({ client: 'pg', connection: dbUrl, pool: { min: 0, max: 1 } });
    const names = (await db('knex_migrations').select('name')).map((r) => r.name as string);
    await db.destroy();
    assert.ok(names.includes('20261207180000_host_agent_version.ts'), names.join(', '));
    const caps = await new1.http.get('/v1/capabilities').set(as(token));
    assert.equal(caps.body.driver_version, VERSION);
    // A row the old release inserted reads through the new one, with the rule's connected_by.
    const row = await new1.http.get(`/v1/attachments/${attachedByOld}`).set(as(token));
    assert.equal(row.status, 200, JSON.stringify(row.body));
    assert.equal(row.body.connected_by, 'agent');

    // Both releases side by side: every step of a lifecycle through either one.
    await lifecycle(old1, new1, old2, connector(NATIVE));
    await lifecycle(new1, old2, new1, connector(NATIVE));
    // An attachment the new release inserts is served by the old one too.
    const hostB = await newHost(new1);
    const newAgentOnOld = new HttpServiceClient({ url: old1.url, token: hostB.hostToken });
    await newAgentOnOld.register(hostB.conn as never);
    const attachedByNew = await wokenAcross(newAgentOnOld, new1, hostB.conn);
    await newAgentOnOld.report(attachedByNew, report as never);
    // The old agent, its polls on the new replica, woken by a change made through an old one.
    const oldAgentOnNew = new oldClientModule.HttpServiceClient({ url: new1.url, token: hostA.hostToken });
    await oldAgentOnNew.register(hostA.conn);
    const attachedAcross = await wokenAcross(oldAgentOnNew, old2, hostA.conn);
    await oldAgentOnNew.report(attachedAcross, report);
    const host = await new1.http.get(`/v1/hosts/${hostA.conn.nqn}`).set(as(token));
    assert.equal(host.body.agent_version, null, 'a 0.1.0 agent sends no version');
    const reported = await old1.http.get(`/v1/attachments/${attachedAcross}`).set(as(token));
    assert.equal(reported.body.agent?.state, 'connected');

    // An old replica that restarts now refuses the migrated schema (docs/releases.md).
    const restarted = startCli(['serve'], env(), oldRoot);
    assert.notEqual(await restarted.exit(), 0);
    assert.match(restarted.output(), /migration directory is corrupt, the following files are missing/);

    // Replace the old replicas one by one, with traffic through whatever runs at each step.
    await stop(old1);
    const new2 = await start('new');
    await lifecycle(new2, old2, new1, connector(NATIVE));
    await stop(old2);
    const new3 = await start('new');
    await lifecycle(new3, new2, new1, connector(NATIVE));
    // The old agent against the all-new fleet: polls woken across replicas, reports stored.
    const oldAgentLast = new oldClientModule.HttpServiceClient({ url: new3.url, token: hostA.hostToken });
    const last = await wokenAcross(oldAgentLast, new2, hostA.conn);
    await oldAgentLast.report(last, report);
    // A new replica restarting on the same schema finds nothing to migrate and serves.
    await stop(new1);
    const new4 = await start('new');
    assert.equal((await new4.http.get(`/v1/attachments/${last}`).set(as(token))).body.agent?.state, 'connected');
  });
});
