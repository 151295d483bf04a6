/**
 * Benchmark: the agent's attach and detach on a real kernel, against nvme-cli baselines
 * measured in the same guest, in alternating rounds (bench/agent-kernel.guest.ts). Two boots of
 * the kernel-test harness (test/kernel): native NVMe multipath, then `nvme_core.multipath=N`
 * with multipathd (DM). Needs what the kernel tests need (root, QEMU; the harness installs the
 * rest); where the guest cannot boot it says why and reports nothing. It throws only when a run
 * broke, never because a figure is slow.
 *
 *   npm run bench -- agent-kernel [--quick] [--only native|dm]     (--quick: 3 rounds, else 5)
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { boot } from '../test/kernel/harness/boot.ts';
import { bundleGuestScript } from '../test/kernel/harness/bundle.ts';
import { startHostPostgres } from '../test/kernel/harness/host-postgres.ts';
import { CannotRun, type KernelArtifacts, prepareKernel } from '../test/kernel/harness/prepare.ts';
import { DM_MODULES, NVME_MODULES } from '../test/kernel/scenarios.ts';
import { type Benchmark, type Figure, median, ROOT } from './support.ts';

type Mode = 'native' | 'dm';

/** What the guest writes to `<run folder>/bench.json`: samples per row, in ms. */
interface GuestRows {
  rows: Record<string, number[]>;
  cli: { attachMs: number; detachMs: number }[];
}

function figures(mode: Mode, raw: GuestRows): Figure[] {
  const rows = raw.rows;
  const dm = mode === 'dm';
  const tag = dm ? ' (DM)' : '';
  const fig = (name: string, xs: number[], baseline?: string, base?: number[], target?: string): Figure => {
    const f: Figure = { name, value: Math.round(median(xs)), unit: 'ms', samples: xs.map(Math.round) };
    if (baseline && base) f.baseline = { name: baseline, value: Math.round(median(base)) };
    if (target) f.target = target;
    return f;
  };
  const limit = dm ? 'parallel connect + add path + map' : 'three parallel nvme connect + head';
  const detachBase = `${dm ? 'multipath -f + ' : ''}three nvme disconnect`;
  return [
    fig(`agent attach${tag}: received → reported`, rows.agentAttach!, limit, rows.parallel, '≤ 1.15 × baseline'),
    fig(`  · the connector alone${tag}`, rows.connectorElapsed!, limit, rows.parallel),
    fig(
      `  · vs serial connects${tag}`,
      rows.agentAttach!,
      dm ? 'serial connects + map' : 'serial connects + head',
      rows.serial,
    ),
    fig(
      `agent detach${tag}: received → reported`,
      rows.agentDetach!,
      detachBase,
      rows.disconnectSerial,
      '≤ 1.2 × baseline',
    ),
    fig(`  · vs one nvme disconnect -n${tag}`, rows.agentDetach!, 'nvme disconnect -n', rows.disconnectOneCall),
    fig(
      `portalis agent attach, CLI wall time${tag}`,
      raw.cli.map((c) => c.attachMs),
    ),
    fig(
      `portalis agent detach, CLI wall time${tag}`,
      raw.cli.map((c) => c.detachMs),
    ),
  ];
}

export const agentKernel: Benchmark = {
  name: 'agent-kernel',
  description: "the agent's attach and detach on a real kernel (QEMU guest, nvmet), against nvme-cli in the same guest",
  async run(ctx) {
    const rounds = ctx.quick ? 3 : 5;
    const only = ctx.options.only;
    const modes: Mode[] = only === 'native' || only === 'dm' ? [only] : ['native', 'dm'];
    let kernel: KernelArtifacts;
    try {
      kernel = await prepareKernel(ROOT, ctx.log);
    } catch (e) {
      if (!(e instanceof CannotRun)) throw e;
      ctx.log(`cannot run here: ${e.message}`);
      return [];
    }
    ctx.log(`guest: QEMU TCG, 2 vCPUs, 2 GiB, kernel ${kernel.version}; ${rounds} rounds`);
    const runs = process.env.PORTALIS_KERNEL_RUNS ?? '/var/tmp/portalis-kernel';
    await mkdir(runs, { recursive: true });
    const out: Figure[] = [];
    for (const mode of modes) {
      const runDir = await mkdtemp(path.join(runs, `bench-agent-${mode}-`));
      const bundle = path.join(runDir, 'guest.mjs');
      await bundleGuestScript(ROOT, 'bench/agent-kernel.guest.ts', bundle);
      const pg = await startHostPostgres();
      ctx.log(`booting the ${mode} guest; run folder ${runDir}`);
      let r: Awaited<ReturnType<typeof boot>>;
      try {
        r = await boot({
          kernel,
          runDir,
          repoRoot: ROOT,
          command: `exec node --enable-source-maps ${bundle}`,
          cwd: ROOT,
          env: {
            PORTALIS_KERNEL_DATABASE_URL: pg.guestUrl,
            PORTALIS_BENCH_MODE: mode,
            PORTALIS_BENCH_ROUNDS: String(rounds),
            PORTALIS_BENCH_WARMUP_ROUNDS: ctx.quick ? '1' : '2',
          },
          network: true,
          cmdline: mode === 'dm' ? ['nvme_core.multipath=N'] : [],
          modules: mode === 'dm' ? [...NVME_MODULES, ...DM_MODULES] : NVME_MODULES,
          timeoutMs: 900_000,
        });
      } finally {
        await pg.stop();
      }
      let raw: GuestRows | null = null;
      try {
        raw = JSON.parse(await readFile(path.join(runDir, 'bench.json'), 'utf8')) as GuestRows;
      } catch {
        raw = null;
      }
      if (r.status !== 'exited' || r.exitCode !== 0 || !raw?.rows) {
        ctx.log(r.output.split('\n').slice(-60).join('\n'));
        throw new Error(`the ${mode} run broke (${r.status}, exit ${r.exitCode}); run folder kept: ${runDir}`);
      }
      out.push(...figures(mode, raw));
      // The guest's rows with every round's connector trace, for the reader who wants the steps.
      const rawFile = path.join(ROOT, 'bench-results', `agent-kernel-${mode}.json`);
      await mkdir(path.dirname(rawFile), { recursive: true });
      await writeFile(rawFile, `${JSON.stringify(raw, null, 2)}\n`);
      ctx.log(`${mode}: rows and traces in ${path.relative(ROOT, rawFile)}`);
      await rm(runDir, { recursive: true, force: true });
    }
    ctx.log(`host: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}`);
    return out;
  },
};
