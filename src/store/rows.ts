/**
 * The store's tables as rows (snake_case, as knex and pg return them) and their mapping to the
 * domain's types. `PgStore`, `HostStore` and the health store share these.
 */
import type {
  AgentReport,
  AgentState,
  Attachment,
  AttachmentStatus,
  ConnectedBy,
  ConnectionInfo,
  Connector,
  Host,
  MultipathMode,
  PathHealth,
  PathStatus,
  PortalTuple,
  Snapshot,
  SnapshotStatus,
  Volume,
  VolumeStatus,
} from '../driver/model.ts';

export interface VolumeRow {
  id: string;
  name: string;
  size_gb: number;
  replicas: number;
  multiattach: boolean;
  status: string;
  backend_uuid: string | null;
  created_at: Date;
  updated_at: Date;
  compression: boolean;
  thin_provisioned: boolean;
  qos_policy_id: string | null;
  source_snapshot_id: string | null;
  source_volume_id: string | null;
  deleted_at: Date | null;
}

export interface AttachmentRow {
  id: string;
  volume_id: string;
  host_nqn: string;
  host_name: string;
  instance_uuid: string | null;
  connector: Connector;
  multipath_mode: string;
  connection_info: ConnectionInfo | null;
  status: string;
  created_at: Date;
  updated_at: Date;
  detached_at: Date | null;
  detach_force: boolean;
  connected_by: string;
  host_portals: PortalTuple[] | null;
  agent_state: string | null;
  device_path: string | null;
  size_bytes: string | number | null;
  health: string | null;
  paths: PathStatus[] | null;
  agent_error: { code: string; message: string } | null;
  reported_at: Date | null;
  portals_changed_at?: Date | null;
}

export const toVolume = (r: VolumeRow): Volume => ({
  id: r.id,
  name: r.name,
  sizeGb: r.size_gb,
  replicas: r.replicas,
  multiattach: r.multiattach,
  status: r.status as VolumeStatus,
  backendUuid: r.backend_uuid,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  compression: r.compression,
  thinProvisioned: r.thin_provisioned,
  qosPolicyId: r.qos_policy_id,
  sourceSnapshotId: r.source_snapshot_id,
  sourceVolumeId: r.source_volume_id,
});

const toReport = (r: AttachmentRow): AgentReport | null =>
  r.agent_state === null || r.reported_at === null
    ? null
    : {
        state: r.agent_state as AgentState,
        devicePath: r.device_path,
        // bigint columns come back as strings from pg; sizes stay far below 2^53.
        sizeBytes: r.size_bytes === null ? null : Number(r.size_bytes),
        health: r.health as PathHealth | null,
        paths: r.paths ?? [],
        error: r.agent_error,
        reportedAt: r.reported_at,
      };

/** An attachment row as `json_agg` gives it: timestamps as text. */
export type AttachmentJson = Omit<AttachmentRow, TimestampColumn> & Record<TimestampColumn, string | null>;
type TimestampColumn = 'created_at' | 'updated_at' | 'detached_at' | 'reported_at' | 'portals_changed_at';

const date = (s: string | null | undefined): Date | null => (s == null ? null : new Date(s));

export function fromJson(j: AttachmentJson): AttachmentRow {
  return {
    ...j,
    created_at: date(j.created_at)!,
    updated_at: date(j.updated_at)!,
    detached_at: date(j.detached_at),
    reported_at: date(j.reported_at),
    portals_changed_at: date(j.portals_changed_at),
  };
}

export const toAttachment = (r: AttachmentRow): Attachment => ({
  id: r.id,
  volumeId: r.volume_id,
  hostNqn: r.host_nqn,
  hostName: r.host_name,
  instanceUuid: r.instance_uuid,
  connector: r.connector,
  multipathMode: r.multipath_mode as MultipathMode,
  connectionInfo: r.connection_info,
  status: r.status as AttachmentStatus,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  detachedAt: r.detached_at,
  detachForce: r.detach_force,
  connectedBy: r.connected_by as ConnectedBy,
  hostPortals: r.host_portals ?? null,
  portalsChangedAt: r.portals_changed_at ?? null,
  report: toReport(r),
});

export interface HostRow {
  nqn: string;
  name: string;
  connector: Connector | null;
  token_hash: string | null;
  token_issued_at: Date | null;
  registered_at: Date | null;
  last_seen_at: Date | null;
  version: string | number;
  /** Migration 20261207180000. */
  agent_version?: string | null;
}

export const toHost = (r: HostRow): Host => ({
  nqn: r.nqn,
  name: r.name,
  connector: r.connector,
  tokenIssuedAt: r.token_issued_at,
  registeredAt: r.registered_at,
  lastSeenAt: r.last_seen_at,
  version: Number(r.version),
  agentVersion: r.agent_version ?? null,
});

export interface SnapshotRow {
  id: string;
  volume_id: string;
  name: string | null;
  backend_name: string;
  backend_uuid: string | null;
  size_gb: number;
  status: string;
  created_at: Date;
  updated_at: Date;
}

export const toSnapshot = (r: SnapshotRow): Snapshot => ({
  id: r.id,
  volumeId: r.volume_id,
  name: r.name,
  backendName: r.backend_name,
  backendUuid: r.backend_uuid,
  sizeGb: r.size_gb,
  status: r.status as SnapshotStatus,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
