import type { DriverDeps } from './deps.ts';
import { requireVolume } from './guards.ts';
import type { Volume } from './model.ts';

/** The volume's record; `volume_not_found` when there is none (or it was deleted). */
export function getVolume(deps: DriverDeps, id: string): Promise<Volume> {
  return requireVolume(deps.store, id);
}
