import { createSnapshot } from '../../driver/create-snapshot.ts';
import { deleteSnapshot } from '../../driver/delete-snapshot.ts';
import type { DriverDeps } from '../../driver/deps.ts';
import { getSnapshot } from '../../driver/get-snapshot.ts';
import { listSnapshots } from '../../driver/list-snapshots.ts';
import type { Handlers } from '../call.ts';
import { presentSnapshot } from '../presenters/lifecycle.ts';

export function snapshotHandlers(
  deps: DriverDeps,
): Handlers<'createSnapshot' | 'listVolumeSnapshots' | 'getSnapshot' | 'deleteSnapshot'> {
  return {
    async createSnapshot(c) {
      const b = c.body;
      const { snapshot, created } = await createSnapshot(deps, {
        volumeId: c.params.id,
        id: b.id,
        name: b.name,
      });
      return { status: created ? 201 : 200, body: presentSnapshot(snapshot) };
    },

    async listVolumeSnapshots(c) {
      const list = await listSnapshots(deps, c.params.id);
      return { status: 200, body: { snapshots: list.map(presentSnapshot) } };
    },

    async getSnapshot(c) {
      return { status: 200, body: presentSnapshot(await getSnapshot(deps, c.params.id)) };
    },

    /** 204 whether or not the snapshot existed: a retried delete must not fail. */
    async deleteSnapshot(c) {
      await deleteSnapshot(deps, c.params.id);
      return { status: 204, body: null };
    },
  };
}
