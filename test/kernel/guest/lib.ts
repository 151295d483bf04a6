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

/** Records a fact about the kernel or a tool for the report (`observations.json`). */
export function observe(key: string, value: unknown): void {
  observations[key] = value;
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
    stepTimes.push({ name, ms });
    console.log(`  ${name} (${ms} ms)`);
  }
}

/** A command that must succeed; returns its stdout. */
export async function sh(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const r = await run(cmd, args, { timeoutMs });
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}${r.timedOut ? ' (timeout)' : ''}: ${(r.stderr + r.stdout).trim()}`);
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
