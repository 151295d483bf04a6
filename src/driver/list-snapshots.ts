import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import type { Snapshot } from './model.ts';

/** The volume's snapshots, oldest first; 404 when the volume does not exist. */
export async function listSnapshots(deps: DriverDeps, volumeId: string): Promise<Snapshot[]> {
  if (!(await deps.store.getVolume(volumeId)))
    throw new DriverError('volume_not_found', `volume ${volumeId} does not exist`);
  return deps.store.snapshotsOfVolume(volumeId);
}
