/**
 * The LightOS API v2 routes the driver uses, served from the simulated cluster. Paths, field
 * names and status codes follow LightOS as the Cinder driver (cinder/volume/drivers/lightos.py)
 * and the Proxmox plugin (LightBitsLabs/pve-lightbits) use it:
 *
 * - Creates answer 200 (a gRPC gateway answers 200 for every success), as the Cinder driver
 *   checks `status_code == 200`.
 * - `GET .../volumes/?name=X` and `GET .../snapshots/?Name=X` answer the single object or 404:
 *   the Cinder driver's create/delete idempotency rests on that 404.
 * - `PUT .../volumes/{UUID}` with `If-Match` different from the current ETag answers 412.
 *   Real LightOS reports an ETag mismatch through its gRPC gateway (a status we could not pin
 *   down: the Cinder unit tests' fake answers 400, and the driver simply retries any non-200);
 *   412 is the HTTP meaning of a failed `If-Match` (RFC 9110), and the adapter retries on 409
 *   and 412. Without `If-Match` the PUT applies unconditionally, as in LightOS.
 * - The body's ETag field is the raw value; the `ETag` header carries it quoted.
 * - `GET .../volumes` lists in pages as LightOS's `ListVolumeRequest` (durosapiv2.proto in
 *   LightBitsLabs/los-csi): `limit` (at most 1000) and `offsetUUID` (the page starts after that
 *   volume). The order is by UUID, so that an offset stays meaningful when volumes come and go.
 * - Other statuses as grpc-gateway maps gRPC codes: 400 bad input or wrong state (InvalidArgument,
 *   FailedPrecondition), 404 NotFound, 409 AlreadyExists (name taken), 401 Unauthenticated.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { SimCluster } from './cluster.ts';
import { badRequest, notFound, SimError } from './model.ts';
import {
  parseCreateSnapshot,
  parseCreateVolume,
  parseIfMatch,
  parseListPaging,
  parseUpdateVolume,
  queryString,
} from './validate.ts';
import { presentCluster, presentNode, presentSnapshot, presentVolume } from './wire.ts';

const PROJECT = /^[A-Za-z0-9._-]{1,256}$/;

function project(req: Request): string {
  const p = String(req.params.project);
  if (!PROJECT.test(p)) throw badRequest(`project name '${p}' is invalid`);
  return p;
}

function sendWithEtag(res: Response, etag: string, body: unknown): void {
  res.set('ETag', `"${etag}"`).status(200).json(body);
}

export function lightosRouter(cluster: SimCluster): Router {
  const r = Router();

  r.get('/clusterinfo', (_req, res) => {
    res.json({ UUID: cluster.uuid, subsystemNQN: cluster.subsystemNqn });
  });

  r.get('/cluster', (_req, res) => {
    res.json(presentCluster(cluster));
  });

  r.get('/nodes', (_req, res) => {
    res.json({ nodes: cluster.nodes.map(presentNode) });
  });

  r.get('/nodes/:uuid', (req, res) => {
    const node = cluster.nodes.find((n) => n.uuid === req.params.uuid);
    if (!node) throw notFound(`node ${req.params.uuid} not found`);
    res.json(presentNode(node));
  });

  r.post('/projects/:project/volumes', (req, res) => {
    const vol = cluster.createVolume(project(req), parseCreateVolume(req.body));
    sendWithEtag(res, vol.etag, presentVolume(cluster, vol));
  });

  r.get('/projects/:project/volumes', (req, res) => {
    const p = project(req);
    const name = queryString(req.query.name, 'name');
    if (name === undefined) {
      const { limit, offsetUuid } = parseListPaging(req.query);
      const page = cluster.listVolumes(p, offsetUuid, limit);
      res.json({ volumes: page.map((v) => presentVolume(cluster, v)) });
      return;
    }
    const vol = cluster.findVolumeByName(p, name);
    if (!vol) throw notFound(`volume named '${name}' not found in project '${p}'`);
    sendWithEtag(res, vol.etag, presentVolume(cluster, vol));
  });

  r.get('/projects/:project/volumes/:uuid', (req, res) => {
    const p = project(req);
    const vol = cluster.getVolume(p, req.params.uuid as string);
    if (!vol) throw notFound(`volume ${req.params.uuid} not found in project '${p}'`);
    sendWithEtag(res, vol.etag, presentVolume(cluster, vol));
  });

  r.put('/projects/:project/volumes/:uuid', (req, res) => {
    const p = project(req);
    const uuid = req.params.uuid as string;
    // A missing volume is a 404 even when the body is bad, so that callers learn the real cause.
    if (!cluster.getVolume(p, uuid)) throw notFound(`volume ${uuid} not found in project '${p}'`);
    const patch = parseUpdateVolume(req.body, uuid);
    const vol = cluster.updateVolume(p, uuid, patch, parseIfMatch(req.get('If-Match')));
    sendWithEtag(res, vol.etag, presentVolume(cluster, vol));
  });

  r.delete('/projects/:project/volumes/:uuid', (req, res) => {
    cluster.deleteVolume(project(req), req.params.uuid as string);
    res.json({});
  });

  r.post('/projects/:project/snapshots', (req, res) => {
    const snap = cluster.createSnapshot(project(req), parseCreateSnapshot(req.body));
    sendWithEtag(res, snap.etag, presentSnapshot(snap));
  });

  r.get('/projects/:project/snapshots', (req, res) => {
    const p = project(req);
    // The Cinder driver queries `?Name=` (capital N); accept `?name=` as well.
    const name = queryString(req.query.Name, 'Name') ?? queryString(req.query.name, 'name');
    if (name === undefined) {
      res.json({ snapshots: cluster.listSnapshots(p).map(presentSnapshot) });
      return;
    }
    const snap = cluster.findSnapshotByName(p, name);
    if (!snap) throw notFound(`snapshot named '${name}' not found in project '${p}'`);
    sendWithEtag(res, snap.etag, presentSnapshot(snap));
  });

  r.get('/projects/:project/snapshots/:uuid', (req, res) => {
    const p = project(req);
    const snap = cluster.getSnapshot(p, req.params.uuid as string);
    if (!snap) throw notFound(`snapshot ${req.params.uuid} not found in project '${p}'`);
    sendWithEtag(res, snap.etag, presentSnapshot(snap));
  });

  r.delete('/projects/:project/snapshots/:uuid', (req, res) => {
    cluster.deleteSnapshot(project(req), req.params.uuid as string);
    res.json({});
  });

  return r;
}

/**
 * LightOS multi-tenancy: every API call carries `Authorization: Bearer <jwt>`. Compared through
 * SHA-256 digests so that the comparison takes the same time whatever the length or content.
 */
export function requireJwt(jwt: string): RequestHandler {
  const want = createHash('sha256').update(jwt).digest();
  return (req: Request, _res: Response, next: NextFunction) => {
    const m = /^Bearer\s+(.+)$/i.exec(req.get('Authorization') ?? '');
    const got = createHash('sha256')
      .update(m ? m[1].trim() : '')
      .digest();
    if (!m || !timingSafeEqual(want, got)) {
      next(new SimError(401, m ? 'invalid JWT' : 'missing Authorization: Bearer <jwt> header'));
      return;
    }
    next();
  };
}
