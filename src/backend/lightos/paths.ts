/**
 * Which portals reach a volume, optimized first.
 *
 * With the simulator's `replicaPlacement` extension the answer is exact: the replica nodes that
 * are optimized, then non-optimized; inaccessible replicas and nodes that are not Active are
 * left out. A real LightOS does not report placement or per-node ANA state (its hosts learn
 * ANA from the target itself, and the Cinder driver hands out every node); then every Active
 * node is a path with anaState `unknown`, in the order the API listed them.
 */
import type { VolumePath } from '../../driver/model.ts';
import type { PlacementEntry, WireNode } from './parse.ts';

const RANK: Record<string, number> = { optimized: 0, 'non-optimized': 1 };

export function orderPaths(
  nodes: WireNode[],
  placement: PlacementEntry[] | undefined,
  onBadEndpoint: (node: WireNode) => void = () => {},
): VolumePath[] {
  const usable = (n: WireNode | undefined): n is WireNode & { endpoint: { address: string; port: number } } => {
    if (!n || !n.active) return false;
    if (!n.endpoint) onBadEndpoint(n);
    return Boolean(n.endpoint);
  };
  const path = (n: WireNode & { endpoint: { address: string; port: number } }, anaState: VolumePath['anaState']): VolumePath => ({
    nodeId: n.uuid,
    portal: { address: n.endpoint.address, port: n.endpoint.port, transport: 'tcp' },
    anaState,
  });

  if (!placement) {
    return nodes.filter(usable).map((n) => path(n, 'unknown'));
  }
  const byId = new Map(nodes.map((n) => [n.uuid, n]));
  return placement
    .filter((p) => p.anaState in RANK)
    .map((p, order) => ({ p, order, node: byId.get(p.nodeUuid) }))
    .filter((x): x is typeof x & { node: WireNode & { endpoint: { address: string; port: number } } } => usable(x.node))
    .sort((a, b) => RANK[a.p.anaState] - RANK[b.p.anaState] || a.order - b.order)
    .map((x) => path(x.node, x.p.anaState));
}
