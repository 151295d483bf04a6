/** What the daemon keeps per attachment of its host, between the service's list and the kernel. */
import { atPortals, hostPortalSpecs } from './assist.ts';
import { portalKey } from './portals.ts';
import type { AttachSpec, PortalSpec } from './connection-data.ts';
import type { WireAttachment } from './service-client.ts';

export interface Tracked {
  att: WireAttachment;
  /** The connection info, parsed once when this version arrived; null when it could not be. */
  spec: AttachSpec | null;
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
  /** Host-connected: the last pass found the host had let go of the device. */
  hostDetached?: boolean;
  /** Host-connected: when the agent first saw a controller of the host's, before the device was reported. */
  hostConnectingSince?: number;
}

/** Whether the host, not the agent, connects this attachment (docs/DECISIONS.md). */
export const hostConnected = (t: Tracked): boolean => t.att.connected_by === 'host';

/** A new version of an attachment, carrying over what the daemon learned of the old one. */
export function track(att: WireAttachment, spec: AttachSpec | null, old: Tracked | undefined, now: number): Tracked {
  return {
    att,
    spec,
    settled: false,
    stale: stale(att, spec, old),
    receivedAt: now,
    hostPortals: spec ? hostPortalSpecs(spec, att.host_portals) : [],
    hostSeen: old?.hostSeen,
    hostPruned: old?.hostPruned,
    hostConnectingSince: old?.hostConnectingSince,
  };
}

/**
 * What another attachment needs kept on this host: its current portals and, for a
 * host-connected one, also the portals the host connected (the host's controllers stay there
 * even after the service moved the volume away).
 */
export function neededBy(t: Tracked): AttachSpec[] {
  if (!t.spec) return [];
  if (!hostConnected(t)) return [t.spec];
  return [t.spec, atPortals(t.spec, t.hostPortals)];
}

/** Whether `p` is one of the portals the host was handed (its own controllers are there). */
export function isHostPortal(t: Tracked, p: PortalSpec): boolean {
  return t.hostPortals.some((h) => portalKey(h) === portalKey(p));
}

/**
 * The same volume is still wanted on this host through another attachment (another instance of
 * a multiattach volume, or a re-attach that overtook this teardown): its device must stay.
 */
export function stillWanted(spec: AttachSpec, others: AttachSpec[]): boolean {
  return others.some((o) => o.volUuid === spec.volUuid);
}

/**
 * Portals to prune: those earlier connection info had and this one no longer lists, and for a
 * host-connected attachment also the host's own that the service no longer lists (an agent
 * started after the portals moved never saw the earlier info; a dead controller there would
 * block the new portal's connect with a duplicate cntlid).
 */
function stale(att: WireAttachment, spec: AttachSpec | null, old: Tracked | undefined): PortalSpec[] {
  const out = stalePortals(old, spec);
  if (att.connected_by !== 'host' || !spec) return out;
  const current = new Set(spec.targets.flatMap((t) => t.portals).map(portalKey));
  const known = new Set(out.map(portalKey));
  for (const p of hostPortalSpecs(spec, att.host_portals))
    if (!current.has(portalKey(p)) && !known.has(portalKey(p))) out.push(p);
  return out;
}

/** Portals the previous info (and its own leftovers) had that `next` no longer lists. */
function stalePortals(old: Tracked | undefined, next: AttachSpec | null): PortalSpec[] {
  if (!old?.spec || !next) return old?.stale ?? [];
  const portals = (s: AttachSpec) => s.targets.flatMap((t) => t.portals);
  const keep = new Set(portals(next).map(portalKey));
  const out = new Map<string, PortalSpec>();
  for (const p of [...old.stale, ...portals(old.spec)]) if (!keep.has(portalKey(p))) out.set(portalKey(p), p);
  return [...out.values()];
}
