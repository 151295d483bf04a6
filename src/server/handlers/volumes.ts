import { createVolume } from '../../driver/create-volume.ts';
import { deleteVolume } from '../../driver/delete-volume.ts';
import type { DriverDeps } from '../../driver/deps.ts';
import { extendVolume } from '../../driver/extend-volume.ts';
import { getVolume } from '../../driver/get-volume.ts';
import { initializeConnection } from '../../driver/initialize-connection.ts';
import { terminateConnection } from '../../driver/terminate-connection.ts';
import type { Handlers } from '../call.ts';
import { presentVolumeDetail } from '../presenters/lifecycle.ts';

type VolumeOperation =
  | 'createVolume'
  | 'getVolume'
  | 'deleteVolume'
  | 'extendVolume'
  | 'initializeConnection'
  | 'terminateConnection';

export function volumeHandlers(deps: DriverDeps): Handlers<VolumeOperation> {
  return {
    async createVolume(c) {
      const b = c.body;
      const source =
        b.source &&
        ('snapshot_id' in b.source ? { snapshotId: b.source.snapshot_id } : { volumeId: b.source.volume_id });
      const { volume, created } = await createVolume(deps, {
        id: b.id,
        sizeGb: b.size_gb,
        replicas: b.replicas,
        multiattach: b.multiattach,
        compression: b.compression,
        thinProvisioned: b.thin_provisioned,
        qosPolicyId: b.qos_policy_id,
        source,
      });
      return { status: created ? 201 : 200, body: presentVolumeDetail(volume) };
    },

    async getVolume(c) {
      return { status: 200, body: presentVolumeDetail(await getVolume(deps, c.params.id)) };
    },

    /** 204 whether or not the volume existed: a retried delete must not fail. */
    async deleteVolume(c) {
      // Coerced to a boolean by the validation; its text read the same, should it ever arrive as one.
      await deleteVolume(deps, { id: c.params.id, force: String(c.query.force) === 'true' });
      return { status: 204, body: null };
    },

    async extendVolume(c) {
      const { volume } = await extendVolume(deps, { id: c.params.id, newSizeGb: c.body.new_size_gb });
      return { status: 200, body: presentVolumeDetail(volume) };
    },

    async initializeConnection(c) {
      const { connector, instance_uuid, access_mode } = c.body;
      const r = await initializeConnection(deps, {
        volumeId: c.params.id,
        connector,
        instanceUuid: instance_uuid ?? null,
        accessMode: access_mode,
      });
      return { status: 200, body: { connection_info: r.connectionInfo, attachment_id: r.attachment.id } };
    },

    async terminateConnection(c) {
      const { connector, force, attachment_id, instance_uuid } = c.body;
      const r = await terminateConnection(deps, {
        volumeId: c.params.id,
        connector,
        force: force ?? false,
        attachmentId: attachment_id,
        instanceUuid: instance_uuid,
      });
      return {
        status: 200,
        body: {
          revoked: r.revoked,
          shared: r.shared,
          detached: r.detached,
          revoked_hosts: r.revokedHosts,
          pending: r.pending,
        },
      };
    },
  };
}
