/**
 * What a failure raised by knex / node-postgres means for the caller.
 *
 * - `unavailable`: the database cannot serve the request right now (connection lost or refused,
 *   server shutting down, out of resources, a query cancelled, the pool exhausted). The same request
 *   may succeed when repeated: a 503.
 * - `bad_value`: PostgreSQL refused a value (SQLSTATE class 22, "data exception", e.g. 22021 a NUL
 *   byte, 22P05 an untranslatable character, 22003 a number out of range). The edge validates
 *   requests so that none should get this far; when one does it is still the request's value,
 *   never a server fault: a 400.
 * - null: anything else (a bug, a constraint we did not expect): a 500 with its stack in the log.
 */
export type DatabaseFailure = 'unavailable' | 'bad_value';

/**
 * SQLSTATE classes and codes (PostgreSQL manual, appendix A "PostgreSQL Error Codes") after which
 * the database, not the request, is at fault: 08 connection exception, 53 insufficient resources
 * (53300 too_many_connections), 57 operator intervention (57P01 admin_shutdown, which
 * pg_terminate_backend sends; 57P03 cannot_connect_now; 57014 query_canceled), 58 system error,
 * and the two transaction rollbacks a retry resolves (40001 serialization_failure, 40P01 deadlock).
 */
const UNAVAILABLE_SQLSTATE = /^(08|53|57|58)[0-9A-Z]{3}$|^40001$|^40P01$/;

/** Socket-level failures (Node's `error.code`) on the way to the database. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
]);

/**
 * node-postgres raises these as plain `Error`s without a `code` (no SQLSTATE: the server never
 * answered), e.g. when the server closes the socket mid-query, or a query is sent on a client whose
 * socket already failed (see node-postgres' lib/client.js). Matched on the message, the only thing
 * they carry; knex prefixes the SQL text, so the patterns are not anchored.
 */
const UNAVAILABLE_MESSAGES = [
  /Connection terminated/i, // "… unexpectedly", "… due to connection timeout", plain "Connection terminated"
  /is not queryable/i, // "Client has encountered a connection error and is not queryable", "Client was closed and …"
  /timeout exceeded when trying to connect/i, // pg-pool
  /Query read timeout/i,
  /Connection ended/i,
  /Unable to acquire a connection/i, // knex, after the pool was destroyed
  /Cannot use a pool after calling end/i,
  /terminating connection due to/i, // a FATAL whose SQLSTATE was lost on the way
  /the database system is (starting up|shutting down|in recovery mode)/i,
];

function classifyOne(e: { code?: unknown; name?: unknown; message?: unknown }): DatabaseFailure | null {
  // knex's pool did not hand out a connection in time (acquireConnectionTimeout).
  if (e.name === 'KnexTimeoutError') return 'unavailable';
  const code = typeof e.code === 'string' ? e.code : '';
  if (/^[0-9A-Z]{5}$/.test(code)) {
    if (UNAVAILABLE_SQLSTATE.test(code)) return 'unavailable';
    // 55000 is also "object not in prerequisite state"; only the connection-time form counts.
    if (code === '55000' && /not currently accepting connections/.test(String(e.message))) return 'unavailable';
    if (code.startsWith('22')) return 'bad_value';
    return null;
  }
  if (SOCKET_CODES.has(code)) return 'unavailable';
  const message = typeof e.message === 'string' ? e.message : '';
  if (UNAVAILABLE_MESSAGES.some((re) => re.test(message))) return 'unavailable';
  return null;
}

/**
 * Classifies a failure, following `cause` chains and `AggregateError`s (a connection attempt to
 * `localhost` that fails on both ::1 and 127.0.0.1 is an AggregateError of two ECONNREFUSED).
 */
export function classifyDatabaseError(err: unknown): DatabaseFailure | null {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  while (queue.length > 0) {
    const e = queue.shift();
    if (!e || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    const found = classifyOne(e as { code?: unknown; name?: unknown; message?: unknown });
    if (found) return found;
    const { cause, errors } = e as { cause?: unknown; errors?: unknown };
    queue.push(cause);
    if (Array.isArray(errors)) queue.push(...errors);
  }
  return null;
}

export const isDatabaseUnavailable = (err: unknown): boolean => classifyDatabaseError(err) === 'unavailable';
