import type { Context } from 'openapi-backend';

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function lower(v: unknown): unknown {
  if (typeof v === 'string') return UUID.test(v) ? v.toLowerCase() : v;
  if (Array.isArray(v)) return v.map(lower);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, lower(x)]));
  return v;
}

/**
 * UUIDs are compared as text in places (lock keys, instance ids), while PostgreSQL's uuid type
 * ignores case: `ABCD…` and `abcd…` must be one volume, one lock, one instance. Every UUID in a
 * request's path, query and body is lower-cased once, here, before any handler sees it.
 */
export function normalizeUuids(c: Context): void {
  c.request.params = lower(c.request.params) as typeof c.request.params;
  c.request.query = lower(c.request.query) as typeof c.request.query;
  if (c.request.requestBody !== undefined) c.request.requestBody = lower(c.request.requestBody);
}
