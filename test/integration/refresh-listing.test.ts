import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LightosBackend } from '../../src/backend/lightos/index.ts';
import type { DriverDeps } from '../../src/driver/deps.ts';
import { refreshPortals } from '../../src/driver/refresh-portals.ts';
import { type CreatedVolume, type LifecycleClient, startSuite } from '../support/lifecycle.ts';
import { type SimClient, waitUntil } from '../support/sim-client.ts';
import { connector, NATIVE, type Target } from '../support/target.ts';

const PROJECT_VOLUMES = '/api/v2/projects/default/volumes';
const LIST = `GET ${PROJECT_VOLUMES}`;
const ONE = `GET ${PROJECT_VOLUMES}/{uuid}`;
const NODES = 'GET /api/v2/nodes';

/**
 * The portal refresh by listing (docs/live-paths.md): an unchanged pass costs the node list and
 * ceil(volumes / page size) pages of the volume list, counted at the simulator over real HTTP,
 * and takes no lock; a volume whose info changed is locked and read again, so that an initialize
 * or terminate between the listing and the lock is never overwritten with older paths.
 */
describe('portal refresh by listing', () => {
  let t: Target;
  let sim: SimClient;
  let api: LifecycleClient;
  // The service's own refresh job would race the passes counted here: a day's period keeps it out.
  before(async () => ({ t, sim, api } = await startSuite({ portalRefreshMs: 86_400_000 })));
  after(async () => t?.close());

  /** The target's deps with an adapter listing `pageSize` volumes per page. */
  const paging = (pageSize: number): DriverDeps => ({
    ...t.deps!,
    backend: new LightosBackend({
      endpoints: [t.simUrl],
      jwt: t.simJwt,
      listPageSize: pageSize,
      requestTimeoutMs: 5000,
      pollIntervalMs: 20,
    }),
  });

  /** A pass and the LightOS requests it made, by route (the capacity job's reads left out). */
  async function counted(deps: DriverDeps) {
    await deps.clusterInfo(); // cached after the first pass; read here so that every pass is alike
    await sim.resetRequests();
    const result = await refreshPortals(deps);
    const { byRoute } = await sim.requests();
    delete byRoute['GET /api/v2/cluster'];
    return { result, calls: byRoute };
  }

  /** Where each volume falls in the simulator's list (ordered by UUID). */
  async function listIndex(): Promise<Map<string, number>> {
    const uuids: string[] = (await sim.state()).volumes.map((v: any) => v.uuid).sort();
    return new Map(uuids.map((u, i) => [u, i]));
  }

  const attached: { vol: CreatedVolume; attachmentId: string; conn: Record<string, unknown> }[] = [];

  it('an unchanged pass costs ceil(volumes / page) pages and one node list, and takes no lock', async () => {
    for (let i = 0; i < 20; i++) {
      const vol = await api.created({ replicas: 2, multiattach: true });
      const conn = connector(NATIVE);
      const r = await api.init(vol.id, conn);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      attached.push({ vol, attachmentId: r.body.attachment_id, conn });
    }
    // 20 volumes in pages of 5: four full pages, and no fifth call to learn that the list ended
    // (every volume asked for was seen). In pages of 6: three full pages and a short one.
    for (const page of [5, 6, 1000]) {
      const { result, calls } = await counted(paging(page));
      assert.deepEqual(
        [result.volumes, result.attachments, result.changed, result.locked, result.failed],
        [20, 20, 0, 0, []],
      );
      // The target: at most ceil(volumes / page) + 2 (the cluster info is cached after the first pass).
      assert.deepEqual(calls, { [LIST]: Math.ceil(20 / page), [NODES]: 1 }, `page ${page}`);
    }

    // Volumes nobody attached are listed too: the pages go as far as the last attached volume.
    for (let i = 0; i < 7; i++) await api.created();
    const index = await listIndex();
    const last = Math.max(...attached.map((a) => index.get(a.vol.backend_uuid)!));
    const { result, calls } = await counted(paging(6));
    assert.equal(result.locked, 0);
    assert.deepEqual(calls, { [LIST]: Math.ceil((last + 1) / 6), [NODES]: 1 });
    assert.ok(calls[LIST]! <= Math.ceil(index.size / 6), 'never more pages than the whole list has');
  });

  it('a moved replica locks and re-reads its volume only', async () => {
    const { vol, attachmentId } = attached[3]!;
    const before = (await api.attachments(vol.id)).find((a) => a.id === attachmentId);
    const state = await sim.state();
    const v = state.volumes.find((x: any) => x.uuid === vol.backend_uuid);
    const to = state.nodes.find((n: any) => !v.replicas.includes(n.uuid)).uuid;
    assert.equal((await sim.moveReplica(vol.backend_uuid, v.replicas[1], to)).status, 200);

    const { result, calls } = await counted(paging(1000));
    assert.deepEqual([result.changed, result.locked, result.failed], [1, 1, []]);
    assert.deepEqual(calls, { [LIST]: 1, [NODES]: 2, [ONE]: 1 }, 'the listing, then the moved volume under its lock');
    const now = (await api.attachments(vol.id)).find((a) => a.id === attachmentId);
    assert.notDeepEqual(now.connection_info.data.portals, before.connection_info.data.portals);
  });

  it('an initialize or terminate between the listing and the lock is not overwritten', async () => {
    const initialized = attached[5]!;
    const terminated = attached[6]!;
    const moveAway = async (backendUuid: string) => {
      const state = await sim.state();
      const v = state.volumes.find((x: any) => x.uuid === backendUuid);
      const to = state.nodes.find((n: any) => !v.replicas.includes(n.uuid)).uuid;
      assert.equal((await sim.moveReplica(backendUuid, v.replicas[1], to)).status, 200);
    };
    // Both volumes move before the listing, so that the listing finds their info stale.
    await moveAway(initialized.vol.backend_uuid);
    await moveAway(terminated.vol.backend_uuid);
    const deps = paging(1000);
    const inner = deps.backend;
    let secondHost = '';
    deps.backend = Object.assign(Object.create(inner), {
      listVolumePaths: async (uuids: Iterable<string>) => {
        const listed = await inner.listVolumePaths(uuids);
        // Meanwhile: one volume moves again and a second host attaches it (its initialize brings
        // every attachment of the volume to the newest paths); the other volume is detached.
        await moveAway(initialized.vol.backend_uuid);
        const conn = connector(NATIVE);
        secondHost = String(conn.nqn);
        assert.equal((await api.init(initialized.vol.id, conn)).status, 200);
        assert.equal(
          (await api.term(terminated.vol.id, { connector: terminated.conn })).status,
          200,
          'os-brick connector: revoked at once',
        );
        return listed;
      },
    });
    const detached = (await api.attachments(terminated.vol.id)).find((a) => a.id === terminated.attachmentId);
    const fresh = async () => (await api.attachments(initialized.vol.id)).map((a) => a.connection_info.data.portals);
    const { result } = await counted(deps);
    assert.ok(secondHost, 'the concurrent calls ran');
    assert.deepEqual(result.failed, []);
    // What the backend says now, as an initialize builds it: every attachment of the volume has it.
    const now = await fresh();
    assert.equal(now.length, 2);
    assert.deepEqual(now[0], now[1], 'the older listing did not overwrite the initialize');
    const replicas: string[] = (await sim.state()).volumes.find(
      (x: any) => x.uuid === initialized.vol.backend_uuid,
    ).replicas;
    const ports = (await sim.state()).nodes.filter((n: any) => replicas.includes(n.uuid)).map((n: any) => n.index);
    assert.deepEqual(now[0].map((p: [string, number]) => p[1] - 4420).sort(), ports.sort());
    const after = (await api.attachments(terminated.vol.id)).find((a) => a.id === terminated.attachmentId);
    assert.notEqual(after.status, 'attached');
    assert.deepEqual(after.connection_info, detached.connection_info, 'a detached attachment is left alone');
  });

  it('a volume the backend no longer has is read on its own and reported failed', async () => {
    const { vol } = attached[9]!;
    await sim.deleteVolume(vol.backend_uuid);
    await waitUntil(async () => (await sim.volume(vol.backend_uuid)) === null, { what: 'the backend volume gone' });
    const { result, calls } = await counted(paging(1000));
    assert.deepEqual(result.failed, [{ volumeId: vol.id, code: 'volume_not_found' }]);
    assert.equal(result.changed, 0);
    assert.deepEqual(calls, { [LIST]: 1, [NODES]: 1, [ONE]: 1 });
  });
});
