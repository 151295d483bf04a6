/**
 * Helpers for the tests that drive the service: the simulator's own view of volumes and
 * snapshots (through its LightOS API and admin API), and the orchestrator calls the tests repeat.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { type Target, type TargetOptions, startTarget } from './target.ts';
import { type SimObject, SimClient } from './sim-client.ts';

export type { SimObject };

type SimTarget = Pick<Target, 'simUrl' | 'simJwt'>;
const view = (t: SimTarget) => new SimClient(t.simUrl, { jwt: t.simJwt });

/** The simulator's volume of that name, or null. */
export const simVolume = (t: SimTarget, name: string): Promise<SimObject | null> => view(t).volumeByName(name);

/** The simulator's snapshot of that name, or null. */
export const simSnapshot = (t: SimTarget, name: string): Promise<SimObject | null> => view(t).snapshotByName(name);

/** The simulator's fault settings as they are now. */
export const simFaults = (t: SimTarget): Promise<any> => view(t).faultsNow();

/**
 * Undoes the faults a test set, field by field (never `DELETE /sim/v1/faults`: by URL, other
 * test files share the simulator).
 */
export const resetFaults = async (t: SimTarget): Promise<void> => {
  await view(t).faults({ failNext: null, hangNext: null, stateDelayMs: 0 });
};

/** A volume as `POST /v1/volumes` answers it. */
export interface CreatedVolume {
  id: string;
  name: string;
  backend_uuid: string;
  size_gb: number;
  status: string;
}

/** Orchestrator calls with the admin token. */
export function lifecycleClient(t: Target) {
  const auth = () => ({ authorization: `Bearer ${t.token}` });
  const create = (body: Record<string, unknown> = {}) =>
    t.http
      .post('/v1/volumes')
      .set(auth())
      .send({ id: randomUUID(), size_gb: 1, ...body });
  return {
    auth,
    create,
    /** Creates a volume (a random id, 1 GiB unless `body` says otherwise); it must be a 201. */
    async created(body: Record<string, unknown> = {}): Promise<CreatedVolume> {
      const r = await create(body);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body;
    },
    get: (id: string) => t.http.get(`/v1/volumes/${id}`).set(auth()),
    del: (id: string, force?: boolean) =>
      t.http
        .delete(`/v1/volumes/${id}`)
        .query(force === undefined ? {} : { force })
        .set(auth()),
    extend: (id: string, size: number) =>
      t.http.post(`/v1/volumes/${id}/extend`).set(auth()).send({ new_size_gb: size }),
    snap: (volumeId: string, body: Record<string, unknown> = {}) =>
      t.http
        .post(`/v1/volumes/${volumeId}/snapshots`)
        .set(auth())
        .send({ id: randomUUID(), ...body }),
    getSnap: (id: string) => t.http.get(`/v1/snapshots/${id}`).set(auth()),
    listSnaps: (volumeId: string) => t.http.get(`/v1/volumes/${volumeId}/snapshots`).set(auth()),
    delSnap: (id: string) => t.http.delete(`/v1/snapshots/${id}`).set(auth()),
    init: (id: string, connector: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      t.http
        .post(`/v1/volumes/${id}/initialize_connection`)
        .set(auth())
        .send({ connector, ...extra }),
    term: (id: string, body: Record<string, unknown>) =>
      t.http.post(`/v1/volumes/${id}/terminate_connection`).set(auth()).send(body),
    /** The attachment as `GET /v1/attachments/{id}` answers it (the body). */
    attachment: async (id: string) => (await t.http.get(`/v1/attachments/${id}`).set(auth())).body,
    attachments: async (volumeId: string) =>
      (await t.http.get('/v1/attachments').query({ volume_id: volumeId }).set(auth())).body.attachments as any[],
  };
}

export type LifecycleClient = ReturnType<typeof lifecycleClient>;

/**
 * What most service tests start with: the target (service and simulator), a client of its
 * simulator and the orchestrator calls. The caller closes `t`.
 */
export async function startSuite(
  opts: TargetOptions = {},
): Promise<{ t: Target; sim: SimClient; api: LifecycleClient }> {
  const t = await startTarget(opts);
  return { t, sim: view(t), api: lifecycleClient(t) };
}
