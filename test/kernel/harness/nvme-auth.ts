/**
 * The guest kernel's NVMe modules rebuilt with in-band authentication (DH-HMAC-CHAP), for the
 * `nvmet-auth` group. Debian 12's kernel is built with `# CONFIG_NVME_AUTH is not set` and
 * `# CONFIG_NVME_TARGET_AUTH is not set`; both are plain bools inside the nvme modules
 * (drivers/nvme/host/Kconfig, drivers/nvme/target/Kconfig of 6.1), so the whole
 * drivers/nvme tree of the very same Debian source (`linux-source-6.1` at the image's version)
 * is built out of tree against the image's own `linux-headers` (vermagic and Module.symvers of
 * the running kernel) and replaces Debian's nvme modules in a copy of its module tree.
 * Why this and not a kernel of our own, and what it cannot do (no FFDHE groups: only the
 * "null" DH group): docs/KERNEL.md §6 and docs/DECISIONS.md.
 *
 * Cache (next to the Debian kernel it belongs to, so a new kernel version rebuilds):
 *   <cache>/<image package>_<version>/nvme-auth-<recipe hash>/lib/modules/<kver>/…
 *   <cache>/<image package>_<version>/nvme-auth-<recipe hash>/.ready   written last
 *   <cache>/<image package>_<version>/nvme-auth-<recipe hash>/build.log
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, runOk } from './exec.ts';
import { CannotRun, type KernelArtifacts, type Log } from './prepare.ts';

/**
 * Kbuild variables for the out-of-tree build, and the same options as C macros: Debian's
 * headers' autoconf.h has them unset and `#ifdef CONFIG_NVME_AUTH` in host/nvme.h, core.c
 * (and CONFIG_NVME_TARGET_AUTH in target/nvmet.h, configfs.c, fabrics-cmd.c) reads the macro.
 * NVME_COMMON is the tristate both select (drivers/nvme/common/Kconfig: nvme-common.ko).
 */
const MAKE_VARS = ['CONFIG_NVME_COMMON=m', 'CONFIG_NVME_AUTH=y', 'CONFIG_NVME_TARGET_AUTH=y'];
const KCFLAGS = '-DCONFIG_NVME_AUTH=1 -DCONFIG_NVME_TARGET_AUTH=1';
/**
 * The RFC 7919 groups as a module of their own (ffdhe/ffdhe.c: the kernel's crypto/dh.c and
 * dh_helper.c of the same source, templates only), since Debian builds CONFIG_CRYPTO_DH=y
 * without CONFIG_CRYPTO_DH_RFC7919_GROUPS and nvme-auth then offers only the "null" group.
 */
const FFDHE_DIR = fileURLToPath(new URL('./ffdhe/', import.meta.url));
const FFDHE_FILES = ['ffdhe.c', 'Kbuild'];
/** Bump when the build below changes in a way the hash of its inputs does not show. */
const RECIPE = `1 ${MAKE_VARS.join(' ')} ${KCFLAGS}`;

async function aptField(pkgVersion: string, field: string): Promise<string> {
  const r = await run('apt-cache', ['show', '--no-all-versions', pkgVersion]);
  const m = new RegExp(`^${field}: (.*)$`, 'm').exec(r.stdout);
  if (r.code !== 0 || !m) throw new CannotRun(`apt-cache show ${pkgVersion}: no ${field} (${r.stderr.trim()})`);
  return m[1];
}

/**
 * The packages the build needs, all pinned to the image's Debian version: `linux-source-6.1`
 * (the one source package `linux` builds both the image and the headers from, Debian patches
 * applied), the image's `linux-headers-<abi>-amd64`, and what that depends on (its `-common`
 * headers and `linux-kbuild-6.1`). A machine whose apt no longer offers that version cannot
 * build: CannotRun names the version.
 */
async function buildPackages(imagePkg: string, version: string): Promise<string[]> {
  const headers = imagePkg.replace(/^linux-image-/, 'linux-headers-');
  const deps = await aptField(`${headers}=${version}`, 'Depends');
  const common = /\b(linux-headers-\S+-common)\b/.exec(deps)?.[1];
  const kbuild = /\b(linux-kbuild-[\d.]+)\b/.exec(deps)?.[1];
  if (!common || !kbuild) throw new CannotRun(`${headers}=${version} depends on no -common headers or kbuild: ${deps}`);
  const major = /^(\d+\.\d+)\./.exec(version)?.[1];
  return [`linux-source-${major}`, headers, common, kbuild].map((p) => `${p}=${version}`);
}

/** `kernel/drivers/nvme/…/x.ko` paths of the Debian module tree, relative to its version folder. */
async function nvmeModules(modDir: string): Promise<string[]> {
  const dep = await readFile(path.join(modDir, 'modules.dep'), 'utf8');
  return dep
    .split('\n')
    .map((l) => l.split(':')[0])
    .filter((f) => f?.startsWith('kernel/drivers/nvme/'));
}

async function findKo(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.ko')) out.push(path.relative(dir, path.join(e.parentPath, e.name)));
  }
  return out.sort();
}

/**
 * The kernel with Debian's nvme modules replaced by auth-enabled ones: same vmlinux and
 * initramfs as `base`, another module export. Built once per kernel version and recipe; about
 * 35 s of a loaded 2-core machine plus ~160 MB of downloads (docs/KERNEL.md §6).
 */
export async function ensureNvmeAuthKernel(
  base: KernelArtifacts & { cacheDir: string },
  log: Log,
): Promise<KernelArtifacts> {
  const kernelDir = path.join(base.cacheDir, base.source);
  const [imagePkg, version] = base.source.split('_');
  const hash = createHash('sha256')
    .update(RECIPE)
    .update(await readFile(new URL(import.meta.url)));
  for (const f of FFDHE_FILES) hash.update(await readFile(path.join(FFDHE_DIR, f)));
  const dir = path.join(kernelDir, `nvme-auth-${hash.digest('hex').slice(0, 12)}`);
  const artifacts = { ...base, source: `${base.source}+nvme-auth`, modulesDir: path.join(dir, 'lib', 'modules') };
  if (existsSync(path.join(dir, '.ready'))) return artifacts;

  const t0 = performance.now();
  log(`building the nvme modules with in-band authentication for ${base.version} (once per kernel version)`);
  const stage = await mkdtemp(path.join(kernelDir, 'nvme-auth-staging-'));
  // Where the time goes, for docs/KERNEL.md §6: download, unpack, make, module tree.
  const phases: string[] = [];
  let tPhase = performance.now();
  const phase = (name: string) => {
    phases.push(`${name} ${((performance.now() - tPhase) / 1000).toFixed(1)} s`);
    tPhase = performance.now();
  };
  try {
    const dl = path.join(stage, 'dl');
    await mkdir(dl);
    const pkgs = await buildPackages(imagePkg, version);
    const got = await run('apt-get', ['download', '-qq', ...pkgs], { cwd: dl, timeoutMs: 900_000 });
    if (got.code !== 0) throw new CannotRun(`apt-get download ${pkgs.join(' ')} failed:\n${got.stderr.trim()}`);
    phase('download');
    const tree = path.join(stage, 'tree');
    for (const deb of await readdir(dl)) {
      await runOk('dpkg', ['-x', path.join(dl, deb), tree], { timeoutMs: 300_000 });
    }
    await rm(dl, { recursive: true });

    // The headers' Makefile includes the -common one by its absolute /usr/src path; point it
    // into the unpacked tree (its other links, scripts → ../../lib/linux-kbuild-6.1, are relative).
    const headersDir = path.join(tree, 'usr', 'src', `linux-headers-${base.version}`);
    const mk = path.join(headersDir, 'Makefile');
    await writeFile(mk, (await readFile(mk, 'utf8')).replace(/^include \/usr\/src\//m, `include ${tree}/usr/src/`));

    // Only drivers/nvme of the source tarball; its Makefile says which kernel it is.
    const major = /^(\d+\.\d+)\./.exec(version)![1];
    const tarball = path.join(tree, 'usr', 'src', `linux-source-${major}.tar.xz`);
    const src = `linux-source-${major}`;
    const fromTar = ['drivers/nvme', 'Makefile', 'crypto/dh.c', 'crypto/dh_helper.c'].map((f) => `${src}/${f}`);
    await runOk('tar', ['-xJf', tarball, '-C', stage, ...fromTar], { timeoutMs: 600_000 });
    const ffdhe = path.join(stage, src, 'ffdhe');
    await mkdir(ffdhe);
    for (const f of FFDHE_FILES) await copyFile(path.join(FFDHE_DIR, f), path.join(ffdhe, f));
    for (const f of ['dh.c', 'dh_helper.c']) await copyFile(path.join(stage, src, 'crypto', f), path.join(ffdhe, f));
    await rm(tarball);
    const srcMk = await readFile(path.join(stage, src, 'Makefile'), 'utf8');
    const sub = /^SUBLEVEL = (\d+)$/m.exec(srcMk)?.[1];
    const upstream = /^(\d+\.\d+\.\d+)/.exec(version)![1];
    if (`${major}.${sub}` !== upstream) {
      throw new Error(`linux-source ${version} unpacked a ${major}.${sub} tree, not ${upstream}`);
    }

    const build = path.join(stage, src, 'drivers', 'nvme');
    const jobs = String(Math.min(4, availableParallelism()));
    phase('unpack');
    let buildLog = '';
    for (const [dir, vars] of [
      [build, [...MAKE_VARS, `KCFLAGS=${KCFLAGS}`]],
      [ffdhe, []],
    ] as const) {
      const args = ['-n', '10', 'make', `-j${jobs}`, '-C', headersDir, `M=${dir}`, ...vars, 'modules'];
      const made = await run('nice', args, { timeoutMs: 1_800_000 });
      buildLog += made.stdout + made.stderr;
      await writeFile(path.join(stage, 'build.log'), buildLog);
      if (made.code !== 0) throw new Error(`building ${dir} failed:\n${(made.stderr || made.stdout).slice(-3000)}`);
    }
    phase('make');
    const built = await findKo(build);

    // A copy of Debian's module tree (hard links: nothing is written through them, replaced
    // files are unlinked first) with every nvme module replaced: struct nvme_ctrl and
    // struct nvmet_ctrl change size with the auth options, so no Debian nvme module may stay.
    const baseModDir = path.join(base.modulesDir, base.version);
    const modDir = path.join(stage, 'lib', 'modules', base.version);
    await mkdir(path.dirname(modDir), { recursive: true });
    await runOk('cp', ['-al', baseModDir, modDir], { timeoutMs: 300_000 });
    const debian = await nvmeModules(baseModDir);
    const byName = new Map(built.map((f) => [path.basename(f), f]));
    const missing = debian.filter((f) => !byName.has(path.basename(f)));
    if (missing.length)
      throw new Error(`Debian's ${missing.join(', ')} not rebuilt: it would load with the old layout`);
    for (const f of debian) {
      await rm(path.join(modDir, f));
      await copyFile(path.join(build, byName.get(path.basename(f))!), path.join(modDir, f));
      byName.delete(path.basename(f));
    }
    for (const f of byName.values()) {
      const to = path.join(modDir, 'kernel', 'drivers', 'nvme', f);
      await mkdir(path.dirname(to), { recursive: true });
      await copyFile(path.join(build, f), to);
    }
    await mkdir(path.join(modDir, 'extra'), { recursive: true });
    await copyFile(path.join(ffdhe, 'dh_ffdhe.ko'), path.join(modDir, 'extra', 'dh_ffdhe.ko'));
    // depmod regenerates the indexes; drop the linked copies rather than write through them.
    for (const f of await readdir(modDir)) {
      if (f.startsWith('modules.') && !f.startsWith('modules.builtin') && f !== 'modules.order') {
        await rm(path.join(modDir, f));
      }
    }
    await runOk('depmod', ['-b', stage, base.version], { timeoutMs: 300_000 });

    // vermagic must be the running kernel's, or modprobe refuses the module.
    const magic = (await runOk('modinfo', ['-F', 'vermagic', path.join(modDir, debian[0])])).stdout.trim();
    if (!magic.startsWith(`${base.version} `)) throw new Error(`built modules have vermagic "${magic}"`);

    phase('module tree');
    await rm(path.join(stage, src), { recursive: true });
    await rm(tree, { recursive: true });
    await writeFile(path.join(stage, '.ready'), `${RECIPE}\n${pkgs.join(' ')}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(stage, dir).catch((err) => {
      if (!existsSync(path.join(dir, '.ready'))) throw err;
    });
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  // Trees of an older recipe are never booted again (staging folders of a concurrent build stay).
  for (const old of await readdir(kernelDir)) {
    if (/^nvme-auth-[0-9a-f]+$/.test(old) && path.join(kernelDir, old) !== dir) {
      await rm(path.join(kernelDir, old), { recursive: true, force: true });
    }
  }
  log(
    `nvme modules with in-band authentication built in ${((performance.now() - t0) / 1000).toFixed(1)} s ` +
      `(${phases.join(', ')})`,
  );
  return artifacts;
}
