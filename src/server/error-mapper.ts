import type { Logger } from '../shared/logger.ts';
import { DriverError } from '../driver/errors.ts';
import { classifyDatabaseError } from '../store/db-errors.ts';

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
  // body-parser's own errors, should one arrive here (the app converts them where it parses).
  if (typeof e?.type === 'string' && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    return toErrorResponse(bodyParseError(err), log);
  }
  const db = classifyDatabaseError(err);
  if (db === 'unavailable') {
    // One line, no stack: a dropped connection is an operational event, not a bug.
    log.warn({ err: (err as Error).message }, 'database unavailable');
    return {
      status: 503,
      body: { error: { code: 'service_unavailable', message: 'the database does not answer; retry later' } },
    };
  }
  if (db === 'bad_value') {
    // The edge checks should have caught the value; the database's own message stays in the log.
    log.warn({ err: (err as Error).message }, 'database refused a value of the request');
    return {
      status: 400,
      body: { error: { code: 'invalid_request', message: 'a value of the request cannot be stored' } },
    };
  }
  log.error({ err }, 'unexpected error');
  return { status: 500, body: { error: { code: 'internal', message: 'internal error; see the service log' } } };
}

/**
 * A body-parser (express.json) failure as a typed error: malformed JSON, an oversized body, an
 * encoding or charset it cannot decode, a body that does not decompress, a client that went away.
 */
export function bodyParseError(err: unknown, contentEncoding?: string): DriverError {
  const e = err as { type?: string; code?: string; message?: string; status?: number };
  const fields = { details: { fields: ['body'] }, cause: err };
  switch (e?.type) {
    case 'entity.parse.failed':
      return new DriverError('invalid_request', 'body: not valid JSON', fields);
    case 'entity.too.large':
      return new DriverError('payload_too_large', 'body: larger than the 64 KiB limit', fields);
    case 'encoding.unsupported':
      return new DriverError(
        'unsupported_media_type',
        `body: content-encoding ${JSON.stringify(String((err as { encoding?: unknown }).encoding ?? '?'))} is not supported`,
        fields,
      );
    case 'charset.unsupported':
      return new DriverError('unsupported_media_type', `body: ${e.message ?? 'unsupported charset'}`, fields);
    case 'request.aborted':
      return new ClientAbortError(err);
    case 'request.size.invalid':
      return new DriverError('invalid_request', 'body: its length does not match the content-length header', fields);
  }
  if (e?.code === 'ECONNRESET' || e?.code === 'ECONNABORTED' || e?.code === 'ERR_STREAM_PREMATURE_CLOSE')
    return new ClientAbortError(err);
  if (contentEncoding && contentEncoding !== 'identity') {
    // zlib's and brotli's own errors (Z_DATA_ERROR, "incorrect header check", …) carry no type.
    return new DriverError(
      'invalid_request',
      `body: does not decompress as content-encoding ${contentEncoding}`,
      fields,
    );
  }
  return new DriverError('invalid_request', `body: cannot be read (${e?.message ?? 'unknown error'})`, fields);
}

/** The client closed its connection before its request's body arrived: nobody reads the answer. */
export class ClientAbortError extends DriverError {
  constructor(cause: unknown) {
    super('invalid_request', 'body: the client closed the connection before sending all of it', {
      details: { fields: ['body'] },
      cause,
    });
  }
}
