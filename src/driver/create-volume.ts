import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import type { Volume } from './model.ts';

export interface CreateVolumeRequest {
  /** The orchestrator's volume UUID; the idempotency key. */
  id: string;
  sizeGb: number;
  replicas?: number;
  multiattach?: boolean;
}

/** Cinder's backend naming convention (`volume_name_template`). */
export const backendVolumeName = (id: string): string => `volume-${id}`;

/**
 * Creates the volume on the backend and records it. Idempotent on `id`, as Cinder retries
 * creates: a repeat with the same parameters returns the volume (finishing a create that
 * failed half-way), different parameters are a 409 `already_exists`. The backend create is
 * itself idempotent on the volume's name, so a crash between it and the record converges too.
 */
export async function createVolume(deps: DriverDeps, req: CreateVolumeRequest): Promise<{ volume: Volume; created: boolean }> {
  const replicas = req.replicas ?? deps.defaults.replicas;
  const multiattach = req.multiattach ?? false;
  return deps.locks.withVolumeLock(req.id, async (store) => {
    const existing = await store.getVolume(req.id);
    if (existing) {
      const same = existing.sizeGb === req.sizeGb && existing.replicas === replicas && existing.multiattach === multiattach;
      if (!same) {
        throw new DriverError('already_exists', `volume ${req.id} already exists with other parameters`, {
          details: { size_gb: existing.sizeGb, replicas: existing.replicas, multiattach: existing.multiattach },
        });
      }
      if (existing.status === 'available') return { volume: existing, created: false };
    }
    const volume =
      existing ?? (await store.insertVolume({ id: req.id, name: backendVolumeName(req.id), sizeGb: req.sizeGb, replicas, multiattach, status: 'creating' }));
    try {
      const bv = await deps.backend.createVolume({ name: volume.name, sizeGb: req.sizeGb, replicas });
      const saved = await store.updateVolume(volume.id, { status: 'available', backendUuid: bv.uuid });
      deps.logger.info({ volume: volume.id, backendUuid: bv.uuid }, 'volume created');
      return { volume: saved, created: !existing };
    } catch (e) {
      await store.updateVolume(volume.id, { status: 'error' }).catch(() => undefined);
      throw e;
    }
  });
}

export async function getVolume(deps: DriverDeps, id: string): Promise<Volume> {
  const v = await deps.store.getVolume(id);
  if (!v) throw new DriverError('volume_not_found', `volume ${id} does not exist`);
  return v;
}
