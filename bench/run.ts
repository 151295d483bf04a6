/**
 * `npm run bench [-- [--quick] [--only native|dm] [name ...]]`: runs the named benchmarks (all without names), prints
 * each figure beside its baseline, and writes them as JSON to bench-results/ (git-ignored).
 * Benchmarks are not tests: nothing here fails for a slow machine. A new benchmark is one module
 * exporting a `Benchmark`, added to BENCHMARKS.
 *
 * PostgreSQL: DATABASE_URL (any database of a server where the user may create databases), else
 * an embedded PostgreSQL started for the run.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { agentKernel } from './agent-kernel.ts';
import { fanout } from './fanout.ts';
import { hostSecrets } from './host-secrets.ts';
import { hungBackend } from './hung-backend.ts';
import { initialize } from './initialize.ts';
import { pipelining } from './pipelining.ts';
import { refresh } from './refresh.ts';
import { startup } from './startup.ts';
import { stormBench } from './storm.ts';
import { type Benchmark, type Figure, ROOT } from './support.ts';

const BENCHMARKS: Benchmark[] = [
  startup,
  initialize,
  fanout,
  stormBench,
  hungBackend,
  pipelining,
  hostSecrets,
  agentKernel,
  refresh,
];

function format(f: Figure): string {
  const v = (x: number) => (Number.isInteger(x) || x >= 100 ? x.toFixed(0) : x.toFixed(1));
  let line = `  ${f.name.padEnd(48)} ${v(f.value).padStart(8)} ${f.unit}`;
  if (f.baseline) {
    line += `   (${f.baseline.name}: ${v(f.baseline.value)} ${f.unit}`;
    if (f.unit === 'ms' && f.baseline.value > 0) line += `, ${(f.value / f.baseline.value).toFixed(2)}×`;
    line += ')';
  }
  if (f.target) line += `   target ${f.target}`;
  return line;
}

async function main(argv: string[]): Promise<number> {
  const quick = argv.includes('--quick');
  const options: Record<string, string> = {};
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') continue;
    if (a.startsWith('--')) options[a.slice(2)] = argv[++i] ?? '';
    else names.push(a);
  }
  const unknown = names.filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length > 0) {
    console.error(`unknown benchmark ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.name).join(', ')}`);
    return 2;
  }
  const chosen = names.length > 0 ? BENCHMARKS.filter((b) => names.includes(b.name)) : BENCHMARKS;

  let databaseUrl = process.env.DATABASE_URL;
  let stopDb = async () => {};
  if (!databaseUrl) {
    // @ts-expect-error: a plain-JavaScript helper of the test runner, without types.
    const { startEmbeddedPostgres } = await import('../scripts/embedded-db.mjs');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portalis-bench-pg-'));
    const pg = (await startEmbeddedPostgres(dir)) as { url: string; stop(): Promise<void> };
    databaseUrl = pg.url;
    stopDb = async () => {
      await pg.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  const cpu = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`;
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const machine = `${cpu}, Node ${process.version}, load ${load}`;
  console.log(`machine: ${machine}`);
  const results: Record<string, Figure[]> = {};
  try {
    for (const b of chosen) {
      console.log(`\n${b.name}: ${b.description}`);
      results[b.name] = await b.run({ databaseUrl, quick, options, log: (l) => console.log(`  · ${l}`) });
      for (const f of results[b.name]!) console.log(format(f));
    }
  } finally {
    await stopDb();
  }
  const dir = path.join(ROOT, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const at = new Date().toISOString();
  const file = path.join(dir, `${at.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ at, machine, quick, results }, null, 2) + '\n');
  console.log(`\nwritten ${path.relative(process.cwd(), file)}`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
