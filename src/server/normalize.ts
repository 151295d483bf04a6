const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * UUIDs are compared as text in places (lock keys, instance ids), while PostgreSQL's uuid type
 * ignores case: `ABCD…` and `abcd…` must be one volume, one lock, one instance. Every UUID in a
 * request's path, query and body is lower-cased once, with this, before any handler sees it.
 */
export function lowerUuids<T>(v: T): T {
  if (typeof v === 'string') return (UUID.test(v) ? v.toLowerCase() : v) as T;
  if (Array.isArray(v)) return v.map(lowerUuids) as T;
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, lowerUuids(x)])) as T;
  return v;
}
