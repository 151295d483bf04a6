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
import { constants } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { AnaState } from '../../driver/model.ts';
import type { DataPlane, NamespaceSpec, SimNodeEndpoint } from '../data-plane.ts';
import { type TargetHostSecrets, writeHostAuth } from './host-auth.ts';
import {
  type Configfs,
  DEFAULT_NVMET_ROOT,
  ensureDir,
  ensureLink,
  errnoOf,
  NodeConfigfs,
  removeEntry,
  writeIfChanged,
} from './configfs.ts';

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

/** False when files in `dir` cannot be opened with O_DIRECT (tmpfs before 6.6). */
export async function supportsODirect(dir: string): Promise<boolean> {
  const probe = path.join(dir, `.odirect-probe-${process.pid}`);
  try {
    await (await open(probe, constants.O_RDWR | constants.O_CREAT | constants.O_DIRECT, 0o600)).close();
    return true;
  } catch (err) {
    if (errnoOf(err) === 'EINVAL') return false;
    throw err;
  } finally {
    await rm(probe, { force: true });
  }
}

export class NvmetDataPlane implements DataPlane {
  readonly kind = 'nvmet';
  /** One ANA group per volume: groups 2..128 (group 1 is every port's default). */
  readonly maxNamespaces = MAX_ANA_GROUP - 1;
  private readonly fs: Configfs;
  private nqn = '';
  private nodes: SimNodeEndpoint[] = [];
  private buffered = false;
  private readonly volumes = new Map<string, NvmetVolume>();
  private readonly down = new Set<string>();
  private allowedHosts: string[] = [];
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: NvmetDataPlaneOptions) {
    this.fs = opts.configfs ?? new NodeConfigfs(opts.configfsRoot ?? DEFAULT_NVMET_ROOT);
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
      this.nqn = subsystemNqn;
      this.nodes = [...nodes];
      await mkdir(this.opts.dataDir, { recursive: true });
      const mode = this.opts.bufferedIo ?? 'auto';
      this.buffered = mode === 'auto' ? !(await supportsODirect(this.opts.dataDir)) : mode;

      await ensureDir(this.fs, this.sub);
      if (this.opts.allowAnyHost) {
        for (const h of await this.fs.list(`${this.sub}/allowed_hosts`))
          await removeEntry(this.fs, this.hostLink(h), 'unlink');
      }
      await writeIfChanged(this.fs, `${this.sub}/attr_allow_any_host`, this.opts.allowAnyHost ? '1' : '0');
      for (const node of this.nodes) await this.setupPort(node);
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
          file: this.fileOf(uuid),
          sizeBytes: 0,
          ana: {},
        };
        this.volumes.set(uuid, v);
      }
      v.ana = { ...ns.ana };
      const grew = await this.growFile(v, ns.sizeBytes);
      for (const node of this.nodes) {
        await ensureDir(this.fs, this.group(node, v.anaGroup));
        await this.writeAna(v, node);
      }
      const dir = this.ns(v.nsid);
      await ensureDir(this.fs, dir);
      if ((await this.fs.read(`${dir}/enable`)) === '1') {
        await writeIfChanged(this.fs, `${dir}/ana_grpid`, String(v.anaGroup));
        if (grew) await this.revalidate(v);
        return;
      }
      await this.fs.write(`${dir}/device_path`, v.file);
      await this.fs.write(`${dir}/device_uuid`, uuid);
      await this.fs.write(`${dir}/device_nguid`, uuid);
      await writeIfChanged(this.fs, `${dir}/buffered_io`, this.buffered ? '1' : '0');
      await this.fs.write(`${dir}/ana_grpid`, String(v.anaGroup));
      await this.fs.write(`${dir}/enable`, '1');
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
      await this.revalidate(v);
    });
  }

  removeNamespace(volumeUuid: string): Promise<void> {
    return this.serial(async () => {
      const v = this.volumes.get(volumeUuid.toLowerCase());
      if (v) await this.remove(v);
      else if (this.started && UUID_RE.test(volumeUuid))
        await rm(this.fileOf(volumeUuid.toLowerCase()), { force: true });
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
      for (const h of this.allowedHosts) {
        await ensureDir(this.fs, `hosts/${h}`);
        await ensureLink(this.fs, `hosts/${h}`, this.hostLink(h));
      }
      for (const h of await this.fs.list(`${this.sub}/allowed_hosts`)) {
        if (!this.allowedHosts.includes(h)) await this.revokeHost(h);
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
      if (up) await ensureLink(this.fs, this.sub, this.portLink(node));
      else await removeEntry(this.fs, this.portLink(node), 'unlink');
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
      await ensureDir(this.fs, this.port(n));
      for (const v of this.volumes.values()) {
        await ensureDir(this.fs, this.group(n, v.anaGroup));
        await this.writeAna(v, n);
      }
      await this.setupPort(n);
    });
  }

  removeNode(nodeId: string): Promise<void> {
    return this.serial(async () => {
      this.checkStarted();
      const node = this.nodes.find((n) => n.nodeId === nodeId);
      if (!node) return;
      await this.dropPort(node);
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
      await this.setupPort(this.nodes[i]!);
    });
  }

  setHostSecrets(hostNqn: string, secrets: TargetHostSecrets): Promise<'written' | 'unsupported'> {
    return this.serial(async () => {
      this.checkStarted();
      checkNqn(hostNqn);
      return writeHostAuth(this.fs, hostNqn, secrets, { dhgroup: this.opts.dhgroup });
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
      for (const h of await this.fs.list(`${this.sub}/allowed_hosts`)) await attempt(() => this.revokeHost(h));
      for (const node of this.nodes) await attempt(() => this.dropPort(node));
      await attempt(() => removeEntry(this.fs, this.sub, 'rmdir'));
      this.volumes.clear();
      this.down.clear();
      this.nqn = '';
      if (errors.length) throw new AggregateError(errors, 'nvmet: stop() left configuration behind');
    });
  }

  // ---- paths ----
  private get started(): boolean {
    return this.nqn !== '';
  }
  private get sub(): string {
    return `subsystems/${this.nqn}`;
  }
  private ns(nsid: number): string {
    return `${this.sub}/namespaces/${nsid}`;
  }
  private port(node: SimNodeEndpoint): string {
    return `ports/${node.index + 1}`;
  }
  private portLink(node: SimNodeEndpoint): string {
    return `${this.port(node)}/subsystems/${this.nqn}`;
  }
  private group(node: SimNodeEndpoint, g: number): string {
    return `${this.port(node)}/ana_groups/${g}`;
  }
  private hostLink(host: string): string {
    return `${this.sub}/allowed_hosts/${host}`;
  }
  private fileOf(uuid: string): string {
    return path.join(this.opts.dataDir, `${uuid}.img`);
  }

  // ---- steps ----
  private async setupPort(node: SimNodeEndpoint): Promise<void> {
    const port = this.port(node);
    await ensureDir(this.fs, port);
    const want: [string, string][] = [
      ['addr_trtype', 'tcp'],
      ['addr_adrfam', net.isIPv6(node.address) ? 'ipv6' : 'ipv4'],
      ['addr_traddr', node.address],
      ['addr_trsvcid', String(node.port)],
    ];
    const changed: [string, string][] = [];
    for (const [attr, value] of want)
      if ((await this.fs.read(`${port}/${attr}`)) !== value) changed.push([attr, value]);
    if (changed.length) {
      const users = (await this.fs.list(`${port}/subsystems`)).filter((s) => s !== this.nqn);
      if (users.length) throw new Error(`nvmet: ${port} serves ${users.join(', ')} at another address`);
      await removeEntry(this.fs, this.portLink(node), 'unlink');
      for (const [attr, value] of changed) await this.fs.write(`${port}/${attr}`, value);
    }
    if (!this.down.has(node.nodeId)) await ensureLink(this.fs, this.sub, this.portLink(node));
  }

  /** Unlinks the port, removes our ANA groups, and the port itself unless another subsystem uses it. */
  private async dropPort(node: SimNodeEndpoint): Promise<void> {
    const port = this.port(node);
    await removeEntry(this.fs, this.portLink(node), 'unlink');
    for (const g of await this.fs.list(`${port}/ana_groups`)) {
      if (g !== '1') await removeEntry(this.fs, `${port}/ana_groups/${g}`, 'rmdir');
    }
    // A port another subsystem still uses is not ours to remove.
    if ((await this.fs.list(`${port}/subsystems`)).length === 0) await removeEntry(this.fs, port, 'rmdir');
  }

  /**
   * After a restart: enabled namespaces already in the subsystem are known again (their ANA
   * states unknown until set). A disabled one is a create that did not finish: it serves
   * nothing, so it goes (its file stays, for addNamespace to pick up).
   */
  private async adoptNamespaces(): Promise<void> {
    for (const name of await this.fs.list(`${this.sub}/namespaces`)) {
      const dir = `${this.sub}/namespaces/${name}`;
      if ((await this.fs.read(`${dir}/enable`)) !== '1') {
        await removeEntry(this.fs, dir, 'rmdir');
        continue;
      }
      const uuid = (await this.fs.read(`${dir}/device_uuid`)).toLowerCase();
      if (this.volumes.has(uuid)) continue;
      const file = (await this.fs.read(`${dir}/device_path`)) || this.fileOf(uuid);
      let sizeBytes = 0;
      try {
        const fh = await open(file, 'r');
        sizeBytes = (await fh.stat()).size;
        await fh.close();
      } catch {
        // The file is gone; addNamespace recreates it.
      }
      const anaGroup = Number(await this.fs.read(`${dir}/ana_grpid`));
      this.volumes.set(uuid, { volumeUuid: uuid, nsid: Number(name), anaGroup, file, sizeBytes, ana: {} });
    }
  }

  private freeGroup(): number {
    const used = new Set([...this.volumes.values()].map((v) => v.anaGroup));
    for (let g = 2; g <= MAX_ANA_GROUP; g++) if (!used.has(g)) return g;
    throw new Error(`nvmet: no free ANA group (nvmet has ${MAX_ANA_GROUP}, group 1 is the default)`);
  }

  /** Creates the sparse file or makes it at least `sizeBytes`; true when it grew. */
  private async growFile(v: NvmetVolume, sizeBytes: number): Promise<boolean> {
    const fh = await open(v.file, constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      const size = (await fh.stat()).size;
      v.sizeBytes = Math.max(size, sizeBytes);
      if (size >= sizeBytes) return false;
      await fh.truncate(sizeBytes);
      return true;
    } finally {
      await fh.close();
    }
  }

  private async revalidate(v: NvmetVolume): Promise<void> {
    const dir = this.ns(v.nsid);
    if ((await this.fs.list(dir)).includes('revalidate_size')) {
      await this.fs.write(`${dir}/revalidate_size`, '1');
    } else {
      // Kernels without revalidate_size: a disable/enable cycle re-reads the size, but hosts
      // see the namespace vanish and come back.
      await this.fs.write(`${dir}/enable`, '0');
      await this.fs.write(`${dir}/enable`, '1');
    }
  }

  private async remove(v: NvmetVolume): Promise<void> {
    const dir = this.ns(v.nsid);
    if ((await this.fs.list(`${this.sub}/namespaces`)).includes(String(v.nsid))) {
      await this.fs.write(`${dir}/enable`, '0');
      await removeEntry(this.fs, dir, 'rmdir');
    }
    if (v.anaGroup !== 1)
      for (const node of this.nodes) await removeEntry(this.fs, this.group(node, v.anaGroup), 'rmdir');
    await rm(v.file, { force: true });
    this.volumes.delete(v.volumeUuid);
  }

  private async revokeHost(host: string): Promise<void> {
    await removeEntry(this.fs, this.hostLink(host), 'unlink');
    try {
      await this.fs.rmdir(`hosts/${host}`);
    } catch (err) {
      // EBUSY: another subsystem still allows this host; ENOENT: already gone.
      if (errnoOf(err) !== 'EBUSY' && errnoOf(err) !== 'ENOENT') throw err;
    }
  }

  private writeAna(v: NvmetVolume, node: SimNodeEndpoint): Promise<void> {
    const state = this.down.has(node.nodeId) ? 'inaccessible' : (v.ana[node.nodeId] ?? 'inaccessible');
    return writeIfChanged(this.fs, `${this.group(node, v.anaGroup)}/ana_state`, state);
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
