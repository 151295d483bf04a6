/**
 * Time as a port, so that every wait in Portalis can be driven by a test without sleeping.
 * Production code takes a Clock argument (defaulting to `systemClock`); unit tests pass a
 * `ManualClock` and advance it.
 */
export interface Clock {
  /** Milliseconds since an arbitrary origin; only differences are meaningful. */
  now(): number;
  /**
   * Resolves after `ms` milliseconds of this clock's time, or as soon as `signal` aborts (the
   * timer is then cancelled, so that nothing keeps a stopping process alive).
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

function timerSleep(ms: number, signal: AbortSignal | undefined, unref: boolean): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    if (unref) timer.unref();
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * A sleep on `clock` that ends after `ms`, when `signal` aborts, or when `wake()` is called; its
 * listener on `signal` goes when it ends. A loop that sleeps on a long-lived signal must not
 * leave one behind per wake (Node warns at 11 listeners: MaxListenersExceededWarning).
 */
export function wakeableSleep(
  clock: Clock,
  ms: number,
  signal: AbortSignal,
): { done: Promise<void>; wake: () => void } {
  const inner = new AbortController();
  const wake = () => inner.abort();
  // A listener added to a signal that has already aborted never fires.
  if (signal.aborted) inner.abort();
  signal.addEventListener('abort', wake, { once: true });
  const done = clock.sleep(ms, inner.signal).finally(() => signal.removeEventListener('abort', wake));
  return { done, wake };
}

export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) => timerSleep(ms, signal, false),
};

/** The system clock for background jobs: a pending sleep does not keep the process alive. */
export const backgroundClock: Clock = {
  now: systemClock.now,
  sleep: (ms, signal) => timerSleep(ms, signal, true),
};

/** A clock that only moves when told to; pending sleeps resolve as time passes them. */
export class ManualClock implements Clock {
  private current = 0;
  private sleepers: { until: number; resolve: () => void }[] = [];

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const aborted = () => {
        this.sleepers = this.sleepers.filter((x) => x !== sleeper);
        resolve();
      };
      // Woken by time, it takes its listener off the signal, as the system clock's sleep does.
      const sleeper = {
        until: this.current + Math.max(0, ms),
        resolve: () => {
          signal?.removeEventListener('abort', aborted);
          resolve();
        },
      };
      this.sleepers.push(sleeper);
      signal?.addEventListener('abort', aborted, { once: true });
    });
  }

  /** Number of callers currently waiting in sleep(). */
  get pending(): number {
    return this.sleepers.length;
  }

  /** Moves time forward and wakes every sleeper whose deadline has passed. */
  async advance(ms: number): Promise<void> {
    this.current += ms;
    const due = this.sleepers.filter((s) => s.until <= this.current);
    this.sleepers = this.sleepers.filter((s) => s.until > this.current);
    for (const s of due) s.resolve();
    // Let the woken continuations run before the caller inspects state.
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** Advances in steps until `done()` is true or `maxMs` has passed; for tests of polling loops. */
  async runUntil(done: () => boolean, stepMs: number, maxMs: number): Promise<void> {
    for (let spent = 0; !done() && spent <= maxMs; spent += stepMs) await this.advance(stepMs);
  }
}
