/**
 * Helpers for the volume-lifecycle tests: the simulator's own view of volumes and snapshots
 * (through its LightOS API and admin API), and the orchestrator calls the tests repeat.
 */
import { randomUUID } from 'node:crypto';
import type { Target } from './target.ts';

export const GiB = 1024 ** 3;

export interface SimObject {
  UUID: string;
  name: string;
  size: string;
  state: string;
  [key: string]: unknown;
}

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const r = await fetch(url);
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

/** The simulator's volume of that name (LightOS `GET volumes/?name=`), or null. */
export async function simVolume(simUrl: string, name: string): Promise<SimObject | null> {
  const r = await getJson(`${simUrl}/api/v2/projects/default/volumes/?name=${encodeURIComponent(name)}`);
  if (r.status === 404) return null;
  if (r.status !== 200) throw new Error(`sim GET volume ${name}: ${r.status}`);
  return r.body;
}

/** The simulator's snapshot of that name (LightOS `GET snapshots/?Name=`), or null. */
export async function simSnapshot(simUrl: string, name: string): Promise<SimObject | null> {
  const r = await getJson(`${simUrl}/api/v2/projects/default/snapshots/?Name=${encodeURIComponent(name)}`);
  if (r.status === 404) return null;
  if (r.status !== 200) throw new Error(`sim GET snapshot ${name}: ${r.status}`);
  return r.body;
}

/** The simulator's fault settings as they are now. */
export async function simFaults(simUrl: string): Promise<any> {
  return (await getJson(`${simUrl}/sim/v1/faults`)).body;
}

/**
 * Undoes the faults a test set, field by field (never `DELETE /sim/v1/faults`: by URL, other
 * test files share the simulator).
 */
export async function resetFaults(simUrl: string): Promise<void> {
  const r = await fetch(`${simUrl}/sim/v1/faults`, {
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
