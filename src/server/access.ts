import type { Operation } from 'openapi-backend';
import { DriverError } from '../driver/errors.ts';
import type { Principal } from './auth.ts';

/**
 * Which principals an operation admits, from its `x-portalis-access` in the OpenAPI document:
 * `admin` (the default), `host` (the agent API) or `any` (reads a host may make of its own
 * records; the handler narrows them) or `metrics` (the admin or the metrics token).
 */
export type Access = 'admin' | 'host' | 'any' | 'metrics';

/** A request's principal, as the handlers see it (`Call.principal`). */
type Asked = { principal: Principal | null };

export function principalOf(c: Asked): Principal {
  if (!c.principal)
    throw new DriverError('unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>)');
  return c.principal;
}

export function checkAccess(operation: Operation, p: Principal): void {
  const access = ((operation as Record<string, unknown>)['x-portalis-access'] as Access | undefined) ?? 'admin';
  if (access === 'metrics') {
    if (p.kind === 'admin' || p.kind === 'metrics') return;
    throw new DriverError('forbidden', 'the metrics need the admin token or PORTALIS_METRICS_TOKEN');
  }
  // The metrics token reads the metrics and nothing else.
  if (p.kind === 'metrics') throw new DriverError('forbidden', 'the metrics token may only read GET /metrics');
  if (access === 'any') return;
  if (access === 'admin' && p.kind !== 'admin')
    throw new DriverError(
      'forbidden',
      'this call needs the admin token; a host token may only use the agent API and read its own attachments',
    );
  if (access === 'host' && p.kind !== 'host')
    throw new DriverError('forbidden', 'this call is the agent API: it needs a host token (POST /v1/hosts issues one)');
}

/** The host a host-token request acts for. */
export function hostOf(c: Asked): string {
  return hostPrincipalOf(c).hostNqn;
}

/** The host a host-token request acts for, with its token's SHA-256. */
export function hostPrincipalOf(c: Asked): { hostNqn: string; tokenHash: string } {
  const p = principalOf(c);
  if (p.kind !== 'host') throw new DriverError('forbidden', 'this call needs a host token');
  return p;
}

/** For `any` operations: the host the caller is confined to, or null for the admin. */
export function confinedHost(c: Asked): string | null {
  const p = principalOf(c);
  return p.kind === 'host' ? p.hostNqn : null;
}
