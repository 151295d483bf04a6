import { effectiveHealth } from '../../driver/agent-sync.ts';
import type { RotationStatus } from '../../driver/host-secrets.ts';
import type { Attachment, Host, Volume } from '../../driver/model.ts';
import type { DhchapPair } from '../../driver/ports.ts';
import type { Schema } from '../wire.ts';

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export const presentVolume = (v: Volume): Schema<'Volume'> => ({
  id: v.id,
  name: v.name,
  size_gb: v.sizeGb,
  replicas: v.replicas,
  multiattach: v.multiattach,
  status: v.status,
  backend_uuid: v.backendUuid,
  created_at: v.createdAt.toISOString(),
  updated_at: v.updatedAt.toISOString(),
});

export const presentAttachment = (a: Attachment, now = new Date()): Schema<'Attachment'> => ({
  id: a.id,
  volume_id: a.volumeId,
  host_nqn: a.hostNqn,
  host: a.hostName,
  instance_uuid: a.instanceUuid,
  status: a.status,
  multipath_mode: a.multipathMode,
  connection_info: a.connectionInfo,
  connector: a.connector,
  created_at: a.createdAt.toISOString(),
  updated_at: a.updatedAt.toISOString(),
  detached_at: iso(a.detachedAt),
  /** When the portals in `connection_info` last changed (attach, or the backend moved them). */
  portals_changed_at: iso(a.portalsChangedAt),
  force: a.detachForce,
  /** Who connects the device on the host: the Portalis agent, or the host itself (os-brick). */
  connected_by: a.connectedBy,
  /** Host-connected: the portals the host was handed at its last initialize_connection. */
  host_portals: a.hostPortals,
  /** The agent's last report's health; `unknown` before the first or when older than 180 s. */
  health: effectiveHealth(a.report, now),
  agent: a.report
    ? {
        state: a.report.state,
        device_path: a.report.devicePath,
        size_bytes: a.report.sizeBytes,
        health: a.report.health,
        paths: a.report.paths,
        error: a.report.error,
        reported_at: a.report.reportedAt.toISOString(),
      }
    : null,
});

export const presentHost = (h: Host): Schema<'Host'> => ({
  nqn: h.nqn,
  name: h.name,
  connector: h.connector,
  token_issued_at: iso(h.tokenIssuedAt),
  registered_at: iso(h.registeredAt),
  last_seen_at: iso(h.lastSeenAt),
  agent_version: h.agentVersion ?? null,
});

/** Where a host's secrets stand; the secrets themselves never leave through the admin API. */
export const presentSecretStatus = (r: RotationStatus): Schema<'HostSecretStatus'> => ({
  host_nqn: r.hostNqn,
  generation: r.state?.generation ?? 0,
  next_generation: r.state?.nextGeneration ?? null,
  step: r.state ? r.state.step : 'none',
  waiting_for: r.waitingFor,
  last_error: r.state?.lastError ?? null,
  updated_at: iso(r.state?.updatedAt ?? null),
});

/** A generation of secrets on the agent's channel, to its own host only. */
export const presentDhchapPair = (p: DhchapPair): Schema<'DhchapPair'> => ({
  generation: p.generation,
  host_secret: p.hostSecret,
  ctrl_secret: p.ctrlSecret,
});
