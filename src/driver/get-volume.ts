import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import type { Volume } from './model.ts';

/** The volume's record; `volume_not_found` when there is none (or it was deleted). */
export async function getVolume(deps: DriverDeps, id: string): Promise<Volume> {
  const v = await deps.store.getVolume(id);
  if (!v) throw new DriverError('volume_not_found', `volume ${id} does not exist`);
  return v;
}
