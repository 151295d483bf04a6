/**
 * Keeps every live attachment's portals true to the backend: a replica that moved, a node that
 * joined or changed its address changes the connection info the host must use. A refresh
 * rebuilds it (same multipath mode, same connector) from the backend's current paths and, when
 * it differs, stores it; the store's trigger moves the host's version, which wakes its agent.
 *
 * A pass reads the attachments in one query and the backend by listing (the node list once, the
 * volume list in pages: `listVolumePaths`), compares in memory, and takes a volume's lock only
 * for a volume whose connection info would change. Under the lock it reads the attachments and
 * the volume's paths again, so that it never races an initialize or terminate of the same volume
 * and never writes paths older than what an initialize wrote meanwhile. A volume the listing did
 * not show (deleted on the backend, or created since) is read on its own, under its lock, as
 * before. A volume whose every replica is down keeps the info it had: the host's paths to it are
 * better than none.
 */
import { buildConnectionInfo } from './connection-info.ts';
import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import type { Attachment, ConnectionInfo, VolumePath } from './model.ts';
import type { AttachedForRefresh } from './ports.ts';
import { underVolumeLock, type VolumeWork } from './unit-of-work.ts';

export interface RefreshResult {
  volumes: number;
  attachments: number;
  changed: number;
  /** Volumes that could not be refreshed this time (backend error), by id. */
  failed: { volumeId: string; code: string }[];
  /** Volumes locked and read again: their info differed from the listing's, or the listing lacked them. */
  locked: number;
}

/** What `rebuiltInfo` reads of an attachment. */
type Rebuildable = Pick<Attachment, 'connectionInfo' | 'multipathMode'> & { connector: { nqn: string } };

/** The connection info this attachment should have with `paths`, or null when none can be built. */
export function rebuiltInfo(a: Rebuildable, subsystemNqn: string, paths: readonly VolumePath[]): ConnectionInfo | null {
  const old = a.connectionInfo;
  if (!old) return null;
  try {
    return buildConnectionInfo({
      volumeUuid: old.data.vol_uuid,
      subsystemNqn,
      nsid: old.data.ns_id !== undefined ? Number(old.data.ns_id) : undefined,
      nguid: old.data.volume_nguid,
      paths,
      hostNqn: a.connector.nqn,
      mode: a.multipathMode,
      accessMode: old.data.access_mode,
    });
  } catch (e) {
    if (e instanceof DriverError && e.code === 'no_path') return null;
    throw e;
  }
}

/**
 * Rebuilds and stores the connection info of `attachments` (all of one volume) from `paths`.
 * Returns the attachments whose info changed. Runs under the volume's lock.
 */
export async function applyPaths(
  uow: VolumeWork,
  attachments: readonly Attachment[],
  subsystemNqn: string,
  paths: readonly VolumePath[],
): Promise<Attachment[]> {
  const changed: Attachment[] = [];
  for (const a of attachments) {
    const next = rebuiltInfo(a, subsystemNqn, paths);
    if (!next || sameJson(next, a.connectionInfo)) continue;
    changed.push(await uow.store.updateAttachment(a.id, { connectionInfo: next }));
    uow.logger.info(
      { attachment: a.id, volume: a.volumeId, host: a.hostName, portals: portalsOf(next) },
      'portals changed; the host agent follows',
    );
  }
  return changed;
}

/**
 * One refresh pass over every attached attachment, grouped by volume. A listing that fails fails
 * the pass (the fleet job's `failed`; the next period tries again); a volume that fails is reported.
 */
export async function refreshPortals(deps: DriverDeps): Promise<RefreshResult> {
  const all = await deps.refresh.attachedForRefresh();
  const byVolume = new Map<string, AttachedForRefresh[]>();
  for (const a of all) {
    const list = byVolume.get(a.volumeId);
    if (list) list.push(a);
    else byVolume.set(a.volumeId, [a]);
  }
  const result: RefreshResult = { volumes: byVolume.size, attachments: all.length, changed: 0, failed: [], locked: 0 };
  if (all.length === 0) return result;
  const { subsystemNqn } = await deps.clusterInfo();
  const backendUuids = new Set<string>();
  for (const list of byVolume.values()) if (list[0]!.backendUuid) backendUuids.add(list[0]!.backendUuid);
  const listed = await deps.backend.listVolumePaths(backendUuids);
  for (const [volumeId, list] of byVolume) {
    const backendUuid = list[0]!.backendUuid;
    if (!backendUuid) continue;
    const paths = listed.get(backendUuid);
    try {
      if (paths && !list.some((a) => differs(a, subsystemNqn, paths))) continue;
      result.locked += 1;
      result.changed += await refreshVolumePortals(deps, volumeId, subsystemNqn);
    } catch (e) {
      const code = e instanceof DriverError ? e.code : 'internal';
      result.failed.push({ volumeId, code });
      deps.logger.warn({ volume: volumeId, err: (e as Error).message }, 'portal refresh of a volume failed; next pass');
    }
  }
  return result;
}

/** Whether the attachment's stored info differs from what `paths` would make of it. */
function differs(a: Rebuildable, subsystemNqn: string, paths: readonly VolumePath[]): boolean {
  const next = rebuiltInfo(a, subsystemNqn, paths);
  return next !== null && !sameJson(next, a.connectionInfo);
}

/** Refreshes one volume's attached attachments under its lock; returns how many changed. */
export async function refreshVolumePortals(deps: DriverDeps, volumeId: string, subsystemNqn?: string): Promise<number> {
  const nqn = subsystemNqn ?? (await deps.clusterInfo()).subsystemNqn;
  return underVolumeLock(deps, volumeId, (uow) => refreshLocked(uow, volumeId, nqn));
}

async function refreshLocked(uow: VolumeWork, volumeId: string, subsystemNqn: string): Promise<number> {
  // Read again under the lock: an initialize or terminate may have run since the listing.
  const live = (await uow.store.attachmentsOfVolume(volumeId, ['attached'])).filter((a) => a.connectionInfo);
  if (live.length === 0) return 0;
  const volume = await uow.store.getVolume(volumeId);
  if (!volume?.backendUuid) return 0;
  const paths = await uow.backend.volumePaths(volume.backendUuid);
  return (await applyPaths(uow, live, subsystemNqn, paths)).length;
}

function portalsOf(ci: ConnectionInfo): string[] {
  const d = ci.data;
  const tuples = d.dm_replicas ? d.dm_replicas.flatMap((r) => r.portals) : (d.portals ?? []);
  return tuples.map(([addr, port]) => `${addr}:${port}`);
}

/** Deep equality that ignores key order (jsonb does not keep it). */
export function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}
