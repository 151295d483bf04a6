import type { Knex } from 'knex';
import { CELL_HEALTH_ORDER, type HealthCounts } from '../driver/model.ts';
import { CELL_STATE_SQL } from './health-store.ts';

/** What the service's gauges read at scrape time (from the database and the pool). */
export interface MetricsSources {
  /** Attachments by status. */
  attachmentsByStatus(): Promise<Record<string, number>>;
  /** Paths of live attachments' latest reports, by controller state and by ANA state. */
  pathsByState(): Promise<{ state: Record<string, number>; ana: Record<string, number> }>;
  /**
   * The health matrix's counts (every state, 0 included): live attachments by cell state, and
   * volumes with a live attachment by their worst cell. Never per host or per volume: the series
   * stay the same few whatever the fleet's size (docs/health.md).
   */
  healthCounts(): Promise<{ cells: HealthCounts; volumes: HealthCounts }>;
  /** Hosts whose agent has contacted the service at all, and of those the ones silent for the stale time. */
  agents(): Promise<{ seen: number; stale: number }>;
  /** The database pool: connections handed out, idle, and callers waiting for one. */
  pool(): { used: number; waiting: number; free: number };
}

interface TarnPool {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
}

/**
 * The gauges' figures, read from PostgreSQL at scrape time (each a single grouped query) on `db`,
 * and the occupancy of `lockPool`, the pool volume operations hold (default: `db`). The service
 * reads on a pool no lock holder uses, so that a scrape answers while every lock holder waits on
 * the backend, and reports the lock holders' pool, the one that runs out.
 */
export function pgMetricsSources(db: Knex, staleMs: number, lockPool: Knex = db): MetricsSources {
  return {
    async attachmentsByStatus() {
      const rows = (await db('attachments').select('status').count({ n: '*' }).groupBy('status')) as {
        status: string;
        n: string;
      }[];
      return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
    },
    async pathsByState() {
      const res = (await db.raw(`
        SELECT p->>'state' AS state, coalesce(p->>'ana_state', 'none') AS ana, count(*)::int AS n
          FROM attachments a, jsonb_array_elements(coalesce(a.paths, '[]'::jsonb)) p
         WHERE a.status IN ('attaching', 'attached')
         GROUP BY 1, 2`)) as { rows: { state: string; ana: string; n: number }[] };
      const state: Record<string, number> = {};
      const ana: Record<string, number> = {};
      for (const r of res.rows) {
        state[r.state] = (state[r.state] ?? 0) + r.n;
        ana[r.ana] = (ana[r.ana] ?? 0) + r.n;
      }
      return { state, ana };
    },
    async healthCounts() {
      // The worst cell of a volume: the first of CELL_HEALTH_ORDER (worst first) among its cells.
      const res = (await db.raw(
        `WITH c AS (
           SELECT a.volume_id, ${CELL_STATE_SQL} AS cell FROM attachments a WHERE a.status IN ('attaching', 'attached')
         ), o AS (SELECT string_to_array(:order, ',') AS o)
         SELECT 'cells' AS kind, cell AS health, count(*)::int AS n FROM c GROUP BY cell
         UNION ALL
         SELECT 'volumes', worst, count(*)::int FROM (
           SELECT (SELECT o FROM o)[min(array_position((SELECT o FROM o), cell))] AS worst FROM c GROUP BY volume_id
         ) v GROUP BY worst`,
        { cutoff: new Date(Date.now() - staleMs), order: CELL_HEALTH_ORDER.join(',') },
      )) as { rows: { kind: 'cells' | 'volumes'; health: keyof HealthCounts; n: number }[] };
      const zero = () => Object.fromEntries(CELL_HEALTH_ORDER.map((h) => [h, 0])) as HealthCounts;
      const out = { cells: zero(), volumes: zero() };
      for (const r of res.rows) out[r.kind][r.health] = r.n;
      return out;
    },
    async agents() {
      const res = (await db.raw(
        `SELECT count(*) FILTER (WHERE last_seen_at IS NOT NULL)::int AS seen,
                count(*) FILTER (WHERE last_seen_at < now() - (?::int * interval '1 millisecond'))::int AS stale
           FROM hosts`,
        [staleMs],
      )) as { rows: { seen: number; stale: number }[] };
      return res.rows[0]!;
    },
    pool() {
      // knex creates its tarn pool lazily, and a destroyed knex has none.
      const p = (lockPool.client as { pool?: TarnPool | null }).pool;
      return p
        ? { used: p.numUsed(), free: p.numFree(), waiting: p.numPendingAcquires() }
        : { used: 0, free: 0, waiting: 0 };
    },
  };
}
