import { type Clock, systemClock } from './clock.ts';

export interface PollOptions {
  /** Give up after this many milliseconds (measured on `clock`). */
  deadlineMs: number;
  /** Pause between checks. */
  intervalMs: number;
  clock?: Clock;
  /** Grows the interval by this factor after each miss (1 = fixed). */
  backoff?: number;
  /** Upper bound for the grown interval. */
  maxIntervalMs?: number;
}

export type PollResult<T> = { done: true; value: T } | { done: false; last: unknown };

/**
 * Calls `check` until it returns `{done: true}` or the deadline passes. Never sleeps past the
 * deadline, and always checks once more at the deadline so that a condition met during the
 * last pause is not reported as a timeout.
 */
export async function poll<T>(
  check: () => Promise<PollResult<T>> | PollResult<T>,
  opts: PollOptions,
): Promise<PollResult<T>> {
  const clock = opts.clock ?? systemClock;
  const start = clock.now();
  let interval = opts.intervalMs;
  for (;;) {
    const r = await check();
    if (r.done) return r;
    const left = opts.deadlineMs - (clock.now() - start);
    if (left <= 0) return r;
    await clock.sleep(Math.min(interval, left));
    interval = Math.min(interval * (opts.backoff ?? 1), opts.maxIntervalMs ?? Number.POSITIVE_INFINITY);
  }
}
