import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import { lifecycleClient } from '../support/lifecycle.ts';
import { connector, NATIVE, startTarget, type Target } from '../support/target.ts';
import { SimClient } from '../support/sim-client.ts';

/**
 * Backend failures reach the orchestrator as 502/503/504 naming the operation, and leave no
 * half-done state: never an ACL entry without an attachment record, never an `attached`
 * record without an ACL entry; a retry converges.
 */
describe('backend faults', () => {
  let t: Target;
  let sim: SimClient;
  let api: ReturnType<typeof lifecycleClient>;

  before(async () => {
    t = await startTarget({ proxy: true, requestTimeoutMs: 300, operationTimeoutMs: 1500 });
    sim = new SimClient(t.simUrl, { jwt: t.simJwt });
    api = lifecycleClient(t);
  });
  after(async () => t?.close());
  beforeEach(async () => {
    await sim.clearFaults();
    if (t.proxy && !(await reachable())) await t.proxy.start();
  });

  async function reachable(): Promise<boolean> {
    return fetch(t.proxy!.url + '/api/v2/clusterinfo').then(
      () => true,
      () => false,
    );
  }

  it('an attaching record the database refuses: the grant, whose reads ran beside the insert, writes nothing', async () => {
    const vol = await api.created();
    const conn = connector(NATIVE);
    // A real refusal of this one insert by PostgreSQL itself (a trigger), nothing faked in the service.
    const db = new pg.Client({ connectionString: t.databaseUrl });
    await db.connect();
    const fn = `refuse_${randomUUID().replaceAll('-', '')}`;
    try {
      await db.query(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'refused for the test'; END $$`);
      await db.query(`CREATE TRIGGER ${fn} BEFORE INSERT ON attachments FOR EACH ROW
        WHEN (NEW.host_nqn = '${conn.nqn}') EXECUTE FUNCTION ${fn}()`);
      const r = await api.init(vol.id, conn);
      assert.ok(r.status >= 500, JSON.stringify(r.body));
      assert.deepEqual(await sim.acl(vol.backend_uuid), []);
      assert.deepEqual(await api.attachments(vol.id), []);
    } finally {
      await db.query(`DROP TRIGGER IF EXISTS ${fn} ON attachments`);
      await db.query(`DROP FUNCTION IF EXISTS ${fn}()`);
      await db.end();
    }
    const again = await api.init(vol.id, conn);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.deepEqual(await sim.acl(vol.backend_uuid), [conn.nqn]);
  });

  it('a 5xx on the ACL update is a 502 naming the operation; nothing granted, the retry succeeds', async () => {
    const vol = await api.created();
    const conn = connector(NATIVE);
    await sim.faults({ failNext: { count: 1, status: 500, method: 'PUT', path: '/volumes/' } });
    const r = await api.init(vol.id, conn);
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'backend_error');
    assert.match(r.body.error.message, /grantAccess/);
    assert.deepEqual(await sim.acl(vol.backend_uuid), []);
    assert.deepEqual(
      (await api.attachments(vol.id)).map((a) => a.status),
      ['error'],
    );

    const again = await api.init(vol.id, conn);
    assert.equal(again.status, 200);
    assert.deepEqual(await sim.acl(vol.backend_uuid), [conn.nqn]);
  });

  it('a failure after the grant (reading the nodes) revokes the new grant again', async () => {
    const vol = await api.created();
    await sim.faults({ failNext: { count: 1, status: 500, method: 'GET', path: '/nodes' } });
    const r = await api.init(vol.id, connector(NATIVE));
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.deepEqual(await sim.acl(vol.backend_uuid), []);
    assert.deepEqual(
      (await api.attachments(vol.id)).map((a) => a.status),
      ['error'],
    );
  });

  it('a backend that never answers is a 504 naming the operation; nothing granted', async () => {
    const vol = await api.created();
    await sim.faults({ hangNext: { count: 1000, method: 'PUT' } });
    const r = await api.init(vol.id, connector(NATIVE));
    assert.equal(r.status, 504, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'backend_timeout');
    assert.match(r.body.error.message, /grantAccess/);
    await sim.clearFaults();
    assert.deepEqual(await sim.acl(vol.backend_uuid), []);
    assert.ok((await api.attachments(vol.id)).every((a) => a.status !== 'attached'));
  });

  it('a backend refusing connections is a 503; the recorded attaching row converges on retry', async () => {
    const vol = await api.created();
    const conn = connector(NATIVE);
    await t.proxy!.stop();
    const r = await api.init(vol.id, conn);
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'backend_unavailable');
    assert.match(r.body.error.message, /grantAccess/);
    // Nothing is active: the attempt is recorded as `attaching`, since the backend could not
    // even be asked to undo it.
    const rows = await api.attachments(vol.id);
    assert.deepEqual(
      rows.map((a) => a.status),
      ['attaching'],
    );

    await t.proxy!.start();
    const again = await api.init(vol.id, conn);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.attachment_id, rows[0]!.id);
    assert.deepEqual(await sim.acl(vol.backend_uuid), [conn.nqn]);
    const ready = await t.http.get('/readyz');
    assert.equal(ready.status, 200);
  });

  it('readiness reports an unreachable backend as 503', async () => {
    await t.proxy!.stop();
    const r = await t.http.get('/readyz');
    assert.equal(r.status, 503);
    assert.equal(r.body.checks.backend.ok, false);
    assert.equal(r.body.checks.database.ok, true);
  });

  it('a failed revoke leaves the attachment detaching with access intact; the retried terminate finishes it', async () => {
    const vol = await api.created();
    const conn = connector(NATIVE);
    const a = await api.init(vol.id, conn);
    await sim.faults({ failNext: { count: 1, status: 503, method: 'PUT', path: '/volumes/' } });
    const r = await api.term(vol.id, { connector: conn, force: false });
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.match(r.body.error.message, /revokeAccess/);
    assert.deepEqual(
      (await api.attachments(vol.id)).map((x) => x.status),
      ['detaching'],
    );
    assert.deepEqual(await sim.acl(vol.backend_uuid), [conn.nqn]);

    const again = await api.term(vol.id, { connector: conn, force: false });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, {
      revoked: true,
      shared: false,
      detached: [a.body.attachment_id],
      revoked_hosts: [conn.nqn],
      pending: [],
    });
    assert.deepEqual(await sim.acl(vol.backend_uuid), []);
  });

  it('a failed create is a 502 and leaves the volume in error; the retried create finishes it', async () => {
    const id = randomUUID();
    await sim.faults({ failNext: { count: 1, status: 500, method: 'POST', path: '/volumes' } });
    const r = await api.create({ id });
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.match(r.body.error.message, /createVolume/);
    assert.equal((await api.get(id)).body.status, 'error');
    const again = await api.create({ id });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.status, 'available');
  });

  it('a volume that ends Failed on the backend is cleaned up and reported', async () => {
    await sim.faults({ failCreate: true });
    const id = randomUUID();
    const r = await api.create({ id });
    assert.equal(r.status, 502, JSON.stringify(r.body));
    const state = await sim.state();
    assert.equal(
      state.volumes.some((v: { name: string }) => v.name === `volume-${id}`),
      false,
      'the Failed volume was deleted',
    );
  });
});
