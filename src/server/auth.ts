import { createHash, timingSafeEqual } from 'node:crypto';

import type { DriverDeps } from '../driver/deps.ts';
import { hashToken, hostForToken } from '../driver/hosts.ts';

/** Who a request acts as: the orchestrator (admin token) or one host's agent (its host token). */
/** A host principal keeps its token's SHA-256, so that a long poll can check it is still the host's when it wakes. */
export type Principal = { kind: 'admin' } | { kind: 'host'; hostNqn: string; tokenHash: string } | { kind: 'metrics' };

/**
 * Compares secrets in constant time. Both sides are hashed first so that the comparison
 * takes the same time whatever the lengths (timingSafeEqual needs equal-length buffers and
 * would otherwise leak the token's length).
 */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | string[] | undefined): string | null {
  if (typeof header !== 'string') return null;
  const m = /^Bearer[ ]+([\x21-\x7E]+)$/i.exec(header.trim());
  return m ? m[1]! : null;
}

export class Authenticator {
  constructor(
    private readonly adminToken: string,
    private readonly deps?: Pick<DriverDeps, 'hosts'>,
    /** A token that may read `/metrics` only (PORTALIS_METRICS_TOKEN). */
    private readonly metricsToken: string | null = null,
  ) {}

  /** The principal a request's Authorization header proves, or null. */
  async authenticate(header: string | string[] | undefined): Promise<Principal | null> {
    const token = bearerToken(header);
    if (token === null) return null;
    if (safeEqual(token, this.adminToken)) return { kind: 'admin' };
    if (this.metricsToken !== null && safeEqual(token, this.metricsToken)) return { kind: 'metrics' };
    // Host tokens are looked up by their SHA-256, never compared as plain text.
    const host = this.deps ? await hostForToken(this.deps, token) : null;
    return host ? { kind: 'host', hostNqn: host.nqn, tokenHash: hashToken(token) } : null;
  }
}
