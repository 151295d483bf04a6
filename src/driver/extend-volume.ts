import { reconcileWithBackend } from './backend-truth.ts';
import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import { requireAvailable, requireVolume } from './guards.ts';
import type { Volume } from './model.ts';
import { underVolumeLock, type VolumeWork } from './unit-of-work.ts';

export interface ExtendVolumeRequest {
  id: string;
  newSizeGb: number;
}

/**
 * Cinder's `extend_volume`, online: attachments and ACLs are left as they are, the backend grows
 * the namespace under the connected hosts, and the record's `size_gb` changes. That change is
 * what host agents act on: the hosts migration's trigger bumps the version of every host with a
 * live attachment of the volume (waking its long-poll), and the agent's attachment listing
 * carries the volume's current size, so the agent rescans and resizes its device.
 *
 * Shrinking is a 400; the current size is a no-op (a retried extend succeeds). The record is
 * written only after the backend confirmed the size. When the extend fails the backend volume is
 * read again and the record takes its size: a resize that landed counts as done, one that did
 * not leaves the old size (and the volume `available`), and the retry converges (the backend
 * extend is a no-op once the size is reached).
 */
export async function extendVolume(
  deps: DriverDeps,
  req: ExtendVolumeRequest,
): Promise<{ volume: Volume; extended: boolean }> {
  return underVolumeLock(deps, req.id, (uow) => extendLocked(uow, req));
}

async function extendLocked(uow: VolumeWork, req: ExtendVolumeRequest): Promise<{ volume: Volume; extended: boolean }> {
  let volume = await requireVolume(uow.store, req.id);
  // A record left `error` by an earlier failure whose volume the backend shows healthy.
  if (volume.status === 'error') volume = await reconcileWithBackend(uow, volume).catch(() => volume);
  const before = requireAvailable('volume', volume);
  if (req.newSizeGb < before.sizeGb) {
    throw new DriverError(
      'invalid_request',
      `new_size_gb: ${req.newSizeGb} GiB is smaller than the volume's ${before.sizeGb} GiB; volumes only grow`,
      {
        details: { field: 'new_size_gb', size_gb: before.sizeGb },
      },
    );
  }
  if (req.newSizeGb === before.sizeGb) return { volume: before, extended: false };
  try {
    await uow.backend.extendVolume(before.backendUuid, req.newSizeGb);
  } catch (e) {
    // The resize may have landed although its answer or its state wait failed: the record
    // takes the backend's size, and an extend the backend shows done is done.
    const now = await reconcileWithBackend(uow, before).catch(() => before);
    if (now.sizeGb < req.newSizeGb) throw e;
    uow.logger.warn(
      { volume: before.id, err: (e as Error).message },
      'extend failed, but the backend shows the new size',
    );
    return { volume: now, extended: true };
  }
  const saved = await uow.store.updateVolume(before.id, { sizeGb: req.newSizeGb });
  uow.logger.info({ volume: before.id, from: before.sizeGb, to: req.newSizeGb }, 'volume extended');
  return { volume: saved, extended: true };
}
