import type { Context } from 'openapi-backend';
import { createVolume } from '../../driver/create-volume.ts';
import { deleteVolume } from '../../driver/delete-volume.ts';
import type { DriverDeps } from '../../driver/deps.ts';
import { extendVolume } from '../../driver/extend-volume.ts';
import { getVolume } from '../../driver/get-volume.ts';
import { initializeConnection } from '../../driver/initialize-connection.ts';
import type { Connector } from '../../driver/model.ts';
import { terminateConnection } from '../../driver/terminate-connection.ts';
import { presentVolumeDetail } from '../presenters/lifecycle.ts';
import type { HandlerResult } from './types.ts';

interface CreateVolumeBody {
  id: string;
  size_gb: number;
  replicas?: number;
  multiattach?: boolean;
  compression?: boolean;
  thin_provisioned?: boolean;
  qos_policy_id?: string;
  source?: { snapshot_id: string } | { volume_id: string };
}
interface ExtendBody {
  new_size_gb: number;
}
interface InitializeBody {
  connector: Connector;
  instance_uuid?: string;
  access_mode?: 'rw' | 'ro';
}
interface TerminateBody {
  connector: Connector | null;
  force?: boolean;
  attachment_id?: string;
  instance_uuid?: string;
}

export function volumeHandlers(deps: DriverDeps) {
  return {
    async createVolume(c: Context): Promise<HandlerResult> {
      const b = c.request.requestBody as CreateVolumeBody;
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

    async getVolume(c: Context): Promise<HandlerResult> {
      return { status: 200, body: presentVolumeDetail(await getVolume(deps, c.request.params.id as string)) };
    },

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

    async initializeConnection(c: Context): Promise<HandlerResult> {
      const b = c.request.requestBody as InitializeBody;
      const r = await initializeConnection(deps, {
        volumeId: c.request.params.id as string,
        connector: b.connector,
        instanceUuid: b.instance_uuid ?? null,
        accessMode: b.access_mode,
      });
      return { status: 200, body: { connection_info: r.connectionInfo, attachment_id: r.attachment.id } };
    },

    async terminateConnection(c: Context): Promise<HandlerResult> {
      const b = c.request.requestBody as TerminateBody;
      const r = await terminateConnection(deps, {
        volumeId: c.request.params.id as string,
        connector: b.connector,
        force: b.force ?? false,
        attachmentId: b.attachment_id,
        instanceUuid: b.instance_uuid,
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
