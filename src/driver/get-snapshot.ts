import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import type { Snapshot } from './model.ts';

/** The snapshot's record; `snapshot_not_found` when there is none. */
export async function getSnapshot(deps: DriverDeps, id: string): Promise<Snapshot> {
  const s = await deps.store.getSnapshot(id);
  if (!s) throw new DriverError('snapshot_not_found', `snapshot ${id} does not exist`);
  return s;
}
