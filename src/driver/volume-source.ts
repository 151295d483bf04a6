/**
 * Where a new volume's data comes from, and how it is made on the backend, as the LightOS Cinder
 * driver does it (`cinder/volume/drivers/lightos.py`: `create_volume_from_snapshot`, `create_cloned_volume`):
 *
 * - empty: `POST volumes`;
 * - from a snapshot (`create_volume_from_snapshot`): `POST volumes` with `sourceSnapshotUUID`;
 * - a clone (`create_cloned_volume`): an intermediate snapshot `for_clone_<new volume id>` of the
 *   source, a volume from it, then the intermediate snapshot is deleted again.
 *
 * Cinder lets the new volume be larger than its source and expects the driver to grow it: the
 * volume is created at the requested size, and grown afterwards if the backend made it at the
 * source's size.
 */
import { DriverError } from './errors.ts';
import { requireAvailable, requireSnapshot, requireVolume } from './guards.ts';
import type { Snapshot, Volume } from './model.ts';
import type { BackendVolume, BackendVolumeSpec, Store } from './ports.ts';
import type { VolumeWork } from './unit-of-work.ts';

export type VolumeSourceRef = { snapshotId: string } | { volumeId: string };

export type ResolvedSource =
  | { kind: 'none' }
  | { kind: 'snapshot'; snapshot: Snapshot & { backendUuid: string } }
  | { kind: 'volume'; volume: Volume & { backendUuid: string } };

/** The intermediate snapshot of a clone, named as the Cinder LightOS driver names it. */
export const intermediateSnapshotName = (newVolumeId: string): string => `for_clone_${newVolumeId}`;

/**
 * Checks the source exists, is usable and is not larger than the new volume:
 * 404 `snapshot_not_found`/`volume_not_found`, 409 `snapshot_not_ready`/`volume_not_ready`,
 * 400 `invalid_request` naming `size_gb`.
 */
export async function resolveSource(
  store: Store,
  req: { sizeGb: number; snapshotId: string | null; volumeId: string | null },
): Promise<ResolvedSource> {
  if (req.snapshotId) {
    const field = 'source.snapshot_id';
    const s = requireAvailable('snapshot', await requireSnapshot(store, req.snapshotId, field), field);
    tooSmall(req.sizeGb, s.sizeGb, `snapshot ${s.id}`);
    return { kind: 'snapshot', snapshot: s };
  }
  if (req.volumeId) {
    const field = 'source.volume_id';
    const v = requireAvailable('volume', await requireVolume(store, req.volumeId, field), field);
    tooSmall(req.sizeGb, v.sizeGb, `volume ${v.id}`);
    return { kind: 'volume', volume: v };
  }
  return { kind: 'none' };
}

function tooSmall(sizeGb: number, sourceGb: number, what: string): void {
  if (sizeGb < sourceGb) {
    throw new DriverError(
      'invalid_request',
      `size_gb: ${sizeGb} GiB is smaller than the source ${what} (${sourceGb} GiB)`,
      {
        details: { field: 'size_gb', source_size_gb: sourceGb },
      },
    );
  }
}

/** Creates (or finds, by name) the volume's backend volume from its source, at its full size; under its lock. */
export async function createOnBackend(uow: VolumeWork, volume: Volume, source: ResolvedSource): Promise<BackendVolume> {
  const spec: BackendVolumeSpec = {
    name: volume.name,
    sizeGb: volume.sizeGb,
    replicas: volume.replicas,
    compression: volume.compression,
    ...(volume.qosPolicyId ? { qosPolicyUuid: volume.qosPolicyId } : {}),
  };
  let bv: BackendVolume;
  if (source.kind === 'snapshot')
    bv = await uow.backend.createVolume({ ...spec, sourceSnapshotUuid: source.snapshot.backendUuid });
  else if (source.kind === 'volume') bv = await cloneOnBackend(uow, volume, spec, source.volume.backendUuid);
  else bv = await uow.backend.createVolume(spec);
  if (bv.sizeGb < volume.sizeGb) bv = await uow.backend.extendVolume(bv.uuid, volume.sizeGb);
  return bv;
}

/**
 * The intermediate snapshot goes in every case, as in the Cinder driver. When that delete fails
 * after a good create, the create fails too: the orchestrator's retry (idempotent on both names)
 * then finds the volume and the leftover snapshot, and deletes the snapshot.
 */
async function cloneOnBackend(
  uow: VolumeWork,
  volume: Volume,
  spec: BackendVolumeSpec,
  sourceUuid: string,
): Promise<BackendVolume> {
  const name = intermediateSnapshotName(volume.id);
  const snap = await uow.backend.createSnapshot(sourceUuid, name);
  let bv: BackendVolume;
  try {
    bv = await uow.backend.createVolume({ ...spec, sourceSnapshotUuid: snap.uuid });
  } catch (e) {
    await uow.backend
      .deleteSnapshot(snap.uuid)
      .catch((err: unknown) =>
        uow.logger.warn(
          { volume: volume.id, snapshot: name, err: (err as Error).message },
          'could not delete the intermediate clone snapshot; a retried create deletes it',
        ),
      );
    throw e;
  }
  await uow.backend.deleteSnapshot(snap.uuid);
  return bv;
}
