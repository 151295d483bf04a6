/**
 * The domain vocabulary shared by the service, the backend adapters and the agent.
 * Wire field names (snake_case) are kept where the type *is* a wire format that os-brick or
 * Cinder defines (Connector, ConnectionInfo); internal types use camelCase.
 */

export type Transport = 'tcp' | 'rdma';

/** One NVMe-oF endpoint of the storage cluster. */
export interface Portal {
  address: string;
  port: number;
  transport: Transport;
}

/** NVMe ANA states (NVMe base spec 8.20); `unknown` when the backend does not say. */
export type AnaState = 'optimized' | 'non-optimized' | 'inaccessible' | 'persistent-loss' | 'change' | 'unknown';

/** A way to reach a volume: a storage node's portal and that node's ANA state for the volume. */
export interface VolumePath {
  nodeId: string;
  portal: Portal;
  anaState: AnaState;
}

/**
 * The dict os-brick's `get_connector_properties` returns (Cinder's "connector").
 * Only `nqn` and `host` are required; other keys are kept as given.
 */
export interface Connector {
  nqn: string;
  host: string;
  nvme_hostid?: string;
  uuid?: string | null;
  /** os-brick's `get_connector_properties` gives `ip: None` on a host where it finds no address. */
  ip?: string | null;
  host_ips?: string[];
  multipath?: boolean;
  enforce_multipath?: boolean;
  nvme_native_multipath?: boolean;
  /** Sent by the Portalis agent only: it can assemble `dm_replicas` with multipathd. */
  dm_multipath?: boolean;
  platform?: string;
  os_type?: string;
  [key: string]: unknown;
}

export type MultipathMode = 'native' | 'dm' | 'single';

/** `[address, port, transport]`, the portal form os-brick's NVMeOFConnProps takes. */
export type PortalTuple = [string, number, string];

export interface DmReplica {
  vol_uuid: string;
  target_nqn: string;
  portals: PortalTuple[];
}

/**
 * os-brick NVMeOFConnProps, "new format" (single target), or, for the Portalis agent only, the
 * DeviceMapper form of the Cinder NVMe-oF multipath spec (Phase 2) with `dm_replicas` in place of
 * target_nqn/portals (os-brick never implemented that phase and cannot read it).
 *
 * {"vol_uuid": "4c5e…", "target_nqn": "nqn.2014-08.org.nvmexpress:NVMf:uuid:…",
 *  "portals": [["10.0.0.1", 4420, "tcp"], ["10.0.0.2", 4420, "tcp"]],
 *  "ns_id": "7", "host_nqn": "nqn.2014-08.org.nvmexpress:uuid:…",
 *  "multipath_mode": "native", "access_mode": "rw", "discard": true}
 */
export interface ConnectionData {
  vol_uuid: string;
  target_nqn?: string;
  portals?: PortalTuple[];
  dm_replicas?: DmReplica[];
  /** A string: os-brick compares it with the text of sysfs `nsid`. */
  ns_id?: string;
  volume_nguid?: string;
  host_nqn: string;
  multipath_mode: MultipathMode;
  access_mode: 'rw' | 'ro';
  discard: boolean;
}

export interface ConnectionInfo {
  driver_volume_type: 'nvmeof';
  data: ConnectionData;
}

export type VolumeStatus = 'creating' | 'available' | 'deleting' | 'error';

export interface Volume {
  id: string;
  name: string;
  sizeGb: number;
  replicas: number;
  multiattach: boolean;
  status: VolumeStatus;
  /** The backend's own id for the volume (LightOS UUID); also the namespace UUID hosts see. */
  backendUuid: string | null;
  createdAt: Date;
  updatedAt: Date;
  compression: boolean;
  /** Always true on LightOS (thin only); kept so that a volume says what it was created as. */
  thinProvisioned: boolean;
  /** The backend's QoS policy UUID (LightOS `qosPolicyUUID`, Cinder's `lightos:qos_policy`). */
  qosPolicyId: string | null;
  /** The orchestrator snapshot this volume was created from. */
  sourceSnapshotId: string | null;
  /** The orchestrator volume this volume is a clone of. */
  sourceVolumeId: string | null;
}

/**
 * Service-side attachment lifecycle:
 *   attaching → attached → detaching → detached
 * `attaching` and `detaching` are recorded before the backend is touched, so a crash or a
 * backend failure in the middle leaves a row that the next retry converges from.
 */
export type AttachmentStatus = 'attaching' | 'attached' | 'detaching' | 'detached' | 'error';

/** Attachments whose host is (or is about to be) granted access on the backend. */
export const LIVE_STATUSES: readonly AttachmentStatus[] = ['attaching', 'attached'];

/**
 * Who connects an attachment's device on its host (docs/DECISIONS.md, "Who connects an
 * attachment"): `agent`, the Portalis agent connects, heals and tears it down; `host`, something
 * else on the host does (os-brick under Nova) and the agent only observes it and adds the paths
 * that live-path changes bring.
 */
export type ConnectedBy = 'agent' | 'host';

/**
 * What the host agent last said about an attachment (docs/ARCHITECTURE.md, steps 14–15). Of a
 * host-connected attachment only: `awaiting_host` until the host's device is there,
 * `host_detached` once the host let go of it while the attachment is still live (Nova calls
 * os-brick's disconnect_volume before Cinder's attachment_delete).
 */
export type AgentState =
  | 'connecting'
  | 'connected'
  | 'disconnecting'
  | 'disconnected'
  | 'error'
  | 'awaiting_host'
  | 'host_detached';
export type PathHealth = 'optimal' | 'degraded' | 'failed';

export interface PathStatus {
  /** Controller (`nvme3`), null when the path has none (never connected, or lost). */
  controller: string | null;
  address: string;
  port: number;
  transport: string;
  /**
   * The controller's sysfs state (live, connecting, resetting, deleting, …), or the agent's
   * word for a portal without a usable pairing: `missing` (no controller), `no-namespace`
   * (controller live, volume not behind it), `wrong-volume` (another namespace UUID there).
   */
  state: string;
  ana_state: string | null;
  /**
   * The generation of the host's DH-HMAC-CHAP secret this controller authenticated with; null
   * when it did not authenticate; absent from an agent older than in-band authentication.
   */
  auth_generation?: number | null;
}

export interface AgentReport {
  state: AgentState;
  devicePath: string | null;
  sizeBytes: number | null;
  health: PathHealth | null;
  paths: PathStatus[];
  error: { code: string; message: string } | null;
  reportedAt: Date;
}

/** A compute host known to the service: its agent's token and registered connector. */
export interface Host {
  nqn: string;
  name: string;
  connector: Connector | null;
  tokenIssuedAt: Date | null;
  registeredAt: Date | null;
  lastSeenAt: Date | null;
  /** Changes whenever something the host's agent must act on changes. */
  version: number;
  /** The version the agent sent when it last registered; null (or absent) before 0.2.0. */
  agentVersion?: string | null;
}

export interface Attachment {
  id: string;
  volumeId: string;
  hostNqn: string;
  hostName: string;
  instanceUuid: string | null;
  connector: Connector;
  multipathMode: MultipathMode;
  connectionInfo: ConnectionInfo | null;
  status: AttachmentStatus;
  createdAt: Date;
  updatedAt: Date;
  detachedAt: Date | null;
  /** Terminated with force: the agent tears down even a device in use. */
  detachForce: boolean;
  /** Decided at the first initialize_connection and kept across its repeats. */
  connectedBy: ConnectedBy;
  /**
   * Host-connected only: the portals handed to the host at its last initialize_connection (the
   * ones it connected); the portal refresh changes `connectionInfo`, never these.
   */
  hostPortals: PortalTuple[] | null;
  /** When the connection info (its portals) last changed; null before the first. */
  portalsChangedAt: Date | null;
  /** The agent's last report, null before the first. */
  report: AgentReport | null;
}

export type SnapshotStatus = 'creating' | 'available' | 'deleting' | 'error';

/** A snapshot the orchestrator took through Portalis (Cinder's snapshot object). */
export interface Snapshot {
  /** The orchestrator's snapshot UUID; the idempotency key. */
  id: string;
  volumeId: string;
  /** Display name given by the orchestrator. */
  name: string | null;
  /** Cinder naming on the backend: `snapshot-<id>`. */
  backendName: string;
  backendUuid: string | null;
  sizeGb: number;
  status: SnapshotStatus;
  createdAt: Date;
  updatedAt: Date;
}

/** One change of an attachment's reported agent state or health (the path-health history). */
export interface AttachmentEvent {
  id: number;
  attachmentId: string;
  at: Date;
  fromState: AgentState | null;
  toState: AgentState;
  fromHealth: PathHealth | null;
  toHealth: PathHealth | null;
  /** The paths as reported with the change. */
  paths: PathStatus[];
  error: { code: string; message: string } | null;
}

/**
 * A cell of the health matrix: `pending` before the agent's first report (or while it, or the
 * host, is still connecting), `unknown` when the last report is older than 180 s, `detached`
 * when the host let go of the device of a live attachment (a host-connected one between Nova's
 * disconnect and Cinder's attachment_delete, or one whose detach never reached the service),
 * `failed` when the agent reported an error or no device on a live attachment.
 */
export type CellHealth = PathHealth | 'unknown' | 'pending' | 'detached';

/** Worst first, for roll-ups and exit codes. */
export const CELL_HEALTH_ORDER: readonly CellHealth[] = [
  'failed',
  'unknown',
  'degraded',
  'detached',
  'pending',
  'optimal',
];

export interface HealthCell {
  attachmentId: string;
  volumeId: string;
  hostNqn: string;
  hostName: string;
  health: CellHealth;
  connectedBy: ConnectedBy;
  agentState: AgentState | null;
  reportedHealth: PathHealth | null;
  multipathMode: MultipathMode;
  devicePath: string | null;
  pathsLive: number;
  pathsTotal: number;
  reportedAt: Date | null;
  /** Since when the cell has been in `health`. */
  since: Date;
  hostStale: boolean;
  error: { code: string; message: string } | null;
}

export type HealthCounts = Record<CellHealth, number>;

export interface HealthMatrix {
  generatedAt: Date;
  /** Over every cell that passes the filters (not only the page). */
  summary: HealthCounts;
  /** Volumes (over every page) by their worst cell. */
  volumeSummary: HealthCounts;
  volumes: { volumeId: string; health: CellHealth; counts: HealthCounts; cells: HealthCell[] }[];
  hosts: {
    hostNqn: string;
    hostName: string;
    health: CellHealth;
    counts: HealthCounts;
    lastSeenAt: Date | null;
    stale: boolean;
  }[];
  totalVolumes: number;
  totalCells: number;
}
