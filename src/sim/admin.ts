/**
 * The simulator's own admin API under `/sim/v1` (no JWT, never faulted): inspect the whole
 * cluster, take nodes down and up, set and clear faults, reset.
 */
import { Router } from 'express';
import type { SimCluster } from './cluster.ts';
import type { Faults } from './faults.ts';
import type { RequestCounts } from './request-counts.ts';
import { badRequest, type SimNode, type SimVolume } from './model.ts';
import { formatEndpoint } from './wire.ts';

function volumeState(cluster: SimCluster, v: SimVolume) {
  return {
    uuid: v.uuid,
    name: v.name,
    project: v.project,
    state: v.state,
    sizeBytes: v.sizeBytes,
    nsid: v.nsid,
    etag: v.etag,
    replicaCount: v.replicaCount,
    acl: [...v.acl],
    ipAcl: [...v.ipAcl],
    replicas: [...v.replicas],
    primaryNodeUUID: v.primary,
    /** ANA state of the volume on every node of the cluster, keyed by node UUID. */
    ana: cluster.anaOf(v),
  };
}

export function simState(cluster: SimCluster, faults: Faults) {
  return {
    cluster: {
      uuid: cluster.uuid,
      subsystemNQN: cluster.subsystemNqn,
      capacityBytes: cluster.capacityBytes,
      usedBytes: cluster.usedBytes(),
    },
    /** `maxNamespaces`: how many volumes the plane can hold (null: no limit). */
    dataPlane: { kind: cluster.dataPlane.kind, maxNamespaces: cluster.dataPlane.maxNamespaces ?? null },
    nodes: cluster.nodes.map((n) => ({
      index: n.index,
      uuid: n.uuid,
      name: n.name,
      nvmeEndpoint: formatEndpoint(n.address, n.port),
      up: n.up,
    })),
    volumes: cluster.allVolumes().map((v) => volumeState(cluster, v)),
    snapshots: cluster.allSnapshots().map((s) => ({
      uuid: s.uuid,
      name: s.name,
      project: s.project,
      sourceVolumeUUID: s.sourceVolumeUuid,
      sizeBytes: s.sizeBytes,
      state: s.state,
    })),
    faults: faults.view(),
  };
}

export function adminRouter(cluster: SimCluster, faults: Faults, requests: RequestCounts): Router {
  const r = Router();

  r.get('/state', (_req, res) => {
    res.json(simState(cluster, faults));
  });

  for (const dir of ['down', 'up'] as const) {
    r.post(`/nodes/:ref/${dir}`, (req, res) => {
      const node = cluster.setNodeUp(req.params.ref as string, dir === 'up');
      res.json({ index: node.index, uuid: node.uuid, name: node.name, up: node.up });
    });
  }

  const nodeView = (n: SimNode) => ({ uuid: n.uuid, index: n.index, name: n.name, address: n.address, port: n.port });

  /** A node joins (body optional: `{address, port}`); it holds no replica until one moves there. */
  r.post('/nodes', (req, res) => {
    const body = objectBody(req.body);
    const address = body.address;
    const port = body.port;
    if (address !== undefined && typeof address !== 'string') throw badRequest('address must be a string');
    if (port !== undefined && typeof port !== 'number') throw badRequest('port must be a number');
    res.status(201).json(nodeView(cluster.addNode({ address, port })));
  });

  r.delete('/nodes/:ref', (req, res) => {
    res.json(nodeView(cluster.removeNode(req.params.ref as string)));
  });

  r.put('/nodes/:ref/address', (req, res) => {
    const body = objectBody(req.body);
    res.json(nodeView(cluster.setNodeAddress(req.params.ref as string, body.address, body.port)));
  });

  r.post('/volumes/:uuid/replicas/move', (req, res) => {
    const body = objectBody(req.body);
    const v = cluster.moveReplica(null, req.params.uuid as string, body.from, body.to);
    res.json(volumeState(cluster, v));
  });

  r.get('/faults', (_req, res) => {
    res.json(faults.view());
  });

  r.put('/faults', (req, res) => {
    faults.apply(req.body);
    res.json(faults.view());
  });

  r.delete('/faults', (_req, res) => {
    faults.clear();
    res.json(faults.view());
  });

  /** The `/api/v2` requests answered since start or the last reset, by route. */
  r.get('/requests', (_req, res) => {
    res.json(requests.view());
  });

  r.delete('/requests', (_req, res) => {
    requests.reset();
    res.json(requests.view());
  });

  /** Drops all volumes and snapshots, brings every node up, clears the faults and the request counts. */
  r.post('/reset', (_req, res) => {
    faults.clear();
    requests.reset();
    cluster.reset();
    res.json(simState(cluster, faults));
  });

  return r;
}

function objectBody(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null || (typeof body === 'object' && Object.keys(body).length === 0)) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw badRequest('the body must be a JSON object');
  return body as Record<string, unknown>;
}
