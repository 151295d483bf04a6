import express, { type Request, type Response } from 'express';
import { type Document, OpenAPIBackend } from 'openapi-backend';
import type { DriverDeps } from '../driver/deps.ts';
import type { Logger } from '../shared/logger.ts';
import type { Authenticator } from './auth.ts';
import { integerParameters } from './edge-checks.ts';
import { toErrorResponse } from './error-mapper.ts';
import type { ServiceMetrics } from './metrics.ts';
import { operationHandlers } from './operations.ts';
import { answer, type Pipeline } from './pipeline.ts';
import type { ReadinessCheck } from './readiness.ts';
import { observe } from './request-log.ts';
import { compileRouter } from './routing.ts';
import { loadSpec } from './spec.ts';

export type { ReadinessCheck } from './readiness.ts';

export interface AppOptions {
  deps: DriverDeps;
  auth: Authenticator;
  logger: Logger;
  readiness: ReadinessCheck[];
  /** Check every response against the OpenAPI document too (tests); a mismatch becomes a 500. */
  validateResponses?: boolean;
  /** Prometheus metrics (`GET /metrics`); unset: the route answers 404. */
  metrics?: ServiceMetrics;
}

/**
 * The express app: each request is matched once to its operation in `api-spec/` (routing.ts),
 * logged and counted (request-log.ts), then answered (pipeline.ts: token, edge checks, body,
 * validation, a thin handler that calls one `driver/` function).
 */
export async function createApp(opts: AppOptions): Promise<express.Express> {
  const spec = loadSpec();
  // quick: no definition validation (src/server/spec.test.ts does it) and validators compiled on
  // first use: start-up drops from ~1 s to ~2 ms natively (16-20 s in the emulated kernel tests).
  // openapi-backend validates; it neither routes nor authenticates (the pipeline does, once).
  const api = new OpenAPIBackend({ definition: spec as unknown as Document, quick: true, coerceTypes: true });
  await api.init();
  const route = compileRouter(api);
  const pipeline: Pipeline = {
    api,
    handlers: operationHandlers({ ...opts, spec, log: opts.logger }),
    auth: opts.auth,
    integers: integerParameters(spec),
    validateResponses: opts.validateResponses ?? false,
    log: opts.logger,
  };

  const app = express();
  app.disable('x-powered-by');
  // No ETag on answers: nothing here is cached by a client (every answer is live state, and no
  // client sends If-None-Match), and express hashes every body to make one.
  app.disable('etag');
  app.use((req, res) => {
    const r = route(req.method, req.path);
    observe(req, res, r.op?.operationId ?? 'unmatched', opts.metrics, opts.logger);
    return answer(pipeline, req, res, r);
  });
  // Errors raised before our handler, should any middleware raise one.
  app.use((err: unknown, _req: Request, res: Response, _next: () => void) => {
    const r = toErrorResponse(err, opts.logger);
    res.status(r.status).json(r.body);
  });
  return app;
}
