import type { Attachment, Volume } from '../../driver/model.ts';

export const presentVolume = (v: Volume) => ({
  id: v.id,
  name: v.name,
  size_gb: v.sizeGb,
  replicas: v.replicas,
  multiattach: v.multiattach,
  status: v.status,
  backend_uuid: v.backendUuid,
  created_at: v.createdAt.toISOString(),
  updated_at: v.updatedAt.toISOString(),
});

export const presentAttachment = (a: Attachment) => ({
  id: a.id,
  volume_id: a.volumeId,
  host_nqn: a.hostNqn,
  host: a.hostName,
  instance_uuid: a.instanceUuid,
  status: a.status,
  multipath_mode: a.multipathMode,
  connection_info: a.connectionInfo,
  connector: a.connector,
  created_at: a.createdAt.toISOString(),
  updated_at: a.updatedAt.toISOString(),
  detached_at: a.detachedAt ? a.detachedAt.toISOString() : null,
});
