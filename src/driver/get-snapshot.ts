import type { DriverDeps } from './deps.ts';
import { requireSnapshot } from './guards.ts';
import type { Snapshot } from './model.ts';

/** The snapshot's record; `snapshot_not_found` when there is none. */
export function getSnapshot(deps: DriverDeps, id: string): Promise<Snapshot> {
  return requireSnapshot(deps.store, id);
}
