/**
 * The simulator's data plane on the Linux kernel NVMe target (nvmet), through configfs:
 *
 *   subsystems/<nqn>                       the cluster's one subsystem
 *     attr_allow_any_host                  0, with allowed_hosts/<host> → hosts/<host> links
 *     namespaces/<nsid>                    one per volume: device_path (sparse file),
 *                                          device_uuid = volume UUID, device_nguid = the same
 *                                          16 bytes, buffered_io, ana_grpid, enable
 *   ports/<node index + 1>                 one per node: tcp, ipv4/ipv6, traddr, trsvcid
 *     subsystems/<nqn> → subsystems/<nqn>  the node is up (unlinked: down)
 *     ana_groups/<g>/ana_state             per volume group g: the volume's state on this node
 *   hosts/<host>                           dhchap_* when the host has secrets (host-auth.ts)
 *
 * Kernel facts this relies on, seen on Debian's 6.1 (test/kernel, scenario nvmet-native):
 * - ANA groups are per port and numbered 1..128 (NVMET_MAX_ANAGRPS); group 1 is every port's
 *   default group (mkdir → EEXIST, rmdir → EPERM). A volume's group must exist on every port
 *   before the namespace is enabled, else hosts read a bogus state there; a new group starts
 *   `inaccessible`, so its state is written right after mkdir. So at most 127 volumes.
 * - device_path, device_uuid, device_nguid (EBUSY) and buffered_io (EINVAL) only change while
 *   the namespace is disabled; ana_grpid changes any time.
 * - A file on a file system without O_DIRECT (tmpfs) needs buffered_io 1, else enable fails
 *   with EINVAL ("failed to open file: (-22)").
 * - `namespaces/<nsid>/revalidate_size` (write-only) makes nvmet re-read the file size and
 *   send hosts a namespace-changed event; without it, only disable/enable would do.
 * - addr_* of a port cannot change while a subsystem is linked to it (EACCES): the port is
 *   enabled from the first link to the last unlink. Unlinking drops that subsystem's
 *   controllers on the port, and closes the listener with the last link.
 * - attr_allow_any_host 1 and allowed_hosts links exclude each other (EINVAL either way).
 *   Removing a host's link refuses new connects; existing controllers stay connected.
 *
 * Every method is idempotent, and calls are serialized: configfs steps of one change must not
 * interleave with another's.
 */
import { mkdir, rm } from 'node:fs/promises';
import type { AnaState } from '../../driver/model.ts';
import type { DataPlane, NamespaceSpec, SimNodeEndpoint } from '../data-plane.ts';
import { backingFile, fileSize, growFile, supportsODirect } from './backing-files.ts';
import { type Configfs, DEFAULT_NVMET_ROOT, ensureDir, NodeConfigfs, removeEntry, writeIfChanged } from './configfs.ts';
import { type TargetHostSecrets, writeHostAuth } from './host-auth.ts';
import { SubsystemTree } from './subsystem-tree.ts';

export interface NvmetDataPlaneOptions {
  /** Folder for the sparse backing files, `<volume uuid>.img`. */
  dataDir: string;
  /** nvmet's configfs folder (default `/sys/kernel/config/nvmet`). */
  configfsRoot?: string;
  /** Replaces configfs access altogether (unit tests). */
  configfs?: Configfs;
  /** attr_allow_any_host 1: every host may connect; setAllowedHosts is only remembered. */
  allowAnyHost?: boolean;
  /** buffered_io of the namespaces; `auto` (default): 1 when dataDir has no O_DIRECT. */
  bufferedIo?: boolean | 'auto';
  /** dhchap_dhgroup of hosts with secrets (e.g. `ffdhe2048`); unset: the kernel's `null`. */
  dhgroup?: string;
}

/** What the plane knows about one volume; `anaGroup` is also its ana_grpid. */
export interface NvmetVolume {
  volumeUuid: string;
  nsid: number;
  anaGroup: number;
  file: string;
  sizeBytes: number;
  ana: Record<string, AnaState>;
}

const MAX_ANA_GROUP = 128;
const CONFIGFS_ANA_STATES: ReadonlySet<string> = new Set([
  'optimized',
  'non-optimized',
  'inaccessible',
  'persistent-loss',
  'change',
]);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class NvmetDataPlane implements DataPlane {
  readonly kind = 'nvmet';
  /** One ANA group per volume: groups 2..128 (group 1 is every port's default). */
  readonly maxNamespaces = MAX_ANA_GROUP - 1;
  private readonly tree: SubsystemTree;
  private nodes: SimNodeEndpoint[] = [];
  private buffered = false;
  private readonly volumes = new Map<string, NvmetVolume>();
  private readonly down = new Set<string>();
  private allowedHosts: string[] = [];
  /** Each host's target secrets, written again whenever its entry is made anew (see setAllowedHosts). */
  private readonly hostSecrets = new Map<string, TargetHostSecrets>();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: NvmetDataPlaneOptions) {
    this.tree = new SubsystemTree(opts.configfs ?? new NodeConfigfs(opts.configfsRoot ?? DEFAULT_NVMET_ROOT));
  }

  /** The plane's record of a volume (for the simulator's admin view and tests). */
  volume(volumeUuid: string): NvmetVolume | undefined {
    const v = this.volumes.get(volumeUuid.toLowerCase());
    return v && { ...v, ana: { ...v.ana } };
  }

  get hosts(): readonly string[] {
    return this.allowedHosts;
  }

  start(subsystemNqn: string, nodes: SimNodeEndpoint[]): Promise<void> {
    return this.serial(async () => {
      checkNqn(subsystemNqn);
      if (new Set(nodes.map((n) => n.index)).size !== nodes.length)
        throw new Error('nvmet: node indexes must be unique');
      this.tree.nqn = subsystemNqn;
      this.nodes = [...nodes];
      await mkdir(this.opts.dataDir, { recursive: true });
      const mode = this.opts.bufferedIo ?? 'auto';
      this.buffered = mode === 'auto' ? !(await supportsODirect(this.opts.dataDir)) : mode;

      const { fs, sub } = this.tree;
      await ensureDir(fs, sub);
      if (this.opts.allowAnyHost) {
        for (const h of await this.tree.allowedHosts()) await removeEntry(fs, this.tree.hostLink(h), 'unlink');
      }
      await writeIfChanged(fs, `${sub}/attr_allow_any_host`, this.opts.allowAnyHost ? '1' : '0');
      for (const node of this.nodes) await this.tree.setupPort(node, this.down.has(node.nodeId));
      await this.adoptNamespaces();
    });
  }

  addNamespace(ns: NamespaceSpec): Promise<void> {
    return this.serial(async () => {
      this.checkStarted();
      if (!UUID_RE.test(ns.volumeUuid)) throw new Error(`nvmet: volume UUID ${ns.volumeUuid} is not a UUID`);
      if (!Number.isInteger(ns.nsid) || ns.nsid < 1 || ns.nsid > 0xfffffffe)
        throw new Error(`nvmet: bad nsid ${ns.nsid}`);
      if (!(ns.sizeBytes > 0)) throw new Error(`nvmet: bad size ${ns.sizeBytes}`);
      this.checkAna(ns.ana);
      const uuid = ns.volumeUuid.toLowerCase();
      const other = [...this.volumes.values()].find((v) => v.nsid === ns.nsid && v.volumeUuid !== uuid);
      if (other) throw new Error(`nvmet: nsid ${ns.nsid} already holds volume ${other.volumeUuid}`);
      let v = this.volumes.get(uuid);
      if (v && v.nsid !== ns.nsid) throw new Error(`nvmet: volume ${uuid} is already nsid ${v.nsid}, not ${ns.nsid}`);
      if (!v) {
        v = {
          volumeUuid: uuid,
          nsid: ns.nsid,
          anaGroup: this.freeGroup(),
          file: backingFile(this.opts.dataDir, uuid),
          sizeBytes: 0,
          ana: {},
        };
        this.volumes.set(uuid, v);
      }
      v.ana = { ...ns.ana };
      const grew = await this.growFile(v, ns.sizeBytes);
      for (const node of this.nodes) {
        await this.tree.ensureGroup(node, v.anaGroup);
        await this.writeAna(v, node);
      }
      await ensureDir(this.tree.fs, this.tree.ns(v.nsid));
      if (await this.tree.isEnabled(v.nsid)) {
        await writeIfChanged(this.tree.fs, `${this.tree.ns(v.nsid)}/ana_grpid`, String(v.anaGroup));
        if (grew) await this.tree.revalidate(v.nsid);
        return;
      }
      await this.tree.enableNamespace(v.nsid, { ...v, bufferedIo: this.buffered });
    });
  }

  resizeNamespace(volumeUuid: string, sizeBytes: number): Promise<void> {
    return this.serial(async () => {
      const v = this.need(volumeUuid);
      if (sizeBytes < v.sizeBytes)
        throw new Error(`nvmet: volume ${v.volumeUuid} cannot shrink (${v.sizeBytes} → ${sizeBytes})`);
      await this.growFile(v, sizeBytes);
      // Always: a repeated call after a crash between truncate and revalidate still converges,
      // and nvmet only signals hosts when the size really changed.
      await this.tree.revalidate(v.nsid);
    });
  }

  removeNamespace(volumeUuid: string): Promise<void> {
    return this.serial(async () => {
      const v = this.volumes.get(volumeUuid.toLowerCase());
      if (v) await this.remove(v);
      else if (this.started && UUID_RE.test(volumeUuid))
        await rm(backingFile(this.opts.dataDir, volumeUuid.toLowerCase()), { force: true });
    });
  }

  setAna(volumeUuid: string, ana: Record<string, AnaState>): Promise<void> {
    return this.serial(async () => {
      const v = this.need(volumeUuid);
      this.checkAna(ana);
      v.ana = { ...ana };
      for (const node of this.nodes) await this.writeAna(v, node);
    });
  }

  setAllowedHosts(hostNqns: string[]): Promise<void> {
    return this.serial(async () => {
      this.checkStarted();
      hostNqns.forEach(checkNqn);
      this.allowedHosts = [...new Set(hostNqns)].sort();
      if (this.opts.allowAnyHost) return;
      const entries = new Set(await this.tree.fs.list('hosts'));
      for (const h of this.allowedHosts) {
        await this.tree.allowHost(h);
        // Revoking a host removes its hosts/<nqn> entry (rmdir), and its dhchap_* with it; an entry
        // made anew has no key, and nvmet lets a host without a key in unauthenticated (Linux 6.1
        // nvmet_setup_auth). The trusted host outlives its ACL entries, so its secrets go back in.
        const secrets = this.hostSecrets.get(h);
        if (secrets && !entries.has(h)) await writeHostAuth(this.tree.fs, h, secrets, { dhgroup: this.opts.dhgroup });
      }
      for (const h of await this.tree.allowedHosts()) {
        if (!this.allowedHosts.includes(h)) await this.tree.revokeHost(h);
      }
    });
  }

  setNodeUp(nodeId: string, up: boolean): Promise<void> {
    return this.serial(async () => {
      this.checkStarted();
      const node = this.nodes.find((n) => n.nodeId === nodeId);
      if (!node) throw new Error(`nvmet: unknown node ${nodeId}`);
      if (up) this.down.delete(nodeId);
      else this.down.add(nodeId);
      // Down: hosts learn `inaccessible` (an ANA event) before the port stops serving.
      // Up: the states are right before the first host reconnects.
      for (const v of this.volumes.values()) await this.writeAna(v, node);
      if (up) await this.tree.linkPort(node);
      else await this.tree.unlinkPort(node);
    });
  }

  addNode(node: SimNodeEndpoint): Promise<void> {
    return this.serial(async () => {
      this.checkStarted();
      const known = this.nodes.find((n) => n.nodeId === node.nodeId);
      if (!known && this.nodes.some((n) => n.index === node.index))
        throw new Error(`nvmet: node index ${node.index} is taken`);
      if (!known) this.nodes.push({ ...node });
      const n = known ?? node;
      // Every volume's ANA group exists on the new port, with its state, before the port serves.
      await ensureDir(this.tree.fs, this.tree.port(n));
      for (const v of this.volumes.values()) {
        await this.tree.ensureGroup(n, v.anaGroup);
        await this.writeAna(v, n);
      }
      await this.tree.setupPort(n, this.down.has(n.nodeId));
    });
  }

  removeNode(nodeId: string): Promise<void> {
    return this.serial(async () => {
      this.checkStarted();
      const node = this.nodes.find((n) => n.nodeId === nodeId);
      if (!node) return;
      await this.tree.dropPort(node);
      this.nodes = this.nodes.filter((n) => n !== node);
      this.down.delete(nodeId);
      for (const v of this.volumes.values()) delete v.ana[nodeId];
    });
  }

  /**
   * A port's addr_* can only change while no subsystem is linked to it (EACCES otherwise), so the
   * port is disabled (unlinked, which drops its controllers), readdressed and linked again.
   */
  setNodeAddress(node: SimNodeEndpoint): Promise<void> {
    return this.serial(async () => {
      this.checkStarted();
      const i = this.nodes.findIndex((n) => n.nodeId === node.nodeId);
      if (i < 0) throw new Error(`nvmet: unknown node ${node.nodeId}`);
      if (this.nodes[i]!.index !== node.index) throw new Error(`nvmet: node ${node.nodeId} cannot change its index`);
      this.nodes[i] = { ...node };
      await this.tree.setupPort(this.nodes[i]!, this.down.has(node.nodeId));
    });
  }

  setHostSecrets(hostNqn: string, secrets: TargetHostSecrets): Promise<'written' | 'unsupported'> {
    return this.serial(async () => {
      this.checkStarted();
      checkNqn(hostNqn);
      this.hostSecrets.set(hostNqn, { ...secrets });
      return writeHostAuth(this.tree.fs, hostNqn, secrets, { dhgroup: this.opts.dhgroup });
    });
  }

  /** Removes everything start() and later calls made; links go before the folders they use. */
  stop(): Promise<void> {
    return this.serial(async () => {
      if (!this.started) return;
      const errors: unknown[] = [];
      const attempt = async (fn: () => Promise<void>) => {
        try {
          await fn();
        } catch (err) {
          errors.push(err);
        }
      };
      for (const v of [...this.volumes.values()]) await attempt(() => this.remove(v));
      for (const h of await this.tree.allowedHosts()) await attempt(() => this.tree.revokeHost(h));
      for (const node of this.nodes) await attempt(() => this.tree.dropPort(node));
      await attempt(() => removeEntry(this.tree.fs, this.tree.sub, 'rmdir'));
      this.volumes.clear();
      this.down.clear();
      this.tree.nqn = '';
      if (errors.length) throw new AggregateError(errors, 'nvmet: stop() left configuration behind');
    });
  }

  private get started(): boolean {
    return this.tree.nqn !== '';
  }

  /**
   * After a restart: enabled namespaces already in the subsystem are known again (their ANA
   * states unknown until set; a disabled one goes, its file stays for addNamespace to pick up).
   */
  private async adoptNamespaces(): Promise<void> {
    for (const found of await this.tree.enabledNamespaces()) {
      if (this.volumes.has(found.volumeUuid)) continue;
      const file = found.file || backingFile(this.opts.dataDir, found.volumeUuid);
      this.volumes.set(found.volumeUuid, { ...found, file, sizeBytes: await fileSize(file), ana: {} });
    }
  }

  private freeGroup(): number {
    const used = new Set([...this.volumes.values()].map((v) => v.anaGroup));
    for (let g = 2; g <= MAX_ANA_GROUP; g++) if (!used.has(g)) return g;
    throw new Error(`nvmet: no free ANA group (nvmet has ${MAX_ANA_GROUP}, group 1 is the default)`);
  }

  /** Creates the sparse file or makes it at least `sizeBytes`; true when it grew. */
  private async growFile(v: NvmetVolume, sizeBytes: number): Promise<boolean> {
    const { sizeBytes: size, grew } = await growFile(v.file, sizeBytes);
    v.sizeBytes = size;
    return grew;
  }

  private async remove(v: NvmetVolume): Promise<void> {
    await this.tree.removeNamespace(v.nsid);
    if (v.anaGroup !== 1) for (const node of this.nodes) await this.tree.removeGroup(node, v.anaGroup);
    await rm(v.file, { force: true });
    this.volumes.delete(v.volumeUuid);
  }

  private writeAna(v: NvmetVolume, node: SimNodeEndpoint): Promise<void> {
    const state = this.down.has(node.nodeId) ? 'inaccessible' : (v.ana[node.nodeId] ?? 'inaccessible');
    return this.tree.writeAna(node, v.anaGroup, state);
  }

  // ---- checks ----
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }

  private checkStarted(): void {
    if (!this.started) throw new Error('nvmet: start() first');
  }

  private need(volumeUuid: string): NvmetVolume {
    this.checkStarted();
    const v = this.volumes.get(volumeUuid.toLowerCase());
    if (!v) throw new Error(`nvmet: no namespace for volume ${volumeUuid}`);
    return v;
  }

  private checkAna(ana: Record<string, AnaState>): void {
    for (const [nodeId, state] of Object.entries(ana)) {
      if (!this.nodes.some((n) => n.nodeId === nodeId)) throw new Error(`nvmet: ANA state for unknown node ${nodeId}`);
      // `unknown` is the domain's "the backend did not say"; nvmet must be told something.
      if (!CONFIGFS_ANA_STATES.has(state)) throw new Error(`nvmet: ANA state ${state} cannot be set on a port`);
    }
  }
}

function checkNqn(nqn: string): void {
  if (!nqn || nqn.includes('/') || Buffer.byteLength(nqn) > 223)
    throw new Error(`nvmet: bad NQN ${JSON.stringify(nqn)}`);
}
