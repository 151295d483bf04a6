/**
 * The simulated cluster's nodes and where the volumes' replicas live on them: which node serves
 * each volume optimized (ANA), nodes failing and returning, joining, leaving and readdressing,
 * replicas moving. Every change is made synchronously in the model and then told to the
 * DataPlane through the FIFO queue (`tell`), so a slow data plane sees changes in the order
 * they happened. `SimCluster` (cluster.ts) adds the LightOS catalogue on top: volumes and
 * snapshots with their lifecycle, capacity and ACLs.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import type { DataPlane } from './data-plane.ts';
import { MemoryDataPlane } from './memory-data-plane.ts';
import { badRequest, conflict, notFound, precondition } from './model.ts';
import type { SimNode, SimVolume } from './model.ts';
import { anaStates, electPrimary } from './placement.ts';
import { Sequencer } from './sequencer.ts';
import { type Logger, silentLogger } from '../shared/logger.ts';

export interface SimTopologyOptions {
  /** Number of nodes (default 3). */
  nodes?: number;
  /** Address every node's NVMe/TCP portal listens on (default 127.0.0.1). */
  nodeAddress?: string;
  /** Node i listens on basePort + i (default 4420). */
  basePort?: number;
  dataPlane?: DataPlane;
  logger?: Logger;
}

export class SimTopology {
  readonly uuid = randomUUID();
  /** One subsystem for the whole cluster, named like LightOS names it. */
  readonly subsystemNqn = `nqn.2014-08.org.nvmexpress:NVMf:uuid:${this.uuid}`;
  readonly nodes: SimNode[];
  readonly dataPlane: DataPlane;

  protected readonly volumes = new Map<string, SimVolume>();
  protected readonly seq: Sequencer;
  private readonly basePort: number;
  private readonly nodeAddress: string;
  /** The nodes as built, for `resetNodes` to return to (nodes added later go, addresses come back). */
  private readonly initialNodes: SimNode[];
  private etagSeq = 0;

  constructor(opts: SimTopologyOptions = {}) {
    const count = opts.nodes ?? 3;
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`nodes must be a positive integer, got ${count}`);
    const address = opts.nodeAddress ?? '127.0.0.1';
    const basePort = opts.basePort ?? 4420;
    this.basePort = basePort;
    this.nodeAddress = address;
    this.nodes = Array.from({ length: count }, (_, i) => ({
      index: i,
      uuid: randomUUID(),
      name: `node-${i}`,
      address,
      port: basePort + i,
      up: true,
    }));
    this.initialNodes = this.nodes.map((n) => ({ ...n }));
    this.dataPlane = opts.dataPlane ?? new MemoryDataPlane();
    this.seq = new Sequencer(opts.logger ?? silentLogger);
  }

  /** Replica counts allowed: 1..min(3, nodes), as LightOS caps replication at 3. */
  get maxReplicas(): number {
    return Math.min(3, this.nodes.length);
  }

  /** Starts the data plane; rejects when it cannot (no configfs, a port in use…). */
  async start(): Promise<void> {
    const nodes = this.nodes.map((n) => ({ nodeId: n.uuid, index: n.index, address: n.address, port: n.port }));
    await this.seq.run(() => this.dataPlane.start(this.subsystemNqn, nodes));
  }

  /** Cancels pending transitions, waits for the data plane queue, stops the data plane. */
  async close(): Promise<void> {
    this.seq.cancelTimers();
    await this.tell('stop', () => this.dataPlane.stop());
  }

  /** Resolves once every data-plane call queued so far has finished. */
  settled(): Promise<void> {
    return this.seq.settled();
  }

  allVolumes(): SimVolume[] {
    return [...this.volumes.values()];
  }

  getVolume(project: string, uuid: string): SimVolume | undefined {
    const v = this.volumes.get(uuid);
    return v && v.project === project ? v : undefined;
  }

  anaOf(vol: SimVolume) {
    return anaStates(this.nodes, vol);
  }

  /** A node by UUID or by index (decimal string). */
  findNode(ref: string): SimNode | undefined {
    if (/^\d+$/.test(ref)) return this.nodes.find((n) => n.index === Number(ref));
    return this.nodes.find((n) => n.uuid === ref);
  }

  protected needNode(ref: unknown, what = 'node'): SimNode {
    if (typeof ref === 'number' && Number.isInteger(ref)) ref = String(ref);
    if (typeof ref !== 'string' || ref === '') throw badRequest(`${what} must be a node UUID or index`);
    const node = this.findNode(ref);
    if (!node) throw notFound(`${what} ${ref} not found`);
    return node;
  }

  // ------------------------------------------------------------------ nodes

  /** Takes a node down or brings it up, moving primaries off a failed node (no failback). */
  setNodeUp(ref: string, up: boolean): SimNode {
    const node = this.findNode(ref);
    if (!node) throw notFound(`node ${ref} not found`);
    if (node.up === up) return node;
    const before = new Map(this.allVolumes().map((v) => [v.uuid, JSON.stringify(this.anaOf(v))]));
    node.up = up;
    for (const v of this.volumes.values()) v.primary = electPrimary(this.nodes, v);
    // Down: the port stops first, then the survivors' ANA changes (as a real failure).
    // Up: ANA states are set before the port serves again, so it never shows a stale optimized.
    if (!up) void this.tell('setNodeUp', () => this.dataPlane.setNodeUp(node.uuid, false));
    for (const v of this.volumes.values()) {
      const ana = this.anaOf(v);
      if (v.exposed && JSON.stringify(ana) !== before.get(v.uuid)) {
        void this.tell('setAna', () => this.dataPlane.setAna(v.uuid, ana));
      }
    }
    if (up) void this.tell('setNodeUp', () => this.dataPlane.setNodeUp(node.uuid, true));
    return node;
  }

  /**
   * A node joins: a new index (one past the highest), listening on `address`/`port` (default: the
   * cluster's address, base port + index). It holds no replica until one is moved onto it.
   */
  addNode(spec: { address?: string; port?: number } = {}): SimNode {
    const index = this.nodes.reduce((m, n) => Math.max(m, n.index), -1) + 1;
    const address = spec.address ?? this.nodeAddress;
    const port = spec.port ?? this.basePort + index;
    this.checkEndpoint(address, port);
    const node: SimNode = { index, uuid: randomUUID(), name: `node-${index}`, address, port, up: true };
    this.nodes.push(node);
    const endpoint = { nodeId: node.uuid, index, address, port };
    void this.tell('addNode', () => this.dataPlane.addNode(endpoint));
    return node;
  }

  /** A node leaves; refused (409) while it holds a replica of any volume, or when it is the last. */
  removeNode(ref: string): SimNode {
    const node = this.needNode(ref);
    const holding = this.allVolumes().filter((v) => v.replicas.includes(node.uuid));
    if (holding.length)
      throw conflict(
        `node ${node.uuid} holds replicas of ${holding.length} volume(s) (${holding
          .slice(0, 3)
          .map((v) => v.uuid)
          .join(', ')}): move them first`,
      );
    if (this.nodes.length === 1) throw conflict('the last node of the cluster cannot be removed');
    this.nodes.splice(this.nodes.indexOf(node), 1);
    void this.tell('removeNode', () => this.dataPlane.removeNode(node.uuid));
    return node;
  }

  /**
   * Moves the volume's replica from one node to another that holds none. Hosts keep a usable path
   * throughout: the new node first serves the volume (non-optimized), then the old one stops; the
   * optimized path moves with the replica when the moved one was the primary (and the new node
   * is up). The data stays where it is (the data plane keeps the same backing store).
   */
  moveReplica(project: string | null, uuid: string, fromRef: unknown, toRef: unknown): SimVolume {
    const vol = project === null ? this.volumes.get(uuid) : this.getVolume(project, uuid);
    if (!vol) throw notFound(`volume ${uuid} not found`);
    if (vol.state === 'Deleting' || vol.state === 'Failed') throw precondition(`volume ${uuid} is ${vol.state}`);
    const from = this.needNode(fromRef, 'from');
    const to = this.needNode(toRef, 'to');
    if (!vol.replicas.includes(from.uuid)) throw conflict(`node ${from.uuid} holds no replica of volume ${uuid}`);
    if (vol.replicas.includes(to.uuid)) throw conflict(`node ${to.uuid} already holds a replica of volume ${uuid}`);
    const wasPrimary = vol.primary === from.uuid;
    const before = vol.replicas;
    // Step 1: both nodes hold it; the new one serves non-optimized.
    vol.replicas = [...vol.replicas, to.uuid];
    if (vol.exposed) {
      const ana = this.anaOf(vol);
      void this.tell('setAna', () => this.dataPlane.setAna(vol.uuid, ana));
    }
    // Step 2: the old one lets go (the new one takes its slot in placement order); the primary
    // moves with the replica, or to a survivor when the new node is down.
    vol.replicas = before.map((r) => (r === from.uuid ? to.uuid : r));
    if (wasPrimary) vol.primary = to.uuid;
    vol.primary = electPrimary(this.nodes, vol);
    if (vol.exposed) {
      const ana = this.anaOf(vol);
      void this.tell('setAna', () => this.dataPlane.setAna(vol.uuid, ana));
    }
    vol.etag = this.nextEtag();
    return vol;
  }

  /**
   * Changes a node's NVMe/TCP endpoint. Hosts connected to the old one lose that path (a target
   * port is taken down to change its address) and must connect the new one.
   */
  setNodeAddress(ref: string, address: unknown, port: unknown): SimNode {
    const node = this.needNode(ref);
    if (typeof address !== 'string' || net.isIP(address) === 0)
      throw badRequest('address must be an IPv4 or IPv6 address');
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
      throw badRequest('port must be an integer 1..65535');
    if (node.address === address && node.port === port) return node;
    this.checkEndpoint(address, port, node);
    node.address = address;
    node.port = port;
    const endpoint = { nodeId: node.uuid, index: node.index, address, port };
    void this.tell('setNodeAddress', () => this.dataPlane.setNodeAddress(endpoint));
    return node;
  }

  /** Brings every node up and returns to the nodes as built (for `reset`). */
  protected resetNodes(): void {
    for (const n of this.nodes) {
      if (!n.up) {
        n.up = true;
        void this.tell('setNodeUp', () => this.dataPlane.setNodeUp(n.uuid, true));
      }
    }
    for (const n of [...this.nodes]) {
      if (!this.initialNodes.some((i) => i.uuid === n.uuid)) this.removeNode(n.uuid);
    }
    for (const i of this.initialNodes) {
      const n = this.nodes.find((x) => x.uuid === i.uuid)!;
      if (n.address !== i.address || n.port !== i.port) this.setNodeAddress(n.uuid, i.address, i.port);
    }
  }

  private checkEndpoint(address: string, port: number, self?: SimNode): void {
    if (net.isIP(address) === 0) throw badRequest('address must be an IPv4 or IPv6 address');
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw badRequest('port must be an integer 1..65535');
    const other = this.nodes.find((n) => n !== self && n.address === address && n.port === port);
    if (other) throw conflict(`node ${other.uuid} already listens on ${address} port ${port}`);
  }

  protected nextEtag(): string {
    return String(++this.etagSeq);
  }

  protected tell(what: string, fn: () => Promise<void>): Promise<boolean> {
    return this.seq.tell(what, fn);
  }
}
