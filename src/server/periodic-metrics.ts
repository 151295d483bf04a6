import client from 'prom-client';
import type { JobObserver, JobOutcome } from '../driver/fleet-jobs.ts';

/**
 * This replica's share of the fleet's periodic jobs, on `registry` (the service's): one series per
 * job and outcome, so a fixed handful whatever the fleet's size.
 * - `portalis_periodic_runs_total{job, outcome}`: claim attempts; `ran` (this replica ran the pass
 *   and it succeeded), `skipped` (not due: another replica ran it this period or is running it),
 *   `failed` (the claim or the pass failed).
 * - `portalis_periodic_pass_duration_seconds{job}`: the passes this replica ran, failed ones included.
 */
export function periodicJobMetrics(registry: client.Registry, jobs: readonly string[]): JobObserver {
  const registers = [registry];
  const runs = new client.Counter({
    name: 'portalis_periodic_runs_total',
    help: 'Periodic job claim attempts of this replica by job and outcome (ran, skipped: another replica has it, failed)',
    labelNames: ['job', 'outcome'],
    registers,
  });
  const duration = new client.Histogram({
    name: 'portalis_periodic_pass_duration_seconds',
    help: 'Duration of the periodic job passes this replica ran, by job',
    labelNames: ['job'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers,
  });
  // Every series from the start, at 0: a replica that never ran a job says so.
  for (const job of jobs) {
    for (const outcome of ['ran', 'skipped', 'failed'] satisfies JobOutcome[]) runs.inc({ job, outcome }, 0);
    duration.zero({ job });
  }
  return {
    attempt(job, outcome, seconds) {
      runs.inc({ job, outcome });
      if (seconds !== undefined) duration.observe({ job }, seconds);
    },
  };
}
