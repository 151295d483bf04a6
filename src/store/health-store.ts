import type { Knex } from 'knex';
import {
  type AgentState,
  type AttachmentEvent,
  CELL_HEALTH_ORDER,
  type CellHealth,
  type ConnectedBy,
  type HealthCell,
  type HealthCounts,
  type HealthMatrix,
  type MultipathMode,
  type PathHealth,
  type PathStatus,
} from '../driver/model.ts';
import type { HealthMatrixQuery, HealthStore } from '../driver/ports.ts';

interface EventRow {
  id: string | number;
  attachment_id: string;
  at: Date;
  from_state: string | null;
  to_state: string;
  from_health: string | null;
  to_health: string | null;
  paths: PathStatus[];
  error: { code: string; message: string } | null;
}

const toEvent = (r: EventRow): AttachmentEvent => ({
  id: Number(r.id),
  attachmentId: r.attachment_id,
  at: r.at,
  fromState: r.from_state as AgentState | null,
  toState: r.to_state as AgentState,
  fromHealth: r.from_health as PathHealth | null,
  toHealth: r.to_health as PathHealth | null,
  paths: r.paths,
  error: r.error,
});

/** JSON built by PostgreSQL: timestamps arrive as text. */
interface CellJson {
  id: string;
  volume_id: string;
  host_nqn: string;
  host_name: string;
  multipath_mode: string;
  connected_by: string;
  agent_state: string | null;
  reported_health: string | null;
  device_path: string | null;
  paths_live: number;
  paths_total: number;
  reported_at: string | null;
  since: string;
  host_stale: boolean;
  agent_error: { code: string; message: string } | null;
  cell: CellHealth;
}

type CountCols = Record<CellHealth, number>;

interface MatrixRow {
  summary: CountCols;
  volume_summary: CountCols;
  total_volumes: number;
  total_cells: number;
  hosts: (CountCols & { host_nqn: string; host_name: string; last_seen_at: string | null; stale: boolean })[];
  volumes: (CountCols & { volume_id: string })[];
  cells: CellJson[];
}

const counts = (c: CountCols): HealthCounts => ({
  optimal: Number(c.optimal),
  degraded: Number(c.degraded),
  failed: Number(c.failed),
  unknown: Number(c.unknown),
  detached: Number(c.detached),
  pending: Number(c.pending),
});

/** The worst state with a non-zero count (optimal for none at all). */
export const worstOf = (c: HealthCounts): CellHealth => CELL_HEALTH_ORDER.find((h) => c[h] > 0) ?? 'optimal';

const COUNT_COLS = `
  count(*) FILTER (WHERE cell = 'optimal')::int AS optimal,
  count(*) FILTER (WHERE cell = 'degraded')::int AS degraded,
  count(*) FILTER (WHERE cell = 'failed')::int AS failed,
  count(*) FILTER (WHERE cell = 'unknown')::int AS unknown,
  count(*) FILTER (WHERE cell = 'detached')::int AS detached,
  count(*) FILTER (WHERE cell = 'pending')::int AS pending`;

/**
 * A live attachment's cell state (alias `a`), with `:cutoff` the time before which a report is
 * stale. Shared by the matrix and the metrics, so that both say the same.
 */
export const CELL_STATE_SQL = `CASE
           WHEN a.reported_at IS NULL OR a.agent_state IN ('connecting', 'awaiting_host') THEN 'pending'
           WHEN a.reported_at < :cutoff THEN 'unknown'
           WHEN a.agent_state = 'connected' THEN coalesce(a.health, 'unknown')
           WHEN a.agent_state = 'host_detached' THEN 'detached'
           ELSE 'failed'
         END`;

/**
 * The whole matrix in one statement: the cells of the live attachments (served by the partial
 * index `attachments_live_matrix`, or `attachments_host_nqn_status_index` with a host filter),
 * their state computed from the report's age, then the counts, the roll-ups and one page of
 * volumes, all as one JSON row.
 */
const MATRIX_SQL = `
WITH c AS (
  SELECT a.id, a.volume_id, a.host_nqn, a.host_name, a.multipath_mode, a.connected_by, a.agent_state,
         a.health AS reported_health, a.device_path, a.reported_at, a.agent_error,
         h.last_seen_at,
         coalesce(jsonb_array_length(a.paths), 0) AS paths_total,
         (SELECT count(*)::int FROM jsonb_array_elements(coalesce(a.paths, '[]'::jsonb)) p
           WHERE p->>'state' = 'live') AS paths_live,
         (h.last_seen_at IS NULL OR h.last_seen_at < :cutoff) AS host_stale,
         ${CELL_STATE_SQL} AS cell,
         a.created_at, a.health_since
    FROM attachments a
    LEFT JOIN hosts h ON h.nqn = a.host_nqn
   WHERE a.status IN ('attaching', 'attached')
     AND (:volume::uuid IS NULL OR a.volume_id = :volume::uuid)
     AND (:host::text IS NULL OR a.host_nqn = :host::text)
), f AS (
  SELECT c.*,
         CASE
           WHEN cell = 'pending' THEN coalesce(health_since, created_at)
           WHEN cell = 'unknown' AND reported_at < :cutoff THEN reported_at + (:staleMs::int * interval '1 millisecond')
           ELSE coalesce(health_since, reported_at)
         END AS since
    FROM c
   WHERE :states::text[] IS NULL OR cell = ANY(:states::text[])
), v AS (
  SELECT volume_id, ${COUNT_COLS},
         max(CASE cell WHEN 'failed' THEN 5 WHEN 'unknown' THEN 4 WHEN 'degraded' THEN 3 WHEN 'detached' THEN 2
                       WHEN 'pending' THEN 1 ELSE 0 END) AS worst
    FROM f GROUP BY volume_id
), page AS (
  SELECT * FROM v
   ORDER BY CASE WHEN :worstFirst::boolean THEN -worst ELSE 0 END, volume_id
   LIMIT :limit OFFSET :offset
)
SELECT
  (SELECT row_to_json(s) FROM (SELECT ${COUNT_COLS} FROM f) s) AS summary,
  (SELECT row_to_json(s) FROM (
     SELECT count(*) FILTER (WHERE worst = 0)::int AS optimal, count(*) FILTER (WHERE worst = 1)::int AS pending,
            count(*) FILTER (WHERE worst = 2)::int AS detached, count(*) FILTER (WHERE worst = 3)::int AS degraded,
            count(*) FILTER (WHERE worst = 4)::int AS unknown, count(*) FILTER (WHERE worst = 5)::int AS failed
       FROM v) s) AS volume_summary,
  (SELECT count(*)::int FROM v) AS total_volumes,
  (SELECT count(*)::int FROM f) AS total_cells,
  (SELECT coalesce(json_agg(h ORDER BY h.host_name, h.host_nqn), '[]') FROM (
     SELECT host_nqn, max(host_name) AS host_name, max(last_seen_at) AS last_seen_at, bool_or(host_stale) AS stale,
            ${COUNT_COLS}
       FROM f GROUP BY host_nqn) h) AS hosts,
  (SELECT coalesce(json_agg(p ORDER BY CASE WHEN :worstFirst::boolean THEN -p.worst ELSE 0 END, p.volume_id), '[]')
     FROM page p) AS volumes,
  (SELECT coalesce(json_agg(x ORDER BY x.volume_id, x.host_name, x.id), '[]') FROM (
     SELECT f.id, f.volume_id, f.host_nqn, f.host_name, f.multipath_mode, f.connected_by, f.agent_state,
            f.reported_health,
            f.device_path, f.paths_live, f.paths_total, f.reported_at, f.since, f.host_stale, f.agent_error, f.cell
       FROM f JOIN page USING (volume_id)) x) AS cells
`;

export class PgHealthStore implements HealthStore {
  constructor(private readonly db: Knex) {}

  async attachmentEvents(attachmentId: string, limit: number): Promise<AttachmentEvent[]> {
    const rows = (await this.db('attachment_events')
      .where({ attachment_id: attachmentId })
      .orderBy([
        { column: 'at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .limit(limit)) as EventRow[];
    return rows.map(toEvent);
  }

  async pruneEvents(before: Date): Promise<number> {
    return this.db('attachment_events').where('at', '<', before).delete();
  }

  async healthMatrix(q: HealthMatrixQuery, now: Date): Promise<HealthMatrix> {
    const res = await this.db.raw(MATRIX_SQL, {
      cutoff: new Date(now.getTime() - q.staleMs),
      staleMs: q.staleMs,
      volume: q.volumeId ?? null,
      host: q.hostNqn ?? null,
      states: q.health && q.health.length > 0 ? q.health : null,
      worstFirst: q.order === 'worst',
      limit: q.limit,
      offset: q.offset,
    });
    const row = (res as { rows: MatrixRow[] }).rows[0]!;
    const byVolume = new Map<string, HealthCell[]>();
    for (const c of row.cells) {
      const cell: HealthCell = {
        attachmentId: c.id,
        volumeId: c.volume_id,
        hostNqn: c.host_nqn,
        hostName: c.host_name,
        health: c.cell,
        connectedBy: c.connected_by as ConnectedBy,
        agentState: c.agent_state as AgentState | null,
        reportedHealth: c.reported_health as PathHealth | null,
        multipathMode: c.multipath_mode as MultipathMode,
        devicePath: c.device_path,
        pathsLive: c.paths_live,
        pathsTotal: c.paths_total,
        reportedAt: c.reported_at === null ? null : new Date(c.reported_at),
        since: new Date(c.since),
        hostStale: c.host_stale,
        error: c.agent_error,
      };
      byVolume.set(c.volume_id, [...(byVolume.get(c.volume_id) ?? []), cell]);
    }
    return {
      generatedAt: now,
      summary: counts(row.summary),
      volumeSummary: counts(row.volume_summary),
      totalVolumes: row.total_volumes,
      totalCells: row.total_cells,
      volumes: row.volumes.map((v) => {
        const k = counts(v);
        return { volumeId: v.volume_id, health: worstOf(k), counts: k, cells: byVolume.get(v.volume_id) ?? [] };
      }),
      hosts: row.hosts.map((h) => {
        const k = counts(h);
        return {
          hostNqn: h.host_nqn,
          hostName: h.host_name,
          health: worstOf(k),
          counts: k,
          lastSeenAt: h.last_seen_at === null ? null : new Date(h.last_seen_at),
          stale: h.stale,
        };
      }),
    };
  }
}
