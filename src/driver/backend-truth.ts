import type { Volume } from './model.ts';
import type { BackendState, BackendVolume } from './ports.ts';
import type { VolumeWork } from './unit-of-work.ts';

/** Backend states in which a volume serves I/O at the size the backend reports. */
const HEALTHY: ReadonlySet<BackendState> = new Set<BackendState>(['Available', 'Updating', 'Migrating']);

/**
 * Brings a volume record in line with the backend, which is the truth about the volume:
 *
 * - a backend size larger than the record's is recorded (an extend that landed although its
 *   answer or its state wait failed; the resize then reaches the attached hosts' agents);
 * - a record left `error` by a failed operation is `available` again when the backend shows the
 *   volume healthy, so that a transient backend fault does not block attaching until someone
 *   retries the operation that failed.
 *
 * Never shrinks the record and never touches it when the backend does not show the volume
 * healthy (or does not answer: the caller decides what that means). `bv` is the backend volume
 * when the caller has just read it; otherwise it is read here. Runs under the volume's lock.
 */
export async function reconcileWithBackend(
  uow: VolumeWork,
  volume: Volume,
  bv?: BackendVolume | null,
): Promise<Volume> {
  if (!volume.backendUuid) return volume;
  const backend = bv === undefined ? await uow.backend.getVolume(volume.backendUuid) : bv;
  if (!backend || !HEALTHY.has(backend.state)) return volume;
  // Whole GiB: a backend that reports bytes slightly off a GiB boundary never shrinks the record.
  const backendGb = Math.floor(backend.sizeGb);
  const patch: { status?: 'available'; sizeGb?: number } = {};
  if (volume.status === 'error') patch.status = 'available';
  if (backendGb > volume.sizeGb) patch.sizeGb = backendGb;
  if (patch.status === undefined && patch.sizeGb === undefined) return volume;
  const saved = await uow.store.updateVolume(volume.id, patch);
  uow.logger.warn(
    {
      volume: volume.id,
      from: { status: volume.status, sizeGb: volume.sizeGb },
      to: patch,
      backendState: backend.state,
    },
    'volume record brought in line with the backend',
  );
  return saved;
}
