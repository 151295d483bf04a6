import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

/** Debian's pgbouncer package puts the daemon here. */
export const PGBOUNCER = '/usr/sbin/pgbouncer';

export type PoolMode = 'session' | 'transaction' | 'statement';

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * A real PgBouncer in front of the database `databaseUrl` names, with one alias per pool mode
 * (`session`, `transaction`, `statement`): `urlFor(mode)` is the URL a client gives it. Clients
 * are not authenticated (`auth_type = any`); PgBouncer logs in to PostgreSQL with the URL's user
 * and password. Run as root (CI), it drops to the `postgres` user (`-u`), since it refuses to run
 * as root.
 */
export async function startPgBouncer(
  databaseUrl: string,
): Promise<{ urlFor(mode: PoolMode): string; log(): string; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portalis-pgbouncer-'));
  chmodSync(dir, 0o777);
  const db = new URL(databaseUrl);
  const port = await freePort();
  const server = [
    `host=${db.hostname}`,
    `port=${db.port || 5432}`,
    `dbname=${decodeURIComponent(db.pathname.slice(1))}`,
    `user=${decodeURIComponent(db.username || 'postgres')}`,
    ...(db.password ? [`password=${decodeURIComponent(db.password)}`] : []),
  ].join(' ');
  const modes: PoolMode[] = ['session', 'transaction', 'statement'];
  const ini = path.join(dir, 'pgbouncer.ini');
  writeFileSync(
    ini,
    [
      '[databases]',
      ...modes.map((m) => `${m} = ${server} pool_mode=${m}`),
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = any',
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
      'max_client_conn = 500',
      'default_pool_size = 20',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const asRoot = process.getuid?.() === 0;
  const child: ChildProcess = spawn(PGBOUNCER, [...(asRoot ? ['-u', 'postgres'] : []), ini], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const log = () =>
    out + (existsSync(path.join(dir, 'pgbouncer.log')) ? readFileSync(path.join(dir, 'pgbouncer.log'), 'utf8') : '');
  const urlFor = (mode: PoolMode) =>
    `postgres://${encodeURIComponent(db.username || 'postgres')}@127.0.0.1:${port}/${mode}`;
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready when a query through it answers; a deadline, not a sleep.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const c = new pg.Client({ connectionString: urlFor('session') });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      break;
    } catch (e) {
      await c.end().catch(() => undefined);
      if (child.exitCode !== null || Date.now() > deadline) {
        await stop();
        throw new Error(`pgbouncer did not start (${(e as Error).message}):\n${log()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { urlFor, log, stop };
}
