/**
 * The simulator's data plane: where simulated volumes become something an NVMe/TCP initiator
 * can reach. The cluster model (`cluster.ts`) decides placement and ANA states and tells the
 * data plane; the data plane never decides anything itself.
 *
 * - `MemoryDataPlane` (default): keeps what it was told, for tests and demos.
 * - the nvmet plane (Linux kernel target through configfs): each node a target port, the
 *   cluster one subsystem, each volume a namespace (UUID = volume UUID, backed by a sparse
 *   file) with its own ANA group.
 */
import type { AnaState } from '../driver/model.ts';

export interface SimNodeEndpoint {
  nodeId: string;
  /** Index of the node in the cluster (0-based); the nvmet plane uses it as the port id. */
  index: number;
  address: string;
  port: number;
}

export interface NamespaceSpec {
  volumeUuid: string;
  nsid: number;
  sizeBytes: number;
  /** The volume's ANA state on every node of the cluster, keyed by nodeId. */
  ana: Record<string, AnaState>;
}

export interface DataPlane {
  readonly kind: string;
  /**
   * How many namespaces the plane can hold at once; undefined: no limit. The cluster refuses a
   * create beyond it (a 400 at the API) rather than leave a volume half-created.
   */
  readonly maxNamespaces?: number;
  /** Called once before any other call, with the cluster's subsystem NQN and nodes. */
  start(subsystemNqn: string, nodes: SimNodeEndpoint[]): Promise<void>;
  /** A volume became Available: expose it. Idempotent. */
  addNamespace(ns: NamespaceSpec): Promise<void>;
  /** The volume grew. */
  resizeNamespace(volumeUuid: string, sizeBytes: number): Promise<void>;
  /** The volume was deleted. Not an error when absent. */
  removeNamespace(volumeUuid: string): Promise<void>;
  /** The per-node ANA states of a volume changed (failover, failback). */
  setAna(volumeUuid: string, ana: Record<string, AnaState>): Promise<void>;
  /**
   * In-band authentication: the target makes `hostNqn` prove `hostSecret` and answers with
   * `ctrlSecret` (DHHC-1 strings). `unsupported` when the target cannot enforce it (a kernel
   * without CONFIG_NVME_TARGET_AUTH). Optional: a plane without it only keeps the ACL.
   */
  setHostSecrets?(
    hostNqn: string,
    secrets: { hostSecret: string; ctrlSecret: string },
  ): Promise<'written' | 'unsupported'>;
  /** Host NQNs allowed to connect (the union of all volume ACLs). */
  setAllowedHosts(hostNqns: string[]): Promise<void>;
  /** A node went down (its portal stops serving) or came back. */
  setNodeUp(nodeId: string, up: boolean): Promise<void>;
  /** A node joined (a new target port), up, holding no replica yet. Idempotent. */
  addNode(node: SimNodeEndpoint): Promise<void>;
  /** A node left (it holds no replica). Not an error when unknown. */
  removeNode(nodeId: string): Promise<void>;
  /** A node's NVMe/TCP endpoint changed; connected hosts lose that path. */
  setNodeAddress(node: SimNodeEndpoint): Promise<void>;
  stop(): Promise<void>;
}
