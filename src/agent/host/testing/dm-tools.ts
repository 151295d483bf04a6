/**
 * Scripted multipathd / multipath / dmsetup / blockdev for the fake host. multipath-tools
 * facts: docs/KERNEL.md §3 (JSON schema 0.1, find_multipaths, NVMe blacklist
 * when native multipath is on since 0.9.6, `multipath -f` refusing a map in use).
 */
import type { RunResult } from '../port.ts';
import type { FakeKernel } from './kernel.ts';

export interface FakeDmOptions {
  /** multipath-tools installed (else 127) and the daemon running. */
  installed: boolean;
  running: boolean;
  /**
   * When multipathd assembles a map: on `add path` (default), only on `reconfigure`
   * (strict find_multipaths with an unlisted WWID), or never.
   */
  assembleOn: 'add-path' | 'reconfigure' | 'never';
  /** Maps that `multipath -f` refuses to flush (and `dmsetup remove` without --force). */
  stuck: Set<string>;
  /** Devices whose `blockdev --flushbufs` fails. */
  failFlush: Set<string>;
}

const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
const fail = (stderr: string, code = 1): RunResult => ({ code, stdout: '', stderr });

export class FakeDmTools {
  /** Paths multipathd has been told about (no udev in the fake). */
  readonly known = new Set<string>();

  constructor(
    private readonly kernel: FakeKernel,
    readonly opts: FakeDmOptions,
    /** Is this block device (name) open, mounted or held? */
    private readonly inUse: (block: string) => boolean,
  ) {}

  private wwidOf(dev: string): string | null {
    return this.kernel.fs.read(`/sys/block/${dev}/wwid`)?.trim() ?? null;
  }

  /** Plain NVMe namespace devices (multipath=N) with this WWID. */
  private pathsFor(wwid: string, among: Iterable<string>): string[] {
    return [...among].filter((d) => /^nvme\d+n\d+$/.test(d) && this.wwidOf(d) === wwid);
  }

  private assemble(wwid: string, among: Iterable<string>): void {
    const paths = this.pathsFor(wwid, among);
    if (paths.length) this.kernel.createMap(wwid, paths);
  }

  multipathd(args: readonly string[]): RunResult {
    if (!this.opts.running) return fail("can't connect to socket: No such file or directory\n");
    const cmd = args.join(' ');
    if (cmd === 'show daemon') return ok('pid 4711 idle\n');
    if (args[0] === 'add' && args[1] === 'path') {
      const dev = args[2]!.replace(/^\/dev\//, '');
      const wwid = this.wwidOf(dev);
      if (!wwid) return fail(`${dev}: failed to get path uid\n`);
      // multipath-tools ≥0.9.6 blacklists NVMe while native multipath is on.
      if (this.kernel.opts.multipath) return fail(`${dev}: path blacklisted\n`);
      this.known.add(dev);
      if (this.opts.assembleOn === 'add-path') this.assemble(wwid, this.known);
      return ok('ok\n');
    }
    if (cmd === 'reconfigure') {
      if (this.kernel.opts.multipath) return ok('ok\n');
      for (const d of this.kernel.fs.list('/sys/block')) if (/^nvme\d+n\d+$/.test(d)) this.known.add(d);
      if (this.opts.assembleOn !== 'never')
        for (const w of new Set([...this.known].map((d) => this.wwidOf(d)))) if (w) this.assemble(w, this.known);
      return ok('ok\n');
    }
    if (args[0] === 'resize' && args[1] === 'map') {
      const m = this.findMap(args[2] ?? '');
      if (!m) return fail(`${args[2]}: map not found\n`);
      // Reload the table at the paths' current size (the smallest, as multipathd insists).
      const sizes = [...m.paths].map((p) => Number(this.kernel.fs.read(`/sys/block/${p}/size`)?.trim() ?? 0));
      m.sectors = String(Math.min(...sizes));
      this.kernel.render();
      return ok('ok\n');
    }
    if (cmd === 'show maps json') return ok(JSON.stringify(this.mapsJson(), null, 2));
    if (args[0] === 'show' && args[1] === 'paths' && args[2] === 'raw' && args[3] === 'format') {
      const lines: string[] = [];
      for (const m of this.kernel.maps.values()) {
        for (const p of m.paths) {
          const s = this.pathState(p);
          lines.push(`${p} ${m.wwid} ${s.dm} ${s.chk} running ${m.name}`);
        }
      }
      return ok(lines.map((l) => l + '\n').join(''));
    }
    return fail(`unknown command: ${cmd}\n`);
  }

  private pathState(dev: string): { dm: string; chk: string } {
    const ctrlDir = this.kernel.fs.realpath(`/sys/block/${dev}/device`);
    const state = ctrlDir ? this.kernel.fs.read(`${ctrlDir}/state`)?.trim() : undefined;
    // NVMe has no active checker: multipathd maps controller state live→up, anything else→down.
    return state === 'live' ? { dm: 'active', chk: 'ready' } : { dm: 'failed', chk: 'faulty' };
  }

  private mapsJson(): unknown {
    return {
      major_version: 0,
      minor_version: 1,
      maps: [...this.kernel.maps.values()].map((m) => {
        const paths = [...m.paths].map((p) => {
          const s = this.pathState(p);
          return {
            dev: p,
            dev_t: this.kernel.fs.read(`/sys/block/${p}/dev`)?.trim() ?? '',
            dm_st: s.dm,
            dev_st: 'running',
            chk_st: s.chk,
            checker: 'none',
          };
        });
        return {
          name: m.name,
          uuid: m.wwid,
          sysfs: `dm-${m.index}`,
          paths: paths.filter((p) => p.dm_st === 'active').length,
          dm_st: 'active',
          queueing: 'off',
          features: '0',
          path_faults: 0,
          path_groups: [{ selector: 'service-time 0', pri: 50, dm_st: 'active', group: 1, paths }],
        };
      }),
    };
  }

  private findMap(arg: string) {
    return [...this.kernel.maps.values()].find(
      (m) => m.name === arg || m.wwid === arg || `/dev/mapper/${m.name}` === arg,
    );
  }

  multipath(args: readonly string[]): RunResult {
    if (args[0] !== '-f') return fail('unsupported\n');
    const m = this.findMap(args[1] ?? '');
    if (!m) return fail(`${args[1]}: not a multipath device\n`);
    if (this.opts.stuck.has(m.name) || this.inUse(`dm-${m.index}`)) return fail(`${m.name}: map in use\n`);
    this.kernel.removeMap(m.wwid);
    return ok();
  }

  dmsetup(args: readonly string[]): RunResult {
    if (args[0] !== 'remove') return fail('unsupported\n');
    const force = args.includes('--force');
    const m = this.findMap(args[args.length - 1]!);
    if (!m) return fail(`Device ${args[args.length - 1]} not found\nCommand failed.\n`);
    if (!force && (this.opts.stuck.has(m.name) || this.inUse(`dm-${m.index}`))) {
      return fail(`device-mapper: remove ioctl on ${m.name} failed: Device or resource busy\nCommand failed.\n`);
    }
    this.kernel.removeMap(m.wwid);
    return ok();
  }

  blockdev(args: readonly string[]): RunResult {
    const dev = args[args.length - 1]!;
    if (!this.kernel.fs.exists(dev)) return fail(`blockdev: cannot open ${dev}: No such file or directory\n`);
    const name = this.kernel.fs.realpath(dev)!.replace(/^\/dev\//, '');
    if (this.opts.failFlush.has(name)) return fail('blockdev: BLKFLSBUF: Input/output error\n');
    return ok();
  }
}
