/**
 * The simulator's express application: `/api/v2` (LightOS, behind faults and the optional JWT)
 * and `/sim/v1` (admin). Usable in-process (supertest) or through `startSimServer`.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { adminRouter } from './admin.ts';
import { lightosRouter, requireJwt } from './api.ts';
import type { SimCluster } from './cluster.ts';
import type { Faults } from './faults.ts';
import { RequestCounts } from './request-counts.ts';
import { SimTrustedHosts } from './trusted-hosts.ts';
import { grpcCodeFor, SimError } from './model.ts';
import { type Logger, silentLogger } from '../shared/logger.ts';

/** Request bodies are small (a volume spec, an ACL); anything larger is refused with 413. */
export const BODY_LIMIT = '64kb';

export interface SimAppOptions {
  cluster: SimCluster;
  faults: Faults;
  jwt?: string;
  logger?: Logger;
  /** Counts the `/api/v2` requests (default: a counter of its own, served at `/sim/v1/requests`). */
  requests?: RequestCounts;
  /** In-band authentication's trusted hosts (default: a fresh, empty set). */
  trustedHosts?: SimTrustedHosts;
}

function errorBody(status: number, message: string) {
  return { code: grpcCodeFor(status), message, details: [] };
}

export function createSimApp(opts: SimAppOptions): express.Express {
  const logger = opts.logger ?? silentLogger;
  const app = express();
  // Express would otherwise add its own weak ETags and answer 304s; the volume ETag is ours.
  app.set('etag', false);
  app.disable('x-powered-by');
  app.use((req, res, next) => {
    res.on('finish', () =>
      logger.debug({ method: req.method, url: req.originalUrl, status: res.statusCode }, 'sim request'),
    );
    next();
  });

  // Any content type is read as JSON: some clients omit Content-Type on PUT.
  const json = express.json({ limit: BODY_LIMIT, type: () => true });
  const requests = opts.requests ?? new RequestCounts();
  app.use('/sim/v1', json, adminRouter(opts.cluster, opts.faults, requests));
  const auth = opts.jwt ? requireJwt(opts.jwt) : (_req: Request, _res: Response, next: NextFunction) => next();
  const trustedHosts = opts.trustedHosts ?? new SimTrustedHosts();
  app.use(
    '/api/v2',
    requests.middleware,
    opts.faults.middleware,
    auth,
    json,
    lightosRouter(opts.cluster),
    trustedHosts.router(),
  );

  app.use((req: Request, res: Response) => {
    res.status(404).json(errorBody(404, `no route for ${req.method} ${req.path}`));
  });

  // Four arguments make this express's error handler.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) {
      res.end();
      return;
    }
    if (err instanceof SimError) {
      res.status(err.status).json(errorBody(err.status, err.message));
      return;
    }
    // body-parser and the router tag client errors (bad JSON, too large, bad URI) with a 4xx.
    const status = (err as { status?: unknown })?.status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      const type = (err as { type?: string }).type;
      const message =
        type === 'entity.parse.failed'
          ? 'request body is not valid JSON (an object is expected)'
          : type === 'entity.too.large'
            ? `request body exceeds ${BODY_LIMIT}`
            : (err as Error).message;
      res.status(status).json(errorBody(status, message));
      return;
    }
    logger.error({ err, method: req.method, url: req.originalUrl }, 'simulator internal error');
    res.status(500).json(errorBody(500, 'internal simulator error'));
  });

  return app;
}
