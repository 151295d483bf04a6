/**
 * A small in-memory filesystem with directories, files and symlinks, resolved the way the
 * kernel resolves them (relative link targets, `..`, link chains). sysfs is mostly symlinks
 * (`/sys/block/nvme0n1 -> ../devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1`), so a fake
 * without real link resolution would let code pass that fails on a real machine.
 */
import path from 'node:path';

export type Node = Dir | File | Link;
export interface Dir {
  kind: 'dir';
  children: Map<string, Node>;
}
export interface File {
  kind: 'file';
  data: string;
  mode: number;
  /** sysfs-style attribute: a write goes to this hook instead of replacing the data. */
  onWrite?: (data: string) => void;
}
export interface Link {
  kind: 'link';
  target: string;
}

const MAX_HOPS = 40;

function parts(p: string): string[] {
  return path.posix.normalize(p).split('/').filter(Boolean);
}

export class MemFs {
  readonly root: Dir = { kind: 'dir', children: new Map() };

  /** Resolves `p`; returns the node and its canonical path, or null. */
  resolve(p: string, followLast = true): { node: Node; path: string } | null {
    let todo = parts(p);
    let hops = 0;
    restart: for (;;) {
      let dir: Dir = this.root;
      const done: string[] = [];
      for (let i = 0; i < todo.length; i++) {
        const name = todo[i]!;
        const node = dir.children.get(name);
        if (!node) return null;
        const last = i === todo.length - 1;
        if (node.kind === 'link' && (!last || followLast)) {
          if (++hops > MAX_HOPS) return null;
          const base = node.target.startsWith('/') ? [] : done;
          todo = parts('/' + [...base, node.target, ...todo.slice(i + 1)].join('/'));
          continue restart;
        }
        done.push(name);
        if (last) return { node, path: '/' + done.join('/') };
        if (node.kind !== 'dir') return null;
        dir = node;
      }
      return { node: dir, path: '/' + done.join('/') };
    }
  }

  mkdirp(p: string): Dir {
    let dir = this.root;
    const done: string[] = [];
    for (const name of parts(p)) {
      let node = dir.children.get(name);
      if (node?.kind === 'link') {
        const r = this.resolve('/' + [...done, name].join('/'));
        if (r?.node.kind !== 'dir') throw new Error(`mkdirp ${p}: ${name} is not a directory`);
        node = r.node;
      }
      if (!node) {
        node = { kind: 'dir', children: new Map() };
        dir.children.set(name, node);
      }
      if (node.kind !== 'dir') throw new Error(`mkdirp ${p}: ${name} is not a directory`);
      done.push(name);
      dir = node;
    }
    return dir;
  }

  private parentOf(p: string): { dir: Dir; name: string } {
    const ps = parts(p);
    const name = ps.pop();
    if (!name) throw new Error(`bad path ${p}`);
    return { dir: this.mkdirp('/' + ps.join('/')), name };
  }

  writeFile(p: string, data: string, opts: { mode?: number; onWrite?: (d: string) => void } = {}): void {
    const existing = this.resolve(p);
    if (existing?.node.kind === 'file') {
      if (existing.node.onWrite) existing.node.onWrite(data);
      else existing.node.data = data;
      if (opts.mode !== undefined) existing.node.mode = opts.mode;
      return;
    }
    const { dir, name } = this.parentOf(p);
    dir.children.set(name, { kind: 'file', data, mode: opts.mode ?? 0o644, onWrite: opts.onWrite });
  }

  /** Creates a symlink at `p` pointing at the absolute logical path `target`, stored relative. */
  link(p: string, target: string): void {
    const rel = path.posix.relative(path.posix.dirname(path.posix.normalize(p)), target) || '.';
    this.symlink(p, rel);
  }

  /** Creates a symlink with the raw `target` text. */
  symlink(p: string, target: string): void {
    const { dir, name } = this.parentOf(p);
    dir.children.set(name, { kind: 'link', target });
  }

  /** Removes the entry at `p` (not following a final symlink), recursively. Missing is fine. */
  rm(p: string): void {
    const ps = parts(p);
    const name = ps.pop();
    if (!name) return;
    const parent = this.resolve('/' + ps.join('/'));
    if (parent?.node.kind === 'dir') parent.node.children.delete(name);
  }

  read(p: string): string | null {
    const r = this.resolve(p);
    return r?.node.kind === 'file' ? r.node.data : null;
  }

  mode(p: string): number | null {
    const r = this.resolve(p);
    return r?.node.kind === 'file' ? r.node.mode : null;
  }

  list(p: string): string[] {
    const r = this.resolve(p);
    return r?.node.kind === 'dir' ? [...r.node.children.keys()].sort() : [];
  }

  readlink(p: string): string | null {
    const r = this.resolve(p, false);
    return r?.node.kind === 'link' ? r.node.target : null;
  }

  realpath(p: string): string | null {
    return this.resolve(p)?.path ?? null;
  }

  exists(p: string): boolean {
    return this.resolve(p) !== null;
  }
}
