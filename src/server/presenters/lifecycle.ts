/**
 * Wire shapes of the volume lifecycle: a volume with the options it was created with, and
 * snapshots. `presentVolume` (presenters.ts) stays the shared core of a volume's view.
 */
import type { Snapshot, Volume } from '../../driver/model.ts';
import type { Schema } from '../wire.ts';
import { presentVolume } from './presenters.ts';

const sourceOf = (v: Volume) =>
  v.sourceSnapshotId ? { snapshot_id: v.sourceSnapshotId } : v.sourceVolumeId ? { volume_id: v.sourceVolumeId } : null;

export const presentVolumeDetail = (v: Volume): Schema<'Volume'> => ({
  ...presentVolume(v),
  compression: v.compression,
  thin_provisioned: v.thinProvisioned,
  qos_policy_id: v.qosPolicyId,
  source: sourceOf(v),
});

export const presentSnapshot = (s: Snapshot): Schema<'Snapshot'> => ({
  id: s.id,
  volume_id: s.volumeId,
  name: s.name,
  status: s.status,
  size_gb: s.sizeGb,
  backend_name: s.backendName,
  backend_uuid: s.backendUuid,
  created_at: s.createdAt.toISOString(),
  updated_at: s.updatedAt.toISOString(),
});
