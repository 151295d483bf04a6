import type { Logger } from '../shared/logger.ts';
import { DriverError } from '../driver/errors.ts';

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

interface AjvError {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** `/requestBody/connector/nqn` → `connector.nqn`; `/path/id` → `id`; `/query/status` → `status`. */
function fieldOf(e: AjvError): string {
  const parts = (e.instancePath ?? '')
    .split('/')
    .filter(Boolean)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (['requestBody', 'path', 'query', 'headers'].includes(parts[0] ?? '')) parts.shift();
  if (e.keyword === 'required' && typeof e.params?.missingProperty === 'string') parts.push(e.params.missingProperty);
  if (e.keyword === 'additionalProperties' && typeof e.params?.additionalProperty === 'string')
    parts.push(e.params.additionalProperty);
  return parts.length > 0 ? parts.join('.') : 'body';
}

function describe(e: AjvError): string {
  switch (e.keyword) {
    case 'required':
      return 'is required';
    case 'additionalProperties':
      return 'is not an allowed field';
    case 'pattern':
      return 'has an invalid format';
    default:
      return e.message ?? 'is invalid';
  }
}

/** A 400 whose message names every offending field (first the most specific). */
export function validationError(errors: AjvError[] | null | undefined): DriverError {
  const list = (errors ?? []).filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'anyOf' && e.keyword !== 'if');
  const shown = list.length > 0 ? list : (errors ?? []);
  const fields = [...new Map(shown.map((e) => [fieldOf(e), `${fieldOf(e)}: ${describe(e)}`])).values()];
  const message = fields.length > 0 ? fields.slice(0, 5).join('; ') : 'request does not match the API schema';
  return new DriverError('invalid_request', message, { details: { fields: [...new Set(shown.map(fieldOf))] } });
}

/**
 * PostgreSQL unreachable or refusing sessions: SQLSTATE class 08 (connection exception), 57P0x
 * (shutdown), 53300 (too many connections), a database closed to connections, socket errors,
 * or knex's pool timing out.
 */
function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown; message?: unknown };
  if (e?.name === 'KnexTimeoutError') return true;
  if (typeof e?.code !== 'string') return false;
  // 55000 is also "object not in prerequisite state"; only the connection-time form counts.
  if (e.code === '55000' && /not currently accepting connections/.test(String(e.message))) return true;
  return (
    /^08/.test(e.code) ||
    /^57P0/.test(e.code) ||
    e.code === '53300' ||
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(e.code)
  );
}

/**
 * The one place a failure becomes an HTTP answer. Known errors keep their code; anything
 * else is a 500 `internal` that is logged with its stack and never echoed to the client.
 */
export function toErrorResponse(err: unknown, log: Logger): { status: number; body: ErrorBody } {
  if (err instanceof DriverError) {
    const body: ErrorBody = { error: { code: err.code, message: err.message } };
    if (err.details) body.error.details = err.details;
    if (err.httpStatus >= 500) log.warn({ code: err.code, err: err.message }, 'request failed');
    return { status: err.httpStatus, body };
  }
  const e = err as { type?: string; status?: number; message?: string };
  // body-parser's own errors: malformed JSON and oversized bodies are the client's fault.
  if (e?.type === 'entity.parse.failed') {
    return {
      status: 400,
      body: { error: { code: 'invalid_request', message: 'body: not valid JSON', details: { fields: ['body'] } } },
    };
  }
  if (e?.type === 'entity.too.large') {
    return {
      status: 413,
      body: {
        error: {
          code: 'payload_too_large',
          message: 'body: larger than the 64 KiB limit',
          details: { fields: ['body'] },
        },
      },
    };
  }
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') {
    return { status: 400, body: { error: { code: 'invalid_request', message: `body: ${e.message}` } } };
  }
  if (isDatabaseUnavailable(err)) {
    log.warn({ err: (err as Error).message }, 'database unavailable');
    return {
      status: 503,
      body: { error: { code: 'service_unavailable', message: 'the database does not answer; retry later' } },
    };
  }
  log.error({ err }, 'unexpected error');
  return { status: 500, body: { error: { code: 'internal', message: 'internal error; see the service log' } } };
}
