/**
 * An in-memory host for tests: a sysfs/dev/proc/etc tree shaped like the real kernel's, a fake
 * kernel that changes it, and scripted nvme-cli / multipath-tools that drive the kernel as the
 * real commands would. Tests assert on the tree and on `commands`, never on call order.
 *
 *   const host = new FakeHost({ clock });
 *   host.fabric.addSubsystem(NQN, [{ address: '10.0.0.1' }, { address: '10.0.0.2' }]);
 *   host.fabric.addNamespace(NQN, { nsid: 1, uuid: VOL });
 *   await connector.connect(data);     // → /dev/nvme0n1, two live paths
 *   host.setPortalUp('10.0.0.2', false); // its controller goes `connecting`
 */
import { ManualClock, type Clock } from '../../../shared/clock.ts';
import { type AlreadyForm, type FakeNvmeCliOptions, type FakeNvmeCliVersion, fakeNvme } from './nvme-cli.ts';
import { FakeDmTools, type FakeDmOptions } from './dm-tools.ts';
import { FakeFabric, portalKey } from './fabric.ts';
import { DEFAULT_KERNEL, FakeKernel, type FakeKernelOptions } from './kernel.ts';
import { MemFs } from './vfs.ts';
import type { HostPort, NetworkAddress, RunOptions, RunResult } from '../port.ts';

export interface FakeHostOptions {
  clock?: Clock;
  kernel?: Partial<FakeKernelOptions>;
  nvmeCli?: FakeNvmeCliVersion;
  alreadyForm?: AlreadyForm;
  dm?: Partial<Pick<FakeDmOptions, 'installed' | 'running' | 'assembleOn'>>;
  /** Contents of /etc/nvme/hostnqn (null: no file). */
  hostnqn?: string | null;
  hostid?: string | null;
  hostname?: string;
}

export interface RecordedCommand {
  cmd: string;
  args: string[];
  result: RunResult;
}

type Script = {
  match: (cmd: string, args: readonly string[]) => boolean;
  reply: RunResult | (() => RunResult | Promise<RunResult>);
  times: number;
};

export const FAKE_HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555';
const SELF_PID = 4242;

export class FakeHost implements HostPort {
  readonly clock: Clock;
  readonly fs = new MemFs();
  readonly fabric = new FakeFabric();
  readonly kernel: FakeKernel;
  readonly dm: FakeDmTools;
  readonly cli: FakeNvmeCliOptions;
  readonly commands: RecordedCommand[] = [];
  /** Commands currently running, for concurrency assertions. */
  readonly running: { cmd: string; args: string[] }[] = [];
  private scripts: Script[] = [];
  private mounts: { majMin: string; source: string; target: string; fstype: string }[] = [];
  private nextFd = 3;
  hostName: string;
  addresses: NetworkAddress[] = [
    { address: '127.0.0.1', family: 'IPv4', internal: true },
    { address: '10.0.0.100', family: 'IPv4', internal: false },
    { address: 'fd00::100', family: 'IPv6', internal: false },
    { address: 'fe80::1', family: 'IPv6', internal: false },
  ];

  constructor(opts: FakeHostOptions = {}) {
    this.clock = opts.clock ?? new ManualClock();
    this.hostName = opts.hostname ?? 'compute-1';
    this.kernel = new FakeKernel(this.fs, this.fabric, { ...DEFAULT_KERNEL, ...opts.kernel });
    this.cli = { version: opts.nvmeCli ?? '2', alreadyForm: opts.alreadyForm, failDisconnect: new Set() };
    this.dm = new FakeDmTools(
      this.kernel,
      { installed: true, running: true, assembleOn: 'add-path', stuck: new Set(), failFlush: new Set(), ...opts.dm },
      (block) => this.blockInUse(block),
    );
    const mp = this.kernel.opts.multipath;
    this.fs.writeFile('/sys/module/nvme_core/parameters/multipath', mp ? 'Y\n' : 'N\n');
    if (this.dm.opts.installed) this.fs.mkdirp('/sys/module/dm_multipath');
    this.fs.writeFile('/sys/class/dmi/id/product_uuid', '4c4c4544-0042-3510-8052-b4c04f333532\n', { mode: 0o400 });
    if (opts.hostnqn !== null) this.fs.writeFile('/etc/nvme/hostnqn', `${opts.hostnqn ?? FAKE_HOSTNQN}\n`);
    if (opts.hostid !== null)
      this.fs.writeFile('/etc/nvme/hostid', `${opts.hostid ?? FAKE_HOSTNQN.split(':uuid:')[1]}\n`);
    this.fs.mkdirp(`/proc/${SELF_PID}/fd`);
    this.fs.symlink('/proc/self', String(SELF_PID));
    this.fs.writeFile('/proc/swaps', 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n');
    this.renderMounts();
    this.kernel.render();
  }

  // ------------------------------------------------------------------ HostPort

  async run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const entry = { cmd, args: [...args] };
    this.running.push(entry);
    try {
      const script = this.scripts.find((s) => s.times > 0 && s.match(cmd, args));
      let result: RunResult;
      if (script) {
        script.times--;
        const reply = typeof script.reply === 'function' ? script.reply() : script.reply;
        result = opts.timeoutMs
          ? await Promise.race([reply, this.clock.sleep(opts.timeoutMs).then(() => timedOut(cmd, opts.timeoutMs!))])
          : await reply;
      } else {
        // Microtask only: with a ManualClock everything that does not wait on the clock finishes
        // within one `advance()`, which keeps tests deterministic. Concurrency tests use scripts
        // whose reply is a promise the test resolves.
        await Promise.resolve();
        result = this.answer(cmd, args);
      }
      this.commands.push({ ...entry, result });
      return result;
    } finally {
      this.running.splice(this.running.indexOf(entry), 1);
    }
  }

  /** What the built-in scripted tools answer (scripts can call it to wrap the real behaviour). */
  answer(cmd: string, args: readonly string[]): RunResult {
    const multipathTool = cmd === 'multipathd' || cmd === 'multipath';
    if (multipathTool && !this.dm.opts.installed) return { code: 127, stdout: '', stderr: `${cmd}: ENOENT` };
    switch (cmd) {
      case 'nvme':
        return fakeNvme(this.kernel, this.cli, args, () => this.fs.read('/etc/nvme/hostnqn')?.trim() ?? null);
      case 'dmesg':
        return { code: 0, stdout: this.kernel.log.map((l) => `[    1.000000] ${l}\n`).join(''), stderr: '' };
      case 'multipathd':
        return this.dm.multipathd(args);
      case 'multipath':
        return this.dm.multipath(args);
      case 'dmsetup':
        return this.dm.dmsetup(args);
      case 'blockdev':
        return this.dm.blockdev(args);
      default:
        return { code: 127, stdout: '', stderr: `${cmd}: ENOENT` };
    }
  }

  async readFile(p: string): Promise<string | null> {
    return this.fs.read(p);
  }

  async writeFile(p: string, data: string, opts: { mode?: number } = {}): Promise<void> {
    if (p.startsWith('/sys/') && this.fs.read(p) === null)
      throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
    this.fs.writeFile(p, data, opts);
    // sysfs writes act on the kernel, as commands do: logged with them (`calls('write /sys/…')`).
    if (p.startsWith('/sys/'))
      this.commands.push({ cmd: 'write', args: [p], result: { code: 0, stdout: '', stderr: '' } });
  }

  async readdir(p: string): Promise<string[]> {
    return this.fs.list(p);
  }

  async readlink(p: string): Promise<string | null> {
    return this.fs.readlink(p);
  }

  async realpath(p: string): Promise<string | null> {
    return this.fs.realpath(p);
  }

  async exists(p: string): Promise<boolean> {
    return this.fs.exists(p);
  }

  hostname(): string {
    return this.hostName;
  }

  networkAddresses(): NetworkAddress[] {
    return this.addresses;
  }

  machine(): string {
    return 'x86_64';
  }

  pid(): number {
    return SELF_PID;
  }

  // ------------------------------------------------------------------ scenario controls

  /** The next `times` commands matching `match` answer `reply` instead of the built-in. */
  script(match: (cmd: string, args: readonly string[]) => boolean, reply: Script['reply'], times = 1): void {
    this.scripts.push({ match, reply, times });
  }

  /** Commands run so far whose `cmd args…` line starts with `prefix`. */
  calls(prefix: string): string[] {
    return this.commands.map((c) => [c.cmd, ...c.args].join(' ')).filter((l) => l.startsWith(prefix));
  }

  /**
   * A portal stops answering (its controllers go `connecting`) or comes back (they go `live`, but
   * one whose secret the target no longer holds (`fabric.hostKeys`) is refused and stays
   * `connecting`, as a 6.1 reconnect with a retired secret).
   */
  setPortalUp(address: string, up: boolean, port = 4420, transport = 'tcp'): void {
    const p = this.fabric.portal(address, port, transport);
    p.up = up;
    for (const c of this.kernel.ctrls.values()) {
      if (c.portal !== p) continue;
      const required = this.fabric.hostKeys.get(c.hostNqn);
      c.state = up && (required === undefined || required === c.dhchapSecret) ? 'live' : 'connecting';
      if (up) this.kernel.scan(c, false);
    }
    this.kernel.render();
  }

  /** ctrl-loss-tmo ran out for the portal's controllers: the kernel deletes them. */
  expirePortal(address: string, port = 4420, transport = 'tcp'): void {
    const key = portalKey(transport, address, port);
    for (const c of [...this.kernel.ctrls.values()]) if (c.portal.key === key) this.kernel.removeCtrl(c);
  }

  /**
   * The target adds a namespace at clock time `atMs`; with `aen` (default) the target tells the
   * live controllers (a namespace-attribute AEN) and they scan, else only a rescan finds it.
   */
  publishNamespaceAt(nqn: string, ns: Parameters<FakeFabric['addNamespace']>[1], atMs: number, aen = true): void {
    void this.clock.sleep(atMs - this.clock.now()).then(() => {
      this.fabric.addNamespace(nqn, { ...ns, discovery: aen ? 'connect' : 'rescan' });
      if (aen) for (const c of this.kernel.ctrls.values()) if (c.nqn === nqn) this.kernel.scan(c, false);
    });
  }

  /** The target stops exporting a namespace to this host (ACL revoked, volume deleted) and sends an AEN. */
  unpublishNamespace(nqn: string, nsid: number): void {
    this.fabric.subsystem(nqn).namespaces.delete(nsid);
    for (const c of this.kernel.ctrls.values()) if (c.nqn === nqn) this.kernel.scan(c, false);
  }

  /** Controllers the host disconnected so far (nvme-cli or `delete_controller`), in order. */
  disconnects(): string[] {
    return [...this.kernel.disconnected];
  }

  /** Controller names of the kernel, e.g. `['nvme0', 'nvme1']`. */
  controllers(nqn?: string): string[] {
    return [...this.kernel.ctrls.values()].filter((c) => !nqn || c.nqn === nqn).map((c) => `nvme${c.instance}`);
  }

  /** A process opens the device (an fd link in /proc/<pid>/fd). */
  openDevice(pid: number, devPath: string): void {
    this.fs.symlink(`/proc/${pid}/fd/${this.nextFd++}`, devPath);
  }

  closeAll(pid: number): void {
    this.fs.rm(`/proc/${pid}`);
  }

  mount(devPath: string, target: string, fstype = 'xfs'): void {
    const name = (this.fs.realpath(devPath) ?? devPath).split('/').pop()!;
    const majMin = this.fs.read(`/sys/block/${name}/dev`)?.trim() ?? '8:1';
    this.mounts.push({ majMin, source: devPath, target, fstype });
    this.renderMounts();
  }

  umount(target: string): void {
    this.mounts = this.mounts.filter((m) => m.target !== target);
    this.renderMounts();
  }

  addHolder(block: string, holder: string): void {
    this.kernel.extraHolders.set(block, [...(this.kernel.extraHolders.get(block) ?? []), holder]);
    this.kernel.render();
  }

  private renderMounts(): void {
    const lines = [`22 1 0:21 / / rw,relatime shared:1 - overlay overlay rw`];
    // mountinfo escapes space, tab, newline and backslash as octal (\040 …).
    const esc = (v: string) => v.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
    for (const [i, m] of this.mounts.entries()) {
      lines.push(
        `${40 + i} 22 ${m.majMin} / ${esc(m.target)} rw,relatime shared:${10 + i} - ${m.fstype} ${esc(m.source)} rw`,
      );
    }
    this.fs.writeFile(`/proc/${SELF_PID}/mountinfo`, lines.join('\n') + '\n');
  }

  /** Used by the fake multipath-tools to refuse removing a map that is in use. */
  private blockInUse(block: string): boolean {
    const majMin = this.fs.read(`/sys/block/${block}/dev`)?.trim();
    if (this.fs.list(`/sys/block/${block}/holders`).length) return true;
    if (this.mounts.some((m) => m.majMin === majMin)) return true;
    for (const pid of this.fs.list('/proc')) {
      for (const fd of this.fs.list(`/proc/${pid}/fd`)) {
        const t = this.fs.readlink(`/proc/${pid}/fd/${fd}`);
        if (t && (t === `/dev/${block}` || this.fs.realpath(t) === `/dev/${block}`)) return true;
      }
    }
    return false;
  }
}

function timedOut(cmd: string, ms: number): RunResult {
  return { code: 124, stdout: '', stderr: `${cmd}: timed out after ${ms} ms` };
}
