/**
 * Helpers for guest scripts (run inside the kernel-test guest by scripts/kernel/stage2.sh):
 * timed steps, checks, waits on kernel state with deadlines (never fixed sleeps), sysfs reads,
 * and observations saved to the run folder for the report.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { poll } from '../../../src/shared/poll.ts';
import { run, type RunResult } from '../harness/exec.ts';

export const runDir = process.env.PORTALIS_RUN_DIR ?? '/tmp';
const observations: Record<string, unknown> = {};
const stepTimes: { name: string; ms: number }[] = [];
/** In a scenario group: the part running now (its observations and steps are kept apart). */
let currentPart: string | null = null;

function bucket(): Record<string, unknown> {
  if (currentPart === null) return observations;
  const parts = (observations.parts ??= {}) as Record<string, Record<string, unknown>>;
  return (parts[currentPart] ??= {});
}

/** Records a fact about the kernel or a tool for the report (`observations.json`). */
export function observe(key: string, value: unknown): void {
  bucket()[key] = value;
}

export function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`check failed: ${message}`);
}

export function checkEqual<T>(actual: T, expected: T, what: string): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`check failed: ${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** Runs a timed, named step; its duration is printed and kept for the timings observation. */
export async function step<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    const ms = Math.round(performance.now() - t0);
    stepTimes.push({ name: currentPart ? `${currentPart}: ${name}` : name, ms });
    console.log(`  ${name} (${ms} ms)`);
  }
}

/** A command that must succeed; returns its stdout. */
export async function sh(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const r = await run(cmd, args, { timeoutMs });
  if (r.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${r.code}${r.timedOut ? ' (timeout)' : ''}: ${(r.stderr + r.stdout).trim()}`,
    );
  }
  return r.stdout;
}

/** A command whose failure the caller interprets. */
export function shAny(cmd: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return run(cmd, args, { timeoutMs });
}

/** The trimmed text of a sysfs/configfs file, or null when it is absent. */
export function readSys(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

export function list(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/**
 * Polls `probe` until it returns something other than undefined, or fails after `deadlineMs`
 * with `what` and the last value seen by `describe`.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  deadlineMs = 15_000,
  describe?: () => unknown,
): Promise<T> {
  const r = await poll(
    async () => {
      const v = await probe();
      return v === undefined ? { done: false, last: describe?.() } : { done: true, value: v };
    },
    { deadlineMs, intervalMs: 20, backoff: 1.5, maxIntervalMs: 250 },
  );
  if (!r.done) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}; last: ${JSON.stringify(r.last)}`);
  return r.value;
}

/**
 * Runs a guest scenario: prints each step, saves observations and step timings to
 * `<run folder>/observations.json` whatever happens, and sets the exit status.
 */
export async function scenario(name: string, body: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  console.log(`${name}: node up after ${Math.round(process.uptime() * 1000)} ms`);
  try {
    await body();
    console.log(`${name}: ok in ${Math.round(performance.now() - t0)} ms`);
  } catch (err) {
    console.log(`${name}: FAILED: ${err instanceof Error ? err.stack : String(err)}`);
    process.exitCode = 1;
  } finally {
    observe('stepTimesMs', stepTimes);
    writeFileSync(path.join(runDir, 'observations.json'), `${JSON.stringify(observations, null, 2)}\n`);
  }
}

/** One part of a scenario group: a scenario of its own, reported on its own line. */
export interface Part<C> {
  name: string;
  run: (ctx: C) => Promise<void>;
}

export interface PartResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

/** What a group leaves in `<run folder>/parts.json` for the runner (rewritten after each part). */
export interface GroupResult {
  group: string;
  setupMs: number | null;
  setupError?: string;
  parts: PartResult[];
  /** A part that was not run, and why (setup failed, or leftovers of a failed part). */
  skipped: { name: string; why: string }[];
  teardownMs: number | null;
  teardownError?: string;
}

/**
 * Several scenarios in one guest boot, sharing what is slow to start (the service, simulator
 * and agent): `setup` once, then each selected part (`PORTALIS_KERNEL_PARTS`, comma-separated;
 * all when unset) with its own timing and pass/fail in `parts.json`, `between` after every part
 * (pass or fail) to put the shared state back, and `teardown` at the end. When `between` cannot
 * clean up after a part, the remaining parts are not run (and are reported as such), so a
 * failure stays attributable to the part that caused it.
 */
export async function scenarioGroup<C>(
  group: string,
  opts: {
    setup: () => Promise<C>;
    parts: Part<C>[];
    between?: (ctx: C, part: string) => Promise<void>;
    /** Called with the failing part's name (or 'setup'): print logs worth reading. */
    diagnose?: (ctx: C | undefined, part: string) => void;
    teardown: (ctx: C) => Promise<void>;
  },
): Promise<void> {
  const wanted = (process.env.PORTALIS_KERNEL_PARTS ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const parts = wanted.length ? opts.parts.filter((p) => wanted.includes(p.name)) : opts.parts;
  const result: GroupResult = { group, setupMs: null, parts: [], skipped: [], teardownMs: null };
  const save = () => {
    writeFileSync(path.join(runDir, 'parts.json'), `${JSON.stringify(result, null, 2)}\n`);
    observations.stepTimesMs = stepTimes;
    writeFileSync(path.join(runDir, 'observations.json'), `${JSON.stringify(observations, null, 2)}\n`);
  };
  const message = (err: unknown) => (err instanceof Error ? (err.stack ?? err.message) : String(err));
  console.log(
    `${group}: node up after ${Math.round(process.uptime() * 1000)} ms; parts: ${parts.map((p) => p.name).join(', ')}`,
  );
  let ctx: C | undefined;
  let t0 = performance.now();
  try {
    ctx = await opts.setup();
    result.setupMs = Math.round(performance.now() - t0);
    console.log(`${group}: shared setup done in ${result.setupMs} ms`);
  } catch (err) {
    result.setupMs = Math.round(performance.now() - t0);
    result.setupError = message(err);
    console.log(`${group}: setup FAILED: ${result.setupError}`);
    opts.diagnose?.(ctx, 'setup');
    result.skipped = parts.map((p) => ({ name: p.name, why: 'the shared setup failed' }));
    process.exitCode = 1;
    save();
    return;
  }
  save();
  let blocked: string | null = null;
  for (const p of parts) {
    if (blocked) {
      result.skipped.push({ name: p.name, why: blocked });
      continue;
    }
    console.log(`--- ${p.name}`);
    currentPart = p.name;
    t0 = performance.now();
    let ok = true;
    let error: string | undefined;
    try {
      await p.run(ctx);
    } catch (err) {
      ok = false;
      error = message(err);
    }
    const ms = Math.round(performance.now() - t0);
    console.log(`--- ${p.name}: ${ok ? 'ok' : `FAILED: ${error}`} (${ms} ms)`);
    if (!ok) {
      process.exitCode = 1;
      opts.diagnose?.(ctx, p.name);
    }
    result.parts.push({ name: p.name, ok, ms, ...(error ? { error } : {}) });
    save();
    if (opts.between) {
      try {
        await step('clean up for the next part', () => opts.between!(ctx!, p.name));
      } catch (err) {
        blocked = `not run: cleaning up after ${p.name} failed: ${message(err)}`;
        console.log(`--- ${blocked}`);
        process.exitCode = 1;
        opts.diagnose?.(ctx, `after ${p.name}`);
      }
    }
    currentPart = null;
  }
  t0 = performance.now();
  try {
    await opts.teardown(ctx);
  } catch (err) {
    result.teardownError = message(err);
    console.log(`${group}: teardown FAILED: ${result.teardownError}`);
    process.exitCode = 1;
  }
  result.teardownMs = Math.round(performance.now() - t0);
  save();
}
