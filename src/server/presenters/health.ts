import type { AttachmentEvent, HealthCounts, HealthMatrix } from '../../driver/model.ts';
import type { Schema } from '../wire.ts';

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export const presentEvent = (e: AttachmentEvent): Schema<'AttachmentEvent'> => ({
  id: e.id,
  at: e.at.toISOString(),
  from: { state: e.fromState, health: e.fromHealth },
  to: { state: e.toState, health: e.toHealth },
  paths: e.paths,
  error: e.error,
});

const presentCounts = (c: HealthCounts): Schema<'HealthCounts'> => ({ ...c });

export const presentMatrix = (m: HealthMatrix, page: { offset: number; limit: number }): Schema<'HealthMatrix'> => ({
  generated_at: m.generatedAt.toISOString(),
  summary: presentCounts(m.summary),
  volume_summary: presentCounts(m.volumeSummary),
  volumes: m.volumes.map((v) => ({
    volume_id: v.volumeId,
    health: v.health,
    counts: presentCounts(v.counts),
    hosts: v.cells.map((c) => ({
      host_nqn: c.hostNqn,
      host: c.hostName,
      attachment_id: c.attachmentId,
      /** The agent's reported state (connecting, connected, …), null before the first report. */
      state: c.agentState,
      connected_by: c.connectedBy,
      health: c.health,
      reported_health: c.reportedHealth,
      multipath_mode: c.multipathMode,
      device_path: c.devicePath,
      paths_total: c.pathsTotal,
      paths_live: c.pathsLive,
      reported_at: iso(c.reportedAt),
      since: c.since.toISOString(),
      host_stale: c.hostStale,
      error: c.error,
    })),
  })),
  hosts: m.hosts.map((h) => ({
    host_nqn: h.hostNqn,
    host: h.hostName,
    health: h.health,
    counts: presentCounts(h.counts),
    last_seen_at: iso(h.lastSeenAt),
    stale: h.stale,
  })),
  page: {
    offset: page.offset,
    limit: page.limit,
    total_volumes: m.totalVolumes,
    total_cells: m.totalCells,
    next_offset: page.offset + m.volumes.length < m.totalVolumes ? page.offset + m.volumes.length : null,
  },
});
