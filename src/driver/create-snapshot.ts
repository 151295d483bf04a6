import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import { requireAvailable, requireVolume } from './guards.ts';
import type { Snapshot } from './model.ts';
import { underVolumeLock, type VolumeWork } from './unit-of-work.ts';

export interface CreateSnapshotRequest {
  volumeId: string;
  /** The orchestrator's snapshot UUID; the idempotency key. */
  id: string;
  name?: string | null;
}

/** Cinder's backend naming convention (`snapshot_name_template`). */
export const backendSnapshotName = (id: string): string => `snapshot-${id}`;

/**
 * Cinder's `create_snapshot`, under the source volume's lock (the LightOS driver serialises
 * snapshot creation per source volume too). Idempotent on `id`: a repeat for the same volume
 * and name returns the snapshot (finishing one that failed half-way), anything else is a 409
 * `already_exists`. The backend create is idempotent on `snapshot-<id>` and retried with backoff
 * (see the adapter); the record is `creating` before it, `available` after, `error` on failure.
 */
export async function createSnapshot(
  deps: DriverDeps,
  req: CreateSnapshotRequest,
): Promise<{ snapshot: Snapshot; created: boolean }> {
  return underVolumeLock(deps, req.volumeId, (uow) => createLocked(uow, req));
}

async function createLocked(
  uow: VolumeWork,
  req: CreateSnapshotRequest,
): Promise<{ snapshot: Snapshot; created: boolean }> {
  const { store } = uow;
  const name = req.name ?? null;
  const volume = await requireVolume(store, req.volumeId);
  const existing = await store.getSnapshot(req.id);
  if (existing && (existing.volumeId !== volume.id || existing.name !== name)) {
    throw new DriverError('already_exists', `snapshot ${req.id} already exists with another volume or name`, {
      details: { volume_id: existing.volumeId, name: existing.name },
    });
  }
  if (existing?.status === 'available') return { snapshot: existing, created: false };
  const { backendUuid } = requireAvailable('volume', volume);
  const snapshot =
    existing ??
    (await store.insertSnapshot({
      id: req.id,
      volumeId: volume.id,
      name,
      backendName: backendSnapshotName(req.id),
      sizeGb: volume.sizeGb,
      status: 'creating',
    }));
  try {
    const bs = await uow.backend.createSnapshot(backendUuid, snapshot.backendName);
    // The backend's size when it reports one (the volume may have grown since a failed first try).
    const sizeGb = bs.sizeGb > 0 ? Math.ceil(bs.sizeGb) : volume.sizeGb;
    const saved = await store.updateSnapshot(snapshot.id, { status: 'available', backendUuid: bs.uuid, sizeGb });
    uow.logger.info({ volume: volume.id, snapshot: snapshot.id, backendUuid: bs.uuid }, 'snapshot created');
    return { snapshot: saved, created: !existing };
  } catch (e) {
    await store.updateSnapshot(snapshot.id, { status: 'error' }).catch(() => undefined);
    throw e;
  }
}
