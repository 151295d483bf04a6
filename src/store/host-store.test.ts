import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase } from '../../test/support/db.ts';
import { recordVolume } from '../../test/support/records.ts';
import { waitUntil } from '../../test/support/sim-client.ts';
import { type AgentTaskList, pollAgentTasks } from '../driver/agent-sync.ts';
import { DriverError } from '../driver/errors.ts';
import type { ConnectionInfo } from '../driver/model.ts';
import { HOST_CHANNEL, PgHostChangeFeed } from './change-feed.ts';
import { createDb, type Db } from './db.ts';
import { PgHostStore } from './host-store.ts';
import { PgStore } from './pg-store.ts';

const info = (nqn: string): ConnectionInfo => ({
  driver_volume_type: 'nvmeof',
  data: { vol_uuid: 'x', host_nqn: nqn, multipath_mode: 'native', access_mode: 'rw', discard: true },
});

/** The agents' long poll on PostgreSQL: its reads, and which commits wake it. */
describe('agent long poll on PostgreSQL', () => {
  let t: Awaited<ReturnType<typeof createTestDatabase>>;
  let agentDb: Db;
  let feed: PgHostChangeFeed;
  let deps: { hosts: PgHostStore; hostChanges: PgHostChangeFeed };
  /** The statements the agents' pool sent that name a host, per host. */
  const reads = new Map<string, number>();

  before(async () => {
    t = await createTestDatabase();
    // The service's agent pool: its own, as in service.ts.
    agentDb = createDb(t.url, { poolMax: 2 });
    agentDb.on('query', (q: { bindings?: unknown[] }) => {
      const named = new Set(
        (q.bindings ?? []).filter((b): b is string => typeof b === 'string' && b.startsWith('nqn.')),
      );
      for (const nqn of named) bump(nqn);
    });
    feed = new PgHostChangeFeed(t.url);
    await feed.start();
    deps = { hosts: new PgHostStore(agentDb), hostChanges: feed };
  });
  after(async () => {
    await feed?.close();
    await agentDb?.destroy();
    await t?.drop();
  });
  const bump = (nqn: string) => reads.set(nqn, (reads.get(nqn) ?? 0) + 1);
  const readsOf = (nqn: string) => reads.get(nqn) ?? 0;

  async function hostWithVolume() {
    const nqn = `nqn.2014-08.org.nvmexpress:uuid:${randomUUID()}`;
    // Issuing notifies the host's polls; that notification is let through before any poll of a
    // test starts, or it would wake the poll as a late extra.
    const issued = feed.subscribe(nqn);
    await deps.hosts.issueToken(nqn, 'h', `hash-${nqn}`);
    await issued.changed;
    const store = new PgStore(t.db);
    const v = await recordVolume(store);
    const { version } = await deps.hosts.agentView(nqn, { since: null });
    return { nqn, store, volumeId: v.id, version, tokenHash: `hash-${nqn}` };
  }

  const recordAttaching = (h: Awaited<ReturnType<typeof hostWithVolume>>) =>
    h.store.insertAttachment({
      volumeId: h.volumeId,
      hostNqn: h.nqn,
      hostName: 'h',
      instanceUuid: null,
      connector: { nqn: h.nqn, host: 'h' },
      multipathMode: 'native',
      connectedBy: 'agent' as const,
    });
  /** An attachment the host's agent sees: recorded, then attached with its connection info. */
  const attach = async (h: Awaited<ReturnType<typeof hostWithVolume>>) => {
    const a = await recordAttaching(h);
    await h.store.updateAttachment(a.id, { status: 'attached', connectionInfo: info(h.nqn) });
    return a;
  };

  /** Settles within `ms` or fails the test; the poll itself waits 60 s, so only a wake answers it. */
  const within = <T>(p: Promise<T>, ms: number, what: string) =>
    Promise.race([
      p,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref(),
      ),
    ]);

  it('a committed attachment answers its host’s parked poll, after one read at the start and one at the wake', async () => {
    const h = await hostWithVolume();
    const before = readsOf(h.nqn);
    const poll = pollAgentTasks(deps, h.nqn, h.version, 60_000, { tokenHash: h.tokenHash });
    await waitUntil(() => readsOf(h.nqn) === before + 1, { what: 'the poll parked' });
    const a = await attach(h);
    const list = await within(poll, 10_000, 'the poll answered');
    assert.notEqual(list.version, h.version);
    assert.deepEqual(
      list.tasks.map((x) => [x.attachmentId, x.desired]),
      [[a.id, 'connected']],
    );
    assert.equal(readsOf(h.nqn) - before, 2, 'one statement to park, one after the wake');
  });

  it('an `attaching` record without connection info does not move the version (nothing the agent sees changed)', async () => {
    const h = await hostWithVolume();
    const a = await recordAttaching(h);
    await h.store.updateAttachment(a.id, { status: 'error' });
    assert.equal((await deps.hosts.agentView(h.nqn, { since: null })).version, h.version);
    await h.store.updateAttachment(a.id, { status: 'attached', connectionInfo: info(h.nqn) });
    assert.notEqual((await deps.hosts.agentView(h.nqn, { since: null })).version, h.version);
  });

  it('a wake without a change of the host’s version re-reads once and keeps waiting; another host’s change does not wake it', async () => {
    const h = await hostWithVolume();
    const other = await hostWithVolume();
    const before = readsOf(h.nqn);
    const state: { settled: AgentTaskList | Error | null } = { settled: null };
    const poll = pollAgentTasks(deps, h.nqn, h.version, 60_000, { tokenHash: h.tokenHash }).then(
      (l) => (state.settled = l),
      (e: Error) => (state.settled = e),
    );
    await waitUntil(() => readsOf(h.nqn) === before + 1, { what: 'the poll parked' });
    // Another host's attachment: its commit must not make this poll read again.
    await attach(other);
    // A notification for this host without a change (what a second service process's token
    // check or a duplicate delivery looks like): one read, then it waits on.
    await t.db.raw('SELECT pg_notify(?, ?)', [HOST_CHANNEL, h.nqn]);
    await waitUntil(() => readsOf(h.nqn) === before + 2, { what: 'the woken poll read once' });
    assert.equal(state.settled, null, 'no answer without a change of the version');
    // A real change answers it.
    const a = await attach(h);
    await within(poll, 10_000, 'the poll answered');
    const answered = state.settled as AgentTaskList | Error | null;
    assert.ok(answered !== null && !(answered instanceof Error), String(answered));
    assert.deepEqual(
      answered.tasks.map((x) => x.attachmentId),
      [a.id],
    );
    assert.equal(readsOf(h.nqn) - before, 3, 'parked, the empty wake, the change; none for the other host');
  });

  it('a token replaced while the poll waits answers unauthorized at the wake', async () => {
    const h = await hostWithVolume();
    const before = readsOf(h.nqn);
    const poll = pollAgentTasks(deps, h.nqn, h.version, 60_000, { tokenHash: h.tokenHash });
    await waitUntil(() => readsOf(h.nqn) === before + 1, { what: 'the poll parked' });
    await deps.hosts.issueToken(h.nqn, 'h', `new-${h.tokenHash}`);
    await assert.rejects(within(poll, 10_000, 'the poll answered'), (e: unknown) => {
      assert.ok(e instanceof DriverError);
      assert.equal(e.code, 'unauthorized');
      return true;
    });
  });
  const path = (address: string, state: string) => ({
    transport: 'tcp',
    address,
    port: 4420,
    state,
    ana_state: 'optimized',
  });
  const report = (health: 'optimal' | 'degraded', paths: ReturnType<typeof path>[]) => ({
    state: 'connected' as const,
    devicePath: '/dev/nvme0n1',
    sizeBytes: 2 ** 30,
    health,
    paths: paths as never,
    error: null,
    reportedAt: new Date(),
  });
  const events = (id: string) =>
    t.db('attachment_events').where({ attachment_id: id }).orderBy('id') as Promise<
      { from_health: string | null; to_health: string | null }[]
    >;

  it('a report is one statement; concurrent reports of one attachment chain their history; another host’s is null', async () => {
    const h = await hostWithVolume();
    const a = await attach(h);
    // Eight connections: the reports really run side by side, each waiting for the row lock.
    const wide = createDb(t.url, { poolMax: 8 });
    const hosts = new PgHostStore(wide);
    let statements = 0;
    wide.on('query', () => void statements++);
    try {
      const good = report('optimal', [path('10.0.0.1', 'live'), path('10.0.0.2', 'live')]);
      const bad = report('degraded', [path('10.0.0.1', 'live'), path('10.0.0.2', 'connecting')]);
      const saved = await Promise.all(
        Array.from({ length: 16 }, (_, i) => hosts.saveReport(h.nqn, a.id, i % 2 ? bad : good)),
      );
      assert.ok(saved.every((x) => x?.id === a.id));
      assert.equal(statements, 16, 'one statement per report');
      const history = await events(a.id);
      assert.ok(history.length >= 1);
      history.forEach((e, i) => {
        // Each change against the report it followed: never one recorded twice or from a stale state.
        assert.equal(e.from_health, i === 0 ? null : history[i - 1]!.to_health, `event ${i}`);
        assert.notEqual(e.from_health, e.to_health, `event ${i} records a change`);
      });
      const row = (await t.db('attachments').where({ id: a.id }).first()) as { health: string };
      assert.equal(row.health, history.at(-1)!.to_health);
      const host = (await t.db('hosts').where({ nqn: h.nqn }).first()) as { last_seen_at: Date | null };
      assert.ok(host.last_seen_at, 'the host is marked seen');

      const other = await hostWithVolume();
      assert.equal(
        await hosts.saveReport(other.nqn, a.id, good),
        null,
        'another host’s attachment is none of its business',
      );
      assert.equal((await events(a.id)).length, history.length);
    } finally {
      await wide.destroy();
    }
  });

  it('a path change is recorded; the same paths in another order are not', async () => {
    const h = await hostWithVolume();
    const a = await attach(h);
    const one = path('10.0.0.1', 'live');
    const two = path('10.0.0.2', 'live');
    await deps.hosts.saveReport(h.nqn, a.id, report('optimal', [one, two]));
    await deps.hosts.saveReport(h.nqn, a.id, report('optimal', [two, one]));
    assert.equal((await events(a.id)).length, 1, 'the first report only');
    await deps.hosts.saveReport(h.nqn, a.id, report('optimal', [one, { ...two, ana_state: 'non-optimized' }]));
    assert.equal((await events(a.id)).length, 2, 'an ANA change of one path');
  });
});
