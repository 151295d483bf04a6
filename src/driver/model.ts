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
  ip?: string;
  host_ips?: string[];
  multipath?: boolean;
  enforce_multipath?: boolean;
  nvme_native_multipath?: boolean;
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
 * os-brick NVMeOFConnProps, "new format" (single target), or the DeviceMapper form of the
 * Cinder NVMe-oF multipath spec (Phase 2) with `dm_replicas` in place of target_nqn/portals.
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
}
