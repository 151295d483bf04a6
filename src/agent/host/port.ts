/**
 * The one narrow port between the agent and the machine it runs on. Everything the agent knows
 * about the kernel it learns through these calls, so the same code runs against the real host
 * (`linux.ts`), an in-memory kernel (`fake.ts`) or a static sysfs fixture tree.
 *
 * Paths are always the *logical* absolute paths the kernel uses (`/sys/block/nvme0n1/uuid`,
 * `/dev/nvme0n1`, `/etc/nvme/hostnqn`, `/proc/self/mountinfo`). An adapter maps the prefixes
 * `/sys`, `/dev`, `/etc` and `/proc` onto its configured roots, and maps results (realpath)
 * back, so a device path the agent reports is never a fixture-tree path.
 */
import type { Clock } from '../../shared/clock.ts';

export interface RunResult {
  /**
   * The exit status. Two values are produced by the port itself, as a shell would:
   * 127 when the binary cannot be spawned (not installed: ENOENT/EACCES), and 124 when
   * `timeoutMs` passed and the process was killed. Neither ever rejects.
   */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Kill the command after this long (SIGTERM, then SIGKILL) and answer code 124. */
  timeoutMs?: number;
}

export interface NetworkAddress {
  address: string;
  family: 'IPv4' | 'IPv6';
  internal: boolean;
}

export interface HostPort {
  readonly clock: Clock;

  /** Runs a command without a shell. Never rejects: see RunResult.code for 127 and 124. */
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;

  /**
   * The file's text, or null when it does not exist (or vanished while being read: sysfs
   * directories of a device that goes away disappear between readdir and read).
   * Follows symlinks. Other errors (EACCES, EIO) reject.
   */
  readFile(path: string): Promise<string | null>;

  /**
   * Writes the file. For `/sys` attributes this is a single write(2) to the existing file;
   * elsewhere missing parent directories are created (0755) and `mode` applied.
   */
  writeFile(path: string, data: string, opts?: { mode?: number }): Promise<void>;

  /** Entry names of a directory (following symlinks), sorted; empty when it does not exist. */
  readdir(path: string): Promise<string[]>;

  /** The raw target of a symlink, or null when the path is missing or not a link. */
  readlink(path: string): Promise<string | null>;

  /** The canonical logical path with every symlink resolved, or null when it does not exist. */
  realpath(path: string): Promise<string | null>;

  /** True when the path exists (following symlinks). */
  exists(path: string): Promise<boolean>;

  hostname(): string;
  /** Every address of every interface, loopback included (callers filter). */
  networkAddresses(): NetworkAddress[];
  /** The machine architecture (`x86_64`, `aarch64`), as os-brick's `platform.machine()`. */
  machine(): string;
  /** This process's id, so that the open-file scan of `/proc/*\/fd` can skip the agent itself. */
  pid(): number;
}

/** Where the logical top-level trees live on this host (or in a fixture). */
export interface HostRoots {
  sysRoot: string;
  devRoot: string;
  etcRoot: string;
  procRoot: string;
}

export const DEFAULT_ROOTS: HostRoots = { sysRoot: '/sys', devRoot: '/dev', etcRoot: '/etc', procRoot: '/proc' };
