/**
 * The nvmet configfs tree as a narrow port: every path is relative to the nvmet root
 * (`/sys/kernel/config/nvmet`), so that unit tests can put a stand-in over a temp directory.
 *
 * configfs is not a normal file system, and these methods follow what it does (kernel 6.1):
 * - `mkdir` of an item makes the kernel create its attribute files and default groups
 *   (`subsystems/<nqn>/namespaces`, `ports/<n>/ana_groups/1`, …); files cannot be created.
 * - attribute files are written in place, in one write(2); `O_CREAT` is refused (EACCES), so
 *   `write` opens without it and a typo in an attribute name fails with ENOENT.
 * - `rmdir` of an item removes its attributes and default groups with it, but fails with
 *   ENOTEMPTY while user-made children (links, created groups) remain, and with EBUSY while a
 *   link points at it.
 * - `symlink` resolves its target with kern_path() from the caller's working directory, not
 *   from the link's folder: a relative target like `../../../hosts/x` fails with ENOENT, so
 *   targets are always absolute.
 */
import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rmdir, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';

export interface Configfs {
  /** Absolute path of the nvmet folder. */
  readonly root: string;
  mkdir(rel: string): Promise<void>;
  rmdir(rel: string): Promise<void>;
  /** Creates `linkRel` pointing at the item `targetRel` (both relative to the root). */
  symlink(targetRel: string, linkRel: string): Promise<void>;
  unlink(rel: string): Promise<void>;
  /** The attribute's value without the trailing newline. */
  read(rel: string): Promise<string>;
  write(rel: string, value: string): Promise<void>;
  /** Entry names, sorted; empty when the folder does not exist. */
  list(rel: string): Promise<string[]>;
}

export const DEFAULT_NVMET_ROOT = '/sys/kernel/config/nvmet';

/** A configfs failure, naming the path and (for writes) the value; `code` is the errno name. */
export class ConfigfsError extends Error {
  constructor(
    readonly op: string,
    readonly rel: string,
    readonly code: string,
    readonly value?: string,
    options?: { cause?: unknown },
  ) {
    super(
      `nvmet configfs ${op} ${rel}${value === undefined ? '' : ` = ${JSON.stringify(value)}`} failed: ${code}` +
        ' (the kernel log says why)',
      options,
    );
    this.name = 'ConfigfsError';
  }
}

export function errnoOf(err: unknown): string | undefined {
  return err instanceof ConfigfsError ? err.code : (err as NodeJS.ErrnoException | null)?.code;
}

/** The real tree (or any directory shaped like it). */
export class NodeConfigfs implements Configfs {
  constructor(readonly root: string = DEFAULT_NVMET_ROOT) {}

  protected abs(rel: string): string {
    return path.join(this.root, rel);
  }

  private async wrap<T>(op: string, rel: string, fn: () => Promise<T>, value?: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new ConfigfsError(op, rel, errnoOf(err) ?? 'EIO', value, { cause: err });
    }
  }

  mkdir(rel: string): Promise<void> {
    return this.wrap('mkdir', rel, () => mkdir(this.abs(rel)));
  }

  rmdir(rel: string): Promise<void> {
    return this.wrap('rmdir', rel, () => rmdir(this.abs(rel)));
  }

  symlink(targetRel: string, linkRel: string): Promise<void> {
    return this.wrap('symlink', linkRel, () => symlink(this.abs(targetRel), this.abs(linkRel)));
  }

  unlink(rel: string): Promise<void> {
    return this.wrap('unlink', rel, () => unlink(this.abs(rel)));
  }

  read(rel: string): Promise<string> {
    return this.wrap('read', rel, async () => (await readFile(this.abs(rel), 'utf8')).replace(/\n$/, ''));
  }

  write(rel: string, value: string): Promise<void> {
    return this.wrap(
      'write',
      rel,
      async () => {
        // No O_CREAT, no O_TRUNC; one write(2) of the whole value, newline-terminated like echo.
        const fh = await open(this.abs(rel), constants.O_WRONLY);
        try {
          await fh.write(`${value}\n`);
        } finally {
          await fh.close();
        }
      },
      value,
    );
  }

  async list(rel: string): Promise<string[]> {
    try {
      return (await readdir(this.abs(rel))).sort();
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return [];
      throw new ConfigfsError('list', rel, errnoOf(err) ?? 'EIO', undefined, { cause: err });
    }
  }
}

// ---- idempotent steps, for methods that may be repeated ----

/** mkdir; an existing item is fine. */
export async function ensureDir(fs: Configfs, rel: string): Promise<void> {
  try {
    await fs.mkdir(rel);
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
  }
}

/** symlink; an existing link is fine. */
export async function ensureLink(fs: Configfs, targetRel: string, linkRel: string): Promise<void> {
  try {
    await fs.symlink(targetRel, linkRel);
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
  }
}

/** rmdir or unlink; an absent entry is fine. */
export async function removeEntry(fs: Configfs, rel: string, how: 'rmdir' | 'unlink'): Promise<void> {
  try {
    await (how === 'rmdir' ? fs.rmdir(rel) : fs.unlink(rel));
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}

/**
 * Writes only a changed value: some writes have effects beyond the value (each `ana_state`
 * write sends every connected host an ANA change event; `attr_allow_any_host` and `addr_*`
 * writes fail in states where rewriting the same value would be harmless).
 */
export async function writeIfChanged(fs: Configfs, rel: string, value: string): Promise<void> {
  if ((await fs.read(rel)) !== value) await fs.write(rel, value);
}
