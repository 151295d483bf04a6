import type { Logger } from '../shared/logger.ts';
import type { Reply } from './call.ts';

export interface ReadinessCheck {
  name: string;
  check: () => Promise<void>;
}

/**
 * How long one readiness check may take before it counts as not ready. The checks run side by side,
 * so `/readyz` answers within this plus the request's own handling, under the 2 s that
 * docs/reliability.md promises: a load balancer's health check (commonly 2-5 s) gets an answer, never its own timeout,
 * however long the database or the backend hangs.
 */
export const READINESS_CHECK_MS = 1500;

/**
 * A check that is still running is joined, not started again: while the backend hangs, a probe
 * every second would otherwise pile up one hung request per probe until the client's own timeout.
 */
function singleFlight(check: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  return () => {
    running ??= check().finally(() => {
      running = null;
    });
    return running;
  };
}

/** `timed_out` only when it did: a check that failed outright answers `{ ok: false }`. */
type Outcome = { ok: boolean; timed_out?: true };

/** `run`'s outcome, or not ready once `ms` have passed; the check itself runs on (joined by the next probe). */
function bounded(run: () => Promise<void>, ms: number): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, timed_out: true }), ms);
  });
  const done = run().then(
    (): Outcome => ({ ok: true }),
    (): Outcome => ({ ok: false }),
  );
  return Promise.race([done, late]).finally(() => clearTimeout(timer));
}

/**
 * The `GET /readyz` answer: every check at most `ms`, side by side. Unauthenticated, so it says which
 * dependency is not ready (`not_ready`, and per check whether it timed out), never how: addresses
 * and errors go to the log.
 */
export function readinessProbe(checks: ReadinessCheck[], log: Logger, ms = READINESS_CHECK_MS) {
  const joined = checks.map((c) => ({ name: c.name, check: singleFlight(c.check) }));
  return async (): Promise<Reply<'getReadyz'>> => {
    const results = await Promise.all(
      joined.map(async (c) => {
        const r = await bounded(
          () =>
            c.check().catch((e: unknown) => {
              log.warn({ check: c.name, err: (e as Error).message }, 'readiness check failed');
              throw e;
            }),
          ms,
        );
        if (r.timed_out) log.warn({ check: c.name, ms }, 'readiness check did not answer in time');
        return [c.name, r] as const;
      }),
    );
    const notReady = results.filter(([, r]) => !r.ok).map(([name]) => name);
    const ok = notReady.length === 0;
    return {
      status: ok ? 200 : 503,
      body: { status: ok ? 'ok' : 'unavailable', not_ready: notReady, checks: Object.fromEntries(results) },
    };
  };
}
