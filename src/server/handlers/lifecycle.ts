/**
 * The volume lifecycle beyond create/read/attach: delete, extend, snapshots and capabilities.
 * `lifecycleHandlers` is the one entry app.ts spreads into its operation map.
 */
import type { Context } from 'openapi-backend';
import { deleteVolume } from '../../driver/delete-volume.ts';
import type { DriverDeps } from '../../driver/deps.ts';
import { extendVolume } from '../../driver/extend-volume.ts';
import { presentVolumeDetail } from '../presenters/lifecycle.ts';
import { capabilityHandlers } from './capabilities.ts';
import { snapshotHandlers } from './snapshots.ts';
import type { HandlerResult } from './types.ts';

interface ExtendBody {
  new_size_gb: number;
}

export function lifecycleHandlers(deps: DriverDeps) {
  return {
    ...snapshotHandlers(deps),
    ...capabilityHandlers(deps),

    /** 204 whether or not the volume existed: a retried delete must not fail. */
    async deleteVolume(c: Context): Promise<HandlerResult> {
      const q = c.request.query as { force?: boolean | string };
      await deleteVolume(deps, { id: c.request.params.id as string, force: q.force === true || q.force === 'true' });
      return { status: 204, body: null };
    },

    async extendVolume(c: Context): Promise<HandlerResult> {
      const b = c.request.requestBody as ExtendBody;
      const { volume } = await extendVolume(deps, { id: c.request.params.id as string, newSizeGb: b.new_size_gb });
      return { status: 200, body: presentVolumeDetail(volume) };
    },
  };
}
