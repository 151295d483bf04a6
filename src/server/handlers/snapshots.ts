import type { Context } from 'openapi-backend';
import { createSnapshot } from '../../driver/create-snapshot.ts';
import { deleteSnapshot } from '../../driver/delete-snapshot.ts';
import type { DriverDeps } from '../../driver/deps.ts';
import { getSnapshot } from '../../driver/get-snapshot.ts';
import { listSnapshots } from '../../driver/list-snapshots.ts';
import { presentSnapshot } from '../presenters/lifecycle.ts';
import type { HandlerResult } from './types.ts';

interface CreateSnapshotBody {
  id: string;
  name?: string;
}

export function snapshotHandlers(deps: DriverDeps) {
  return {
    async createSnapshot(c: Context): Promise<HandlerResult> {
      const b = c.request.requestBody as CreateSnapshotBody;
      const { snapshot, created } = await createSnapshot(deps, {
        volumeId: c.request.params.id as string,
        id: b.id,
        name: b.name,
      });
      return { status: created ? 201 : 200, body: presentSnapshot(snapshot) };
    },

    async listVolumeSnapshots(c: Context): Promise<HandlerResult> {
      const list = await listSnapshots(deps, c.request.params.id as string);
      return { status: 200, body: { snapshots: list.map(presentSnapshot) } };
    },

    async getSnapshot(c: Context): Promise<HandlerResult> {
      return { status: 200, body: presentSnapshot(await getSnapshot(deps, c.request.params.id as string)) };
    },

    /** 204 whether or not the snapshot existed: a retried delete must not fail. */
    async deleteSnapshot(c: Context): Promise<HandlerResult> {
      await deleteSnapshot(deps, c.request.params.id as string);
      return { status: 204, body: null };
    },
  };
}
