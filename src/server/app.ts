import express, { type Request, type Response } from 'express';
import { type Context, type Document, OpenAPIBackend } from 'openapi-backend';
import { compileRouting } from './routing.ts';
import type { DriverDeps } from '../driver/deps.ts';
import { DriverError, type ErrorCode, isDriverError } from '../driver/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { Authenticator, Principal } from './auth.ts';
import { bodyParseError, ClientAbortError, toErrorResponse, validationError } from './error-mapper.ts';
import {
  assertDecimalIntegers,
  assertStorable,
  decodePathParams,
  integerParameters,
  trimTrailingSlashes,
} from './edge-checks.ts';
import { checkAccess } from './access.ts';
import { normalizeUuids } from './normalize.ts';
import { agentHandlers } from './handlers/agent.ts';
import { dashboardHandlers } from './handlers/dashboard.ts';
import type { ServiceMetrics } from './metrics.ts';
import { attachmentHandlers } from './handlers/attachments.ts';
import { capabilityHandlers } from './handlers/capabilities.ts';
import { hostHandlers } from './handlers/hosts.ts';
import { snapshotHandlers } from './handlers/snapshots.ts';
import type { DeferredResult, HandlerResult } from './handlers/types.ts';
import { volumeHandlers } from './handlers/volumes.ts';
import { loadSpec } from './spec.ts';
import { type ReadinessCheck, readinessProbe } from './readiness.ts';

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

type Handler = (c: Context, req: Request, res: Response) => Promise<HandlerResult | DeferredResult>;

export const BODY_LIMIT = '64kb';

/** Answers about a request the client must fix; each is logged once at warn. */
const MALFORMED: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'invalid_request',
  'payload_too_large',
  'unsupported_media_type',
]);

/**
 * The express app: body parsing, then openapi-backend routing, auth and validation from
 * `api-spec/`, then thin handlers that call one `driver/` function each.
 */
export async function createApp(opts: AppOptions): Promise<express.Express> {
  const { logger: log } = opts;
  const spec = loadSpec();
  const integers = integerParameters(spec);
  // Serialised once: every `GET /openapi.json` (no token needed) sends this one buffer, so answers
  // queued for a client that does not read share it instead of each holding a copy.
  const specJson = Buffer.from(JSON.stringify(spec));
  // quick: no definition validation (src/server/spec.test.ts does it) and validators compiled on
  // first use: start-up drops from ~1 s to ~2 ms natively (16-20 s in the emulated kernel tests).
  const api = new OpenAPIBackend({
    definition: spec as unknown as Document,
    strict: true,
    quick: true,
    coerceTypes: true,
  });

  const operations: Record<string, Handler> = {
    ...volumeHandlers(opts.deps),
    ...attachmentHandlers(opts.deps),
    ...hostHandlers(opts.deps),
    ...agentHandlers(opts.deps),
    ...snapshotHandlers(opts.deps),
    ...capabilityHandlers(opts.deps),
    ...dashboardHandlers(opts.metrics),
    getHealthz: async () => ({ status: 200, body: { status: 'ok' } }),
    getOpenApi: async () => ({ status: 200, body: specJson, contentType: 'application/json; charset=utf-8' }),
    getReadyz: readinessProbe(opts.readiness, log),
  };

  const fail =
    (code: 'not_found' | 'method_not_allowed', message: string): Handler =>
    async () => {
      throw new DriverError(code, message);
    };

  const lifecycle: Record<string, Handler> = {
    notFound: fail('not_found', 'no such resource'),
    methodNotAllowed: async (c) => {
      throw new DriverError(
        'method_not_allowed',
        `${c.request.method.toUpperCase()} is not allowed on ${c.request.path}`,
      );
    },
    notImplemented: async (c) => {
      throw new DriverError('not_found', `operation ${c.operation?.operationId ?? '?'} is not implemented`);
    },
    validationFail: async (c) => {
      throw validationError(c.validation.errors as never);
    },
    unauthorizedHandler: async (c) => {
      const failed = authFailures.get(c);
      if (failed) {
        throw new DriverError(
          'service_unavailable',
          'credentials cannot be checked right now (the database does not answer); retry later',
          { cause: failed },
        );
      }
      throw new DriverError('unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>)');
    },
  };

  const open = new Set(['getHealthz', 'getOpenApi', 'getReadyz', 'getDashboard', 'getDashboardAsset']);
  for (const [id, h] of Object.entries(operations)) {
    const guarded: Handler = open.has(id)
      ? h
      : async (c, req, res) => (checkAccess(c), normalizeUuids(c), h(c, req, res));
    api.register(id, guarded as never);
  }
  for (const [id, h] of Object.entries(lifecycle)) api.register(id, h as never);
  // The principal was established before the body was read (see `edge` below); openapi-backend
  // keeps it in c.security.bearerAuth for checkAccess and the handlers. A lookup that failed
  // (database down) must not read as a bad token: the agent would drop its registration and the
  // orchestrator would see a credential error. It becomes a 503.
  const principals = new WeakMap<Request, Principal>();
  const authFailures = new WeakMap<Context, unknown>();
  api.registerSecurityHandler('bearerAuth', async (c: Context, req: Request) => {
    const known = principals.get(req);
    if (known) return known;
    try {
      return await opts.auth.authenticate(c.request.headers.authorization);
    } catch (e) {
      authFailures.set(c, e);
      return null;
    }
  });
  await api.init();
  compileRouting(api);

  const parseJson = express.json({
    limit: BODY_LIMIT,
    strict: false,
    type: ['application/json', 'application/*+json'],
  });
  const readBody = (req: Request, res: Response): Promise<void> =>
    new Promise((resolve, reject) => {
      parseJson(req, res, (err?: unknown) => {
        if (err) reject(bodyParseError(err, String(req.headers['content-encoding'] ?? 'identity').toLowerCase()));
        else resolve();
      });
    });

  /**
   * Everything that must hold before openapi-backend routes and validates the request, in this
   * order: who is asking (401 for no or a bad token, 403 for a token the operation does not admit;
   * before the body is even read, so that an anonymous client learns nothing about the schemas and
   * cannot make the service inflate its bodies), then the path's percent-encoding and the integer
   * parameters' digits, then the body (read only for operations that take one), then what no stored
   * string may hold.
   */
  async function edge(req: Request, res: Response): Promise<void> {
    const path = trimTrailingSlashes(req.path);
    const op = api.matchOperation({ method: req.method, path: req.path, headers: {}, query: {} } as never);
    // The operations without a token (health checks, the document, the dashboard's files) are
    // known by their operation, not their path: `/ui/{file}` is a template.
    if (!(op && open.has(op.operationId ?? ''))) {
      const principal = await authenticate(req);
      if (!op) return; // 404 / 405 from openapi-backend, with the body left unread
      checkAccess({ operation: op, security: { bearerAuth: principal } } as unknown as Context);
      principals.set(req, principal);
    }
    const params = decodePathParams(op.path, path);
    assertDecimalIntegers(integers.get(op.operationId ?? ''), params, req.query as Record<string, unknown>);
    if (op.requestBody) await readBody(req, res);
    assertStorable(params, '');
    assertStorable(req.query, '');
    if (req.body !== undefined) assertStorable(req.body, '');
  }

  async function authenticate(req: Request): Promise<Principal> {
    let p: Principal | null;
    try {
      p = await opts.auth.authenticate(req.headers.authorization);
    } catch (e) {
      throw new DriverError(
        'service_unavailable',
        'credentials cannot be checked right now (the database does not answer); retry later',
        { cause: e },
      );
    }
    if (!p) throw new DriverError('unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>)');
    return p;
  }

  const app = express();
  app.disable('x-powered-by');
  // No ETag on answers: nothing here is cached by a client (every answer is live state, and no
  // client sends If-None-Match), and express hashes every body to make one.
  app.disable('etag');
  // One line per request; headers are never logged (they carry the bearer token).
  // The route label is the OpenAPI operation (bounded), never the raw path (unbounded ids).
  const routeOf = (req: Request): string =>
    api.matchOperation({ method: req.method, path: req.path, headers: {}, query: {} } as never)?.operationId ??
    'unmatched';
  const m = opts.metrics;
  app.use((req, res, next) => {
    const start = performance.now();
    const route = m ? routeOf(req) : '';
    // A long poll is open from its arrival until its answer or the client's hang-up.
    const poll = m && route === 'agentListAttachments';
    if (poll) m.longPolls.inc();
    let closed = false;
    const done = () => {
      if (closed) return;
      closed = true;
      if (poll) m.longPolls.dec();
      const labels = { route, method: req.method, status: String(res.statusCode) };
      m?.httpRequests.inc(labels);
      m?.httpDuration.observe(labels, (performance.now() - start) / 1000);
    };
    res.on('close', done);
    res.on('finish', () => {
      log.info(
        { method: req.method, path: req.path, status: res.statusCode, ms: Math.round(performance.now() - start) },
        'request',
      );
      done();
    });
    next();
  });
  app.use(async (req, res) => {
    let result: HandlerResult;
    try {
      await edge(req, res);
      const answer = (await api.handleRequest(
        {
          method: req.method,
          path: req.path,
          query: req.query as never,
          headers: req.headers as never,
          body: req.body,
        },
        req,
        res,
      )) as HandlerResult | DeferredResult;
      // A long poll waits here, after openapi-backend has let go of its Context.
      result = 'later' in answer ? await answer.later() : answer;
      if (opts.validateResponses && result.status < 500 && result.contentType === undefined) {
        const ctx = api.matchOperation({ method: req.method, path: req.path, headers: {}, query: {} } as never);
        const v = ctx ? api.validateResponse(result.body, ctx, result.status) : { errors: null };
        if (v.errors)
          throw new Error(
            `response of ${req.method} ${req.path} does not match the API document: ${JSON.stringify(v.errors)}`,
          );
      }
    } catch (err) {
      if (err instanceof ClientAbortError) {
        // Nobody is left to read an answer; an operational event, not an error.
        log.info({ method: req.method, path: req.path }, 'client closed the connection mid-request');
      } else if (isDriverError(err) && MALFORMED.has(err.code)) {
        // One line, no stack: enough to see a broken or hostile client, cheap enough to flood.
        log.warn({ code: err.code, err: err.message, method: req.method, path: req.path }, 'request rejected');
      }
      const r = toErrorResponse(err, log);
      result = { status: r.status, body: r.body };
    }
    if (res.headersSent || res.destroyed) return;
    if (result.headers) res.set(result.headers);
    if (result.contentType !== undefined) res.status(result.status).type(result.contentType).send(result.body);
    else res.status(result.status).json(result.body);
  });
  // Errors raised before our handler, should any middleware raise one.
  app.use((err: unknown, _req: Request, res: Response, _next: () => void) => {
    const r = toErrorResponse(err, log);
    res.status(r.status).json(r.body);
  });
  return app;
}
