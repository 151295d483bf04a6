/**
 * Every failure Portalis reports has a stable `code`. The HTTP status lives here, next to the
 * code, so that one table decides how each failure looks to an orchestrator; only
 * `server/error-mapper.ts` turns a DriverError into a response body.
 */
import { CodedError } from '../shared/errors.ts';

export const ERROR_STATUS = {
  invalid_request: 400,
  multipath_required: 400,
  payload_too_large: 413,
  unsupported_media_type: 415,
  headers_too_large: 431,
  request_timeout: 408,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  volume_not_found: 404,
  attachment_not_found: 404,
  snapshot_not_found: 404,
  host_not_found: 404,
  method_not_allowed: 405,
  already_exists: 409,
  volume_in_use: 409,
  ambiguous_attachment: 409,
  volume_not_ready: 409,
  volume_has_snapshots: 409,
  snapshot_not_ready: 409,
  conflict: 409,
  insufficient_capacity: 409,
  busy: 409,
  auth_not_configured: 409,
  secrets_unreadable: 503,
  backend_error: 502,
  backend_rejected: 502,
  backend_unavailable: 503,
  no_path: 503,
  service_unavailable: 503,
  backend_timeout: 504,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** Codes after which the same request may succeed if simply repeated. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'busy',
  'backend_error',
  'backend_unavailable',
  'backend_timeout',
  'no_path',
  'service_unavailable',
]);

export class DriverError extends CodedError<ErrorCode> {
  get httpStatus(): number {
    return ERROR_STATUS[this.code];
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

export function isDriverError(e: unknown, code?: ErrorCode): e is DriverError {
  return e instanceof DriverError && (code === undefined || e.code === code);
}
