import { createHash, timingSafeEqual } from 'node:crypto';

export type Principal = { kind: 'admin' };

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
  constructor(private readonly adminToken: string) {}

  /** The principal a request's Authorization header proves, or null. */
  authenticate(header: string | string[] | undefined): Principal | null {
    const token = bearerToken(header);
    if (token === null) return null;
    return safeEqual(token, this.adminToken) ? { kind: 'admin' } : null;
  }
}
