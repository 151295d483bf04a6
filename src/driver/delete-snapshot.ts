import type { DriverDeps } from './deps.ts';
import { underVolumeLock, type VolumeWork } from './unit-of-work.ts';

/**
 * Cinder's `delete_snapshot`. A snapshot that does not exist is a success (the Cinder LightOS
 * driver only warns), so a retried delete never fails. Runs under the source volume's lock, so
 * it cannot interleave with a snapshot create or the volume's delete.
 *
 * The record is `deleting` while the backend works and removed after; a failure leaves it
 * `error` and the retry converges. Volumes created from the snapshot are not in the way: the
 * Cinder driver itself deletes a clone's intermediate snapshot right after creating from it.
 */
export async function deleteSnapshot(deps: DriverDeps, id: string): Promise<{ deleted: boolean }> {
  const found = await deps.store.getSnapshot(id);
  if (!found) return { deleted: false };
  return underVolumeLock(deps, found.volumeId, (uow) => deleteLocked(uow, id));
}

async function deleteLocked({ store, backend, logger }: VolumeWork, id: string): Promise<{ deleted: boolean }> {
  const snapshot = await store.getSnapshot(id);
  if (!snapshot) return { deleted: false };
  await store.updateSnapshot(id, { status: 'deleting' });
  try {
    // No backend UUID: the create failed before the backend answered; the name finds an orphan.
    const uuid = snapshot.backendUuid ?? (await backend.getSnapshotByName(snapshot.backendName))?.uuid;
    if (uuid) await backend.deleteSnapshot(uuid);
    await store.deleteSnapshot(id);
  } catch (e) {
    await store.updateSnapshot(id, { status: 'error' }).catch(() => undefined);
    throw e;
  }
  logger.info({ volume: snapshot.volumeId, snapshot: id, backendUuid: snapshot.backendUuid }, 'snapshot deleted');
  return { deleted: true };
}
