/**
 * Benchmark: the agent's attach and detach on a real kernel, against nvme-cli baselines
 * measured in the same guest, in alternating rounds (bench/agent-kernel.guest.ts). Two boots of
 * the kernel-test harness (test/kernel): native NVMe multipath, then `nvme_core.multipath=N`
 * with multipathd (DM). Prints each figure beside its baseline and writes
 * `bench-results/agent-kernel.json`. A benchmark, not a test: it fails only when a run broke
 * (exit 1), never because a figure is slow; 77 when this machine cannot boot the guest.
 *
 *   node --import tsx bench/agent-kernel.ts [--rounds N] [--only native|dm]
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { boot } from '../test/kernel/harness/boot.ts';
import { bundleGuestScript } from '../test/kernel/harness/bundle.ts';
import { startHostPostgres } from '../test/kernel/harness/host-postgres.ts';
import {
  CannotRun,
  checkPlatform,
  defaultCacheDir,
  ensureInitramfs,
  ensureKernel,
  ensurePackages,
} from '../test/kernel/harness/prepare.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NVME_MODULES = ['nvmet', 'nvmet-tcp', 'nvme-tcp'];
const DM_MODULES = ['dm-multipath', 'dm-round-robin', 'dm-service-time'];

type Mode = 'native' | 'dm';

export interface AgentKernelOptions {
  rounds?: number;
  modes?: Mode[];
  log?: (line: string) => void;
}

export interface Figure {
  what: string;
  medianMs: number;
  samplesMs: number[];
  baseline?: string;
  baselineMedianMs?: number;
  ratio?: number;
  target?: number;
}

export interface AgentKernelResult {
  name: 'agent-kernel';
  machine: string;
  at: string;
  modes: Record<string, { figures: Figure[]; raw: unknown }>;
}

const median = (xs: number[]) => {
  const s = [...xs].filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r0 = (x: number) => Math.round(x);

function figures(
  mode: Mode,
  raw: { rows: Record<string, number[]>; cli: { attachMs: number; detachMs: number }[] },
): Figure[] {
  const rows = raw.rows;
  const fig = (what: string, xs: number[], baseline?: string, base?: number[], target?: number): Figure => {
    const f: Figure = { what, medianMs: r0(median(xs)), samplesMs: xs.map(r0) };
    if (baseline && base) {
      f.baseline = baseline;
      f.baselineMedianMs = r0(median(base));
      f.ratio = Math.round((median(xs) / median(base)) * 100) / 100;
      if (target) f.target = target;
    }
    return f;
  };
  const dm = mode === 'dm';
  const limit = dm ? 'three parallel nvme connect + multipathd add path + map' : 'three parallel nvme connect + head';
  return [
    fig(
      `agent attach${dm ? ' (DM)' : ''}: received → connected reported`,
      rows.agentAttach!,
      limit,
      rows.parallel,
      1.15,
    ),
    fig('  · the connector alone (its elapsed_ms)', rows.connectorElapsed!, limit, rows.parallel),
    fig(
      `  · vs serial connects`,
      rows.agentAttach!,
      dm ? 'three serial nvme connect + map' : 'three serial nvme connect + head',
      rows.serial,
    ),
    fig(
      `agent detach${dm ? ' (DM)' : ''}: received → disconnected reported`,
      rows.agentDetach!,
      `${dm ? 'multipath -f + ' : ''}three nvme disconnect -d, one at a time`,
      rows.disconnectSerial,
      1.2,
    ),
    fig(
      '  · vs one call',
      rows.agentDetach!,
      `${dm ? 'multipath -f + ' : ''}nvme disconnect -n (all three in one call)`,
      rows.disconnectOneCall,
    ),
    fig(
      'portalis agent attach (CLI wall time)',
      raw.cli.map((c) => c.attachMs),
    ),
    fig(
      'portalis agent detach (CLI wall time)',
      raw.cli.map((c) => c.detachMs),
    ),
  ];
}

export function formatFigures(mode: string, fs: Figure[]): string {
  const lines = [`agent-kernel (${mode}):`];
  for (const f of fs) {
    const base =
      f.baseline === undefined
        ? ''
        : `   vs ${f.baseline} ${f.baselineMedianMs} ms = ${f.ratio}×${f.target ? ` (target ≤ ${f.target}×)` : ''}`;
    lines.push(`  ${f.what.padEnd(52)} ${String(f.medianMs).padStart(6)} ms${base}   [${f.samplesMs.join(', ')}]`);
  }
  return lines.join('\n');
}

/** Boots one guest per mode and returns the figures (throws when a run broke). */
export async function benchAgentKernel(opts: AgentKernelOptions = {}): Promise<AgentKernelResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  checkPlatform();
  await ensurePackages((l) => log(`[bench] ${l}`));
  const { dir, pkg } = await ensureKernel(defaultCacheDir(repoRoot), (l) => log(`[bench] ${l}`));
  const kernel = await ensureInitramfs(dir, pkg, repoRoot);
  const runs = process.env.PORTALIS_KERNEL_RUNS ?? '/var/tmp/portalis-kernel';
  await mkdir(runs, { recursive: true });
  const result: AgentKernelResult = {
    name: 'agent-kernel',
    machine: `QEMU TCG guest (2 vCPUs, 2 GiB, kernel ${kernel.version}) on ${os.cpus().length}-core ${os.cpus()[0]?.model ?? '?'}, load ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
    at: new Date().toISOString(),
    modes: {},
  };
  for (const mode of opts.modes ?? ['native', 'dm']) {
    const runDir = await mkdtemp(path.join(runs, `bench-agent-${mode}-`));
    const bundle = path.join(runDir, 'guest.mjs');
    await bundleGuestScript(repoRoot, 'bench/agent-kernel.guest.ts', bundle);
    const pg = await startHostPostgres();
    log(`[bench] booting the ${mode} guest (${opts.rounds ?? 5} rounds); run folder ${runDir}`);
    let r: Awaited<ReturnType<typeof boot>>;
    try {
      r = await boot({
        kernel,
        runDir,
        repoRoot,
        command: `exec node --enable-source-maps ${bundle}`,
        cwd: repoRoot,
        env: {
          PORTALIS_KERNEL_DATABASE_URL: pg.guestUrl,
          PORTALIS_BENCH_MODE: mode,
          PORTALIS_BENCH_ROUNDS: String(opts.rounds ?? 5),
        },
        network: true,
        cmdline: mode === 'dm' ? ['nvme_core.multipath=N'] : [],
        modules: mode === 'dm' ? [...NVME_MODULES, ...DM_MODULES] : NVME_MODULES,
        timeoutMs: 900_000,
      });
    } finally {
      await pg.stop();
    }
    let raw: Parameters<typeof figures>[1] | null = null;
    try {
      raw = JSON.parse(await readFile(path.join(runDir, 'bench.json'), 'utf8'));
    } catch {
      raw = null;
    }
    if (r.status !== 'exited' || r.exitCode !== 0 || !raw?.rows) {
      log(r.output.split('\n').slice(-60).join('\n'));
      throw new Error(`the ${mode} run broke (${r.status}, exit ${r.exitCode}); run folder kept: ${runDir}`);
    }
    const fs = figures(mode, raw);
    result.modes[mode] = { figures: fs, raw };
    log(formatFigures(mode, fs));
    await rm(runDir, { recursive: true, force: true });
  }
  return result;
}

/** Writes the result under the git-ignored bench-results/. */
export async function saveResult(result: AgentKernelResult): Promise<string> {
  const out = path.join(repoRoot, 'bench-results', 'agent-kernel.json');
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const rounds = args.includes('--rounds') ? Number(args[args.indexOf('--rounds') + 1]) : 5;
  const only = args.includes('--only') ? (args[args.indexOf('--only') + 1] as Mode) : undefined;
  try {
    const r = await benchAgentKernel({ rounds, modes: only ? [only] : undefined });
    console.log(`[bench] machine: ${r.machine}`);
    console.log(`[bench] written to ${await saveResult(r)}`);
    process.exit(0);
  } catch (e) {
    if (e instanceof CannotRun) {
      console.log(`[bench] agent-kernel cannot run here: ${e.message}`);
      process.exit(77);
    }
    console.log(`[bench] agent-kernel failed: ${e instanceof Error ? e.stack : String(e)}`);
    process.exit(1);
  }
}
