/**
 * The real host: the only file of the agent that spawns processes or touches the filesystem.
 * It is the agent's privileged boundary (os-brick's `privileged/`), kept small and free of
 * decisions: everything it returns is interpreted by the callers.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fsSync, { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Clock, systemClock } from '../../shared/clock.ts';
import {
  DEFAULT_ROOTS,
  type HostPort,
  type HostRoots,
  type NetworkAddress,
  type RunOptions,
  type RunResult,
} from './port.ts';

const MISSING = new Set(['ENOENT', 'ENOTDIR', 'ENODEV', 'ENXIO']);
/** After SIGTERM on timeout, how long a command gets before SIGKILL. */
const KILL_GRACE_MS = 2000;

/**
 * sysfs and procfs are read synchronously: their files are generated from kernel memory on
 * read and never wait on a disk, while each promise-based call goes through libuv's thread pool
 * (Node docs, "Don't block the event loop": the pool serves fs calls, 4 threads by default)
 * and its hand-offs cost more than the read. In the emulated kernel-test guest one scan of the
 * NVMe namespaces took ~400 ms through the pool (the connector's trace). Other paths (/dev,
 * /etc) stay asynchronous.
 */
function isKernelFs(logical: string): boolean {
  return logical.startsWith('/sys/') || logical.startsWith('/proc/') || logical === '/sys' || logical === '/proc';
}

function isMissing(e: unknown): boolean {
  return typeof e === 'object' && e !== null && MISSING.has((e as NodeJS.ErrnoException).code ?? '');
}

export class LinuxHost implements HostPort {
  readonly clock: Clock;
  private readonly roots: HostRoots;
  /** Logical prefix → physical root, longest first. */
  private readonly map: [string, string][];

  constructor(opts: Partial<HostRoots> & { clock?: Clock } = {}) {
    this.clock = opts.clock ?? systemClock;
    this.roots = {
      sysRoot: opts.sysRoot ?? DEFAULT_ROOTS.sysRoot,
      devRoot: opts.devRoot ?? DEFAULT_ROOTS.devRoot,
      etcRoot: opts.etcRoot ?? DEFAULT_ROOTS.etcRoot,
      procRoot: opts.procRoot ?? DEFAULT_ROOTS.procRoot,
    };
    this.map = [
      ['/sys', this.roots.sysRoot],
      ['/dev', this.roots.devRoot],
      ['/etc', this.roots.etcRoot],
      ['/proc', this.roots.procRoot],
    ];
  }

  /** Logical → physical. */
  physical(p: string): string {
    const n = path.posix.normalize(p);
    for (const [logical, root] of this.map) {
      if (n === logical) return root;
      if (n.startsWith(logical + '/')) return path.join(root, n.slice(logical.length));
    }
    return n;
  }

  /** Physical → logical (for realpath results). */
  private logical(p: string): string {
    for (const [logical, root] of this.map) {
      const r = path.resolve(root);
      if (p === r) return logical;
      if (p.startsWith(r + '/')) return logical + p.slice(r.length);
    }
    return p;
  }

  run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve) => {
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      let settled = false;
      const finish = (r: RunResult) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        resolve(r);
      };
      // LC_ALL=C: nvme-cli and multipath print strerror() text that the classifier matches.
      const child = spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
      const timer = opts.timeoutMs
        ? setTimeout(() => {
            timedOut = true;
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS).unref();
          }, opts.timeoutMs)
        : undefined;
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', (e: NodeJS.ErrnoException) => {
        // The binary is not there (or not executable): answer as a shell would.
        finish({ code: 127, stdout, stderr: stderr + `${cmd}: ${e.code ?? e.message}` });
      });
      child.on('close', (code, signal) => {
        if (timedOut) finish({ code: 124, stdout, stderr: stderr + `${cmd}: timed out after ${opts.timeoutMs} ms` });
        else finish({ code: code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1), stdout, stderr });
      });
    });
  }

  async readFile(p: string): Promise<string | null> {
    try {
      if (isKernelFs(p)) return fsSync.readFileSync(this.physical(p), 'utf8');
      return await fs.readFile(this.physical(p), 'utf8');
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  async writeFile(p: string, data: string, opts: { mode?: number } = {}): Promise<void> {
    const phys = this.physical(p);
    if (p.startsWith('/sys/')) {
      // sysfs attributes take exactly one write(2); no temp file, no truncating open tricks.
      await fs.writeFile(phys, data);
      return;
    }
    const dir = path.dirname(phys);
    await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    // Write-then-rename so that a crash never leaves a half-written /etc/nvme/hostnqn or config.json.
    // A random name per write: two writes of one path at once each rename a whole file of their own
    // (a shared name let one's truncate race the other's rename). 'wx' (O_EXCL) never opens a file
    // someone placed there, and 0600 keeps a secret unreadable until it is complete.
    const tmp = `${phys}.portalis-${randomBytes(8).toString('hex')}.tmp`;
    const fh = await fs.open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(data);
      await fh.chmod(opts.mode ?? 0o644); // the final mode, exact (open's mode is narrowed by the umask)
      // fsync before the rename: without it a power loss can leave the new name on empty data.
      await fh.sync();
      await fh.close();
      await fs.rename(tmp, phys);
    } catch (e) {
      await fh.close().catch(() => {});
      await fs.rm(tmp, { force: true });
      throw e;
    }
    // fsync(2): "Calling fsync() does not necessarily ensure that the entry in the directory
    // containing the file has also reached disk. For that an explicit fsync() on a file descriptor
    // for the directory is also needed." (Linux man-pages, fsync(2)).
    const dh = await fs.open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }

  async readdir(p: string): Promise<string[]> {
    try {
      if (isKernelFs(p)) return fsSync.readdirSync(this.physical(p)).sort();
      return (await fs.readdir(this.physical(p))).sort();
    } catch (e) {
      if (isMissing(e)) return [];
      throw e;
    }
  }

  async readlink(p: string): Promise<string | null> {
    try {
      if (isKernelFs(p)) return fsSync.readlinkSync(this.physical(p));
      return await fs.readlink(this.physical(p));
    } catch (e) {
      if (isMissing(e) || (e as NodeJS.ErrnoException).code === 'EINVAL') return null;
      // /proc/<pid>/fd of another user's or a vanished process.
      if ((e as NodeJS.ErrnoException).code === 'EACCES' && p.startsWith('/proc/')) return null;
      throw e;
    }
  }

  async realpath(p: string): Promise<string | null> {
    try {
      if (isKernelFs(p)) return this.logical(fsSync.realpathSync(this.physical(p)));
      return this.logical(await fs.realpath(this.physical(p)));
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  async exists(p: string): Promise<boolean> {
    try {
      if (isKernelFs(p)) fsSync.statSync(this.physical(p));
      else await fs.stat(this.physical(p));
      return true;
    } catch (e) {
      if (isMissing(e)) return false;
      throw e;
    }
  }

  hostname(): string {
    return os.hostname();
  }

  networkAddresses(): NetworkAddress[] {
    const out: NetworkAddress[] = [];
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) out.push({ address: a.address, family: a.family, internal: a.internal });
    }
    return out;
  }

  machine(): string {
    return os.machine();
  }

  pid(): number {
    return process.pid;
  }
}
