import { reconcileWithBackend } from './backend-truth.ts';
import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import type { Volume } from './model.ts';

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
  return deps.locks.withVolumeLock(req.id, async (store) => {
    let volume = await store.getVolume(req.id);
    if (!volume) throw new DriverError('volume_not_found', `volume ${req.id} does not exist`);
    // A record left `error` by an earlier failure whose volume the backend shows healthy.
    if (volume.status === 'error') volume = await reconcileWithBackend(deps, store, volume).catch(() => volume!);
    if (volume.status !== 'available' || !volume.backendUuid) {
      throw new DriverError('volume_not_ready', `volume ${volume.id} is ${volume.status}, not available`, {
        details: { status: volume.status },
      });
    }
    if (req.newSizeGb < volume.sizeGb) {
      throw new DriverError(
        'invalid_request',
        `new_size_gb: ${req.newSizeGb} GiB is smaller than the volume's ${volume.sizeGb} GiB; volumes only grow`,
        {
          details: { field: 'new_size_gb', size_gb: volume.sizeGb },
        },
      );
    }
    if (req.newSizeGb === volume.sizeGb) return { volume, extended: false };
    const before = volume;
    try {
      await deps.backend.extendVolume(before.backendUuid!, req.newSizeGb);
    } catch (e) {
      // The resize may have landed although its answer or its state wait failed: the record
      // takes the backend's size, and an extend the backend shows done is done.
      const now = await reconcileWithBackend(deps, store, before).catch(() => before);
      if (now.sizeGb < req.newSizeGb) throw e;
      deps.logger.warn(
        { volume: volume.id, err: (e as Error).message },
        'extend failed, but the backend shows the new size',
      );
      return { volume: now, extended: true };
    }
    const saved = await store.updateVolume(volume.id, { sizeGb: req.newSizeGb });
    deps.logger.info({ volume: volume.id, from: volume.sizeGb, to: req.newSizeGb }, 'volume extended');
    return { volume: saved, extended: true };
  });
}
