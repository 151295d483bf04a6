/**
 * What the benchmarks share: the figures they report, the programs they start (the real CLI, as
 * an operator runs it), a PostgreSQL database of their own, and a bounded load generator.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = path.join(ROOT, 'bin', 'portalis.mjs');

/** One measured figure, printed beside its baseline (measured in the same run) when it has one. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  target?: string;
  /** The samples behind a median, where there are few enough to keep (the kernel rounds). */
  samples?: number[];
}

export interface BenchContext {
  /** A PostgreSQL server URL (any database); each benchmark makes its own database in it. */
  databaseUrl: string;
  /** Scales the loops down for a smoke run (`--quick`). */
  quick: boolean;
  /** `--name value` options of the command line, e.g. `--only dm` for agent-kernel. */
  options: Record<string, string>;
  log(line: string): void;
}

export interface Benchmark {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<Figure[]>;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

/**
 * CPU time (user + system) a process has used, in ms, from /proc/<pid>/stat (fields 14 and 15,
 * in clock ticks, 100 per second on Linux: proc(5)). A count that load on the machine's other
 * jobs leaves mostly alone, unlike wall time.
 */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/**
 * CPU time the whole machine has spent busy, in ms: the first line of /proc/stat (user, nice,
 * system, irq, softirq and steal, in clock ticks of 1/100 s; proc(5)), summed over every CPU.
 * With every part of a benchmark on this machine, this is what its throughput is bounded by.
 */
export function machineCpuMs(): number {
  const first = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [user, nice, system, , , irq, softirq, steal] = first.trim().split(/\s+/).slice(1).map(Number);
  return ((user! + nice! + system! + irq! + softirq! + steal!) * 1000) / 100;
}

/** At most `n` holders at a time; the others wait first come, first served. */
export function gate(n: number): { acquire(): Promise<void>; release(): void } {
  let free = n;
  const waiting: (() => void)[] = [];
  return {
    acquire: () => (free > 0 ? (free--, Promise.resolve()) : new Promise<void>((r) => waiting.push(r))),
    release: () => {
      const next = waiting.shift();
      if (next) next();
      else free++;
    },
  };
}

/** Runs `total` calls of `fn(i)` with `concurrency` in flight; the latency of each call in ms. */
export async function load(
  total: number,
  concurrency: number,
  fn: (i: number) => Promise<void>,
): Promise<{ latencies: number[]; seconds: number }> {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const t = performance.now();
      await fn(i);
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  latencies.sort((a, b) => a - b);
  return { latencies, seconds: (performance.now() - t0) / 1000 };
}

export interface Program {
  child: ChildProcess;
  /** The first match of `re` in stdout, and the ms from spawn to it. */
  ready: Promise<{ match: RegExpMatchArray; ms: number }>;
  stop(): Promise<void>;
}

/** `portalis <args>` as its own process; `readyRe` is waited for on stdout (60 s at most). */
export function startProgram(args: string[], env: Record<string, string>, readyRe: RegExp): Program {
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<{ match: RegExpMatchArray; ms: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`portalis ${args.join(' ')}: not ready in 60 s:\n${out}`)), 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = readyRe.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ match: m, ms: performance.now() - t0 });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => void (out += d.toString()));
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`portalis ${args.join(' ')} exited:\n${out}`));
    });
  });
  ready.catch(() => {});
  return {
    child,
    ready,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A fresh database in the server of `serverUrl`; `drop()` removes it. */
export async function scratchDatabase(
  serverUrl: string,
  name: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  const db = `portalis_bench_${name}_${process.pid}`;
  await admin.query(`drop database if exists ${db}`);
  await admin.query(`create database ${db}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${db}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      await c.query(`drop database if exists ${db} with (force)`);
      await c.end();
    },
  };
}

export interface SimAndService {
  /** The service's base URL and the simulator's (the LightOS API the adapter talks to). */
  url: string;
  simUrl: string;
  databaseUrl: string;
  service: Program;
  /** Stops the service, then the simulator, and drops the scratch database. */
  stop(): Promise<void>;
}

/** The admin token the benchmarks' services run with (a bench secret, nothing real). */
export const TOKEN = 'bench-admin-token-0123456789';

export const LISTENING = /listening on (http:\S+)/;

/** A `portalis serve` of the benchmarks: on `databaseUrl`, reaching the simulator through the `lightos` adapter. */
export function serviceEnv(databaseUrl: string, simUrl: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    PORTALIS_PORT: '0',
    PORTALIS_ADMIN_TOKEN: TOKEN,
    PORTALIS_BACKEND: 'lightos',
    PORTALIS_LIGHTOS_ENDPOINTS: simUrl,
    PORTALIS_LOG_LEVEL: 'warn',
  };
}

/**
 * `portalis sim` and `portalis serve` as their own processes, the service on a scratch database
 * and reaching the simulator through the `lightos` adapter, as a deployment would; both listening.
 */
export async function startSimAndService(
  serverUrl: string,
  name: string,
  env: Record<string, string> = {},
): Promise<SimAndService> {
  const db = await scratchDatabase(serverUrl, name);
  const sim = startProgram(['sim'], { PORTALIS_SIM_PORT: '0', PORTALIS_SIM_NODES: '3' }, LISTENING);
  let service: Program | undefined;
  const stop = async () => {
    await service?.stop();
    await sim.stop();
    await db.drop();
  };
  try {
    const simUrl = (await sim.ready).match[1]!;
    service = startProgram(['serve'], { ...serviceEnv(db.url, simUrl), ...env }, LISTENING);
    const url = (await service.ready).match[1]!;
    return { url, simUrl, databaseUrl: db.url, service, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
