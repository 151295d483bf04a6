import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type LifecycleClient, startSuite } from '../support/lifecycle.ts';
import { AGENT, connector, NATIVE, type Target } from '../support/target.ts';
import type { SimClient } from '../support/sim-client.ts';

/**
 * Detaching never pulls a volume from under its user: an ambiguous terminate is refused, a host
 * with a registered agent keeps its access until the agent has released the device, and
 * differently written UUIDs are one volume.
 */
describe('detach safety', () => {
  let t: Target;
  let sim: SimClient;
  let api: LifecycleClient;
  before(async () => ({ t, sim, api } = await startSuite()));
  after(async () => t?.close());

  it("a terminate that does not say which of a host's attachments is refused; nothing changes", async () => {
    const vol = await api.created({ multiattach: true });
    const conn = connector(NATIVE);
    const a1 = await api.init(vol.id, conn, { instance_uuid: randomUUID() });
    const a2 = await api.init(vol.id, conn, { instance_uuid: randomUUID() });
    const r = await api.term(vol.id, { connector: conn });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'ambiguous_attachment');
    assert.match(r.body.error.message, /instance_uuid or attachment_id/);
    assert.deepEqual(await sim.acl(vol.backend_uuid), [conn.nqn]);
    for (const a of [a1, a2]) assert.equal((await api.attachment(a.body.attachment_id)).status, 'attached');

    const forced = await api.term(vol.id, { connector: conn, force: true });
    assert.equal(forced.status, 200);
    assert.deepEqual(forced.body.detached.sort(), [a1.body.attachment_id, a2.body.attachment_id].sort());
    assert.equal(forced.body.revoked, true);
  });

  it('upper- and lower-case spellings of a volume id are one volume, one lock and one attachment', async () => {
    const vol = await api.created();
    const conn = connector(NATIVE);
    const [a, b] = await Promise.all([api.init(vol.id, conn), api.init(vol.id.toUpperCase(), conn)]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(a.body.attachment_id, b.body.attachment_id);
    // Two hosts racing for a volume without multiattach through both spellings: one wins.
    const other = await api.created();
    const results = await Promise.all([api.init(other.id, connector()), api.init(other.id.toUpperCase(), connector())]);
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 409]);
    const instance = randomUUID();
    const shared = await api.created({ multiattach: true });
    const h = connector();
    const i1 = await api.init(shared.id, h, { instance_uuid: instance });
    const i2 = await api.init(shared.id, h, { instance_uuid: instance.toUpperCase() });
    assert.equal(i1.body.attachment_id, i2.body.attachment_id, 'instance ids compare without case');
  });

  it('a host with a registered agent keeps its access until the agent has released the device', async () => {
    const conn = connector({ ...NATIVE, ...AGENT });
    const issued = await t.http.post('/v1/hosts').set(api.auth()).send({ nqn: conn.nqn });
    const agent = { authorization: `Bearer ${issued.body.token}` };
    assert.equal((await t.http.post('/v1/agent/register').set(agent).send({ connector: conn })).status, 200);
    const vol = await api.created();
    const id = (await api.init(vol.id, conn)).body.attachment_id;
    const report = (state: string, error: unknown = null) =>
      t.http
        .put(`/v1/agent/attachments/${id}/report`)
        .set(agent)
        .send({
          state,
          device_path: state === 'disconnected' ? null : '/dev/nvme0n1',
          size_bytes: null,
          health: null,
          paths: [],
          error,
        });
    assert.equal((await report('connected')).status, 200);

    const r = await api.term(vol.id, { connector: conn });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { revoked: false, shared: false, detached: [], revoked_hosts: [], pending: [id] });
    assert.equal((await api.attachment(id)).status, 'detaching');
    assert.deepEqual(await sim.acl(vol.backend_uuid), [conn.nqn], 'access stays while the device may be in use');
    const tasks = (await t.http.get('/v1/agent/attachments').set(agent)).body.attachments;
    assert.deepEqual(
      tasks.map((x: { id: string; desired: string }) => [x.id, x.desired]),
      [[id, 'disconnected']],
    );

    // The agent refuses: the device is mounted. Nothing moves.
    assert.equal(
      (await report('error', { code: 'in_use', message: 'refusing to detach: /dev/nvme0n1 is mounted on /mnt' }))
        .status,
      200,
    );
    assert.equal((await api.attachment(id)).status, 'detaching');
    assert.deepEqual(await sim.acl(vol.backend_uuid), [conn.nqn]);

    // Released: the access goes, the attachment ends.
    assert.equal((await report('disconnected')).status, 200);
    assert.equal((await api.attachment(id)).status, 'detached');
    assert.deepEqual(await sim.acl(vol.backend_uuid), []);
    const again = await api.term(vol.id, { connector: conn });
    assert.deepEqual(again.body, { revoked: false, shared: false, detached: [], revoked_hosts: [], pending: [] });
  });

  it('force on an agent host revokes at once and tells the agent to tear down even a device in use', async () => {
    const conn = connector({ ...NATIVE, ...AGENT });
    const issued = await t.http.post('/v1/hosts').set(api.auth()).send({ nqn: conn.nqn });
    const agent = { authorization: `Bearer ${issued.body.token}` };
    await t.http.post('/v1/agent/register').set(agent).send({ connector: conn });
    const vol = await api.created();
    const id = (await api.init(vol.id, conn)).body.attachment_id;
    const r = await api.term(vol.id, { connector: conn, force: true });
    assert.deepEqual(r.body, { revoked: true, shared: false, detached: [id], revoked_hosts: [conn.nqn], pending: [] });
    assert.deepEqual(await sim.acl(vol.backend_uuid), []);
    const tasks = (await t.http.get('/v1/agent/attachments').set(agent)).body.attachments;
    assert.deepEqual(
      tasks.map((x: { id: string; desired: string; force: boolean }) => [x.id, x.desired, x.force]),
      [[id, 'disconnected', true]],
    );
  });

  it('a terminate repeated after the volume was deleted is harmless', async () => {
    const vol = await api.created();
    const conn = connector();
    await api.init(vol.id, conn);
    assert.equal((await api.del(vol.id, true)).status, 204);
    const r = await api.term(vol.id, { connector: conn });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { revoked: false, shared: false, detached: [], revoked_hosts: [], pending: [] });
  });
});
