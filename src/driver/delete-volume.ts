import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import { type Attachment, type AttachmentStatus, LIVE_STATUSES, type Volume } from './model.ts';
import { underVolumeLock, type VolumeWork } from './unit-of-work.ts';

export interface DeleteVolumeRequest {
  id: string;
  /** Revoke every host's access and detach every attachment first, instead of refusing. */
  force?: boolean;
}

/** Attachments that hold, or may still hold, backend access. */
const UNFINISHED: readonly AttachmentStatus[] = ['attaching', 'attached', 'detaching'];

/**
 * Cinder's `delete_volume`, idempotent: a volume that does not exist (never created, or already
 * deleted) is a success, so that a retried delete never fails.
 *
 * - While live attachments exist it is refused with 409 `volume_in_use`, unless `force`: then
 *   every attachment is detached (flagged `detachForce`, so host agents tear down even a device
 *   in use) and every host removed from the backend ACL before the volume goes.
 * - While the volume has snapshots it is refused with 409 `volume_has_snapshots`, as Cinder's
 *   API refuses it. The backend would not stop us: LightOS (and the simulator) delete the
 *   volume and leave its snapshots behind, orphaned; the orchestrator deletes them first.
 * - The record is marked `deleting` before the backend is touched and soft-deleted after; a
 *   failure leaves it `error`, and the retried delete converges (the backend delete is
 *   idempotent too). Its attachment rows stay, so that host agents still see them end.
 */
export async function deleteVolume(deps: DriverDeps, req: DeleteVolumeRequest): Promise<{ deleted: boolean }> {
  return underVolumeLock(deps, req.id, (uow) => deleteLocked(uow, req.id, req.force ?? false));
}

async function deleteLocked(uow: VolumeWork, id: string, force: boolean): Promise<{ deleted: boolean }> {
  const { store, backend } = uow;
  const found = await store.volumeWithAttachments(id, UNFINISHED);
  if (!found) return { deleted: false };
  const { volume, attachments: unfinished } = found;
  const live = unfinished.filter((a) => LIVE_STATUSES.includes(a.status));
  if (live.length > 0 && !force) {
    throw new DriverError(
      'volume_in_use',
      `volume ${volume.id} has ${live.length} live attachment(s); detach first or delete with force=true`,
      {
        details: { attachments: live.map((a) => ({ id: a.id, host: a.hostName, host_nqn: a.hostNqn })) },
      },
    );
  }
  const snapshots = await store.snapshotsOfVolume(volume.id);
  if (snapshots.length > 0) {
    throw new DriverError(
      'volume_has_snapshots',
      `volume ${volume.id} still has ${snapshots.length} snapshot(s); delete them first (the backend would leave them behind)`,
      { details: { snapshots: snapshots.map((s) => s.id) } },
    );
  }

  await store.updateVolume(volume.id, { status: 'deleting' });
  try {
    if (unfinished.length > 0) await detachAll(uow, volume, unfinished, force);
    const uuid = volume.backendUuid ?? (await backend.getVolumeByName(volume.name))?.uuid;
    // No backend UUID: the create failed before the backend answered; the name finds an orphan.
    if (uuid) await backend.deleteVolume(uuid);
    await store.markVolumeDeleted(volume.id);
  } catch (e) {
    await store.updateVolume(volume.id, { status: 'error' }).catch(() => undefined);
    throw e;
  }
  uow.logger.info(
    { volume: volume.id, backendUuid: volume.backendUuid, forcedDetach: unfinished.map((a) => a.id) },
    'volume deleted',
  );
  return { deleted: true };
}

/**
 * Every attachment `detaching` → no host left in the ACL → `detached`. Without force only
 * leftovers of failed terminates get here (already `detaching`, their force flag kept).
 */
async function detachAll(
  { store, backend }: VolumeWork,
  volume: Volume,
  list: Attachment[],
  force: boolean,
): Promise<void> {
  for (const a of list)
    await store.updateAttachment(a.id, { status: 'detaching', ...(force ? { detachForce: true } : {}) });
  if (volume.backendUuid) await backend.revokeAllAccess(volume.backendUuid);
  const now = new Date();
  for (const a of list) await store.updateAttachment(a.id, { status: 'detached', detachedAt: now });
}
