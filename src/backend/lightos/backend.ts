/**
 * The StorageBackend port over LightOS API v2. Idempotency and waits follow the LightOS Cinder
 * driver (`cinder/volume/drivers/lightos.py`): create looks the name up before POSTing and waits for Available,
 * delete waits for the 404, ACL changes are GET (ETag) → modify → PUT with If-Match, retried on
 * a changed ETag, then waited for until the ACL shows the change.
 */
import type { VolumePath } from '../../driver/model.ts';
import type {
  AttachAccess,
  BackendCapacity,
  BackendSnapshot,
  BackendVolume,
  BackendVolumeSpec,
  ClusterInfo,
  DhchapPair,
  StorageBackend,
} from '../../driver/ports.ts';
import { LightosCalls } from './calls.ts';
import { type LightosConfig, resolveLightosConfig } from './config.ts';
import { lightosError, type Op } from './errors.ts';
import {
  aclValues,
  ALLOW_ANY,
  GiB,
  parseCapacity,
  parseClusterInfo,
  parseNodes,
  parseVolume,
  type WireNode,
  type WireVolume,
} from './parse.ts';
import { volumePathsOf } from './paths.ts';
import { LightosSnapshots } from './snapshots.ts';
import { setTrustedHost } from './trusted-hosts.ts';

/** States in which a volume is settled enough to hand out (Cinder's success states). */
const READY = new Set(['Available', 'Migrating']);
const TRANSIENT = new Set(['Creating', 'Updating', 'Unknown']);
const GONE = new Set(['Deleting', 'Deleted']);
/**
 * End states of a create that leave a broken volume behind, which is deleted before reporting
 * (the Cinder driver deletes on every end state but UNKNOWN; Deleting/Deleted are going anyway).
 */
const CLEAN_UP = new Set(['Failed', 'Rollback']);

/** GiB → the size string the Cinder driver sends; whole bytes when not a whole GiB. */
function sizeForWire(sizeGb: number): string {
  return Number.isInteger(sizeGb) ? `${sizeGb} gib` : String(Math.round(sizeGb * GiB));
}

export class LightosBackend implements StorageBackend {
  private readonly calls: LightosCalls;
  private readonly snapshots: LightosSnapshots;

  constructor(config: LightosConfig) {
    this.calls = new LightosCalls(resolveLightosConfig(config));
    this.snapshots = new LightosSnapshots(this.calls);
  }

  async clusterInfo(): Promise<ClusterInfo> {
    const op = this.calls.begin('clusterInfo');
    return this.calls.parse(
      op,
      await this.calls.send(op, { method: 'GET', path: '/api/v2/clusterinfo' }),
      parseClusterInfo,
    );
  }

  async ping(): Promise<void> {
    const op = this.calls.begin('ping');
    this.calls.parse(op, await this.calls.send(op, { method: 'GET', path: '/api/v2/clusterinfo' }), parseClusterInfo);
  }

  async createVolume(spec: BackendVolumeSpec): Promise<BackendVolume> {
    const op = this.calls.begin('createVolume', `volume ${spec.name}`);
    let found = await this.calls.readVolumeByName(op, spec.name);
    if (found && GONE.has(found.volume.state)) {
      // A previous delete of the same name is still running: let it finish, then create anew.
      await this.waitVolumeGone(op, found.volume.uuid);
      found = null;
    }
    if (!found) found = await this.postVolume(op, spec);
    const uuid = found.volume.uuid;
    const final = await this.calls.waitFor(op, `volume ${uuid} to become Available`, async () => {
      const v = await this.calls.readVolume(op, uuid);
      if (!v)
        throw lightosError(op, {
          kind: 'vanished',
          what: `volume ${uuid}`,
          during: 'waiting for it to become Available',
        });
      return TRANSIENT.has(v.volume.state) ? { done: false, state: v.volume.state } : { done: true, value: v };
    });
    if (READY.has(final.volume.state)) return final.volume;
    let cleanedUp = false;
    if (CLEAN_UP.has(final.volume.state)) {
      // As the Cinder driver: a volume that failed to create is removed before reporting.
      cleanedUp = await this.deleteVolume(uuid).then(
        () => true,
        (err) => (this.calls.cfg.logger.warn({ err, volume: uuid }, 'could not delete failed LightOS volume'), false),
      );
    }
    throw lightosError(op, { kind: 'endState', what: `volume ${uuid}`, state: final.volume.state, cleanedUp });
  }

  private async postVolume(op: Op, spec: BackendVolumeSpec): Promise<WireVolume> {
    const body: Record<string, unknown> = {
      name: spec.name,
      size: sizeForWire(spec.sizeGb),
      replicaCount: String(spec.replicas),
      compression: spec.compression ? 'True' : 'False',
      acl: aclValues([]),
      // Access is controlled by host NQN; the IP ACL stays open (Cinder with lightos_use_ipacl off).
      IPAcl: { values: [ALLOW_ANY] },
    };
    if (spec.sourceSnapshotUuid) body.sourceSnapshotUUID = spec.sourceSnapshotUuid;
    if (spec.qosPolicyUuid) body.qosPolicyUUID = spec.qosPolicyUuid;
    const a = await this.calls.send(op, { method: 'POST', path: this.calls.volumesPath(), body });
    if (this.calls.isOk(a)) return this.calls.parse(op, a, parseVolume);
    if (a.status === 409) {
      // Lost a race with another create of the same name: that volume is ours too.
      const raced = await this.calls.readVolumeByName(op, spec.name);
      if (raced) return raced;
    }
    this.calls.fail(op, a, spec.sourceSnapshotUuid ? 'snapshot_not_found' : undefined);
  }

  async getVolume(uuid: string): Promise<BackendVolume | null> {
    const op = this.calls.begin('getVolume', `volume ${uuid}`);
    return (await this.calls.readVolume(op, uuid))?.volume ?? null;
  }

  async getVolumeByName(name: string): Promise<BackendVolume | null> {
    const op = this.calls.begin('getVolumeByName', `volume ${name}`);
    return (await this.calls.readVolumeByName(op, name))?.volume ?? null;
  }

  async deleteVolume(uuid: string): Promise<void> {
    const op = this.calls.begin('deleteVolume', `volume ${uuid}`);
    await this.calls.deleteAndWait(
      op,
      this.calls.volumePath(uuid),
      `volume ${uuid}`,
      async () => (await this.calls.readVolume(op, uuid))?.volume ?? null,
    );
  }

  private async waitVolumeGone(op: Op, uuid: string): Promise<void> {
    await this.calls.waitFor(op, `volume ${uuid} to be deleted`, async () => {
      const v = await this.calls.readVolume(op, uuid);
      return !v || v.volume.state === 'Deleted'
        ? { done: true, value: undefined }
        : { done: false, state: v.volume.state };
    });
  }

  async extendVolume(uuid: string, sizeGb: number): Promise<BackendVolume> {
    const op = this.calls.begin('extendVolume', `volume ${uuid}`);
    const target = Math.round(sizeGb * GiB);
    const notFound = () => lightosError(op, { kind: 'notFound', what: `volume ${uuid}`, code: 'volume_not_found' });
    const landed = await this.calls.readModifyWrite<WireVolume | null>(op, async () => {
      const v = await this.calls.readVolume(op, uuid);
      if (!v || GONE.has(v.volume.state)) throw notFound();
      if (v.sizeBytes === target) return { done: true, value: v };
      if (v.sizeBytes > target) {
        throw lightosError(op, {
          kind: 'invalid',
          message: `cannot shrink from ${v.volume.sizeGb} GiB to ${sizeGb} GiB`,
        });
      }
      const a = await this.calls.send(op, {
        method: 'PUT',
        path: this.calls.volumePath(uuid),
        body: { UUID: uuid, size: sizeForWire(sizeGb) },
        headers: ifMatch(v),
      });
      if (this.calls.isOk(a)) return { done: true, value: null };
      if (this.calls.isConflict(a)) return { conflict: a };
      this.calls.fail(op, a, 'volume_not_found');
    });
    if (landed) return landed.volume; // already that size: a no-op
    return this.calls.waitFor(op, `volume ${uuid} to reach ${sizeGb} GiB`, async () => {
      const v = await this.calls.readVolume(op, uuid);
      if (!v) throw notFound();
      const done = v.sizeBytes >= target && READY.has(v.volume.state);
      return done
        ? { done: true, value: v.volume }
        : { done: false, state: `${v.volume.state} at ${v.volume.sizeGb} GiB` };
    });
  }

  async grantAccess(uuid: string, hostNqn: string): Promise<{ changed: boolean }> {
    const { changed } = await this.grant(this.calls.begin('grantAccess', `volume ${uuid}`), uuid, hostNqn);
    return { changed };
  }

  /**
   * Adds the host to the ACL (nothing written before `ready` resolves) and waits until it shows.
   * `settled` is the volume as last read: the confirming read after a write, the first read when
   * the host was already there; null when the volume went away after the write.
   */
  private async grant(
    op: Op,
    uuid: string,
    hostNqn: string,
    ready?: Promise<unknown>,
  ): Promise<{ changed: boolean; settled: WireVolume | null }> {
    ready?.catch(() => undefined);
    const r = await this.updateAcl(
      op,
      uuid,
      (hosts) => (hosts.includes(hostNqn) ? null : [...hosts, hostNqn]),
      async () => void (await ready),
    );
    // The caller's condition holds for a grant that writes nothing too (its record exists).
    await ready;
    if (r === 'missing') throw lightosError(op, { kind: 'notFound', what: `volume ${uuid}`, code: 'volume_not_found' });
    const settled = r.changed
      ? await this.waitAcl(op, uuid, `host ${hostNqn} in the ACL`, (hosts) => hosts.includes(hostNqn))
      : r.seen;
    return { changed: r.changed, settled };
  }

  /**
   * The grant and the reads a connection needs on one critical path of three calls when the ACL
   * changes (GET the volume, PUT the ACL, GET until it shows) and one when it does not: the node
   * list is read beside the first GET, and the GET that confirms the ACL is the volume answered
   * (grantAccess + volumePaths + getVolume made six calls, five in sequence).
   */
  async attachAccess(uuid: string, hostNqn: string, ready?: Promise<unknown>): Promise<AttachAccess> {
    // Named as the grant it is: the operator's messages ("LightOS grantAccess(volume …)") stay the same.
    const op = this.calls.begin('grantAccess', `volume ${uuid}`);
    const nodes = this.readNodes(op);
    // Settled later (or not at all when the ACL read fails first); never an unhandled rejection.
    nodes.catch(() => undefined);
    const { changed, settled } = await this.grant(op, uuid, hostNqn, ready);
    // Gone after the ACL was written: not the caller's missing volume, the backend lost it.
    if (!settled) throw lightosError(op, { kind: 'vanished', what: `volume ${uuid}`, during: 'granting access' });
    return { changed, volume: settled.volume, paths: this.pathsOf(settled, await nodes) };
  }

  async revokeAccess(uuid: string, hostNqn: string): Promise<{ changed: boolean }> {
    const op = this.calls.begin('revokeAccess', `volume ${uuid}`);
    const r = await this.updateAcl(op, uuid, (hosts) =>
      hosts.includes(hostNqn) ? hosts.filter((h) => h !== hostNqn) : null,
    );
    if (r === 'missing') return { changed: false };
    if (r.changed)
      await this.waitAcl(op, uuid, `host ${hostNqn} gone from the ACL`, (hosts) => !hosts.includes(hostNqn));
    return { changed: r.changed };
  }

  async revokeAllAccess(uuid: string): Promise<{ removed: string[] }> {
    const op = this.calls.begin('revokeAllAccess', `volume ${uuid}`);
    const r = await this.updateAcl(op, uuid, (hosts) => (hosts.length > 0 ? [] : null));
    if (r === 'missing') return { removed: [] };
    if (r.changed) await this.waitAcl(op, uuid, 'an empty ACL', (hosts) => hosts.length === 0);
    return { removed: r.changed ? r.before : [] };
  }

  /**
   * GET → `change(hosts)` → PUT with If-Match, retried on a changed ETag. `change` returns null
   * when nothing needs writing. 'missing' when the volume does not exist.
   */
  private updateAcl(
    op: Op,
    uuid: string,
    change: (hosts: string[]) => string[] | null,
    beforeWrite?: () => Promise<void>,
  ) {
    return this.calls.readModifyWrite<'missing' | { changed: boolean; before: string[]; seen: WireVolume }>(
      op,
      async () => {
        const v = await this.calls.readVolume(op, uuid);
        // A volume being deleted is as good as gone: nothing to grant, nothing left to revoke.
        if (!v || GONE.has(v.volume.state)) return { done: true, value: 'missing' };
        const next = change(v.volume.acl);
        if (!next) return { done: true, value: { changed: false, before: v.volume.acl, seen: v } };
        await beforeWrite?.();
        const a = await this.calls.send(op, {
          method: 'PUT',
          path: this.calls.volumePath(uuid),
          body: { acl: aclValues(next) },
          headers: ifMatch(v),
        });
        if (this.calls.isOk(a)) return { done: true, value: { changed: true, before: v.volume.acl, seen: v } };
        if (a.status === 404) return { done: true, value: 'missing' };
        if (this.calls.isConflict(a)) return { conflict: a };
        this.calls.fail(op, a);
      },
    );
  }

  /** Waits until the ACL satisfies `want` and the volume has settled (Cinder's `_wait_for_volume_acl`). */
  private waitAcl(op: Op, uuid: string, what: string, want: (hosts: string[]) => boolean): Promise<WireVolume | null> {
    return this.calls.waitFor<WireVolume | null>(op, what, async () => {
      const v = await this.calls.readVolume(op, uuid);
      if (!v) return { done: true, value: null }; // deleted meanwhile: nothing left to wait for
      const settled = want(v.volume.acl) && !TRANSIENT.has(v.volume.state);
      return settled
        ? { done: true, value: v }
        : { done: false, state: `${v.volume.state} with ACL [${v.volume.acl.join(', ')}]` };
    });
  }

  async volumePaths(uuid: string): Promise<VolumePath[]> {
    const op = this.calls.begin('volumePaths', `volume ${uuid}`);
    const v = await this.calls.readVolume(op, uuid);
    if (!v) throw lightosError(op, { kind: 'notFound', what: `volume ${uuid}`, code: 'volume_not_found' });
    return this.pathsOf(v, await this.readNodes(op));
  }

  /**
   * The node list once and the volume list page by page (`limit` = listPageSize, each page after
   * the last volume of the one before), stopping at a short page or as soon as every volume asked
   * for was seen: an unchanged refresh of N volumes costs ceil(N / page) + 1 calls.
   */
  async listVolumePaths(uuids: Iterable<string>): Promise<Map<string, VolumePath[]>> {
    const op = this.calls.begin('listVolumePaths');
    const missing = new Set(uuids);
    const found = new Map<string, VolumePath[]>();
    if (missing.size === 0) return found;
    const nodes = this.readNodes(op);
    nodes.catch(() => undefined);
    const limit = this.calls.cfg.listPageSize;
    const seen: WireVolume[] = [];
    let offset: string | undefined;
    while (missing.size > 0) {
      const page = await this.calls.readVolumePage(op, limit, offset);
      for (const v of page.volumes) if (missing.delete(v.volume.uuid)) seen.push(v);
      if (page.listed < limit || page.last === undefined) break;
      offset = page.last;
    }
    const n = await nodes;
    for (const v of seen) found.set(v.volume.uuid, this.pathsOf(v, n));
    return found;
  }

  private async readNodes(op: Op): Promise<WireNode[]> {
    return this.calls.parse(op, await this.calls.send(op, { method: 'GET', path: '/api/v2/nodes' }), parseNodes);
  }

  private pathsOf(v: WireVolume, nodes: WireNode[]): VolumePath[] {
    return volumePathsOf(nodes, v.placement, (node) =>
      this.calls.cfg.logger.warn(
        { node: node.uuid, nvmeEndpoint: node.rawEndpoint },
        'LightOS node has an unreadable nvmeEndpoint; left out',
      ),
    );
  }

  createSnapshot(sourceVolumeUuid: string, name: string): Promise<BackendSnapshot> {
    return this.snapshots.create(sourceVolumeUuid, name);
  }

  getSnapshotByName(name: string): Promise<BackendSnapshot | null> {
    return this.snapshots.getByName(name);
  }

  deleteSnapshot(uuid: string): Promise<void> {
    return this.snapshots.delete(uuid);
  }

  async capacity(): Promise<BackendCapacity> {
    const op = this.calls.begin('capacity');
    const a = await this.calls.send(op, { method: 'GET', path: '/api/v2/cluster' });
    // A tenant JWT may not read cluster statistics (the reason the Cinder driver reports 'infinite').
    if (a.status === 403) return { totalGb: null, freeGb: null };
    return this.calls.parse(op, a, parseCapacity);
  }

  setTrustedHost(hostNqn: string, accepted: DhchapPair[]): Promise<void> {
    return setTrustedHost(this.calls, hostNqn, accepted);
  }
}

function ifMatch(v: WireVolume): Record<string, string> {
  return v.etag ? { 'If-Match': v.etag } : {};
}
