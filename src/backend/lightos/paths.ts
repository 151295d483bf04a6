/**
 * Which portals reach a volume, optimized first.
 *
 * With the simulator's `replicaPlacement` extension the answer is exact: every replica node,
 * optimized first, then non-optimized, then the others. A replica whose node is down (or whose
 * state is inaccessible) is still listed, last and as `inaccessible`: a host attached now must
 * connect it once it is back, or it would stay with fewer paths for good. A real LightOS does
 * not report placement or per-node ANA state (its hosts learn ANA from the target itself, and the
 * Cinder driver hands out every node); then every node is a path, Active ones as `unknown` in
 * the order the API listed them, the others last as `inaccessible`.
 */
import type { AnaState, VolumePath } from '../../driver/model.ts';
import type { PlacementEntry, WireNode } from './parse.ts';

const RANK: Record<string, number> = { optimized: 0, 'non-optimized': 1, unknown: 2, change: 3 };
const rank = (s: string): number => RANK[s] ?? 4;

type Reachable = WireNode & { endpoint: { address: string; port: number } };

export function orderPaths(
  nodes: WireNode[],
  placement: PlacementEntry[] | undefined,
  onBadEndpoint: (node: WireNode) => void = () => {},
): VolumePath[] {
  const withEndpoint = (n: WireNode | undefined): n is Reachable => {
    if (!n) return false;
    if (!n.endpoint) onBadEndpoint(n);
    return Boolean(n.endpoint);
  };
  const path = (n: Reachable, anaState: AnaState): VolumePath => ({
    nodeId: n.uuid,
    portal: { address: n.endpoint.address, port: n.endpoint.port, transport: 'tcp' },
    anaState: n.active ? anaState : 'inaccessible',
  });

  const entries: { node: Reachable; ana: AnaState; order: number }[] = [];
  if (!placement) {
    nodes.forEach((n, order) => withEndpoint(n) && entries.push({ node: n, ana: 'unknown', order }));
  } else {
    const byId = new Map(nodes.map((n) => [n.uuid, n]));
    placement.forEach((p, order) => {
      const node = byId.get(p.nodeUuid);
      if (withEndpoint(node)) entries.push({ node, ana: p.anaState as AnaState, order });
    });
  }
  return entries
    .map((e) => ({ ...e, p: path(e.node, e.ana) }))
    .sort((a, b) => rank(a.p.anaState) - rank(b.p.anaState) || a.order - b.order)
    .map((e) => e.p);
}
