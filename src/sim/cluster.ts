/**
 * The simulated LightOS cluster: N nodes, one NVMe subsystem, volumes placed on replicaCount
 * nodes with per-node ANA states, snapshots, and capacity. Every mutation is synchronous (so an
 * HTTP handler sees it atomically) and is then told to the DataPlane through a FIFO queue, so
 * that a slow data plane (nvmet, configfs writes) sees changes in the order they happened.
 *
 * Lifecycle, as LightOS reports it: a volume is `Creating` until its namespace exists, then
 * `Available`; `DELETE` makes it `Deleting` and then it is gone (404). Both transitions take
 * `stateDelayMs` (0 = on the next tick). `Updating` is not used: ACL and size changes apply at
 * once, which LightOS also allows us to observe as "ACL visible in the next GET".
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import type { DataPlane, NamespaceSpec } from './data-plane.ts';
import { MemoryDataPlane } from './memory-data-plane.ts';
import { badRequest, conflict, notFound, precondition, SimError, TiB } from './model.ts';
import type { SimNode, SimSnapshot, SimVolume, SimVolumeState } from './model.ts';
import { anaStates, choosePlacement, electPrimary } from './placement.ts';
import { Sequencer } from './sequencer.ts';
import { type Logger, silentLogger } from '../shared/logger.ts';

export interface SimClusterOptions {
  /** Number of nodes (default 3). */
  nodes?: number;
  /** Address every node's NVMe/TCP portal listens on (default 127.0.0.1). */
  nodeAddress?: string;
  /** Node i listens on basePort + i (default 4420). */
  basePort?: number;
  /** Total capacity in bytes (default 10 TiB). */
  capacityBytes?: number;
  dataPlane?: DataPlane;
  logger?: Logger;
}

export interface CreateVolumeSpec {
  name: string;
  sizeBytes: number;
  replicaCount: number;
  compression: boolean;
  acl: string[];
  ipAcl: string[];
  sourceSnapshotUuid?: string;
  sourceSnapshotName?: string;
  qosPolicyUuid?: string;
}

export interface UpdateVolumePatch {
  acl?: string[];
  ipAcl?: string[];
  sizeBytes?: number;
}

export class SimCluster {
  readonly uuid = randomUUID();
  /** One subsystem for the whole cluster, named like LightOS names it. */
  readonly subsystemNqn = `nqn.2014-08.org.nvmexpress:NVMf:uuid:${this.uuid}`;
  readonly nodes: SimNode[];
  readonly dataPlane: DataPlane;
  readonly capacityBytes: number;
  /** How long Creating and Deleting last (fault `stateDelayMs`). */
  stateDelayMs = 0;
  /** Fault `failCreate`: the next created volume ends in Failed. */
  failCreate = false;

  private readonly basePort: number;
  private readonly nodeAddress: string;
  /** The nodes as built, for `reset` to return to (nodes added later go, addresses come back). */
  private readonly initialNodes: SimNode[];
  private readonly volumes = new Map<string, SimVolume>();
  private readonly snapshots = new Map<string, SimSnapshot>();
  private readonly seq: Sequencer;
  private nextNsid = 1;
  private etagSeq = 0;
  private allowedKey = '';

  constructor(opts: SimClusterOptions = {}) {
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
    this.capacityBytes = opts.capacityBytes ?? 10 * TiB;
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

  /** Drops every volume and snapshot, brings every node up, clears the model's faults. */
  reset(): void {
    this.seq.cancelTimers();
    for (const v of this.volumes.values())
      if (v.exposed) void this.tell('removeNamespace', () => this.dataPlane.removeNamespace(v.uuid));
    this.volumes.clear();
    this.snapshots.clear();
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
    this.stateDelayMs = 0;
    this.failCreate = false;
    this.syncAllowedHosts();
  }

  // ------------------------------------------------------------------ queries

  allVolumes(): SimVolume[] {
    return [...this.volumes.values()];
  }

  allSnapshots(): SimSnapshot[] {
    return [...this.snapshots.values()];
  }

  /**
   * The project's volumes ordered by UUID, from the first after `offsetUuid` (which need not
   * exist any more), at most `limit` of them (0: all).
   */
  listVolumes(project: string, offsetUuid?: string, limit = 0): SimVolume[] {
    const all = this.allVolumes()
      .filter((v) => v.project === project && (offsetUuid === undefined || v.uuid > offsetUuid))
      .sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
    return limit > 0 ? all.slice(0, limit) : all;
  }

  getVolume(project: string, uuid: string): SimVolume | undefined {
    const v = this.volumes.get(uuid);
    return v && v.project === project ? v : undefined;
  }

  findVolumeByName(project: string, name: string): SimVolume | undefined {
    return this.allVolumes().find((v) => v.project === project && v.name === name);
  }

  anaOf(vol: SimVolume) {
    return anaStates(this.nodes, vol);
  }

  usedBytes(): number {
    let used = 0;
    for (const v of this.volumes.values()) used += v.sizeBytes;
    return used;
  }

  /** A node by UUID or by index (decimal string). */
  findNode(ref: string): SimNode | undefined {
    if (/^\d+$/.test(ref)) return this.nodes.find((n) => n.index === Number(ref));
    return this.nodes.find((n) => n.uuid === ref);
  }

  private needNode(ref: unknown, what = 'node'): SimNode {
    if (typeof ref === 'number' && Number.isInteger(ref)) ref = String(ref);
    if (typeof ref !== 'string' || ref === '') throw badRequest(`${what} must be a node UUID or index`);
    const node = this.findNode(ref);
    if (!node) throw notFound(`${what} ${ref} not found`);
    return node;
  }

  // ------------------------------------------------------------------ volumes

  createVolume(project: string, spec: CreateVolumeSpec): SimVolume {
    if (this.findVolumeByName(project, spec.name))
      throw conflict(`volume named '${spec.name}' already exists in project '${project}'`);
    if (spec.replicaCount > this.maxReplicas) {
      throw badRequest(
        `replicaCount ${spec.replicaCount} exceeds what a ${this.nodes.length}-node cluster supports (max ${this.maxReplicas})`,
      );
    }
    let source: SimSnapshot | undefined;
    if (spec.sourceSnapshotUuid || spec.sourceSnapshotName) {
      source = spec.sourceSnapshotUuid
        ? this.getSnapshot(project, spec.sourceSnapshotUuid)
        : this.findSnapshotByName(project, spec.sourceSnapshotName!);
      if (!source)
        throw notFound(
          `source snapshot ${spec.sourceSnapshotUuid ?? spec.sourceSnapshotName} not found in project '${project}'`,
        );
      if (source.state !== 'Available')
        throw precondition(`source snapshot ${source.uuid} is ${source.state}, not Available`);
      if (spec.sizeBytes < source.sizeBytes) {
        throw badRequest(
          `size ${spec.sizeBytes} bytes is smaller than the source snapshot (${source.sizeBytes} bytes)`,
        );
      }
    }
    this.requireCapacity(spec.sizeBytes);
    this.requireNamespaceSlot();
    const { replicas, primary } = choosePlacement(this.nodes, this.volumes.values(), spec.replicaCount);
    const vol: SimVolume = {
      uuid: randomUUID(),
      name: spec.name,
      project,
      sizeBytes: spec.sizeBytes,
      replicaCount: spec.replicaCount,
      compression: spec.compression,
      acl: [...spec.acl],
      ipAcl: [...spec.ipAcl],
      state: 'Creating',
      etag: this.nextEtag(),
      nsid: this.nextNsid++,
      replicas,
      primary,
      exposed: false,
      failOnCreate: this.failCreate,
      sourceSnapshotUuid: source?.uuid ?? '',
      sourceSnapshotName: source?.name ?? '',
      qosPolicyUuid: spec.qosPolicyUuid ?? '',
      createdAt: new Date(),
    };
    this.failCreate = false;
    this.volumes.set(vol.uuid, vol);
    this.syncAllowedHosts();
    this.later(() => this.finishCreate(vol));
    return vol;
  }

  /** Applies ACL/IPAcl/size changes. `ifMatch` (already unquoted) must equal the ETag, or be `*`. */
  updateVolume(project: string, uuid: string, patch: UpdateVolumePatch, ifMatch?: string): SimVolume {
    const vol = this.getVolume(project, uuid);
    if (!vol) throw notFound(`volume ${uuid} not found in project '${project}'`);
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== vol.etag) {
      throw new SimError(412, `ETag mismatch: If-Match ${ifMatch} but volume ${uuid} is at ${vol.etag}`);
    }
    if (vol.state === 'Deleting' || vol.state === 'Failed') throw precondition(`volume ${uuid} is ${vol.state}`);
    let changed = false;
    if (patch.sizeBytes !== undefined && patch.sizeBytes !== vol.sizeBytes) {
      if (patch.sizeBytes < vol.sizeBytes)
        throw badRequest(`size can only grow: volume ${uuid} has ${vol.sizeBytes} bytes, asked for ${patch.sizeBytes}`);
      this.requireCapacity(patch.sizeBytes - vol.sizeBytes);
      vol.sizeBytes = patch.sizeBytes;
      changed = true;
      if (vol.exposed) void this.tell('resizeNamespace', () => this.dataPlane.resizeNamespace(vol.uuid, vol.sizeBytes));
    }
    if (patch.acl && !sameList(patch.acl, vol.acl)) {
      vol.acl = [...patch.acl];
      changed = true;
      this.syncAllowedHosts();
    }
    if (patch.ipAcl && !sameList(patch.ipAcl, vol.ipAcl)) {
      vol.ipAcl = [...patch.ipAcl];
      changed = true;
    }
    if (changed) vol.etag = this.nextEtag();
    return vol;
  }

  /** Starts deletion (Deleting, then gone). Deleting a Deleting volume is accepted again. */
  deleteVolume(project: string, uuid: string): SimVolume {
    const vol = this.getVolume(project, uuid);
    if (!vol) throw notFound(`volume ${uuid} not found in project '${project}'`);
    if (vol.state !== 'Deleting') {
      this.setState(vol, 'Deleting');
      this.later(() => this.finishDelete(vol));
    }
    return vol;
  }

  // ------------------------------------------------------------------ snapshots

  getSnapshot(project: string, uuid: string): SimSnapshot | undefined {
    const s = this.snapshots.get(uuid);
    return s && s.project === project ? s : undefined;
  }

  findSnapshotByName(project: string, name: string): SimSnapshot | undefined {
    return this.allSnapshots().find((s) => s.project === project && s.name === name);
  }

  listSnapshots(project: string): SimSnapshot[] {
    return this.allSnapshots().filter((s) => s.project === project);
  }

  createSnapshot(
    project: string,
    spec: { name: string; sourceVolumeUuid?: string; sourceVolumeName?: string },
  ): SimSnapshot {
    if (this.findSnapshotByName(project, spec.name))
      throw conflict(`snapshot named '${spec.name}' already exists in project '${project}'`);
    const src = spec.sourceVolumeUuid
      ? this.getVolume(project, spec.sourceVolumeUuid)
      : this.findVolumeByName(project, spec.sourceVolumeName ?? '');
    if (!src)
      throw notFound(
        `source volume ${spec.sourceVolumeUuid ?? spec.sourceVolumeName} not found in project '${project}'`,
      );
    if (src.state !== 'Available' && src.state !== 'Updating')
      throw precondition(`source volume ${src.uuid} is ${src.state}, not Available`);
    const snap: SimSnapshot = {
      uuid: randomUUID(),
      name: spec.name,
      project,
      sourceVolumeUuid: src.uuid,
      sourceVolumeName: src.name,
      sizeBytes: src.sizeBytes,
      state: 'Creating',
      etag: this.nextEtag(),
      createdAt: new Date(),
    };
    this.snapshots.set(snap.uuid, snap);
    this.later(() => {
      if (this.snapshots.get(snap.uuid) !== snap || snap.state !== 'Creating') return;
      snap.state = 'Available';
      snap.etag = this.nextEtag();
    });
    return snap;
  }

  deleteSnapshot(project: string, uuid: string): SimSnapshot {
    const snap = this.getSnapshot(project, uuid);
    if (!snap) throw notFound(`snapshot ${uuid} not found in project '${project}'`);
    if (snap.state !== 'Deleting') {
      snap.state = 'Deleting';
      snap.etag = this.nextEtag();
      this.later(() => {
        if (this.snapshots.get(snap.uuid) === snap) this.snapshots.delete(snap.uuid);
      });
    }
    return snap;
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

  // ------------------------------------------------------------------ internals

  private checkEndpoint(address: string, port: number, self?: SimNode): void {
    if (net.isIP(address) === 0) throw badRequest('address must be an IPv4 or IPv6 address');
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw badRequest('port must be an integer 1..65535');
    const other = this.nodes.find((n) => n !== self && n.address === address && n.port === port);
    if (other) throw conflict(`node ${other.uuid} already listens on ${address} port ${port}`);
  }

  private finishCreate(vol: SimVolume): void {
    if (this.volumes.get(vol.uuid) !== vol || vol.state !== 'Creating') return;
    if (vol.failOnCreate) {
      this.setState(vol, 'Failed');
      return;
    }
    const spec: NamespaceSpec = {
      volumeUuid: vol.uuid,
      nsid: vol.nsid,
      sizeBytes: vol.sizeBytes,
      ana: this.anaOf(vol),
    };
    // Marked exposed when queued, not when done: the queue is FIFO, so any resize, ANA change or
    // removal queued from now on reaches the data plane after the namespace exists.
    vol.exposed = true;
    void this.tell('addNamespace', () => this.dataPlane.addNamespace(spec)).then((ok) => {
      if (!ok && vol.exposed) {
        // Whatever the failed call left behind (a file, an ANA group, a disabled namespace)
        // goes, so that a Failed volume holds nothing and its nsid and group are free again.
        vol.exposed = false;
        void this.tell('removeNamespace', () => this.dataPlane.removeNamespace(vol.uuid));
      }
      if (this.volumes.get(vol.uuid) === vol && vol.state === 'Creating')
        this.setState(vol, ok ? 'Available' : 'Failed');
    });
  }

  private finishDelete(vol: SimVolume): void {
    if (this.volumes.get(vol.uuid) !== vol) return;
    this.volumes.delete(vol.uuid);
    if (vol.exposed) void this.tell('removeNamespace', () => this.dataPlane.removeNamespace(vol.uuid));
    this.syncAllowedHosts();
  }

  private setState(vol: SimVolume, state: SimVolumeState): void {
    vol.state = state;
    vol.etag = this.nextEtag();
  }

  private requireCapacity(extra: number): void {
    const free = this.capacityBytes - this.usedBytes();
    if (extra > free) throw badRequest(`not enough free capacity: ${extra} bytes asked, ${free} bytes free`);
  }

  /**
   * The data plane's namespace limit (nvmet: one ANA group per volume, 127). Every volume in
   * the map holds, or is about to hold, a namespace, except a Failed one (never exposed, or its
   * namespace removed again): the removals of deleted volumes are queued before any later add.
   */
  private requireNamespaceSlot(): void {
    const max = this.dataPlane.maxNamespaces;
    if (max === undefined) return;
    const held = this.allVolumes().filter((v) => v.state !== 'Failed').length;
    if (held >= max) {
      throw badRequest(
        `the ${this.dataPlane.kind} data plane holds at most ${max} volumes and ${held} exist: delete one first`,
      );
    }
  }

  /** The data plane allows the union of all ACLs; told only when that union changes. */
  private syncAllowedHosts(): void {
    const hosts = [...new Set(this.allVolumes().flatMap((v) => v.acl))].sort();
    const key = hosts.join('\n');
    if (key === this.allowedKey) return;
    this.allowedKey = key;
    void this.tell('setAllowedHosts', () => this.dataPlane.setAllowedHosts(hosts));
  }

  private nextEtag(): string {
    return String(++this.etagSeq);
  }

  /** A Creating/Deleting transition, `stateDelayMs` from now. */
  private later(fn: () => void): void {
    this.seq.later(this.stateDelayMs, fn);
  }

  private tell(what: string, fn: () => Promise<void>): Promise<boolean> {
    return this.seq.tell(what, fn);
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
