import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type LifecycleClient, startSuite, simVolume } from '../support/lifecycle.ts';
import { connector, NATIVE, type Target } from '../support/target.ts';
import type { SimClient } from '../support/sim-client.ts';
import { GiB } from '../../src/shared/units.ts';

const QOS = '2a9c1f4e-7b3d-4e8a-9f61-5d2c0b7a8e93';

/**
 * Create with options, delete and extend, through the real app, a real PostgreSQL and the
 * simulator over HTTP; in-process or by URL (test/support/target.ts). No faults here: those are
 * in lifecycle-faults.test.ts, the one contract file that sets them (by URL the simulator is
 * shared by every test file).
 */
describe('volume lifecycle: create options, delete, extend', () => {
  let t: Target;
  let sim: SimClient;
  let api: LifecycleClient;
  before(async () => ({ t, sim, api } = await startSuite()));
  after(async () => t?.close());

  describe('create', () => {
    it('passes replicas, compression and the QoS policy to the backend and reports them', async () => {
      const r = await api.create({ size_gb: 2, replicas: 2, compression: true, qos_policy_id: QOS, multiattach: true });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.name, `volume-${r.body.id}`);
      assert.equal(r.body.status, 'available');
      assert.deepEqual(
        {
          size_gb: r.body.size_gb,
          replicas: r.body.replicas,
          compression: r.body.compression,
          thin: r.body.thin_provisioned,
          qos: r.body.qos_policy_id,
          multiattach: r.body.multiattach,
          source: r.body.source,
        },
        { size_gb: 2, replicas: 2, compression: true, thin: true, qos: QOS, multiattach: true, source: null },
      );
      const b = await simVolume(t, r.body.name);
      assert.ok(b, 'the backend volume exists under the Cinder name');
      assert.equal(b.UUID, r.body.backend_uuid);
      assert.equal(Number(b.size), 2 * GiB);
      assert.equal(b.replicaCount, 2);
      assert.equal(b.compression, 'true');
      assert.equal(b.qosPolicyUUID, QOS);
    });

    it('defaults: no compression, thin, no QoS policy', async () => {
      const v = await api.created();
      const b = await simVolume(t, v.name);
      assert.equal(b?.compression, 'false');
      assert.equal(b?.qosPolicyUUID, '');
      const r = await api.get(v.id);
      assert.deepEqual([r.body.compression, r.body.thin_provisioned, r.body.qos_policy_id], [false, true, null]);
    });

    it('a retried create returns the volume (200); other parameters are a 409 naming them', async () => {
      const v = await api.created({ compression: true, qos_policy_id: QOS });
      const again = await api.create({ id: v.id, compression: true, qos_policy_id: QOS });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.backend_uuid, v.backend_uuid);
      for (const [field, body] of [
        ['compression', { compression: false, qos_policy_id: QOS }],
        ['qos_policy_id', { compression: true }],
        ['size_gb', { size_gb: 2, compression: true, qos_policy_id: QOS }],
      ] as const) {
        const r = await api.create({ id: v.id, ...body });
        assert.equal(r.status, 409, `${field}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, 'already_exists');
        assert.deepEqual(r.body.error.details.fields, [field]);
      }
    });

    it('thin_provisioned false is refused with a 400 naming it, and nothing is created', async () => {
      const id = randomUUID();
      const r = await api.create({ id, thin_provisioned: false });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error.message, /thin_provisioned/);
      assert.equal((await api.get(id)).status, 404);
      assert.equal(await simVolume(t, `volume-${id}`), null);
    });

    it('a missing source is a 404 naming it; a source with both kinds is a 400', async () => {
      const id = randomUUID();
      const s = await api.create({ id, source: { snapshot_id: randomUUID() } });
      assert.equal(s.status, 404, JSON.stringify(s.body));
      assert.equal(s.body.error.code, 'snapshot_not_found');
      assert.match(s.body.error.message, /source\.snapshot_id/);
      const v = await api.create({ id, source: { volume_id: randomUUID() } });
      assert.equal(v.status, 404, JSON.stringify(v.body));
      assert.equal(v.body.error.code, 'volume_not_found');
      const both = await api.create({ id, source: { volume_id: randomUUID(), snapshot_id: randomUUID() } });
      assert.equal(both.status, 400, JSON.stringify(both.body));
      assert.match(both.body.error.message, /source/);
      assert.equal((await api.get(id)).status, 404, 'a refused create leaves no record');
    });

    it('a volume cannot be a clone of itself', async () => {
      const id = randomUUID();
      const r = await api.create({ id, source: { volume_id: id } });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error.message, /source\.volume_id/);
    });
  });

  describe('delete', () => {
    it('deletes on the backend and answers 204; again, and for an unknown id, still 204', async () => {
      const v = await api.created();
      const r = await api.del(v.id);
      assert.equal(r.status, 204, JSON.stringify(r.body));
      assert.equal((await api.get(v.id)).status, 404);
      assert.equal(await simVolume(t, v.name), null, 'gone from the backend');
      assert.equal((await api.del(v.id)).status, 204);
      assert.equal((await api.del(randomUUID())).status, 204);
    });

    it('is refused with 409 volume_in_use while attached; works after terminate', async () => {
      const v = await api.created();
      const conn = connector(NATIVE);
      const a = await api.init(v.id, conn);
      assert.equal(a.status, 200);
      const r = await api.del(v.id);
      assert.equal(r.status, 409, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'volume_in_use');
      assert.deepEqual(
        r.body.error.details.attachments.map((x: { id: string }) => x.id),
        [a.body.attachment_id],
      );
      assert.equal((await api.get(v.id)).body.status, 'available', 'a refused delete changes nothing');
      assert.deepEqual(await sim.acl(v.backend_uuid), [conn.nqn]);

      assert.equal((await api.term(v.id, { connector: conn })).status, 200);
      assert.equal((await api.del(v.id)).status, 204);
      assert.equal(await simVolume(t, v.name), null);
    });

    it('force=true revokes every host and detaches every attachment first', async () => {
      const v = await api.created({ multiattach: true });
      const [h1, h2] = [connector(NATIVE), connector()];
      assert.equal((await api.init(v.id, h1)).status, 200);
      assert.equal((await api.init(v.id, h2)).status, 200);
      const r = await api.del(v.id, true);
      assert.equal(r.status, 204, JSON.stringify(r.body));
      assert.equal(await simVolume(t, v.name), null);
      const rows = await api.attachments(v.id);
      assert.deepEqual(
        rows.map((a) => a.status),
        ['detached', 'detached'],
        'the attachment records stay, ended, for the host agents',
      );
      assert.ok(rows.every((a) => a.detached_at !== null));
      assert.ok(
        rows.every((a) => a.force === true),
        'flagged force: the agents tear down even a device in use',
      );
    });

    it('an id used again after its volume was deleted creates a new volume', async () => {
      const v = await api.created({ size_gb: 1 });
      assert.equal((await api.del(v.id)).status, 204);
      const again = await api.create({ id: v.id, size_gb: 2 });
      assert.equal(again.status, 201, JSON.stringify(again.body));
      assert.equal(again.body.size_gb, 2);
      assert.notEqual(again.body.backend_uuid, v.backend_uuid);
    });
  });

  describe('extend', () => {
    it('grows the backend volume and the record; the same size again is a no-op', async () => {
      const v = await api.created({ size_gb: 1 });
      const r = await api.extend(v.id, 3);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.size_gb, 3);
      assert.equal(Number((await simVolume(t, v.name))?.size), 3 * GiB);
      assert.equal((await api.get(v.id)).body.size_gb, 3);
      const same = await api.extend(v.id, 3);
      assert.equal(same.status, 200);
      assert.equal(same.body.size_gb, 3);
    });

    it('shrinking is a 400 naming new_size_gb; nothing changes', async () => {
      const v = await api.created({ size_gb: 2 });
      const r = await api.extend(v.id, 1);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'invalid_request');
      assert.match(r.body.error.message, /new_size_gb/);
      assert.equal(Number((await simVolume(t, v.name))?.size), 2 * GiB);
    });

    it('online: an attached volume grows, its attachment and ACL stay, a repeated initialize returns the same attachment', async () => {
      const v = await api.created({ size_gb: 1 });
      const conn = connector(NATIVE);
      const a = await api.init(v.id, conn);
      assert.equal(a.status, 200);
      const r = await api.extend(v.id, 4);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const state = await sim.state();
      assert.equal(state.volumes.find((x: { uuid: string }) => x.uuid === v.backend_uuid).sizeBytes, 4 * GiB);
      assert.deepEqual(await sim.acl(v.backend_uuid), [conn.nqn]);
      const rows = await api.attachments(v.id);
      assert.deepEqual(
        rows.map((x) => [x.id, x.status]),
        [[a.body.attachment_id, 'attached']],
      );
      const again = await api.init(v.id, conn);
      assert.equal(again.body.attachment_id, a.body.attachment_id);
      assert.equal(again.body.connection_info.data.vol_uuid, v.backend_uuid);
    });

    it("online: the attached host's agent is woken and sees the new size_gb", async () => {
      const v = await api.created({ size_gb: 1 });
      const conn = connector(NATIVE);
      const host = await t.http.post('/v1/hosts').set(api.auth()).send({ nqn: conn.nqn, name: conn.host });
      assert.equal(host.status, 201, JSON.stringify(host.body));
      const asAgent = { authorization: `Bearer ${host.body.token}` };
      assert.equal((await api.init(v.id, conn)).status, 200);
      const before = await t.http.get('/v1/agent/attachments').set(asAgent);
      assert.equal(before.status, 200, JSON.stringify(before.body));
      assert.deepEqual(
        before.body.attachments.map((a: { size_gb: number }) => a.size_gb),
        [1],
      );
      // Waiting with the current version: the extend must wake it (a timeout would return the same version).
      const waiting = t.http
        .get('/v1/agent/attachments')
        .query({ since: before.body.version, wait: 60 })
        .set(asAgent)
        .then((r) => r);
      assert.equal((await api.extend(v.id, 2)).status, 200);
      const woken = await waiting;
      assert.notEqual(woken.body.version, before.body.version);
      assert.deepEqual(
        woken.body.attachments.map((a: { volume_id: string; size_gb: number }) => [a.volume_id, a.size_gb]),
        [[v.id, 2]],
      );
    });

    it('an unknown volume is a 404; a missing or extra field is a 400 naming it', async () => {
      assert.equal((await api.extend(randomUUID(), 2)).status, 404);
      const v = await api.created();
      const missing = await t.http.post(`/v1/volumes/${v.id}/extend`).set(api.auth()).send({});
      assert.equal(missing.status, 400);
      assert.match(missing.body.error.message, /new_size_gb/);
      const extra = await t.http.post(`/v1/volumes/${v.id}/extend`).set(api.auth()).send({ new_size_gb: 2, size: 3 });
      assert.equal(extra.status, 400);
      assert.match(extra.body.error.message, /size/);
    });
  });
});
