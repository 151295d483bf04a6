import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Knex } from 'knex';
import type { SharedCapacity } from '../driver/get-capabilities.ts';
import type { JobClaim, PeriodicJobs } from '../driver/ports.ts';

/** `now() + ms`, with `ms` a bound parameter. */
const FROM_NOW = `now() + make_interval(secs => ?::float8 / 1000)`;

/**
 * `PeriodicJobs` on the `periodic_jobs` table (migration 20261207120000). Each method is one
 * autocommitted statement on the pool: nothing is held between a claim and the end of its pass.
 * Times are the database's `now()`, so the replicas' clocks never matter.
 */
export class PgPeriodicJobs implements PeriodicJobs {
  /** Who claims, as `periodic_jobs.owner` shows it: host, process, and a nonce per instance. */
  readonly owner: string;

  constructor(
    private readonly db: Knex,
    owner?: string,
  ) {
    this.owner = owner ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  }

  async claim(job: string, leaseMs: number): Promise<JobClaim | { dueInMs: number }> {
    // The first claim of a job creates its row. Of concurrent claims, PostgreSQL lets one update
    // the row; the others wait for its commit, re-check the WHERE on the new row and update nothing.
    const claimed = (await this.db.raw(
      `INSERT INTO periodic_jobs AS j (name, owner, token, due_at, claimed_at)
            VALUES (?, ?, 1, ${FROM_NOW}, now())
       ON CONFLICT (name) DO UPDATE
               SET owner = excluded.owner, token = j.token + 1, due_at = excluded.due_at, claimed_at = now()
             WHERE j.due_at <= now()
         RETURNING token::text AS token`,
      [job, this.owner, leaseMs],
    )) as { rows: { token: string }[] };
    const row = claimed.rows[0];
    if (row) return { token: row.token };
    const due = (await this.db.raw(
      `SELECT greatest(0, extract(epoch FROM due_at - now()) * 1000)::float8 AS ms FROM periodic_jobs WHERE name = ?`,
      [job],
    )) as { rows: { ms: number }[] };
    return { dueInMs: due.rows[0]?.ms ?? 0 };
  }

  async renew(job: string, claim: JobClaim, leaseMs: number): Promise<boolean> {
    const r = (await this.db.raw(
      `UPDATE periodic_jobs SET due_at = ${FROM_NOW} WHERE name = ? AND token = ?::bigint AND owner = ?`,
      [leaseMs, job, claim.token, this.owner],
    )) as { rowCount: number };
    return r.rowCount === 1;
  }

  async finish(job: string, claim: JobClaim, periodMs: number, result?: unknown): Promise<boolean> {
    const keep = result === undefined ? '' : ', result = ?::jsonb';
    const r = (await this.db.raw(
      `UPDATE periodic_jobs SET due_at = ${FROM_NOW}, finished_at = now()${keep}
        WHERE name = ? AND token = ?::bigint AND owner = ?`,
      [periodMs, ...(result === undefined ? [] : [JSON.stringify(result)]), job, claim.token, this.owner],
    )) as { rowCount: number };
    return r.rowCount === 1;
  }

  async lastResult(job: string): Promise<{ value: unknown; ageMs: number } | null> {
    const r = (await this.db.raw(
      `SELECT result, extract(epoch FROM now() - finished_at) * 1000 AS ms
         FROM periodic_jobs WHERE name = ? AND result IS NOT NULL AND finished_at IS NOT NULL`,
      [job],
    )) as { rows: { result: unknown; ms: string | number }[] };
    const row = r.rows[0];
    return row ? { value: row.result, ageMs: Math.max(0, Number(row.ms)) } : null;
  }
}

/** The capacity figures a fleet job published (`{totalGb, freeGb}`, each GiB or null), as `CapabilitiesCache` reads them. */
export function sharedCapacity(jobs: PeriodicJobs, job: string): SharedCapacity {
  const gb = (v: unknown): v is number | null => v === null || (typeof v === 'number' && Number.isFinite(v));
  return async () => {
    const last = await jobs.lastResult(job);
    const c = last?.value as { totalGb?: unknown; freeGb?: unknown } | null | undefined;
    if (!last || !c || typeof c !== 'object' || !gb(c.totalGb) || !gb(c.freeGb)) return null;
    return { capacity: { totalGb: c.totalGb, freeGb: c.freeGb }, ageMs: last.ageMs };
  };
}
