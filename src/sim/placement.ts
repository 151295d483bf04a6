/**
 * Replica placement and per-node ANA state: pure functions over the cluster's nodes and volumes.
 *
 * LightOS serves every volume from all nodes of the cluster subsystem; the node holding the
 * primary replica answers ANA `optimized`, the other replicas `non-optimized`, and nodes without
 * a replica `inaccessible`. When the primary's node fails, LightOS promotes a surviving replica,
 * so the optimized path moves. This simulator does NOT fail back: a recovered node rejoins as a
 * non-optimized replica and the primary stays where it moved (LightOS only moves primaries on
 * failure or rebalancing, and an automatic failback would flap the host's paths twice).
 */
import type { AnaState } from '../driver/model.ts';
import type { SimNode, SimVolume } from './model.ts';

/**
 * Chooses `replicaCount` distinct nodes, least-loaded first (replicas per node), preferring
 * nodes that are up, ties broken by node index; the primary is the chosen up node carrying the
 * fewest primaries. Callers guarantee `replicaCount <= nodes.length`.
 */
export function choosePlacement(
  nodes: readonly SimNode[],
  volumes: Iterable<SimVolume>,
  replicaCount: number,
): { replicas: string[]; primary: string } {
  const load = new Map<string, number>(nodes.map((n) => [n.uuid, 0]));
  const primaries = new Map<string, number>(nodes.map((n) => [n.uuid, 0]));
  for (const v of volumes) {
    for (const r of v.replicas) load.set(r, (load.get(r) ?? 0) + 1);
    primaries.set(v.primary, (primaries.get(v.primary) ?? 0) + 1);
  }
  const ranked = [...nodes].sort(
    (a, b) => Number(b.up) - Number(a.up) || (load.get(a.uuid) ?? 0) - (load.get(b.uuid) ?? 0) || a.index - b.index,
  );
  const chosen = ranked.slice(0, replicaCount);
  const upChosen = chosen.filter((n) => n.up);
  const pool = upChosen.length > 0 ? upChosen : chosen;
  let primary = pool[0];
  for (const n of pool) {
    if ((primaries.get(n.uuid) ?? 0) < (primaries.get(primary.uuid) ?? 0)) primary = n;
  }
  return { replicas: chosen.map((n) => n.uuid), primary: primary.uuid };
}

/**
 * The primary after a node state change: unchanged while its node is up (no failback),
 * else the first surviving replica in placement order, else unchanged (no optimized path).
 */
export function electPrimary(nodes: readonly SimNode[], vol: SimVolume): string {
  const up = new Set(nodes.filter((n) => n.up).map((n) => n.uuid));
  if (up.has(vol.primary)) return vol.primary;
  return vol.replicas.find((r) => up.has(r)) ?? vol.primary;
}

/** The volume's ANA state on every node, keyed by node UUID. */
export function anaStates(nodes: readonly SimNode[], vol: SimVolume): Record<string, AnaState> {
  const out: Record<string, AnaState> = {};
  for (const n of nodes) {
    if (!n.up || !vol.replicas.includes(n.uuid)) out[n.uuid] = 'inaccessible';
    else out[n.uuid] = n.uuid === vol.primary ? 'optimized' : 'non-optimized';
  }
  return out;
}

/** LightOS `protectionState`: all replicas up, some, or none. */
export function protectionState(
  nodes: readonly SimNode[],
  vol: SimVolume,
): 'FullyProtected' | 'Degraded' | 'NotAvailable' {
  const up = vol.replicas.filter((r) => nodes.find((n) => n.uuid === r)?.up).length;
  if (up === vol.replicas.length) return 'FullyProtected';
  return up > 0 ? 'Degraded' : 'NotAvailable';
}
