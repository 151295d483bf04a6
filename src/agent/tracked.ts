/** What the daemon keeps per attachment of its host, between the service's list and the kernel. */
import type { ConnectionData } from '../driver/model.ts';
import { type PortalSpec, toAttachSpec } from './connection-data.ts';
import { hostPortalSpecs, portalKey } from './assist.ts';
import type { WireAttachment } from './service-client.ts';

export interface Tracked {
  att: WireAttachment;
  data: ConnectionData | null;
  /** Teardown finished (nothing kept) for this desired state; not repeated every pass. */
  settled: boolean;
  /** Portals an earlier connection info had and the current one no longer has: to prune. */
  stale: PortalSpec[];
  /** When this version of the attachment arrived (daemon clock). */
  receivedAt: number;
  /**
   * The last teardown pass was refused because the device is in use: later passes report only
   * their outcome, not a `disconnecting` that flips back to `error` on every retry.
   */
  refusedInUse?: boolean;
  /** Host-connected: the portals the host was handed (its controllers are the ones there). */
  hostPortals: PortalSpec[];
  /** Host-connected: the host's device was seen with a controller of the host's. */
  hostSeen?: boolean;
  /** Host-connected: the agent pruned a dead stale controller of the host's. */
  hostPruned?: boolean;
  /** Host-connected: the last pass found the host not connected yet (watched more often). */
  awaitingHost?: boolean;
}

/** Whether the host, not the agent, connects this attachment (docs/DECISIONS.md). */
export const hostConnected = (t: Tracked): boolean => t.att.connected_by === 'host';

/** A new version of an attachment, carrying over what the daemon learned of the old one. */
export function track(
  att: WireAttachment,
  data: ConnectionData | null,
  old: Tracked | undefined,
  now: number,
): Tracked {
  return {
    att,
    data,
    settled: false,
    stale: stalePortals(old, data),
    receivedAt: now,
    // Without the list (a service older than the rule, or a row without portals) every portal
    // of the connection counts as the host's: the agent then adds nothing and removes nothing.
    hostPortals: data ? hostPortalSpecs(data, att.host_portals?.length ? att.host_portals : data.portals) : [],
    hostSeen: old?.hostSeen,
    hostPruned: old?.hostPruned,
  };
}

/**
 * The connection data another attachment needs kept on this host: its current portals and, for a
 * host-connected one, also the portals the host connected (the host's controllers stay there even
 * after the service moved the volume away).
 */
export function neededBy(t: Tracked): ConnectionData[] {
  if (!t.data) return [];
  if (!hostConnected(t) || !t.att.host_portals?.length || t.data.portals === undefined) return [t.data];
  return [t.data, { ...t.data, portals: t.att.host_portals }];
}

/** Portals the previous info (and its own leftovers) had that `next` no longer lists. */
function stalePortals(old: Tracked | undefined, next: ConnectionData | null): PortalSpec[] {
  if (!old?.data || !next) return old?.stale ?? [];
  const portals = (d: ConnectionData) => {
    try {
      return toAttachSpec(d).targets.flatMap((t) => t.portals);
    } catch {
      return [];
    }
  };
  const keep = new Set(portals(next).map(portalKey));
  const out = new Map<string, PortalSpec>();
  for (const p of [...old.stale, ...portals(old.data)]) if (!keep.has(portalKey(p))) out.set(portalKey(p), p);
  return [...out.values()];
}
