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
import type { NamespaceSpec } from './data-plane.ts';
import { badRequest, conflict, notFound, precondition, SimError, TiB } from './model.ts';
import type { SimSnapshot, SimVolume, SimVolumeState } from './model.ts';
import { choosePlacement } from './placement.ts';
import { SimTopology, type SimTopologyOptions } from './topology.ts';

export interface SimClusterOptions extends SimTopologyOptions {
  /** Total capacity in bytes (default 10 TiB). */
  capacityBytes?: number;
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

/** The nodes and replicas (`SimTopology`) plus the catalogue of volumes and snapshots. */
export class SimCluster extends SimTopology {
  readonly capacityBytes: number;
  /** How long Creating and Deleting last (fault `stateDelayMs`). */
  stateDelayMs = 0;
  /** Fault `failCreate`: the next created volume ends in Failed. */
  failCreate = false;

  private readonly snapshots = new Map<string, SimSnapshot>();
  private nextNsid = 1;
  private allowedKey = '';

  constructor(opts: SimClusterOptions = {}) {
    super(opts);
    this.capacityBytes = opts.capacityBytes ?? 10 * TiB;
  }

  /** Drops every volume and snapshot, brings every node up, clears the model's faults. */
  reset(): void {
    this.seq.cancelTimers();
    for (const v of this.volumes.values())
      if (v.exposed) void this.tell('removeNamespace', () => this.dataPlane.removeNamespace(v.uuid));
    this.volumes.clear();
    this.snapshots.clear();
    this.resetNodes();
    this.stateDelayMs = 0;
    this.failCreate = false;
    this.syncAllowedHosts();
  }

  // ------------------------------------------------------------------ queries

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

  findVolumeByName(project: string, name: string): SimVolume | undefined {
    return this.allVolumes().find((v) => v.project === project && v.name === name);
  }

  usedBytes(): number {
    let used = 0;
    for (const v of this.volumes.values()) used += v.sizeBytes;
    return used;
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

  // ------------------------------------------------------------------ internals

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

  /** A Creating/Deleting transition, `stateDelayMs` from now. */
  private later(fn: () => void): void {
    this.seq.later(this.stateDelayMs, fn);
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
