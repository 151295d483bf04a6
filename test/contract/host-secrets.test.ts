import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import knex from 'knex';
import { decodeDhchapSecret } from '../../src/driver/dhchap-key.ts';
import { advanceAllRotations } from '../../src/driver/host-secrets.ts';
import { lifecycleClient } from '../support/lifecycle.ts';
import { SimClient } from '../support/sim-client.ts';
import { byUrl, connector, NATIVE, startTarget, type Target } from '../support/target.ts';

// By URL (npm run test:contract:cli) the service's settings are the operator's, not the test's:
// these suites start their own service with and without PORTALIS_INBAND_AUTH / PORTALIS_SECRETS_KEY,
// and drive the rotation's periodic pass in-process.
const IN_PROCESS_ONLY = byUrl() && 'needs a service started with its own PORTALIS_INBAND_AUTH and secrets key';

type Pair = { generation: number; host_secret: string; ctrl_secret: string };
type Dhchap = { current: Pair; previous: Pair | null } | null;

/**
 * In-band authentication's service side, with PORTALIS_INBAND_AUTH=required against the
 * simulator over HTTP and a real PostgreSQL: secrets per host set at the backend when the host
 * is registered, delivered only on the host's own token, never on the admin API, and rotated
 * through a stored state machine that survives a failing backend and a silent agent.
 */
describe('host secrets (in-band authentication)', { skip: IN_PROCESS_ONLY }, () => {
  let t: Target;
  let api: ReturnType<typeof lifecycleClient>;
  const admin = () => ({ authorization: `Bearer ${t.token}` });
  const as = (token: string) => ({ authorization: `Bearer ${token}` });

  before(async () => {
    t = await startTarget({
      env: { PORTALIS_INBAND_AUTH: 'required', PORTALIS_SECRETS_KEY: randomBytes(32).toString('base64') },
    });
    api = lifecycleClient(t);
  });
  after(async () => t?.close());

  async function newHost() {
    const conn = connector(NATIVE) as Record<string, unknown> & { nqn: string };
    const r = await t.http.post('/v1/hosts').set(admin()).send({ nqn: conn.nqn, name: conn.host });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return { conn, token: r.body.token as string };
  }
  const secretsOf = async (token: string): Promise<Dhchap> => {
    const r = await t.http.get('/v1/agent/attachments').set(as(token));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.dhchap as Dhchap;
  };
  const status = (nqn: string) => t.http.get(`/v1/hosts/${encodeURIComponent(nqn)}/secrets`).set(admin());
  const rotate = (nqn: string) => t.http.post(`/v1/hosts/${encodeURIComponent(nqn)}/secrets/rotate`).set(admin());
  /** What the simulated LightOS accepts from the host now. */
  const atBackend = (nqn: string) => t.sim!.trustedHosts.secretsOf(nqn)?.hostSecret;

  /** A host with one attached volume whose agent reported every path authenticated with `generation`. */
  async function attachedHost(generation: number) {
    const h = await newHost();
    assert.equal((await t.http.post('/v1/agent/register').set(as(h.token)).send({ connector: h.conn })).status, 200);
    const vol = await api.created();
    const init = await api.init(vol.id, h.conn);
    assert.equal(init.status, 200, JSON.stringify(init.body));
    const attachmentId = init.body.attachment_id as string;
    /** `gen`: every path's generation, or one per path; the first `live` paths are live, the rest connecting. */
    const report = (gen: number | null | (number | null)[], live = 3) =>
      t.http
        .put(`/v1/agent/attachments/${attachmentId}/report`)
        .set(as(h.token))
        .send({
          state: 'connected',
          device_path: '/dev/nvme0n1',
          size_bytes: 1 << 30,
          health: 'optimal',
          paths: Array.from({ length: 3 }, (_, i) => ({
            controller: `nvme${i}`,
            address: '127.0.0.1',
            port: 4420 + i,
            transport: 'tcp',
            state: i < live ? 'live' : 'connecting',
            ana_state: i === 0 ? 'optimized' : 'non-optimized',
            auth_generation: Array.isArray(gen) ? gen[i] : gen,
          })),
          error: null,
        });
    assert.equal((await report(generation)).status, 200);
    return { ...h, report };
  }

  it('registering a host generates its pair, sets it at the backend and hands it to that host only', async () => {
    const a = await newHost();
    const b = await newHost();
    const sa = await secretsOf(a.token);
    const sb = await secretsOf(b.token);
    assert.ok(sa && sb);
    assert.equal(sa.current.generation, 1);
    assert.equal(sa.previous, null);
    for (const s of [sa.current.host_secret, sa.current.ctrl_secret])
      assert.equal(decodeDhchapSecret(s).secret.length, 32);
    assert.notEqual(sa.current.host_secret, sa.current.ctrl_secret);
    assert.equal(atBackend(a.conn.nqn), sa.current.host_secret);
    assert.equal(t.sim!.trustedHosts.secretsOf(a.conn.nqn)?.targetSecret, sa.current.ctrl_secret);
    // Host B's token never carries A's secrets, and A's old token stops getting them once replaced.
    assert.notEqual(sb.current.host_secret, sa.current.host_secret);
    assert.equal(JSON.stringify(sb).includes(sa.current.host_secret), false);
    const reissued = await t.http.post('/v1/hosts').set(admin()).send({ nqn: a.conn.nqn });
    assert.equal(reissued.status, 201);
    const old = await t.http.get('/v1/agent/attachments').set(as(a.token));
    assert.equal(old.status, 401);
    assert.equal(JSON.stringify(old.body).includes(sa.current.host_secret), false);
    assert.equal(
      (await secretsOf(reissued.body.token))!.current.host_secret,
      sa.current.host_secret,
      'same secrets, new token',
    );
    // The admin token is no agent token: it cannot read any host's list (nor its secrets).
    assert.equal((await t.http.get('/v1/agent/attachments').set(admin())).status, 403);
  });

  it('the admin API says where the secrets stand and never returns them', async () => {
    const a = await newHost();
    const s = (await secretsOf(a.token))!;
    const bodies = [
      await status(a.conn.nqn),
      await t.http.get(`/v1/hosts/${encodeURIComponent(a.conn.nqn)}`).set(admin()),
      await t.http.get('/v1/hosts').set(admin()),
      await t.http.post(`/v1/hosts/${encodeURIComponent(a.conn.nqn)}/secrets`).set(admin()),
    ];
    for (const r of bodies) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const text = JSON.stringify(r.body);
      assert.equal(text.includes('DHHC-1'), false, `a secret in ${text.slice(0, 200)}`);
      assert.equal(text.includes(s.current.host_secret), false);
    }
    assert.deepEqual(
      { ...bodies[0]!.body, updated_at: undefined },
      {
        host_nqn: a.conn.nqn,
        generation: 1,
        next_generation: null,
        step: 'idle',
        waiting_for: null,
        last_error: null,
        updated_at: undefined,
      },
    );
    assert.equal((await status('nqn.2014-08.org.example:nobody')).status, 404);
    // Admin only: the host's own token may not read where its secrets stand, nor rotate them.
    const path = `/v1/hosts/${encodeURIComponent(a.conn.nqn)}/secrets`;
    assert.equal((await t.http.get(path).set(as(a.token))).status, 403);
    assert.equal((await t.http.post(`${path}/rotate`).set(as(a.token))).status, 403);
    assert.equal((await t.http.post(`${path}/rotate`)).status, 401);
  });

  it('a rotation moves the host secret, then the controller secret, each handed to the agent until its paths move', async () => {
    const h = await attachedHost(1);
    const before1 = (await secretsOf(h.token))!;
    const r = await rotate(h.conn.nqn);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.step, 'at_backend');
    assert.equal(r.body.waiting_for, 'agent');
    const moving = (await secretsOf(h.token))!;
    assert.equal(moving.current.generation, 2);
    assert.deepEqual(moving.previous, before1.current);
    // One secret at a time (Linux re-authenticates on each sysfs write): a new host secret, the
    // controller secret in force kept.
    assert.notEqual(moving.current.host_secret, before1.current.host_secret);
    assert.equal(moving.current.ctrl_secret, before1.current.ctrl_secret, 'generation 2 keeps the controller secret');
    assert.equal(atBackend(h.conn.nqn), moving.current.host_secret, 'the backend has the new secret');
    // Two paths moved, one still live on generation 1: not yet.
    assert.equal((await h.report([2, 2, 1])).status, 200);
    assert.equal(
      (await rotate(h.conn.nqn)).body.waiting_for,
      'agent',
      'a path still on generation 1 holds the rotation',
    );
    assert.equal((await status(h.conn.nqn)).body.step, 'at_backend');
    // Every live path on generation 2 (a path that is down does not count): the controller secret follows.
    assert.equal((await h.report([2, 2, 1], 2)).status, 200);
    const half = await rotate(h.conn.nqn);
    assert.equal(half.status, 202, JSON.stringify(half.body));
    assert.deepEqual([half.body.generation, half.body.next_generation, half.body.step], [2, 3, 'at_backend']);
    const ctrlMoving = (await secretsOf(h.token))!;
    assert.equal(ctrlMoving.current.host_secret, moving.current.host_secret, 'generation 3 keeps the host secret');
    assert.notEqual(ctrlMoving.current.ctrl_secret, before1.current.ctrl_secret);
    assert.equal(ctrlMoving.previous?.generation, 2);
    assert.equal(t.sim!.trustedHosts.secretsOf(h.conn.nqn)?.targetSecret, ctrlMoving.current.ctrl_secret);
    assert.equal(await t.deps!.hostSecrets!.pair(h.conn.nqn, 1), null, 'generation 1 is retired in the database');
    assert.equal((await h.report(3)).status, 200);
    const done = await rotate(h.conn.nqn);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.step, 'idle');
    assert.equal(done.body.generation, 3);
    const after3 = (await secretsOf(h.token))!;
    assert.deepEqual(after3, { current: ctrlMoving.current, previous: null }, 'the old pairs are forgotten');
    assert.equal(await t.deps!.hostSecrets!.pair(h.conn.nqn, 2), null, 'generation 2 is retired in the database');
  });

  it('a host with a device whose every path is down is not rotated: the backend keeps the pair its paths hold', async () => {
    // Its controllers reconnect with the secret they hold; a one-pair backend holding only the new
    // one would refuse them for ever, and the agent can neither write a secret to a controller that
    // is not live (Linux 6.1) nor replace a device's last path.
    const h = await attachedHost(1);
    const old = (await secretsOf(h.token))!.current;
    assert.equal((await h.report(1, 0)).status, 200, 'every path connecting');
    const r = await rotate(h.conn.nqn);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual([r.body.step, r.body.waiting_for], ['staged', 'agent']);
    assert.match(r.body.last_error, /^staged: host_paths_down: attachment [0-9a-f-]+ has no live path/);
    assert.equal((await status(h.conn.nqn)).body.waiting_for, 'agent');
    assert.equal(atBackend(h.conn.nqn), old.host_secret, 'the backend still holds the pair in force');
    assert.deepEqual(await secretsOf(h.token), { current: old, previous: null });
    // One path back: the rotation goes on (the others are replaced by the agent once refused).
    assert.equal((await h.report(1, 1)).status, 200);
    const on = await rotate(h.conn.nqn);
    assert.deepEqual([on.body.step, on.body.next_generation, on.body.last_error], ['at_backend', 2, null]);
  });

  it('a retried rotate naming the generation it rotates away from never starts a second rotation', async () => {
    const h = await newHost();
    const rotateFrom = (g: number) =>
      t.http
        .post(`/v1/hosts/${encodeURIComponent(h.conn.nqn)}/secrets/rotate`)
        .query({ from_generation: g })
        .set(admin());
    // No attachments: both halves finish at once (generation 2 the host secret, 3 the controller secret).
    const first = await rotateFrom(1);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.generation, 3);
    const retried = await rotateFrom(1);
    assert.equal(retried.status, 200);
    assert.equal(retried.body.generation, 3, 'generation 1 is gone already: nothing new');
    assert.equal((await rotateFrom(3)).body.generation, 5, 'from the one in force: a new rotation');
    assert.equal((await rotateFrom(Number.NaN)).status, 400);
  });

  it('a backend failing mid-way leaves the old secret working everywhere; repeating the call finishes', async () => {
    const h = await attachedHost(1);
    const old = (await secretsOf(h.token))!.current;
    await new SimClient(t.simUrl, { jwt: t.simJwt }).faults({ failNext: { count: 1, status: 500, method: 'PUT' } });
    const failed = await rotate(h.conn.nqn);
    assert.equal(failed.status, 502, JSON.stringify(failed.body));
    const s = (await status(h.conn.nqn)).body;
    assert.equal(s.step, 'staged');
    assert.equal(s.next_generation, 2);
    assert.equal(s.waiting_for, 'backend');
    assert.match(s.last_error, /^staged: backend_error/);
    assert.equal(atBackend(h.conn.nqn), old.host_secret, 'the backend still accepts the old secret');
    const still = (await secretsOf(h.token))!;
    assert.deepEqual(still, { current: old, previous: null }, 'the agent keeps the old secret');
    const resumed = await rotate(h.conn.nqn);
    assert.equal(resumed.status, 202, JSON.stringify(resumed.body));
    assert.equal(resumed.body.next_generation, 2, 'resumed, not a third generation');
    assert.equal(resumed.body.last_error, null);
    assert.equal((await secretsOf(h.token))!.current.generation, 2);
  });

  it('a backend failing at registration still registers the host; the periodic pass sets its secrets later', async () => {
    await new SimClient(t.simUrl, { jwt: t.simJwt }).faults({ failNext: { count: 1, status: 500, method: 'POST' } });
    const h = await newHost();
    const s = (await status(h.conn.nqn)).body;
    assert.deepEqual([s.generation, s.next_generation, s.step, s.waiting_for], [0, 1, 'staged', 'backend']);
    assert.match(s.last_error, /backend_error/);
    assert.equal(await secretsOf(h.token), null, 'nothing handed out that the backend does not accept');
    assert.equal(t.sim!.trustedHosts.has(h.conn.nqn), false);
    await advanceAllRotations(t.deps!);
    assert.equal((await status(h.conn.nqn)).body.step, 'idle');
    assert.equal((await secretsOf(h.token))!.current.host_secret, atBackend(h.conn.nqn));
  });

  it('an agent that never confirms keeps the rotation waiting, both pairs valid; repeating it starts nothing new', async () => {
    const h = await attachedHost(1);
    const first = await rotate(h.conn.nqn);
    assert.equal(first.status, 202);
    for (let i = 0; i < 3; i++) {
      const again = await rotate(h.conn.nqn);
      assert.equal(again.status, 202);
      assert.equal(again.body.next_generation, 2);
      assert.equal(again.body.waiting_for, 'agent');
    }
    const s = (await secretsOf(h.token))!;
    assert.equal(s.current.generation, 2);
    assert.equal(s.previous?.generation, 1, 'the agent still holds the old pair for its unmoved paths');
    assert.deepEqual(await t.deps!.hostSecrets!.unfinished().then((l) => l.includes(h.conn.nqn)), true);
    // When the agent does confirm, the fleet's periodic pass takes it on without another call:
    // to the controller secret's half, then, once confirmed too, to the end.
    assert.equal((await h.report(2)).status, 200);
    await advanceAllRotations(t.deps!);
    assert.deepEqual(
      [(await status(h.conn.nqn)).body.next_generation, (await status(h.conn.nqn)).body.waiting_for],
      [3, 'agent'],
    );
    assert.equal((await h.report(3)).status, 200);
    const pass = await advanceAllRotations(t.deps!);
    assert.ok(pass.advanced >= 1, JSON.stringify(pass));
    assert.equal((await status(h.conn.nqn)).body.step, 'idle');
    assert.equal((await secretsOf(h.token))!.previous, null);
  });

  it('secrets this replica cannot open: the poll still lists the attachments without them, rotate is a 503', async () => {
    // A replica with another PORTALIS_SECRETS_KEY, or a damaged row: the host keeps its
    // attachments (and the secrets it holds), the operator gets a typed error, never a 500.
    const h = await attachedHost(1);
    const db = knex({ client: 'pg', connection: t.databaseUrl! });
    try {
      await db.raw(
        `UPDATE host_secrets SET host_secret = set_byte(host_secret, length(host_secret) - 1,
            get_byte(host_secret, length(host_secret) - 1) # 1) WHERE host_nqn = ?`,
        [h.conn.nqn],
      );
    } finally {
      await db.destroy();
    }
    const list = await t.http.get('/v1/agent/attachments').set(as(h.token));
    assert.equal(list.status, 200, JSON.stringify(list.body));
    assert.equal('dhchap' in list.body, false);
    assert.equal(list.body.attachments.length, 1);
    const r = await rotate(h.conn.nqn);
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'secrets_unreadable');
    assert.match(r.body.error.message, /PORTALIS_SECRETS_KEY/);
  });
});

describe('host secrets without a secrets key', { skip: IN_PROCESS_ONLY }, () => {
  let t: Target;
  before(async () => {
    t = await startTarget();
  });
  after(async () => t?.close());

  it('auth is off: no secrets on the agent channel, and asking for them is a 409 naming the setting', async () => {
    const conn = connector(NATIVE) as { nqn: string };
    const r = await t.http
      .post('/v1/hosts')
      .set({ authorization: `Bearer ${t.token}` })
      .send({ nqn: conn.nqn });
    const list = await t.http.get('/v1/agent/attachments').set({ authorization: `Bearer ${r.body.token}` });
    assert.equal(list.status, 200);
    assert.equal('dhchap' in list.body, false);
    const asked = await t.http
      .post(`/v1/hosts/${encodeURIComponent(conn.nqn)}/secrets/rotate`)
      .set({ authorization: `Bearer ${t.token}` });
    assert.equal(asked.status, 409);
    assert.equal(asked.body.error.code, 'auth_not_configured');
    assert.match(asked.body.error.message, /PORTALIS_SECRETS_KEY/);
    assert.equal(t.sim!.trustedHosts.has(conn.nqn), false, 'nothing set at the backend');
  });
});
