/**
 * The ports the driver domain talks through. Adapters live in `backend/` (storage REST APIs)
 * and `store/` (PostgreSQL); the domain never imports axios, knex or express.
 * Each method's comment is its contract, including what happens when the thing is missing
 * or already there.
 */
import type {
  AgentReport,
  Attachment,
  AttachmentStatus,
  ConnectionInfo,
  Connector,
  AttachmentEvent,
  CellHealth,
  HealthMatrix,
  MultipathMode,
  Host,
  Volume,
} from './model.ts';
import type { Snapshot, SnapshotStatus } from './model.ts';

export type { DhchapPair, HostAuthState, HostSecretStore, RotationStep } from './host-secret-ports.ts';

// The storage backend's port is in backend-port.ts; every port is importable from here.
export type * from './backend-port.ts';

// ---------------------------------------------------------------- persistence

export interface NewVolume extends Pick<Volume, 'id' | 'name' | 'sizeGb' | 'replicas' | 'multiattach' | 'status'> {
  /** Defaults: compression false, thin true, the rest null. */
  compression?: boolean;
  thinProvisioned?: boolean;
  qosPolicyId?: string | null;
  sourceSnapshotId?: string | null;
  sourceVolumeId?: string | null;
}

export type NewAttachment = Pick<
  Attachment,
  'volumeId' | 'hostNqn' | 'hostName' | 'instanceUuid' | 'connector' | 'multipathMode' | 'connectedBy'
>;

export interface AttachmentFilter {
  volumeId?: string;
  hostNqn?: string;
  status?: AttachmentStatus;
}

/**
 * Volume and attachment records, and the host records the use cases decide on. Implementations
 * run every call on the connection of the surrounding `withVolumeLock`, when inside one: a lock
 * holder that read through the shared pool instead would wait for a second connection while
 * holding one, and a few concurrent holders would starve the pool.
 */
export interface Store {
  /** null when absent. */
  getVolume(id: string, opts?: { includeDeleted?: boolean }): Promise<Volume | null>;
  /**
   * The live (not deleted) volume and its attachments in one of `statuses` (oldest first), read
   * in one round trip; null when there is no live volume.
   */
  volumeWithAttachments(
    id: string,
    statuses: readonly AttachmentStatus[],
  ): Promise<{ volume: Volume; attachments: Attachment[] } | null>;
  /** Inserts; returns the existing row unchanged when `id` is already there. */
  insertVolume(v: NewVolume): Promise<Volume>;
  updateVolume(id: string, patch: Partial<Pick<Volume, 'status' | 'backendUuid' | 'sizeGb'>>): Promise<Volume>;

  /** The host record (registration, token), null when absent. */
  getHost(nqn: string): Promise<Host | null>;

  /** null when absent. */
  getAttachment(id: string): Promise<Attachment | null>;
  listAttachments(filter: AttachmentFilter): Promise<Attachment[]>;
  /** Attachments of the volume in one of `statuses`. */
  attachmentsOfVolume(volumeId: string, statuses: readonly AttachmentStatus[]): Promise<Attachment[]>;
  insertAttachment(a: NewAttachment): Promise<Attachment>;
  updateAttachment(
    id: string,
    patch: Partial<
      Pick<
        Attachment,
        'status' | 'connectionInfo' | 'connector' | 'multipathMode' | 'detachedAt' | 'detachForce' | 'hostPortals'
      >
    >,
  ): Promise<Attachment>;

  /**
   * Soft-deletes the volume: `getVolume` no longer finds it, its attachment rows stay (the host
   * agent still tears down after a delete). A later `insertVolume` with the same id starts a
   * fresh volume. Not an error when absent.
   */
  markVolumeDeleted(id: string): Promise<void>;

  /** null when absent. */
  getSnapshot(id: string): Promise<Snapshot | null>;
  /** The volume's snapshots, oldest first. */
  snapshotsOfVolume(volumeId: string): Promise<Snapshot[]>;
  /** Inserts; returns the existing row unchanged when `id` is already there. */
  insertSnapshot(s: NewSnapshot): Promise<Snapshot>;
  updateSnapshot(id: string, patch: Partial<Pick<Snapshot, 'status' | 'backendUuid' | 'sizeGb'>>): Promise<Snapshot>;
  /** Not an error when absent. */
  deleteSnapshot(id: string): Promise<void>;
}

export interface NewSnapshot {
  id: string;
  volumeId: string;
  name: string | null;
  backendName: string;
  sizeGb: number;
  status: SnapshotStatus;
}

/** An attachment as its host's agent sees it, with the volume's current size. */
export interface AgentAttachment {
  attachment: Attachment;
  volumeSizeGb: number;
}

/** Hosts, their tokens, and the agent's side of attachments. */
export interface AgentViewOptions {
  /** The version the agent has; the list is read only when the host's differs. */
  since: number | null;
  tokenHash?: string;
  touch?: boolean;
}

export interface AgentView {
  version: number;
  tokenValid: boolean;
  /** null when the version equals `since` (nothing to send). */
  attachments: AgentAttachment[] | null;
}

export interface HostStore {
  /** Creates the host or replaces its token hash (the old token stops working). */
  issueToken(nqn: string, name: string, tokenHash: string): Promise<Host>;
  /** Forgets the host's token; false when the host is unknown. */
  revokeToken(nqn: string): Promise<boolean>;
  /** The host whose token hashes to `tokenHash`, or null. */
  hostByTokenHash(tokenHash: string): Promise<Host | null>;
  /** null when absent. */
  getHost(nqn: string): Promise<Host | null>;
  listHosts(): Promise<Host[]>;
  /** Records the connector and version the agent registered with (null: too old to send one), and that it was seen now. */
  registerHost(nqn: string, connector: Connector, agentVersion: string | null): Promise<Host>;
  /**
   * What the host's agent must act on, read in one statement (one snapshot, so the version and
   * the list always agree): the host's change counter (0 for an unknown host), whether
   * `tokenHash` is still the host's token (true when not asked), and, only when the counter
   * differs from `since`, the attachments, all with connection info: live ones (to connect),
   * detaching ones (to tear down; the service waits for them), and ended ones that the agent has
   * not yet reported disconnected (to tear down), the last for a week after they ended.
   * `touch` also marks the host seen now, in the same round trip.
   */
  agentView(nqn: string, opts: AgentViewOptions): Promise<AgentView>;
  /**
   * Stores the agent's report on the host's attachment, marks the host seen and, when its state,
   * health or a path differs from the previous report, records the change in the path-health
   * history (atomically with the report). Null when the host has no such attachment (another
   * host's is none of its business).
   */
  saveReport(hostNqn: string, attachmentId: string, report: AgentReport): Promise<Attachment | null>;
}

export interface HealthMatrixQuery {
  volumeId?: string;
  hostNqn?: string;
  /** Only cells in one of these states (the roll-ups and counts then cover those cells only). */
  health?: CellHealth[];
  /** Paging over volumes (rows of the matrix), ordered by volume id. */
  offset: number;
  limit: number;
  /** `volume`: by volume id; `worst`: the worst volumes first, then by id. */
  order: 'volume' | 'worst';
  /** A report older than this is `unknown`; a host not seen for this long is stale. */
  staleMs: number;
}

/** The path-health history and the health matrix. */
export interface HealthStore {
  /** The attachment's events, newest first, at most `limit`. */
  attachmentEvents(attachmentId: string, limit: number): Promise<AttachmentEvent[]>;
  /** The volume × host matrix of live attachments, in one query. */
  healthMatrix(q: HealthMatrixQuery, now: Date): Promise<HealthMatrix>;
  /** Deletes events older than `before`; returns how many. */
  pruneEvents(before: Date): Promise<number>;
}

/** An attached attachment as the portal refresh compares it, with its volume's backend UUID. */
export interface AttachedForRefresh {
  id: string;
  volumeId: string;
  /** null when the volume was never created on the backend. */
  backendUuid: string | null;
  connectionInfo: ConnectionInfo | null;
  multipathMode: MultipathMode;
  connector: { nqn: string };
}

/** What the portal refresh reads outside any lock. */
export interface RefreshStore {
  /** Every `attached` attachment of a live (not deleted) volume, grouped by volume, in one query. */
  attachedForRefresh(): Promise<AttachedForRefresh[]>;
}

/** Wakes long-polls when a host's version changes, in any service process. */
export interface HostChangeFeed {
  /** Subscribe before reading the version, so that no change between the two is missed. */
  subscribe(nqn: string): { changed: Promise<void>; cancel(): void };
}

/**
 * Serialises work on one volume across every service process (PostgreSQL advisory locks). `fn`
 * gets a Store on the lock's own connection. Use cases reach this only through `underVolumeLock`
 * (`unit-of-work.ts`), whose work sees that store and no pool's.
 */
export interface VolumeLocks {
  withVolumeLock<T>(volumeId: string, fn: (store: Store) => Promise<T>): Promise<T>;
}

export type { ConnectionInfo };

// ---------------------------------------------------------------- periodic jobs of the fleet

/** A claim on one periodic job: this replica runs its pass; `token` names this claim. */
export interface JobClaim {
  token: string;
}

/**
 * The periodic jobs shared by every service process on one database: each pass of a job runs on
 * the one replica that claims it (docs/DECISIONS.md, "Periodic work once per fleet"). Times are
 * the database's; `periodMs` and `leaseMs` are durations.
 */
export interface PeriodicJobs {
  /**
   * Claims `job` for a lease of `leaseMs` when it is due (never claimed, or its period or the
   * previous claimant's lease has run out); otherwise `dueInMs` says how long until it is due.
   * One statement: of replicas claiming at once, one gets it.
   */
  claim(job: string, leaseMs: number): Promise<JobClaim | { dueInMs: number }>;
  /** Extends a held claim by `leaseMs` from now; false when it was lost (another replica claimed the job since). */
  renew(job: string, claim: JobClaim, leaseMs: number): Promise<boolean>;
  /**
   * Ends the claim's pass: the job is due again `periodMs` from now, and `result` (when given) is
   * kept for the other replicas. False when the claim was lost; nothing is written then.
   */
  finish(job: string, claim: JobClaim, periodMs: number, result?: unknown): Promise<boolean>;
  /** What the job's last pass left (`finish`'s result) and how long ago it ended, or null when none has. */
  lastResult(job: string): Promise<{ value: unknown; ageMs: number } | null>;
}
