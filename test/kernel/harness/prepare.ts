/**
 * Everything the kernel tests need before the first boot, cached so that the second run is
 * instant: Debian packages on the host, a Debian kernel (unpacked, depmod'ed) and a busybox
 * initramfs. Facts this relies on are in docs/KERNEL.md §5.
 *
 * Cache layout (`PORTALIS_KERNEL_CACHE`, default `<repo>/.kernel-cache`, git-ignored):
 *   <cache>/<package>_<debian version>/root/{boot/vmlinuz-<kver>, lib/modules/<kver>/…}
 *   <cache>/<package>_<debian version>/.ready        written last: the unpack is complete
 *   <cache>/<package>_<debian version>/vmlinux       the bzImage's payload, for QEMU's PVH boot
 *   <cache>/<package>_<debian version>/initrd-<hash>.gz  hash of init script, busybox, modules
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { run, runOk } from './exec.ts';

/** The harness cannot run on this machine; the runner exits 77 with `message`. */
export class CannotRun extends Error {}

export type Log = (line: string) => void;

/** Debian packages the host needs; the guest runs the host's own programs over 9p. */
export const HOST_PACKAGES = [
  'qemu-system-x86',
  'busybox-static',
  'nvme-cli',
  'multipath-tools',
  'udev',
  'cpio',
  'kmod',
  // Priority "standard", not "required": minimal images lack it, and without it every boot
  // falls back to the bzImage (about 2 s slower).
  'xz-utils',
  // The Nova scenarios (guest/nova-native.ts) run Debian's os-brick under /usr/bin/python3.
  'python3-os-brick',
  // The nvmet-auth group builds the nvme modules with in-band authentication (harness/nvme-auth.ts):
  // gcc-12 and make; the rest of kbuild comes prebuilt in linux-kbuild-6.1, which the harness only
  // unpacks, so its libraries are named here (libelf1 for objtool and modpost; libssl3 for
  // sign-file is present wherever apt is).
  'build-essential',
  'libelf1',
];

/** Modules the initramfs loads itself, to reach the 9p exports; everything else comes over 9p. */
const INITRAMFS_MODULES = ['virtio_pci', '9pnet_virtio', '9p'];

export interface KernelArtifacts {
  /** `uname -r` of the guest, e.g. `6.1.0-56-amd64`. */
  version: string;
  /** Debian package and version it came from. */
  source: string;
  /** What QEMU's `-kernel` boots: the uncompressed `vmlinux` (PVH entry) or the bzImage. */
  kernelImage: string;
  /** `<root>/lib/modules`, exported to the guest. */
  modulesDir: string;
  initrd: string;
}

export function checkPlatform(): void {
  if (process.platform !== 'linux') throw new CannotRun(`needs Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) throw new CannotRun('needs root (apt-get, QEMU 9p exports of /, depmod)');
}

async function hasCommand(cmd: string): Promise<boolean> {
  return (await run('sh', ['-c', `command -v ${cmd}`])).code === 0;
}

/** Installs the missing packages; quiet and fast (one dpkg-query) when all are present. */
export async function ensurePackages(log: Log): Promise<void> {
  if (!(await hasCommand('dpkg-query')) || !(await hasCommand('apt-get'))) {
    if (await hasCommand('qemu-system-x86_64')) {
      throw new CannotRun('no apt-get/dpkg: cannot check or install the Debian packages the harness uses');
    }
    throw new CannotRun('no apt-get and no qemu-system-x86_64');
  }
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own ${field} format, not a template
  const q = await run('dpkg-query', ['-W', '-f', '${Package} ${db:Status-Status}\n', ...HOST_PACKAGES]);
  const installed = new Set(
    q.stdout
      .split('\n')
      .filter((l) => l.endsWith(' installed'))
      .map((l) => l.split(' ')[0]),
  );
  const missing = HOST_PACKAGES.filter((p) => !installed.has(p));
  if (missing.length === 0) return;
  log(`installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // `apt-get update` only now that something must be installed.
  const upd = await run('apt-get', ['update', '-qq'], { env, timeoutMs: 300_000 });
  if (upd.code !== 0) log(`apt-get update failed (going on with the lists we have): ${upd.stderr.trim()}`);
  const inst = await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    env,
    timeoutMs: 900_000,
  });
  if (inst.code !== 0) {
    throw new CannotRun(`apt-get install ${missing.join(' ')} failed:\n${(inst.stderr || inst.stdout).trim()}`);
  }
}

export function defaultCacheDir(repoRoot: string): string {
  return process.env.PORTALIS_KERNEL_CACHE ?? path.join(repoRoot, '.kernel-cache');
}

/**
 * `linux-image-6.1.0-N-amd64` and its version, from the apt lists: the candidate of the
 * `linux-image-amd64` metapackage pins both (`Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)`).
 */
async function currentKernelPackage(): Promise<{ pkg: string; version: string } | null> {
  const show = await run('apt-cache', ['show', '--no-all-versions', 'linux-image-amd64']);
  const m = /^Depends:.*?\b(linux-image-\d\S*-amd64)\s*\(=\s*([^)\s]+)\)/m.exec(show.stdout);
  return show.code === 0 && m ? { pkg: m[1], version: m[2] } : null;
}

/** The newest fully unpacked kernel in the cache, for machines whose apt cannot answer. */
async function newestCachedKernel(cacheDir: string): Promise<string | null> {
  if (!existsSync(cacheDir)) return null;
  let best: { dir: string; mtime: number } | null = null;
  for (const name of await readdir(cacheDir)) {
    const ready = path.join(cacheDir, name, '.ready');
    if (!existsSync(ready)) continue;
    const mtime = (await stat(ready)).mtimeMs;
    if (!best || mtime > best.mtime) best = { dir: path.join(cacheDir, name), mtime };
  }
  return best?.dir ?? null;
}

/** Downloads and unpacks the kernel named by `linux-image-amd64`, unless already cached. */
export async function ensureKernel(cacheDir: string, log: Log): Promise<{ dir: string; pkg: string }> {
  await mkdir(cacheDir, { recursive: true });
  let wanted = await currentKernelPackage();
  if (!wanted) {
    const cached = await newestCachedKernel(cacheDir);
    if (cached) {
      log(`apt cannot name the current kernel; using cached ${path.basename(cached)}`);
      return { dir: cached, pkg: path.basename(cached).split('_')[0] };
    }
    await run('apt-get', ['update', '-qq'], { timeoutMs: 300_000 });
    wanted = await currentKernelPackage();
    if (!wanted) throw new CannotRun('apt-cache cannot resolve linux-image-amd64 and no kernel is cached');
  }
  const dir = path.join(cacheDir, `${wanted.pkg}_${wanted.version}`);
  if (existsSync(path.join(dir, '.ready'))) return { dir, pkg: wanted.pkg };

  log(`fetching ${wanted.pkg} ${wanted.version}`);
  // Unpacked in a staging folder and renamed into place: a concurrent run either sees no
  // folder or a complete one, and the loser of a race just drops its copy.
  const stage = await mkdtemp(path.join(cacheDir, 'staging-'));
  try {
    const r = await run('apt-get', ['download', '-qq', `${wanted.pkg}=${wanted.version}`], {
      cwd: stage,
      timeoutMs: 900_000,
    });
    const deb = (await readdir(stage)).find((f) => f.endsWith('.deb'));
    if (r.code !== 0 || !deb) {
      throw new CannotRun(`apt-get download ${wanted.pkg} failed:\n${(r.stderr || r.stdout).trim()}`);
    }
    await runOk('dpkg', ['-x', path.join(stage, deb), path.join(stage, 'root')], { timeoutMs: 300_000 });
    await rm(path.join(stage, deb));
    const kver = wanted.pkg.replace(/^linux-image-/, '');
    await runOk('depmod', ['-b', path.join(stage, 'root'), kver], { timeoutMs: 300_000 });
    await writeFile(path.join(stage, '.ready'), `${wanted.pkg} ${wanted.version}\n`);
    if (existsSync(path.join(dir, '.ready'))) return { dir, pkg: wanted.pkg };
    await rm(dir, { recursive: true, force: true });
    await rename(stage, dir).catch((err) => {
      if (!existsSync(path.join(dir, '.ready'))) throw err;
    });
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  return { dir, pkg: wanted.pkg };
}

/** Debian 12 is not merged-/usr inside packages: modules live under `lib/modules`. */
function modulesRoot(kernelDir: string): string {
  const lib = path.join(kernelDir, 'root', 'lib', 'modules');
  return existsSync(lib) ? lib : path.join(kernelDir, 'root', 'usr', 'lib', 'modules');
}

/** `name` → module file (relative to the version folder) plus its modules.dep dependencies. */
async function moduleClosure(modDir: string, names: string[]): Promise<string[]> {
  const dep = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of (await readFile(path.join(modDir, 'modules.dep'), 'utf8')).split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    dep.set(m[1], m[2].split(/\s+/).filter(Boolean));
    byName.set(
      path
        .basename(m[1])
        .replace(/\.ko(\.\w+)?$/, '')
        .replace(/-/g, '_'),
      m[1],
    );
  }
  const builtin = existsSync(path.join(modDir, 'modules.builtin'))
    ? new Set(
        (await readFile(path.join(modDir, 'modules.builtin'), 'utf8'))
          .split('\n')
          .map((l) => path.basename(l).replace(/\.ko$/, '').replace(/-/g, '_')),
      )
    : new Set<string>();
  const out = new Set<string>();
  const visit = (file: string) => {
    if (out.has(file)) return;
    out.add(file);
    for (const d of dep.get(file) ?? []) visit(d);
  };
  for (const n of names) {
    const key = n.replace(/-/g, '_');
    const file = byName.get(key);
    if (file) visit(file);
    else if (!builtin.has(key)) throw new Error(`module ${n} is neither in modules.dep nor built in`);
  }
  return [...out];
}

/**
 * The bzImage's payload, uncompressed, for QEMU's PVH entry: QEMU then loads the ELF directly
 * and skips the in-guest xz decompression, which under TCG takes about 2 of a boot's 5
 * seconds. Debian 12's kernels are CONFIG_KERNEL_XZ=y and CONFIG_PVH=y; anything else keeps the
 * bzImage. `xz` may complain about the bytes after the stream, so the ELF magic decides.
 */
async function ensureVmlinux(kernelDir: string, version: string, vmlinuz: string): Promise<string> {
  const out = path.join(kernelDir, 'vmlinux');
  if (existsSync(out)) return out;
  const config = path.join(kernelDir, 'root', 'boot', `config-${version}`);
  const pvh = existsSync(config) && /^CONFIG_PVH=y$/m.test(await readFile(config, 'utf8'));
  const image = await readFile(vmlinuz);
  const at = image.indexOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  if (!pvh || at < 0 || !(await hasCommand('xz'))) return vmlinuz;
  const tmp = `${out}.${process.pid}`;
  await writeFile(`${tmp}.xz`, image.subarray(at));
  await run('sh', ['-c', `xz -dcq '${tmp}.xz' > '${tmp}'`]);
  await rm(`${tmp}.xz`, { force: true });
  const head = existsSync(tmp) ? (await readFile(tmp)).subarray(0, 4) : Buffer.alloc(0);
  if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
    await rm(tmp, { force: true });
    return vmlinuz;
  }
  await rename(tmp, out);
  return out;
}

/** Builds (or reuses) the busybox initramfs for the kernel in `kernelDir`. */
export async function ensureInitramfs(kernelDir: string, pkg: string, repoRoot: string): Promise<KernelArtifacts> {
  const version = pkg.replace(/^linux-image-/, '');
  const modulesDir = modulesRoot(kernelDir);
  const vmlinuz = path.join(kernelDir, 'root', 'boot', `vmlinuz-${version}`);
  if (!existsSync(vmlinuz)) throw new Error(`no ${vmlinuz} in the unpacked kernel`);
  const initScript = path.join(repoRoot, 'scripts', 'kernel', 'init.sh');
  const busybox = '/bin/busybox';
  const bb = await stat(busybox);
  const modDir = path.join(modulesDir, version);
  const mods = await moduleClosure(modDir, INITRAMFS_MODULES);
  const hash = createHash('sha256')
    .update(await readFile(initScript))
    .update(`${bb.size}:${bb.mtimeMs}:${version}:${mods.join(',')}`)
    .digest('hex')
    .slice(0, 16);
  const initrd = path.join(kernelDir, `initrd-${hash}.gz`);
  const kernelImage = await ensureVmlinux(kernelDir, version, vmlinuz);
  const artifacts = { version, source: path.basename(kernelDir), kernelImage, modulesDir, initrd };
  if (existsSync(initrd)) return artifacts;

  for (const old of (await readdir(kernelDir)).filter((f) => /^initrd-.*\.gz$/.test(f))) {
    await rm(path.join(kernelDir, old), { force: true });
  }
  const stage = await mkdtemp(path.join(kernelDir, 'initramfs-'));
  try {
    for (const d of ['bin', 'dev', 'proc', 'sys', 'mnt', 'newroot', 'ro', 'rw', `lib/modules/${version}`]) {
      await mkdir(path.join(stage, d), { recursive: true });
    }
    await copyFile(busybox, path.join(stage, 'bin', 'busybox'));
    await chmod(path.join(stage, 'bin', 'busybox'), 0o755);
    await symlink('busybox', path.join(stage, 'bin', 'sh'));
    await copyFile(initScript, path.join(stage, 'init'));
    await chmod(path.join(stage, 'init'), 0o755);
    for (const m of mods) {
      await mkdir(path.join(stage, 'lib/modules', version, path.dirname(m)), { recursive: true });
      await copyFile(path.join(modDir, m), path.join(stage, 'lib/modules', version, m));
    }
    for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) {
      if (existsSync(path.join(modDir, f)))
        await copyFile(path.join(modDir, f), path.join(stage, 'lib/modules', version, f));
    }
    await runOk('depmod', ['-b', stage, version]);
    const tmp = `${initrd}.${process.pid}`;
    await runOk('sh', ['-c', `find . | cpio -o -H newc --quiet | gzip -1 > '${tmp}'`], { cwd: stage });
    await rename(tmp, initrd);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  return artifacts;
}

/**
 * Everything a boot needs, from nothing: the platform check, the host packages, the kernel
 * named by `linux-image-amd64` and the initramfs (reused from the cache when present). Throws
 * CannotRun where this machine cannot boot the guest.
 */
export async function prepareKernel(repoRoot: string, log: Log): Promise<KernelArtifacts & { cacheDir: string }> {
  checkPlatform();
  await ensurePackages(log);
  const cacheDir = defaultCacheDir(repoRoot);
  const { dir, pkg } = await ensureKernel(cacheDir, log);
  return { ...(await ensureInitramfs(dir, pkg, repoRoot)), cacheDir };
}
