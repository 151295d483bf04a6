import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './cli.ts';
import { waitUntil } from './sim-client.ts';

/** HAProxy from Debian's `haproxy` package (.ci/run installs it). */
export const HAPROXY = process.env.HAPROXY ?? '/usr/sbin/haproxy';
export const HAPROXY_CONFIG = path.join(ROOT, 'deploy', 'haproxy', 'haproxy.cfg');

/** A TCP port nothing listens on now (the kernel's pick for port 0). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * The committed deploy/haproxy/haproxy.cfg with only its addresses replaced: the frontend on
 * 127.0.0.1:`port`, the stats page on 127.0.0.1:`statsPort`, `server replicaN` on `replicas[N-1]`.
 * Each replacement must match exactly once, so that a change of the file's layout fails here.
 */
export function renderConfig(port: number, statsPort: number, replicas: string[]): string {
  let cfg = readFileSync(HAPROXY_CONFIG, 'utf8');
  const replace = (re: RegExp, to: string) => {
    const n = cfg.match(new RegExp(re.source, `${re.flags}g`))?.length ?? 0;
    if (n !== 1) throw new Error(`${HAPROXY_CONFIG}: ${re} matched ${n} times, not once`);
    cfg = cfg.replace(re, to);
  };
  replace(/^(\s+)bind :8080$/m, `$1bind 127.0.0.1:${port}`);
  replace(/^(\s+)bind 127\.0\.0\.1:8404$/m, `$1bind 127.0.0.1:${statsPort}`);
  for (const [i, addr] of replicas.entries())
    replace(new RegExp(`^(\\s+server replica${i + 1}) \\S+$`, 'm'), `$1 ${addr}`);
  const servers = cfg.match(/^\s+server replica\d+ /gm)?.length ?? 0;
  if (servers !== replicas.length) throw new Error(`${HAPROXY_CONFIG} has ${servers} servers, not ${replicas.length}`);
  return cfg;
}

/** One `server` line's row of the stats CSV. */
export interface ServerStat {
  /** UP, DOWN, `UP 1/2` (going down), `DOWN 1/2` (coming up), … */
  status: string;
  /** The last health check's result (L7OK, L4CON: connection refused, …). */
  checkStatus: string;
  /** Sessions (with `option http-server-close`, requests) sent to it so far. */
  sessions: number;
  /** Connection retries and redispatches to another server. */
  retries: number;
  redispatches: number;
}

export interface Haproxy {
  url: string;
  /** The backend's servers by name (replica1, …), from the stats page's CSV. */
  servers(): Promise<Record<string, ServerStat>>;
  /** HAProxy's messages and request log so far. */
  output(): string;
  close(): Promise<void>;
}

/** `haproxy -c` on the rendered config: its messages, or throws with them. */
export async function checkConfig(cfg: string): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portalis-haproxy-'));
  try {
    writeFileSync(path.join(dir, 'haproxy.cfg'), cfg);
    const p = run(['-c', '-f', path.join(dir, 'haproxy.cfg')], path.join(dir, 'out'));
    const code = await p.exited;
    const out = p.output();
    if (code !== 0) throw new Error(`haproxy -c failed (${code}):\n${out}`);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `haproxy <args>` with its output (the request log with `-db`) in the file `log`: a file, not a
 * pipe, since HAProxy writes its log without blocking and drops what does not fit (a pipe the test read
 * late lost most of a storm's lines).
 */
function run(
  args: string[],
  log: string,
): { child: ChildProcess; exited: Promise<number | null>; output: () => string } {
  const fd = openSync(log, 'w');
  const child = spawn(HAPROXY, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new Error(`${HAPROXY} not found: install the Debian package "haproxy"`) : e),
    );
    child.on('exit', (code) => resolve(code));
  });
  return { child, exited, output: () => readFileSync(log, 'utf8') };
}

/**
 * HAProxy in the foreground (`-db`) on the committed config, in front of `replicas` (host:port);
 * resolves once every server is UP (its /readyz answered 200).
 */
export async function startHaproxy(replicas: string[]): Promise<Haproxy> {
  const port = await freePort();
  const statsPort = await freePort();
  const cfg = renderConfig(port, statsPort, replicas);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portalis-haproxy-'));
  writeFileSync(path.join(dir, 'haproxy.cfg'), cfg);
  const p = run(['-db', '-f', path.join(dir, 'haproxy.cfg')], path.join(dir, 'log'));
  let exitCode: number | null | undefined;
  void p.exited.then(
    (c) => (exitCode = c),
    () => (exitCode = -1),
  );
  const close = async () => {
    if (exitCode === undefined) p.child.kill('SIGTERM');
    await p.exited.catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  const servers = async (): Promise<Record<string, ServerStat>> => {
    const csv = await (await fetch(`http://127.0.0.1:${statsPort}/stats;csv`)).text();
    const [header, ...rows] = csv.trim().split('\n');
    const cols = header!.replace(/^# /, '').split(',');
    const at = (row: string[], name: string) => row[cols.indexOf(name)] ?? '';
    const out: Record<string, ServerStat> = {};
    for (const line of rows) {
      const row = line.split(',');
      if (at(row, 'pxname') !== 'portalis_replicas' || !at(row, 'svname').startsWith('replica')) continue;
      out[at(row, 'svname')] = {
        status: at(row, 'status'),
        checkStatus: at(row, 'check_status'),
        sessions: Number(at(row, 'stot')),
        retries: Number(at(row, 'wretr')),
        redispatches: Number(at(row, 'wredis')),
      };
    }
    return out;
  };
  try {
    await waitUntil(
      async () => {
        if (exitCode !== undefined) throw new Error(`haproxy exited (${exitCode}):\n${p.output()}`);
        const s = await servers().catch(() => null);
        return (
          s !== null && Object.keys(s).length === replicas.length && Object.values(s).every((x) => x.status === 'UP')
        );
      },
      { timeoutMs: 30_000, intervalMs: 50, what: 'haproxy with every replica UP' },
    );
  } catch (e) {
    await close();
    throw e;
  }
  return { url: `http://127.0.0.1:${port}`, servers, output: p.output, close };
}
