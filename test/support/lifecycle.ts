/**
 * Helpers for the volume-lifecycle tests: the simulator's own view of volumes and snapshots
 * (through its LightOS API and admin API), and the orchestrator calls the tests repeat.
 */
import { randomUUID } from 'node:crypto';
import { type SimObject, SimView, type Target } from './target.ts';

export type { SimObject };

export const GiB = 1024 ** 3;

type SimTarget = Pick<Target, 'simUrl' | 'simJwt'>;
const view = (t: SimTarget) => new SimView(t.simUrl, t.simJwt);

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
export async function resetFaults(t: SimTarget): Promise<void> {
  const r = await fetch(`${t.simUrl}/sim/v1/faults`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ failNext: null, hangNext: null, stateDelayMs: 0 }),
  });
  if (!r.ok) throw new Error(`PUT /sim/v1/faults: ${r.status}`);
}

/** Orchestrator calls with the admin token. */
export function lifecycleClient(t: Target) {
  const auth = () => ({ authorization: `Bearer ${t.token}` });
  return {
    auth,
    create: (body: Record<string, unknown>) => t.http.post('/v1/volumes').set(auth()).send({ id: randomUUID(), size_gb: 1, ...body }),
    get: (id: string) => t.http.get(`/v1/volumes/${id}`).set(auth()),
    del: (id: string, force?: boolean) => t.http.delete(`/v1/volumes/${id}`).query(force === undefined ? {} : { force }).set(auth()),
    extend: (id: string, size: number) => t.http.post(`/v1/volumes/${id}/extend`).set(auth()).send({ new_size_gb: size }),
    snap: (volumeId: string, body: Record<string, unknown> = {}) =>
      t.http.post(`/v1/volumes/${volumeId}/snapshots`).set(auth()).send({ id: randomUUID(), ...body }),
    getSnap: (id: string) => t.http.get(`/v1/snapshots/${id}`).set(auth()),
    listSnaps: (volumeId: string) => t.http.get(`/v1/volumes/${volumeId}/snapshots`).set(auth()),
    delSnap: (id: string) => t.http.delete(`/v1/snapshots/${id}`).set(auth()),
    init: (id: string, connector: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      t.http.post(`/v1/volumes/${id}/initialize_connection`).set(auth()).send({ connector, ...extra }),
    term: (id: string, body: Record<string, unknown>) => t.http.post(`/v1/volumes/${id}/terminate_connection`).set(auth()).send(body),
    attachments: async (volumeId: string) => (await t.http.get('/v1/attachments').query({ volume_id: volumeId }).set(auth())).body.attachments as any[],
  };
}
