/**
 * Periodic work once per fleet: the portal refresh, the path-health prune and the capacity read
 * run, each period, on the one service process that claims them through the database
 * (`PeriodicJobs`; docs/DECISIONS.md, "Periodic work once per fleet"), not on every replica.
 *
 * Each replica runs one loop per job. When the job is due it claims it; the winner runs the pass,
 * renewing its lease every third of it, and then makes the job due again a full period after the
 * pass ended (passes never overlap, as with `every`). The others sleep until the job is due again
 * by the database's reckoning and try then, so when the runner dies another replica takes over:
 * within one period of its last pass ending, or within one lease of its last renewal when it died
 * mid-pass.
 */
import { backgroundClock, type Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import type { Periodic } from '../shared/periodic.ts';
import type { JobClaim, PeriodicJobs } from './ports.ts';

/** `ran`: this replica claimed the job and its pass succeeded; `skipped`: not due (another replica has it); `failed`. */
export type JobOutcome = 'ran' | 'skipped' | 'failed';

/** Told of every claim attempt of this replica (the service's `/metrics`). */
export interface JobObserver {
  /** `seconds`: how long this replica's pass took (set for `ran`, and for `failed` when a pass had started). */
  attempt(job: string, outcome: JobOutcome, seconds?: number): void;
}

export interface FleetJob {
  /** `periodic_jobs.name`; also the `job` label of the metrics. */
  name: string;
  /** From the end of one pass (on whichever replica) to the start of the next. */
  periodMs: number;
  pass: () => Promise<unknown>;
  /** Keep the pass's result for the other replicas (`PeriodicJobs.lastResult`). */
  publish?: boolean;
  /** Try to claim at once at start-up instead of a period later (the prune). */
  atStart?: boolean;
  /** How long a claim holds while its pass runs, renewed every third of it. Default: the period, within 1–30 s. */
  leaseMs?: number;
}

export interface FleetJobOptions {
  logger: Logger;
  observer?: JobObserver;
  /** Defaults to a system clock whose timers do not keep the process alive. */
  clock?: Clock;
}

/** A replica that lost the race for a job that just became due tries again this much after it is due. */
const DUE_MARGIN_MS = 5;

const defaultLeaseMs = (periodMs: number) => Math.min(30_000, Math.max(1000, periodMs));

/** Runs `job` on this replica whenever it claims it; `stop()` ends the loop after the pass in flight. */
export function runFleetJob(jobs: PeriodicJobs, job: FleetJob, opts: FleetJobOptions): Periodic {
  const clock = opts.clock ?? backgroundClock;
  const log = opts.logger;
  const leaseMs = job.leaseMs ?? defaultLeaseMs(job.periodMs);
  const abort = new AbortController();
  const observe = (outcome: JobOutcome, seconds?: number) => opts.observer?.attempt(job.name, outcome, seconds);

  /** Renews the claim every third of the lease until `done` aborts. */
  const keepLease = async (claim: JobClaim, done: AbortSignal) => {
    for (;;) {
      await clock.sleep(leaseMs / 3, done);
      if (done.aborted) return;
      try {
        if (!(await jobs.renew(job.name, claim, leaseMs))) {
          log.warn(
            { job: job.name },
            'periodic job: lost the claim while its pass ran (lease ran out); another replica has it',
          );
          return;
        }
      } catch (e) {
        log.warn({ job: job.name, err: (e as Error).message }, 'periodic job: could not renew the lease');
      }
    }
  };

  /** One turn: claim, and run the pass if claimed. Returns how long to wait before the next turn. */
  const turn = async (): Promise<number> => {
    let got: JobClaim | { dueInMs: number };
    try {
      got = await jobs.claim(job.name, leaseMs);
    } catch (e) {
      observe('failed');
      log.warn({ job: job.name, err: (e as Error).message }, 'periodic job: could not claim; next period');
      return job.periodMs;
    }
    if ('dueInMs' in got) {
      observe('skipped');
      return Math.min(job.periodMs, got.dueInMs + DUE_MARGIN_MS);
    }
    const claim = got;
    const started = clock.now();
    const passDone = new AbortController();
    const renewing = keepLease(claim, passDone.signal);
    let result: unknown;
    let ok = false;
    try {
      result = await job.pass();
      ok = true;
    } catch (e) {
      log.warn({ job: job.name, err: (e as Error).message }, 'periodic job: pass failed; next period');
    } finally {
      passDone.abort();
      await renewing;
    }
    observe(ok ? 'ran' : 'failed', (clock.now() - started) / 1000);
    try {
      const held = await jobs.finish(job.name, claim, job.periodMs, job.publish && ok ? result : undefined);
      if (!held) log.warn({ job: job.name }, 'periodic job: the claim was lost before the pass ended');
    } catch (e) {
      // The claim then ends when its lease runs out: another replica may run the job a lease from now.
      log.warn({ job: job.name, err: (e as Error).message }, 'periodic job: could not record the end of the pass');
    }
    return job.periodMs;
  };

  const loop = async () => {
    let wait = job.atStart ? 0 : job.periodMs;
    while (!abort.signal.aborted) {
      if (wait > 0) await clock.sleep(wait, abort.signal);
      if (abort.signal.aborted) return;
      wait = await turn();
    }
  };
  const running = loop();
  return {
    async stop() {
      abort.abort();
      await running;
    },
  };
}
