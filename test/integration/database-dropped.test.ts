import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import knexFactory from 'knex';
import { poll } from '../../src/shared/poll.ts';
import { aclMismatches } from '../support/consistency.ts';
import { lifecycleClient } from '../support/lifecycle.ts';
import { connector, NATIVE, startTarget, type Target } from '../support/target.ts';

/**
 * PostgreSQL drops the service's sessions while requests run (pg_terminate_backend from another
 * session, as an operator, a failover or a connection pooler restart does): every answer is a
 * 2xx, a 4xx or a `503 service_unavailable`, never a 500 nor a broken connection, and once the
 * drops stop the same process serves everything again, its long polls woken by the change feed.
 */
describe('PostgreSQL sessions dropped under concurrent traffic', () => {
  let t: Target;
  let api: ReturnType<typeof lifecycleClient>;
  const admin = knexFactory({ client: 'pg', connection: process.env.DATABASE_URL, pool: { min: 0, max: 1 } });
  const WORKERS = 6;
  const ROUNDS = Number(process.env.PORTALIS_DB_DROP_ROUNDS ?? 12);
  const hosts: { conn: Record<string, unknown>; token: string; volumeId: string }[] = [];

  before(async () => {
    t = await startTarget({ listen: true });
    api = lifecycleClient(t);
    for (let i = 0; i < WORKERS; i++) {
      const conn = connector(NATIVE);
      const r = await t.http.post('/v1/hosts').set(api.auth()).send({ nqn: conn.nqn });
      assert.equal(r.status, 201);
      const reg = await t.http
        .post('/v1/agent/register')
        .set('authorization', `Bearer ${r.body.token}`)
        .send({ connector: conn });
      assert.equal(reg.status, 200);
      hosts.push({ conn, token: r.body.token, volumeId: (await api.created({ multiattach: true })).id });
    }
  });
  after(async () => {
    await t?.close();
    await admin.destroy();
  });

  const terminateSessions = async (): Promise<number> => {
    const r = await admin.raw(
      'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid()',
      [t.databaseName!],
    );
    return r.rows[0].n as number;
  };

  it('answers only 2xx, 4xx or 503 while sessions drop, and recovers without a restart', async (ctx) => {
    const statuses = new Map<number, number>();
    const unexpected: string[] = [];
    let completed = 0;
    let stop = false;

    const record = (what: string, r: { status: number; body: any }) => {
      completed += 1;
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      const ok = (r.status >= 200 && r.status < 500) || r.status === 503;
      if (!ok) unexpected.push(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
      // /readyz answers its own Health body, also when not ready.
      if (r.status >= 400 && what !== 'readyz' && typeof r.body?.error?.code !== 'string')
        unexpected.push(`${what}: ${r.status} without an error body: ${JSON.stringify(r.body)}`);
    };
    const call = async (what: string, req: PromiseLike<{ status: number; body: any }>) => {
      try {
        const r = await req;
        record(what, r);
        return r;
      } catch (e) {
        completed += 1;
        unexpected.push(`${what}: no answer (${(e as Error).message})`);
        return null;
      }
    };

    async function worker(i: number): Promise<void> {
      const h = hosts[i]!;
      const as = { authorization: `Bearer ${h.token}` };
      let attachmentId: string | null = null;
      for (let n = 0; !stop; n++) {
        switch (n % 8) {
          case 0:
            await call('list attachments', t.http.get('/v1/attachments').set(api.auth()));
            break;
          case 1:
            await call('agent poll', t.http.get('/v1/agent/attachments').query({ wait: 0 }).set(as));
            break;
          case 2: {
            const r = await call(
              'initialize_connection',
              api.init(h.volumeId, h.conn, { instance_uuid: randomUUID() }),
            );
            if (r?.status === 200) attachmentId = r.body.attachment_id;
            break;
          }
          case 3:
            if (attachmentId)
              await call(
                'agent report',
                t.http
                  .put(`/v1/agent/attachments/${attachmentId}/report`)
                  .set(as)
                  .send({
                    state: 'connected',
                    device_path: '/dev/nvme0n1',
                    size_bytes: 1 << 30,
                    health: 'optimal',
                    paths: [],
                    error: null,
                  }),
              );
            break;
          case 4:
            if (attachmentId)
              await call(
                'terminate_connection',
                api.term(h.volumeId, { connector: h.conn, attachment_id: attachmentId, force: true }),
              );
            break;
          case 5:
            await call('create volume', api.create());
            break;
          case 6:
            await call('get volume', api.get(h.volumeId));
            break;
          case 7:
            await call('readyz', t.http.get('/readyz'));
            break;
        }
      }
    }

    const workers = Array.from({ length: WORKERS }, (_, i) => worker(i));
    let terminated = 0;
    try {
      // Drop every session of the service each time the traffic has moved on by 20 requests.
      for (let round = 0; round < ROUNDS; round++) {
        const from = completed;
        const moved = await poll(
          () => (completed >= from + 20 ? { done: true, value: 0 } : { done: false, last: completed }),
          {
            deadlineMs: 30_000,
            intervalMs: 5,
          },
        );
        assert.ok(moved.done, `traffic stalled after round ${round} (${completed} requests)`);
        terminated += await terminateSessions();
      }
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    const figures = JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)));
    assert.deepEqual(unexpected, [], `statuses ${figures}`);
    assert.ok(terminated >= ROUNDS, `sessions were terminated (${terminated})`);

    // Recovery, same process: every kind of call is served again.
    const back = await poll(
      async () => {
        const [list, ready] = await Promise.all([t.http.get('/v1/attachments').set(api.auth()), t.http.get('/readyz')]);
        return list.status === 200 && ready.status === 200
          ? { done: true as const, value: true }
          : { done: false as const, last: [list.status, ready.status] };
      },
      { deadlineMs: 30_000, intervalMs: 50 },
    );
    assert.ok(back.done, `the service answers again (last: ${JSON.stringify(back.done ? null : back.last)})`);

    // The change feed listens again (its own session, re-established after being dropped) ...
    const listening = await poll(
      async () => {
        const r = await admin.raw("SELECT 1 FROM pg_stat_activity WHERE datname = ? AND query ILIKE 'LISTEN%'", [
          t.databaseName!,
        ]);
        return r.rows.length > 0 ? { done: true as const, value: true } : { done: false as const, last: r.rows };
      },
      { deadlineMs: 30_000, intervalMs: 50 },
    );
    assert.ok(listening.done, 'the host change feed listens again');
    // ... and wakes a long poll on the next change, long before its wait runs out.
    const h = hosts[0]!;
    const as = { authorization: `Bearer ${h.token}` };
    const v0 = (await t.http.get('/v1/agent/attachments').set(as)).body.version;
    const started = Date.now();
    const woken = t.http
      .get('/v1/agent/attachments')
      .query({ since: v0, wait: 60 })
      .set(as)
      .then((r) => r);
    const vol = (await api.created()).id;
    const init = await api.init(vol, h.conn);
    assert.equal(init.status, 200, JSON.stringify(init.body));
    const r = await woken;
    assert.equal(r.status, 200);
    assert.notEqual(r.body.version, v0);
    assert.ok(Date.now() - started < 60_000, 'woken by the change, not by the end of its wait');
    // It may wake on the first step of the attach (the record before its connection info); the
    // next polls list the attachment.
    const listed = await poll(
      async () => {
        const p = await t.http.get('/v1/agent/attachments').set(as);
        const found = p.body.attachments?.some((a: { id: string }) => a.id === init.body.attachment_id);
        return found ? { done: true as const, value: true } : { done: false as const, last: p.body };
      },
      { deadlineMs: 10_000, intervalMs: 50 },
    );
    assert.ok(
      listed.done,
      `the agent's list shows the new attachment: ${JSON.stringify(listed.done ? null : listed.last)}`,
    );

    // Nothing half-done holds backend access it should not.
    assert.deepEqual(await aclMismatches(t), []);
    ctx.diagnostic(`${completed} requests, ${terminated} sessions terminated, statuses ${figures}`);
  });
});
