/**
 * The host kernel of the fake: NVMe-oF controllers, subsystems, namespace heads and per-path
 * devices, and device-mapper maps, rendered into a MemFs laid out like the real sysfs
 * (kernel 6.1, as the kernel scenarios see it), with switches for older layouts.
 *
 * Kernel rules it keeps (docs/KERNEL.md §1):
 * - a controller's instance is the lowest free one; a subsystem takes the instance of its first
 *   controller (5.4+), and that number stays reserved while the subsystem lives;
 * - head `nvme<S>n<I>`: I from a per-subsystem IDA (not the NSID); per-path `nvme<S>c<C>n<I>`
 *   under the controller (hidden, no /dev node); with multipath=N a plain `nvme<C>n<I>`;
 * - the head disk appears only once a path is live with ANA optimized/non-optimized, and goes
 *   away with its last path;
 * - a namespace whose IDs differ from the subsystem's existing head at that NSID is rejected
 *   ("IDs don't match for shared namespace").
 */
import type { FakeFabric, TargetNamespace, TargetPortal } from './fabric.ts';
import type { MemFs } from './vfs.ts';

export type FakeAddressStyle = 'src_addr' | 'host_traddr' | 'plain' | 'space';

export interface FakeKernelOptions {
  /** nvme_core.multipath (Y = native multipath heads). */
  multipath: boolean;
  addressStyle: FakeAddressStyle;
  /** false: an older layout where the head has no `device` link to its subsystem. */
  headDeviceLink: boolean;
  /** true: namespace block dirs carry their own `subsysnqn` file (as some older kernels did). */
  nsSubsysnqn: boolean;
  /** false: controllers have no `hostnqn` attribute (os-brick nvmeof.py: "not present in all OSs"). */
  ctrlHostnqn: boolean;
  /** true: pre-2019 per-path names use the target's cntlid, not the controller instance. */
  perPathCntlid: boolean;
  /** true: ≥6.14 `/sys/block/<head>/multipath/` links. */
  multipathLinks: boolean;
  /** false: the target has no ANA; no ana_state files, paths count as optimized. */
  ana: boolean;
  /** false: controllers have no writable `delete_controller` attribute (the agent falls back to nvme-cli). */
  deleteController: boolean;
  /** The src_addr the kernel reports for TCP connections. */
  srcAddr: string;
}

export const DEFAULT_KERNEL: FakeKernelOptions = {
  multipath: true,
  addressStyle: 'src_addr',
  headDeviceLink: true,
  nsSubsysnqn: false,
  ctrlHostnqn: true,
  perPathCntlid: false,
  multipathLinks: false,
  ana: true,
  deleteController: true,
  srcAddr: '10.0.0.100',
};

export interface Ctrl {
  instance: number;
  /** traddr as given to `nvme connect`: the kernel keeps and prints the string. */
  traddr: string;
  cntlid: number;
  nqn: string;
  portal: TargetPortal;
  hostNqn: string;
  hostTraddr?: string;
  state: string;
  opts: Record<string, string>;
  nsids: Set<number>;
}

export interface Head {
  instance: number;
  nsid: number;
  uuid?: string;
  nguid?: string;
  sizeBytes: number;
  diskMinor: number | null;
  /** controller instance → minor of its per-path (or plain) disk */
  paths: Map<number, number>;
}

export interface Subsys {
  instance: number;
  nqn: string;
  iopolicy: string;
  heads: Map<number, Head>;
}

export interface DmMap {
  index: number;
  name: string;
  wwid: string;
  paths: Set<string>;
  /**
   * The table's size in sectors, fixed when the map is loaded: like the real device-mapper, a
   * map does not grow with its paths until `multipathd resize map` reloads it.
   */
  sectors: string | null;
}

export class FakeKernel {
  readonly ctrls = new Map<number, Ctrl>();
  readonly subsystems = new Map<string, Subsys>();
  readonly maps = new Map<string, DmMap>();
  /** Holders a test puts on a block device (LVM, another dm), by block name. */
  readonly extraHolders = new Map<string, string[]>();
  readonly log: string[] = [];
  private nextMinor = 0;
  private nextDm = 0;

  constructor(
    readonly fs: MemFs,
    readonly fabric: FakeFabric,
    readonly opts: FakeKernelOptions,
  ) {}

  // ------------------------------------------------------------------ controllers

  /** Controllers removed by a disconnect (nvme-cli or `delete_controller`), in order. */
  readonly disconnected: string[] = [];

  /** A disconnect asked for by the host (not a ctrl-loss expiry): recorded, then removed. */
  disconnect(ctrl: Ctrl): void {
    this.disconnected.push(`nvme${ctrl.instance}`);
    this.removeCtrl(ctrl);
  }

  ctrlByName(name: string): Ctrl | undefined {
    const m = /^nvme(\d+)$/.exec(name.replace(/^\/dev\//, ''));
    return m ? this.ctrls.get(Number(m[1])) : undefined;
  }

  findCtrl(nqn: string, portal: TargetPortal, hostNqn: string, hostTraddr?: string): Ctrl | undefined {
    return [...this.ctrls.values()].find(
      (c) =>
        c.nqn === nqn &&
        c.portal === portal &&
        c.hostNqn === hostNqn &&
        c.hostTraddr === hostTraddr &&
        c.state !== 'deleting',
    );
  }

  addCtrl(
    nqn: string,
    portal: TargetPortal,
    hostNqn: string,
    opts: Record<string, string>,
    hostTraddr?: string,
    traddr = portal.address,
  ): Ctrl {
    const taken = new Set<number>([...this.ctrls.keys(), ...[...this.subsystems.values()].map((s) => s.instance)]);
    let instance = 0;
    while (taken.has(instance)) instance++;
    const target = this.fabric.subsystem(nqn);
    const ctrl: Ctrl = {
      instance,
      traddr,
      cntlid: target.nextCntlid++,
      nqn,
      portal,
      hostNqn,
      hostTraddr,
      state: 'live',
      opts,
      nsids: new Set(),
    };
    this.ctrls.set(instance, ctrl);
    if (!this.subsystems.has(nqn)) this.subsystems.set(nqn, { instance, nqn, iopolicy: 'numa', heads: new Map() });
    this.scan(ctrl, false);
    return ctrl;
  }

  removeCtrl(ctrl: Ctrl): void {
    const subsys = this.subsystems.get(ctrl.nqn)!;
    for (const nsid of ctrl.nsids) {
      const head = subsys.heads.get(nsid);
      if (!head) continue;
      for (const m of this.maps.values()) m.paths.delete(this.pathName(subsys, head, ctrl));
      head.paths.delete(ctrl.instance);
      if (head.paths.size === 0) subsys.heads.delete(nsid);
    }
    this.ctrls.delete(ctrl.instance);
    if (![...this.ctrls.values()].some((c) => c.nqn === ctrl.nqn)) this.subsystems.delete(ctrl.nqn);
    this.render();
  }

  /** Reads the target's namespace list for one controller (connect, AEN or `ns-rescan`). */
  scan(ctrl: Ctrl, explicit: boolean): void {
    if (ctrl.state !== 'live') return;
    const target = this.fabric.subsystem(ctrl.nqn);
    const subsys = this.subsystems.get(ctrl.nqn)!;
    for (const ns of target.namespaces.values()) {
      if (ns.discovery === 'rescan' && !explicit && !ctrl.nsids.has(ns.nsid)) continue;
      this.attach(ctrl, subsys, ns);
    }
    for (const nsid of [...ctrl.nsids]) {
      if (!target.namespaces.has(nsid)) this.detachNs(ctrl, subsys, nsid);
    }
    this.render();
  }

  private attach(ctrl: Ctrl, subsys: Subsys, ns: TargetNamespace): void {
    let head = subsys.heads.get(ns.nsid);
    if (head && (head.uuid !== ns.uuid || head.nguid !== ns.nguid)) {
      this.log.push(`nvme${ctrl.instance}: IDs don't match for shared namespace ${ns.nsid}`);
      return;
    }
    if (!head) {
      const used = new Set([...subsys.heads.values()].map((h) => h.instance));
      let instance = 1;
      while (used.has(instance)) instance++;
      head = {
        instance,
        nsid: ns.nsid,
        uuid: ns.uuid,
        nguid: ns.nguid,
        sizeBytes: ns.sizeBytes,
        diskMinor: null,
        paths: new Map(),
      };
      subsys.heads.set(ns.nsid, head);
    }
    head.sizeBytes = ns.sizeBytes; // revalidation picks up a grown namespace
    if (!head.paths.has(ctrl.instance)) head.paths.set(ctrl.instance, this.nextMinor++);
    ctrl.nsids.add(ns.nsid);
  }

  private detachNs(ctrl: Ctrl, subsys: Subsys, nsid: number): void {
    const head = subsys.heads.get(nsid);
    ctrl.nsids.delete(nsid);
    if (!head) return;
    head.paths.delete(ctrl.instance);
    if (head.paths.size === 0) subsys.heads.delete(nsid);
  }

  anaState(ctrl: Ctrl, nsid: number): string | null {
    return this.opts.ana ? this.fabric.anaOf(ctrl.nqn, nsid, ctrl.portal.key) : null;
  }

  private usable(ctrl: Ctrl, nsid: number): boolean {
    const ana = this.anaState(ctrl, nsid) ?? 'optimized';
    return ctrl.state === 'live' && (ana === 'optimized' || ana === 'non-optimized');
  }

  // ------------------------------------------------------------------ naming

  headName(subsys: Subsys, head: Head): string {
    return `nvme${subsys.instance}n${head.instance}`;
  }

  /** The per-path (multipath=Y) or plain (multipath=N) block device of `head` on `ctrl`. */
  pathName(subsys: Subsys, head: Head, ctrl: Ctrl): string {
    if (!this.opts.multipath) return `nvme${ctrl.instance}n${head.instance}`;
    return `nvme${subsys.instance}c${this.opts.perPathCntlid ? ctrl.cntlid : ctrl.instance}n${head.instance}`;
  }

  // ------------------------------------------------------------------ device mapper

  createMap(wwid: string, paths: string[], name = wwid): DmMap {
    let m = this.maps.get(wwid);
    if (!m) {
      m = { index: this.nextDm++, name, wwid, paths: new Set(), sectors: null };
      this.maps.set(wwid, m);
    }
    for (const p of paths) m.paths.add(p);
    this.render();
    return m;
  }

  removeMap(wwid: string): void {
    this.maps.delete(wwid);
    this.render();
  }

  // ------------------------------------------------------------------ rendering

  /** Rebuilds every NVMe and dm entry of /sys and /dev from the model. */
  render(): void {
    const fs = this.fs;
    for (const p of [
      '/sys/devices/virtual/nvme-fabrics',
      '/sys/devices/virtual/nvme-subsystem',
      '/sys/class/nvme',
      '/sys/class/nvme-fabrics',
      '/sys/class/nvme-subsystem',
      '/dev/mapper',
    ])
      fs.rm(p);
    for (const n of fs.list('/sys/block')) if (/^(nvme|dm-)/.test(n)) fs.rm(`/sys/block/${n}`);
    for (const n of fs.list('/sys/devices/virtual/block'))
      if (n.startsWith('dm-')) fs.rm(`/sys/devices/virtual/block/${n}`);
    for (const n of fs.list('/sys/dev/block')) if (/^(259|253):/.test(n)) fs.rm(`/sys/dev/block/${n}`);
    for (const n of fs.list('/dev')) if (/^(nvme|ng|dm-)/.test(n)) fs.rm(`/dev/${n}`);
    fs.mkdirp('/sys/class/nvme-subsystem');
    fs.mkdirp('/sys/class/nvme');
    fs.mkdirp('/sys/block');
    fs.mkdirp('/dev/mapper');

    const blockDirs = new Map<string, string>(); // block name → its real sysfs dir
    for (const ctrl of this.ctrls.values()) this.renderCtrl(ctrl);
    for (const subsys of this.subsystems.values()) {
      const sdir = `/sys/devices/virtual/nvme-subsystem/nvme-subsys${subsys.instance}`;
      fs.writeFile(`${sdir}/subsysnqn`, `${subsys.nqn}\n`);
      fs.writeFile(`${sdir}/subsystype`, 'nvm\n');
      fs.writeFile(`${sdir}/model`, 'Portalis fake\n');
      fs.writeFile(`${sdir}/iopolicy`, `${subsys.iopolicy}\n`, {
        onWrite: (v) => {
          if (!['numa', 'round-robin', 'queue-depth'].includes(v.trim()))
            throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
          subsys.iopolicy = v.trim();
          this.render();
        },
      });
      fs.link(`/sys/class/nvme-subsystem/nvme-subsys${subsys.instance}`, sdir);
      for (const ctrl of this.ctrls.values()) {
        if (ctrl.nqn === subsys.nqn)
          fs.link(`${sdir}/nvme${ctrl.instance}`, `/sys/devices/virtual/nvme-fabrics/ctl/nvme${ctrl.instance}`);
      }
      for (const head of subsys.heads.values()) this.renderHead(subsys, head, sdir, blockDirs);
    }
    for (const m of this.maps.values()) this.renderMap(m, blockDirs);
    for (const [dev, holders] of this.extraHolders) {
      const dir = blockDirs.get(dev);
      for (const h of holders) if (dir) fs.link(`${dir}/holders/${h}`, `/sys/devices/virtual/block/${h}`);
    }
  }

  private renderCtrl(ctrl: Ctrl): void {
    const fs = this.fs;
    const dir = `/sys/devices/virtual/nvme-fabrics/ctl/nvme${ctrl.instance}`;
    const p = ctrl.portal;
    const kv = [`traddr=${ctrl.traddr}`, `trsvcid=${p.port}`];
    if (this.opts.addressStyle === 'src_addr' && p.transport === 'tcp')
      kv.push(`src_addr=${ctrl.hostTraddr ?? this.opts.srcAddr}`);
    if (this.opts.addressStyle === 'host_traddr') kv.push(`host_traddr=${ctrl.hostTraddr ?? this.opts.srcAddr}`);
    fs.writeFile(`${dir}/address`, `${kv.join(this.opts.addressStyle === 'space' ? ' ' : ',')}\n`);
    fs.writeFile(`${dir}/state`, `${ctrl.state}\n`);
    fs.writeFile(`${dir}/subsysnqn`, `${ctrl.nqn}\n`);
    fs.writeFile(`${dir}/transport`, `${p.transport}\n`);
    fs.writeFile(`${dir}/cntlid`, `${ctrl.cntlid}\n`);
    if (this.opts.deleteController)
      fs.writeFile(`${dir}/delete_controller`, '', { mode: 0o200, onWrite: () => this.disconnect(ctrl) });
    if (this.opts.ctrlHostnqn) fs.writeFile(`${dir}/hostnqn`, `${ctrl.hostNqn}\n`);
    for (const [k, v] of Object.entries(ctrl.opts)) fs.writeFile(`${dir}/${k}`, `${v}\n`);
    fs.writeFile(`/dev/nvme${ctrl.instance}`, '');
    fs.link(`/sys/class/nvme/nvme${ctrl.instance}`, dir);
    fs.link(`/sys/class/nvme-fabrics/ctl/nvme${ctrl.instance}`, dir);
  }

  private renderHead(subsys: Subsys, head: Head, sdir: string, blockDirs: Map<string, string>): void {
    const fs = this.fs;
    const mp = this.opts.multipath;
    if (
      mp &&
      head.diskMinor === null &&
      [...head.paths.keys()].some((c) => this.usable(this.ctrls.get(c)!, head.nsid))
    ) {
      head.diskMinor = this.nextMinor++;
    }
    const pathNames: string[] = [];
    for (const [ci, minor] of head.paths) {
      const ctrl = this.ctrls.get(ci)!;
      const name = this.pathName(subsys, head, ctrl);
      const dir = `/sys/devices/virtual/nvme-fabrics/ctl/nvme${ci}/${name}`;
      this.renderNs(dir, name, head, subsys, minor);
      fs.link(`${dir}/device`, `/sys/devices/virtual/nvme-fabrics/ctl/nvme${ci}`);
      const ana = this.anaState(ctrl, head.nsid);
      if (mp && ana) {
        fs.writeFile(`${dir}/ana_state`, `${ana}\n`);
        fs.writeFile(`${dir}/ana_grpid`, `${head.nsid}\n`);
      }
      if (!mp) fs.writeFile(`/dev/${name}`, '');
      blockDirs.set(name, dir);
      pathNames.push(name);
    }
    if (mp && head.diskMinor !== null) {
      const name = this.headName(subsys, head);
      const dir = `${sdir}/${name}`;
      this.renderNs(dir, name, head, subsys, head.diskMinor);
      if (this.opts.headDeviceLink) fs.link(`${dir}/device`, sdir);
      if (this.opts.multipathLinks) for (const p of pathNames) fs.link(`${dir}/multipath/${p}`, blockDirs.get(p)!);
      fs.writeFile(`/dev/${name}`, '');
      blockDirs.set(name, dir);
    }
  }

  private renderNs(dir: string, name: string, head: Head, subsys: Subsys, minor: number): void {
    const fs = this.fs;
    // sysfs `uuid` shows the NGUID when there is no UUID, and is hidden when both are zero.
    const uuidAttr = head.uuid ?? (head.nguid ? dashed(head.nguid) : undefined);
    if (uuidAttr) fs.writeFile(`${dir}/uuid`, `${uuidAttr}\n`);
    if (head.nguid) fs.writeFile(`${dir}/nguid`, `${dashed(head.nguid)}\n`);
    fs.writeFile(`${dir}/nsid`, `${head.nsid}\n`);
    const wwid = head.uuid
      ? `uuid.${head.uuid}`
      : head.nguid
        ? `eui.${head.nguid}`
        : `nvme.0000-${subsys.instance}-${head.nsid.toString(16).padStart(8, '0')}`;
    fs.writeFile(`${dir}/wwid`, `${wwid}\n`);
    fs.writeFile(`${dir}/size`, `${Math.floor(head.sizeBytes / 512)}\n`);
    fs.writeFile(`${dir}/dev`, `259:${minor}\n`);
    if (this.opts.nsSubsysnqn) fs.writeFile(`${dir}/subsysnqn`, `${subsys.nqn}\n`);
    fs.mkdirp(`${dir}/holders`);
    fs.mkdirp(`${dir}/slaves`);
    fs.link(`/sys/block/${name}`, dir);
    fs.link(`/sys/dev/block/259:${minor}`, dir);
  }

  private renderMap(m: DmMap, blockDirs: Map<string, string>): void {
    const fs = this.fs;
    const dm = `dm-${m.index}`;
    const dir = `/sys/devices/virtual/block/${dm}`;
    fs.writeFile(`${dir}/dm/name`, `${m.name}\n`);
    fs.writeFile(`${dir}/dm/uuid`, `mpath-${m.wwid}\n`);
    fs.writeFile(`${dir}/dev`, `253:${m.index}\n`);
    let size = '0';
    fs.mkdirp(`${dir}/holders`);
    fs.mkdirp(`${dir}/slaves`);
    for (const p of m.paths) {
      const pdir = blockDirs.get(p);
      if (!pdir) continue;
      size = fs.read(`${pdir}/size`)?.trim() ?? size;
      fs.link(`${dir}/slaves/${p}`, pdir);
      fs.link(`${pdir}/holders/${dm}`, dir);
    }
    if (m.sectors === null && size !== '0') m.sectors = size;
    fs.writeFile(`${dir}/size`, `${m.sectors ?? size}\n`);
    fs.link(`/sys/block/${dm}`, dir);
    fs.link(`/sys/dev/block/253:${m.index}`, dir);
    fs.writeFile(`/dev/${dm}`, '');
    fs.symlink(`/dev/mapper/${m.name}`, `../${dm}`);
  }
}

function dashed(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
