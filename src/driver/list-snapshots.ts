import type { DriverDeps } from './deps.ts';
import { requireVolume } from './guards.ts';
import type { Snapshot } from './model.ts';

/** The volume's snapshots, oldest first; 404 when the volume does not exist. */
export async function listSnapshots(deps: DriverDeps, volumeId: string): Promise<Snapshot[]> {
  await requireVolume(deps.store, volumeId);
  return deps.store.snapshotsOfVolume(volumeId);
}
