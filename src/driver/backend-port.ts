/**
 * The storage backend port: one adapter per storage REST API (`src/backend/lightos/`). Each
 * method's comment is its contract, including what happens when the thing is missing or
 * already there. `ports.ts` re-exports it with the other ports.
 */
import type { DhchapPair } from './host-secret-ports.ts';
import type { VolumePath } from './model.ts';

export interface ClusterInfo {
  /** The backend cluster's UUID. */
  uuid: string;
  /** The single NVMe subsystem NQN every volume of the cluster is a namespace of. */
  subsystemNqn: string;
}

/** Backend volume lifecycle states (LightOS API v2 names). */
export type BackendState =
  | 'Unknown'
  | 'Creating'
  | 'Available'
  | 'Deleting'
  | 'Deleted'
  | 'Failed'
  | 'Updating'
  | 'Migrating'
  | 'Rollback';

export interface BackendVolume {
  /** Backend id; also the NVMe namespace UUID hosts see (os-brick `vol_uuid`). */
  uuid: string;
  name: string;
  sizeGb: number;
  replicas: number;
  compression: boolean;
  state: BackendState;
  /** Host NQNs allowed to connect. */
  acl: string[];
  /** Namespace id within the cluster subsystem, when the backend reports it. */
  nsid?: number;
  nguid?: string;
  qosPolicyUuid?: string;
  sourceSnapshotUuid?: string;
}

/** What `attachAccess` found: whether the ACL changed, the settled volume and its paths. */
export interface AttachAccess {
  changed: boolean;
  volume: BackendVolume;
  paths: VolumePath[];
}

export interface BackendVolumeSpec {
  /** Cinder naming: `volume-<orchestrator id>`; the idempotency key of create. */
  name: string;
  sizeGb: number;
  replicas: number;
  compression?: boolean;
  qosPolicyUuid?: string;
  /** Create from this snapshot (by backend UUID). */
  sourceSnapshotUuid?: string;
}

export interface BackendSnapshot {
  uuid: string;
  name: string;
  sourceVolumeUuid: string;
  sizeGb: number;
  state: BackendState;
}

export interface BackendCapacity {
  /** GiB, or null when the backend does not tell (a tenant JWT cannot read cluster stats). */
  totalGb: number | null;
  freeGb: number | null;
}

/**
 * A storage cluster reached over its REST API. Every method throws DriverError with code
 * `backend_unavailable` (no API endpoint answered), `backend_timeout` (an answer or a state
 * wait exceeded its deadline), `backend_error` (5xx or a malformed answer) or
 * `backend_rejected` (the backend refused the request, 4xx other than 404); the message names
 * the operation. A 404 is never an error where the contract says "null" or "not an error".
 */
export interface StorageBackend {
  /** The cluster's identity and subsystem NQN. */
  clusterInfo(): Promise<ClusterInfo>;

  /** Cheap round trip for readiness probes; throws as above when the backend is unreachable. */
  ping(): Promise<void>;

  /**
   * Creates the volume and waits until it is Available. Idempotent on `spec.name`: when a
   * volume of that name exists it is returned (after waiting for it to become Available).
   * A volume that ends `Failed` (or `Rollback`) is deleted and `backend_error` thrown. From a
   * snapshot, the backend may create it at the snapshot's size; the caller grows it.
   */
  createVolume(spec: BackendVolumeSpec): Promise<BackendVolume>;

  /** The volume with this backend UUID, or null when it does not exist. */
  getVolume(uuid: string): Promise<BackendVolume | null>;

  /** The volume with this name, or null when it does not exist. */
  getVolumeByName(name: string): Promise<BackendVolume | null>;

  /** Deletes and waits until it is gone. Not an error when the volume does not exist. */
  deleteVolume(uuid: string): Promise<void>;

  /** Grows the volume to `sizeGb`. A size equal to the current one is a no-op. Throws `volume_not_found` when absent. */
  extendVolume(uuid: string, sizeGb: number): Promise<BackendVolume>;

  /**
   * Adds `hostNqn` to the volume's ACL (read-modify-write with If-Match, retried on a
   * changed ETag) and waits until the backend shows it. Idempotent: `changed` is false when
   * the host was already there. Throws `volume_not_found` when the volume does not exist.
   */
  grantAccess(uuid: string, hostNqn: string): Promise<{ changed: boolean }>;

  /**
   * `grantAccess`, then what the host's connection needs: the volume as the backend shows it
   * once the ACL has settled, and its paths as `volumePaths` gives them, in as few sequential
   * calls as the backend allows (initialize_connection's critical path). The backend's reads
   * may start before `ready` settles; nothing is written before it resolves, and when it
   * rejects, the call rejects with its error and has written nothing. Throws
   * `volume_not_found` when the volume does not exist.
   */
  attachAccess(uuid: string, hostNqn: string, ready?: Promise<unknown>): Promise<AttachAccess>;

  /**
   * Removes `hostNqn` from the ACL and waits until it is gone. Idempotent: `changed` is false
   * when the host was not there; a missing volume is `{changed: false}`.
   */
  revokeAccess(uuid: string, hostNqn: string): Promise<{ changed: boolean }>;

  /** Removes every host from the ACL. Returns the hosts removed; a missing volume returns []. */
  revokeAllAccess(uuid: string): Promise<{ removed: string[] }>;

  /**
   * The portals through which the volume can be reached, with each node's ANA state for it,
   * the optimized path first. Every node holding a replica is listed, one that is down too (as
   * `inaccessible`, last), so that a host connects it once it is back; nodes holding no replica
   * are left out. A backend that does not report placement returns every node, `unknown` (or
   * `inaccessible` when it is not Active).
   */
  volumePaths(uuid: string): Promise<VolumePath[]>;

  /**
   * `volumePaths` of many volumes at once, in as few calls as the backend allows (LightOS: the
   * node list once and the volume list in pages; docs/live-paths.md). Volumes the backend does
   * not have are absent from the map; so is none that exists.
   */
  listVolumePaths(uuids: Iterable<string>): Promise<Map<string, VolumePath[]>>;

  /**
   * Creates a snapshot and waits until Available. Idempotent on `name`. Transient refusals are
   * retried with backoff within the operation deadline; one that ends `Failed` is deleted and
   * `backend_error` thrown. Throws `volume_not_found` when the source volume does not exist.
   */
  createSnapshot(sourceVolumeUuid: string, name: string): Promise<BackendSnapshot>;

  /** The snapshot with this name, or null. */
  getSnapshotByName(name: string): Promise<BackendSnapshot | null>;

  /** Deletes and waits until gone. Not an error when absent. */
  deleteSnapshot(uuid: string): Promise<void>;

  /** Cluster capacity where the backend reports it. */
  capacity(): Promise<BackendCapacity>;

  /**
   * Makes `hostNqn` a trusted host (in-band authentication) whose connections must prove
   * `accepted[0]`'s host secret, the target answering with its controller secret. Creates the
   * trusted host when absent. `accepted[1]`, when given, is the previous pair, kept valid while
   * the host moves to the new one on a backend that can hold two; a backend that holds one pair
   * per host keeps only `accepted[0]` (docs/DECISIONS.md says which does what). Idempotent:
   * setting what is already set changes nothing.
   */
  setTrustedHost(hostNqn: string, accepted: DhchapPair[]): Promise<void>;
}
