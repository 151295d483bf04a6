/**
 * One request, from its route to its answer, in the order the API document states (its
 * description, "Order of checks"): who asks, then what no schema can say of the path, query and
 * body, then the schemas, then the operation's handler. Each step is a function below.
 */
import express, { type Request, type Response } from 'express';
import type { OpenAPIBackend, Operation } from 'openapi-backend';
import { DriverError, type ErrorCode, isDriverError } from '../driver/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { checkAccess } from './access.ts';
import type { Authenticator, Principal } from './auth.ts';
import type { Call, Handler, Handlers, OperationId } from './call.ts';
import { assertDecimalIntegers, assertStorable, decodePathParams, type IntegerParameters } from './edge-checks.ts';
import { bodyParseError, ClientAbortError, toErrorResponse, validationError } from './error-mapper.ts';
import type { DeferredResult, HandlerResult } from './handlers/types.ts';
import { lowerUuids } from './normalize.ts';
import type { Route } from './routing.ts';

export const BODY_LIMIT = '64kb';

export interface Pipeline {
  /** openapi-backend: the document's request and response validation. */
  api: OpenAPIBackend;
  handlers: Handlers<OperationId>;
  auth: Authenticator;
  integers: IntegerParameters;
  /** Check every response against the document too (tests); a mismatch becomes a 500. */
  validateResponses: boolean;
  log: Logger;
}

/** Answers about a request the client must fix; each is logged once at warn. */
const MALFORMED: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'invalid_request',
  'payload_too_large',
  'unsupported_media_type',
]);

export async function answer(p: Pipeline, req: Request, res: Response, route: Route): Promise<void> {
  let result: HandlerResult;
  try {
    const { op, principal } = await admit(p.auth, req, route);
    await readRequest(req, res, op, p.integers);
    const reply = await dispatch(p, req, res, op, principal);
    // A long poll waits here, once `dispatch` has returned and its Call (the parsed request) is garbage.
    result = 'later' in reply ? await reply.later() : reply;
    if (p.validateResponses) checkResponse(p.api, op, result, req);
  } catch (err) {
    result = failure(err, req, p.log);
  }
  if (res.headersSent || res.destroyed) return;
  if (result.headers) res.set(result.headers);
  if (result.contentType !== undefined) res.status(result.status).type(result.contentType).send(result.body);
  else res.status(result.status).json(result.body);
}

/** The operations without a token (health checks, the document, the dashboard's files): `security: []`. */
export const isOpen = (op: Operation): boolean => op.security?.length === 0;

/**
 * Who asks, checked once: 401 without a valid token (503 while it cannot be looked up), 403 for a
 * token the operation does not admit; before the body is even read, so that an anonymous client
 * learns nothing about the schemas (a path that is no operation included: 401 before 404) and
 * cannot make the service inflate its bodies.
 */
async function admit(
  auth: Authenticator,
  req: Request,
  route: Route,
): Promise<{ op: Operation; principal: Principal | null }> {
  const principal = route.op && isOpen(route.op) ? null : await authenticate(auth, req);
  if (!route.op) {
    if (route.miss === 'method_not_allowed')
      throw new DriverError('method_not_allowed', `${req.method.toUpperCase()} is not allowed on ${req.path.trim()}`);
    throw new DriverError('not_found', 'no such resource');
  }
  if (principal) checkAccess(route.op, principal);
  return { op: route.op, principal };
}

async function authenticate(auth: Authenticator, req: Request): Promise<Principal> {
  let p: Principal | null;
  try {
    p = await auth.authenticate(req.headers.authorization);
  } catch (e) {
    // A lookup that failed (database down) must not read as a bad token: the agent would drop its
    // registration and the orchestrator would see a credential error.
    throw new DriverError(
      'service_unavailable',
      'credentials cannot be checked right now (the database does not answer); retry later',
      { cause: e },
    );
  }
  if (!p) throw new DriverError('unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>)');
  return p;
}

const parseJson = express.json({ limit: BODY_LIMIT, strict: false, type: ['application/json', 'application/*+json'] });

/**
 * What the schemas cannot say, before they are applied: the path's percent-encoding and the
 * integer parameters' digits, then the body (read only for operations that take one), then what no
 * stored string may hold (edge-checks.ts).
 */
async function readRequest(req: Request, res: Response, op: Operation, integers: IntegerParameters): Promise<void> {
  const params = decodePathParams(op.path, req.path);
  assertDecimalIntegers(integers.get(op.operationId ?? ''), params, req.query as Record<string, unknown>);
  if (op.requestBody)
    await new Promise<void>((resolve, reject) => {
      parseJson(req, res, (err?: unknown) => {
        if (err) reject(bodyParseError(err, String(req.headers['content-encoding'] ?? 'identity').toLowerCase()));
        else resolve();
      });
    });
  assertStorable(params, '');
  assertStorable(req.query, '');
  if (req.body !== undefined) assertStorable(req.body, '');
}

/** The schemas (400 naming the fields), then the handler with the request as they typed it. */
async function dispatch(
  p: Pipeline,
  req: Request,
  res: Response,
  op: Operation,
  principal: Principal | null,
): Promise<HandlerResult | DeferredResult> {
  const raw = {
    method: req.method,
    path: req.path,
    query: req.query as never,
    headers: req.headers as never,
    body: req.body,
  };
  const v = p.api.validateRequest(raw, op);
  if (v.errors) throw validationError(v.errors as never);
  // The values as the validation coerced them (`?wait=5` the number 5), as openapi-backend's handleRequest passes them.
  const parsed = p.api.router.parseRequest(v.coerced, op);
  const call: Call = {
    operation: op,
    params: lowerUuids(parsed.params) as never,
    query: lowerUuids(parsed.query) as never,
    body: lowerUuids(parsed.requestBody) as never,
    headers: (parsed.headers ?? {}) as never,
    principal,
    res,
  };
  const handler = p.handlers[op.operationId as OperationId] as Handler<OperationId> | undefined;
  if (!handler) throw new DriverError('not_found', `operation ${op.operationId ?? '?'} is not implemented`);
  return handler(call);
}

function checkResponse(api: OpenAPIBackend, op: Operation, result: HandlerResult, req: Request): void {
  if (result.status >= 500 || result.contentType !== undefined) return;
  const v = api.validateResponse(result.body, op, result.status);
  if (v.errors)
    throw new Error(
      `response of ${req.method} ${req.path} does not match the API document: ${JSON.stringify(v.errors)}`,
    );
}

function failure(err: unknown, req: Request, log: Logger): HandlerResult {
  if (err instanceof ClientAbortError) {
    // Nobody is left to read an answer; an operational event, not an error.
    log.info({ method: req.method, path: req.path }, 'client closed the connection mid-request');
  } else if (isDriverError(err) && MALFORMED.has(err.code)) {
    // One line, no stack: enough to see a broken or hostile client, cheap enough to flood.
    log.warn({ code: err.code, err: err.message, method: req.method, path: req.path }, 'request rejected');
  }
  return toErrorResponse(err, log);
}
