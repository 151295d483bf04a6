import express, { type Request, type Response } from 'express';
import { type Context, type Document, OpenAPIBackend } from 'openapi-backend';
import type { DriverDeps } from '../driver/deps.ts';
import { DriverError } from '../driver/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { Authenticator } from './auth.ts';
import { toErrorResponse, validationError } from './error-mapper.ts';
import { checkAccess } from './access.ts';
import { normalizeUuids } from './normalize.ts';
import { agentHandlers } from './handlers/agent.ts';
import { attachmentHandlers } from './handlers/attachments.ts';
import { capabilityHandlers } from './handlers/capabilities.ts';
import { hostHandlers } from './handlers/hosts.ts';
import { snapshotHandlers } from './handlers/snapshots.ts';
import type { HandlerResult } from './handlers/types.ts';
import { volumeHandlers } from './handlers/volumes.ts';
import { loadSpec } from './spec.ts';

export interface ReadinessCheck {
  name: string;
  check: () => Promise<void>;
}

export interface AppOptions {
  deps: DriverDeps;
  auth: Authenticator;
  logger: Logger;
  readiness: ReadinessCheck[];
  /** Check every response against the OpenAPI document too (tests); a mismatch becomes a 500. */
  validateResponses?: boolean;
}

type Handler = (c: Context, req: Request, res: Response) => Promise<HandlerResult>;

export const BODY_LIMIT = '64kb';

/**
 * The express app: body parsing, then openapi-backend routing, auth and validation from
 * `api-spec/`, then thin handlers that call one `driver/` function each.
 */
export async function createApp(opts: AppOptions): Promise<express.Express> {
  const { logger: log } = opts;
  const spec = loadSpec();
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
    getHealthz: async () => ({ status: 200, body: { status: 'ok' } }),
    getOpenApi: async () => ({ status: 200, body: spec }),
    getReadyz: async () => readiness(opts.readiness, log),
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

  const open = new Set(['getHealthz', 'getOpenApi', 'getReadyz']);
  for (const [id, h] of Object.entries(operations)) {
    const guarded: Handler = open.has(id)
      ? h
      : async (c, req, res) => (checkAccess(c), normalizeUuids(c), h(c, req, res));
    api.register(id, guarded as never);
  }
  for (const [id, h] of Object.entries(lifecycle)) api.register(id, h as never);
  // The principal it returns is kept in c.security.bearerAuth for checkAccess and the handlers.
  // A lookup that fails (database down) must not read as a bad token: the agent would drop its
  // registration and the orchestrator would see a credential error. It becomes a 503.
  const authFailures = new WeakMap<Context, unknown>();
  api.registerSecurityHandler('bearerAuth', async (c: Context) => {
    try {
      return await opts.auth.authenticate(c.request.headers.authorization);
    } catch (e) {
      authFailures.set(c, e);
      return null;
    }
  });
  await api.init();

  const app = express();
  app.disable('x-powered-by');
  // One line per request; headers are never logged (they carry the bearer token).
  app.use((req, res, next) => {
    const start = performance.now();
    res.on('finish', () => {
      log.info(
        { method: req.method, path: req.path, status: res.statusCode, ms: Math.round(performance.now() - start) },
        'request',
      );
    });
    next();
  });
  app.use(express.json({ limit: BODY_LIMIT, strict: false, type: ['application/json', 'application/*+json'] }));
  app.use(async (req, res) => {
    let result: HandlerResult;
    try {
      result = (await api.handleRequest(
        {
          method: req.method,
          path: req.path,
          query: req.query as never,
          headers: req.headers as never,
          body: req.body,
        },
        req,
        res,
      )) as HandlerResult;
      if (opts.validateResponses && result.status < 500) {
        const ctx = api.matchOperation({ method: req.method, path: req.path, headers: {}, query: {} } as never);
        const v = ctx ? api.validateResponse(result.body, ctx, result.status) : { errors: null };
        if (v.errors)
          throw new Error(
            `response of ${req.method} ${req.path} does not match the API document: ${JSON.stringify(v.errors)}`,
          );
      }
    } catch (err) {
      const r = toErrorResponse(err, log);
      result = { status: r.status, body: r.body };
    }
    res.status(result.status).json(result.body);
  });
  // Errors raised before our handler (body-parser: malformed JSON, oversized body).
  app.use((err: unknown, _req: Request, res: Response, _next: () => void) => {
    const r = toErrorResponse(err, log);
    res.status(r.status).json(r.body);
  });
  return app;
}

/** Unauthenticated: says which dependency fails, never how (addresses, errors go to the log). */
async function readiness(checks: ReadinessCheck[], log: Logger): Promise<HandlerResult> {
  const results = await Promise.all(
    checks.map(async (c) => {
      try {
        await c.check();
        return [c.name, { ok: true }] as const;
      } catch (e) {
        log.warn({ check: c.name, err: (e as Error).message }, 'readiness check failed');
        return [c.name, { ok: false }] as const;
      }
    }),
  );
  const ok = results.every(([, r]) => r.ok);
  return { status: ok ? 200 : 503, body: { status: ok ? 'ok' : 'unavailable', checks: Object.fromEntries(results) } };
}
