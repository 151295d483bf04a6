import type { Knex } from 'knex';
import { CELL_STATE_SQL } from './health-store.ts';

/** What the service's gauges read at scrape time (from the database and the pool). */
export interface MetricsSources {
  /** Attachments by status. */
  attachmentsByStatus(): Promise<Record<string, number>>;
  /** Paths of live attachments' latest reports, by controller state and by ANA state. */
  pathsByState(): Promise<{ state: Record<string, number>; ana: Record<string, number> }>;
  /** Every live attachment's cell state (the health matrix's), by volume and host. */
  cells(): Promise<{ volumeId: string; hostNqn: string; hostName: string; health: string }[]>;
  /** Every host whose agent has contacted the service, with when it last did. */
  hostsLastSeen(): Promise<{ nqn: string; name: string; lastSeenAt: Date }[]>;
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
    async cells() {
      const res = (await db.raw(
        `SELECT a.volume_id, a.host_nqn, a.host_name, ${CELL_STATE_SQL} AS cell
           FROM attachments a WHERE a.status IN ('attaching', 'attached')`,
        { cutoff: new Date(Date.now() - staleMs) },
      )) as { rows: { volume_id: string; host_nqn: string; host_name: string; cell: string }[] };
      return res.rows.map((r) => ({
        volumeId: r.volume_id,
        hostNqn: r.host_nqn,
        hostName: r.host_name,
        health: r.cell,
      }));
    },
    async hostsLastSeen() {
      const rows = (await db('hosts').whereNotNull('last_seen_at').select('nqn', 'name', 'last_seen_at')) as {
        nqn: string;
        name: string;
        last_seen_at: Date;
      }[];
      return rows.map((r) => ({ nqn: r.nqn, name: r.name, lastSeenAt: r.last_seen_at }));
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
