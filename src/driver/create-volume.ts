import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import type { Volume } from './model.ts';
import { underVolumeLock, type VolumeWork } from './unit-of-work.ts';
import { createOnBackend, resolveSource, type VolumeSourceRef } from './volume-source.ts';

export interface CreateVolumeRequest {
  /** The orchestrator's volume UUID; the idempotency key. */
  id: string;
  sizeGb: number;
  replicas?: number;
  multiattach?: boolean;
  /** Default false (Cinder's `lightos_default_compression_enabled`). */
  compression?: boolean;
  /** Default true; false is refused, LightOS volumes are always thin. */
  thinProvisioned?: boolean;
  /** The backend's QoS policy UUID. */
  qosPolicyId?: string | null;
  /** Create from a snapshot, or as a clone of a volume. */
  source?: VolumeSourceRef | null;
}

/** Cinder's backend naming convention (`volume_name_template`). */
export const backendVolumeName = (id: string): string => `volume-${id}`;

/** What a create asks for, with the defaults filled in: the idempotency comparison is over these. */
interface Wanted {
  sizeGb: number;
  replicas: number;
  multiattach: boolean;
  compression: boolean;
  thinProvisioned: boolean;
  qosPolicyId: string | null;
  sourceSnapshotId: string | null;
  sourceVolumeId: string | null;
}

const API_FIELD: Record<keyof Wanted, string> = {
  sizeGb: 'size_gb',
  replicas: 'replicas',
  multiattach: 'multiattach',
  compression: 'compression',
  thinProvisioned: 'thin_provisioned',
  qosPolicyId: 'qos_policy_id',
  sourceSnapshotId: 'source.snapshot_id',
  sourceVolumeId: 'source.volume_id',
};

function wanted(deps: DriverDeps, req: CreateVolumeRequest): Wanted {
  const w: Wanted = {
    sizeGb: req.sizeGb,
    replicas: req.replicas ?? deps.defaults.replicas,
    multiattach: req.multiattach ?? false,
    compression: req.compression ?? false,
    thinProvisioned: req.thinProvisioned ?? true,
    qosPolicyId: req.qosPolicyId?.toLowerCase() ?? null,
    sourceSnapshotId: req.source && 'snapshotId' in req.source ? req.source.snapshotId.toLowerCase() : null,
    sourceVolumeId: req.source && 'volumeId' in req.source ? req.source.volumeId.toLowerCase() : null,
  };
  if (!w.thinProvisioned) {
    throw new DriverError(
      'invalid_request',
      'thin_provisioned: LightOS volumes are always thin-provisioned (capabilities: thick_provisioning_support false)',
      {
        details: { field: 'thin_provisioned' },
      },
    );
  }
  if (w.sourceVolumeId === req.id.toLowerCase()) {
    throw new DriverError('invalid_request', 'source.volume_id: a volume cannot be a clone of itself', {
      details: { field: 'source.volume_id' },
    });
  }
  return w;
}

/**
 * Creates the volume on the backend and records it. Idempotent on `id`, as Cinder retries
 * creates: a repeat with the same parameters returns the volume (finishing a create that
 * failed half-way), different parameters are a 409 `already_exists`. The backend create is
 * itself idempotent on the volume's name, so a crash between it and the record converges too.
 *
 * From a snapshot or as a clone (Cinder's `create_volume_from_snapshot`, `create_cloned_volume`),
 * see `volume-source.ts`; a size larger than the source's grows the new volume.
 */
export async function createVolume(
  deps: DriverDeps,
  req: CreateVolumeRequest,
): Promise<{ volume: Volume; created: boolean }> {
  const w = wanted(deps, req);
  return underVolumeLock(deps, req.id, (uow) => createLocked(uow, req.id, w));
}

/** Under the volume's lock. */
async function createLocked(uow: VolumeWork, id: string, w: Wanted): Promise<{ volume: Volume; created: boolean }> {
  const { store } = uow;
  const existing = await store.getVolume(id);
  if (existing) {
    const differing = (Object.keys(w) as (keyof Wanted)[]).filter((k) => existing[k] !== w[k]);
    if (differing.length > 0) {
      throw new DriverError(
        'already_exists',
        `volume ${id} already exists with other ${differing.map((k) => API_FIELD[k]).join(', ')}`,
        {
          details: {
            fields: differing.map((k) => API_FIELD[k]),
            existing: Object.fromEntries(differing.map((k) => [API_FIELD[k], existing[k]])),
          },
        },
      );
    }
    if (existing.status === 'available') return { volume: existing, created: false };
  }
  // Checked before anything is recorded: a missing or unusable source leaves nothing behind.
  const source = await resolveSource(store, {
    sizeGb: w.sizeGb,
    snapshotId: w.sourceSnapshotId,
    volumeId: w.sourceVolumeId,
  });
  const volume = existing ?? (await store.insertVolume({ id, name: backendVolumeName(id), status: 'creating', ...w }));
  try {
    const bv = await createOnBackend(uow, volume, source);
    const saved = await store.updateVolume(volume.id, { status: 'available', backendUuid: bv.uuid });
    uow.logger.info({ volume: volume.id, backendUuid: bv.uuid, source: source.kind }, 'volume created');
    return { volume: saved, created: !existing };
  } catch (e) {
    await store.updateVolume(volume.id, { status: 'error' }).catch(() => undefined);
    throw e;
  }
}
