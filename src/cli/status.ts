/**
 * `portalis status`: the health matrix on the command line, for the operator and for monitoring
 * checks. Exit code: 0 every cell optimal, 1 something degraded, detached or pending, 2 something failed or
 * unknown, 3 the service could not be asked (unreachable, refused the token, bad arguments).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Schema } from '../server/wire.ts';
import { UsageError } from '../shared/errors.ts';

export interface StatusIo {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
}

const USAGE = `usage: portalis status [--json] [--volume UUID] [--host NQN] [--health STATES] [--worst-first]

  prints the volume × host health matrix of the driver service and exits
  0 all optimal, 1 something degraded, detached or pending, 2 something failed or unknown, 3 no answer

  --json            the matrix as JSON (every page merged), for scripts
  --volume UUID     only this volume
  --host NQN        only this host
  --health STATES   only cells in these states, comma-separated (optimal,degraded,failed,unknown,pending,detached)
  --worst-first     the worst volumes first
  --no-color        plain output also on a terminal (also NO_COLOR=1)

  PORTALIS_URL      the service (default http://127.0.0.1:8080)
  PORTALIS_TOKEN    the admin token (default: the admin-token file of PORTALIS_DATA_DIR, ./.portalis)
`;

const STATES = ['optimal', 'degraded', 'failed', 'unknown', 'pending', 'detached'] as const;
type State = (typeof STATES)[number];

/** The matrix as the service answers it (api-spec/portalis.yaml's HealthMatrix). */
type Matrix = Schema<'HealthMatrix'>;

function parseArgs(argv: string[]) {
  const o = { json: false, color: true, worstFirst: false, q: new URLSearchParams() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--json') o.json = true;
    else if (a === '--no-color') o.color = false;
    else if (a === '--worst-first') o.worstFirst = true;
    else if (a === '--volume') o.q.set('volume_id', value());
    else if (a === '--host') o.q.set('host_nqn', value());
    else if (a === '--health' || a === '--state') {
      const v = value();
      for (const s of v.split(','))
        if (!(STATES as readonly string[]).includes(s))
          throw new UsageError(`--health: ${JSON.stringify(s)} is not one of ${STATES.join(', ')}`);
      o.q.set('health', v);
    } else if (a === '-h' || a === '--help') throw new UsageError('');
    else throw new UsageError(`unknown option ${JSON.stringify(a)}`);
  }
  if (o.worstFirst) o.q.set('order', 'worst');
  return o;
}

async function adminToken(env: NodeJS.ProcessEnv, cwd: string): Promise<string> {
  if (env.PORTALIS_TOKEN) return env.PORTALIS_TOKEN.trim();
  const file = path.join(path.resolve(cwd, env.PORTALIS_DATA_DIR || '.portalis'), 'admin-token');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    throw new UsageError(`no admin token: set PORTALIS_TOKEN or start the service here once (it writes ${file})`);
  }
}

/** Every page of the matrix, merged (the summary and host roll-ups already cover every cell). */
async function fetchMatrix(base: string, token: string, q: URLSearchParams): Promise<Matrix> {
  let offset = 0;
  let merged: Matrix | null = null;
  for (;;) {
    const p = new URLSearchParams(q);
    p.set('limit', '1000');
    p.set('offset', String(offset));
    const url = `${base}/v1/health/multipath?${p}`;
    let r: Response;
    try {
      r = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) });
    } catch (e) {
      throw new Error(`cannot reach the service at ${base}: ${(e as Error).cause ?? (e as Error).message}`);
    }
    const body = (await r.json().catch(() => null)) as (Matrix & { error?: { code: string; message: string } }) | null;
    if (!r.ok || !body)
      throw new Error(
        `the service answered ${r.status}: ${body?.error ? `${body.error.code}: ${body.error.message}` : 'no JSON'}`,
      );
    if (!merged) merged = body;
    else merged.volumes.push(...body.volumes);
    if (body.page.next_offset === null) return merged;
    offset = body.page.next_offset;
  }
}

export function exitCodeOf(summary: Record<State, number>): 0 | 1 | 2 {
  if (summary.failed > 0 || summary.unknown > 0) return 2;
  if (summary.degraded > 0 || summary.detached > 0 || summary.pending > 0) return 1;
  return 0;
}

const COLOURS: Record<State, string> = {
  optimal: '\x1b[32m',
  degraded: '\x1b[33m',
  failed: '\x1b[1;31m',
  unknown: '\x1b[35m',
  pending: '\x1b[36m',
  detached: '\x1b[37m',
};

/** "5m12s" style age of an ISO time relative to `now`. */
export function age(iso: string | null, now: number): string {
  if (!iso) return '-';
  let s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s %= 86400) / 3600);
  const m = Math.floor((s %= 3600) / 60);
  s %= 60;
  if (d) return `${d}d${h}h`;
  if (h) return `${h}h${m}m`;
  if (m) return `${m}m${s}s`;
  return `${s}s`;
}

function table(rows: string[][], colourCol: number | null, colour: (v: string) => string): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r, ri) =>
      r
        .map((c, i) => {
          const padded = i === r.length - 1 ? c : c.padEnd(widths[i]!);
          return ri > 0 && i === colourCol ? colour(c) + padded.slice(c.length) : padded;
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function renderMatrix(m: Matrix, opts: { color: boolean; now: number }): string {
  const paint = (v: string) => (opts.color && v in COLOURS ? `${COLOURS[v as State]}${v}\x1b[0m` : v);
  const s = m.summary;
  const out: string[] = [];
  out.push(
    `${m.page.total_cells} attachments on ${m.hosts.length} hosts, ${m.page.total_volumes} volumes: ` +
      STATES.map((k) => `${s[k]} ${paint(k)}`).join(', '),
  );
  const rows: string[][] = [['VOLUME', 'HOST', 'HEALTH', 'PATHS', 'MODE', 'DEVICE', 'SINCE', 'REPORTED', 'NOTE']];
  for (const v of m.volumes)
    for (const c of v.hosts)
      rows.push([
        v.volume_id,
        c.host,
        c.health,
        c.reported_at ? `${c.paths_live}/${c.paths_total}` : '-',
        c.multipath_mode,
        c.device_path ?? '-',
        age(c.since, opts.now),
        c.reported_at ? `${age(c.reported_at, opts.now)} ago` : 'never',
        [c.host_stale ? 'agent stale' : '', c.error ? `${c.error.code}: ${c.error.message}` : '']
          .filter(Boolean)
          .join('; '),
      ]);
  if (rows.length > 1) out.push('', table(rows, 2, paint));
  if (m.hosts.length > 0) {
    const hosts: string[][] = [['HOST', 'HEALTH', ...STATES.map((k) => k.toUpperCase()), 'LAST SEEN']];
    for (const h of m.hosts)
      hosts.push([
        h.host,
        h.health,
        ...STATES.map((k) => String(h.counts[k])),
        h.last_seen_at ? `${age(h.last_seen_at, opts.now)} ago${h.stale ? ' (stale)' : ''}` : 'never',
      ]);
    out.push('', table(hosts, 1, paint));
  }
  return out.join('\n') + '\n';
}

export async function runStatus(
  argv: string[],
  env: NodeJS.ProcessEnv,
  io: StatusIo,
  cwd = process.cwd(),
): Promise<number> {
  try {
    const o = parseArgs(argv);
    const base = (env.PORTALIS_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
    const m = await fetchMatrix(base, await adminToken(env, cwd), o.q);
    if (o.json) io.stdout.write(JSON.stringify(m, null, 2) + '\n');
    else
      io.stdout.write(
        renderMatrix(m, {
          color: o.color && io.stdout.isTTY === true && !env.NO_COLOR,
          now: Date.parse(m.generated_at),
        }),
      );
    return exitCodeOf(m.summary);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(e.message ? `portalis status: ${e.message}\n${USAGE}` : USAGE);
      return e.message ? 3 : 0;
    }
    io.stderr.write(`portalis status: ${(e as Error).message}\n`);
    return 3;
  }
}
