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
import { renderSysfs } from './sysfs.ts';
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
  /** sysfs `dhchap_secret` / `dhchap_ctrl_secret`: the secret itself, or `none` (6.1 prints both). */
  dhchapSecret: string;
  dhchapCtrlSecret: string;
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
  /** Controllers whose `dhchap_secret` write fails (EIO), as a re-authentication the kernel could not start. */
  readonly failDhchapWrite = new Set<string>();
  /** Controllers whose `dhchap_ctrl_secret` write alone fails (EIO): the host secret moved, the controller secret not. */
  readonly failDhchapCtrlWrite = new Set<string>();
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
    /** The DH-HMAC-CHAP secrets it connected with (a controller secret only beside a host secret). */
    dhchap: { host: string | null; ctrl: string | null } = { host: null, ctrl: null },
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
      dhchapSecret: dhchap.host || 'none',
      dhchapCtrlSecret: (dhchap.host && dhchap.ctrl) || 'none',
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

  /** Rebuilds every NVMe and dm entry of /sys and /dev from the model (sysfs.ts). */
  render(): void {
    renderSysfs(this);
  }

  /**
   * The head's disk minor (multipath): taken the first time one of its paths is usable, kept
   * until the head goes; null while no path has been.
   */
  headDisk(head: Head): number | null {
    if (
      this.opts.multipath &&
      head.diskMinor === null &&
      [...head.paths.keys()].some((c) => this.usable(this.ctrls.get(c)!, head.nsid))
    ) {
      head.diskMinor = this.nextMinor++;
    }
    return head.diskMinor;
  }
}
