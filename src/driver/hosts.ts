import { createHash, randomBytes } from 'node:crypto';
import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import { hostNotFound } from './guards.ts';
import { ensureHostSecrets } from './host-secrets.ts';
import type { Connector, Host } from './model.ts';

/** Host tokens are random; only their SHA-256 is stored, so a database leak reveals no token. */
export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

const TOKEN_PREFIX = 'pth_';

/**
 * Issues a new agent token for the host (creating the host record when it is new). The token is
 * returned once and never stored; issuing again replaces it, so a leaked token is revoked by
 * issuing a new one.
 */
export async function issueHostToken(
  deps: DriverDeps,
  nqn: string,
  name?: string,
): Promise<{ host: Host; token: string }> {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const existing = await deps.hosts.getHost(nqn);
  const host = await deps.hosts.issueToken(nqn, name ?? existing?.name ?? nqn, hashToken(token));
  deps.logger.info({ host: nqn }, 'host token issued');
  if (deps.inbandAuth === 'required') {
    // With authentication required, a registered host gets its secrets now. A backend that fails
    // here does not stop the registration: the rotation state says what is left, and the fleet's
    // periodic pass (or POST /v1/hosts/{nqn}/secrets) finishes it.
    await ensureHostSecrets(deps, nqn).catch((e: unknown) =>
      deps.logger.warn({ host: nqn, code: (e as { code?: unknown }).code }, 'host secrets not set up yet'),
    );
  }
  return { host, token };
}

export async function revokeHostToken(deps: DriverDeps, nqn: string): Promise<void> {
  if (!(await deps.hosts.revokeToken(nqn))) throw hostNotFound(nqn);
  deps.logger.info({ host: nqn }, 'host token revoked');
}

/** The host a bearer token belongs to, or null. Only host tokens (`pth_…`) are looked up. */
export async function hostForToken(deps: Pick<DriverDeps, 'hosts'>, token: string): Promise<Host | null> {
  if (!token.startsWith(TOKEN_PREFIX)) return null;
  return deps.hosts.hostByTokenHash(hashToken(token));
}

/** The agent announces its connector; it must be the host its token was issued for. */
export async function registerAgent(
  deps: DriverDeps,
  hostNqn: string,
  connector: Connector,
  agentVersion: string | null = null,
): Promise<Host> {
  if (connector.nqn !== hostNqn) {
    throw new DriverError('forbidden', `connector.nqn ${connector.nqn} is not the host this token was issued for`, {
      details: { field: 'connector.nqn' },
    });
  }
  const host = await deps.hosts.registerHost(hostNqn, connector, agentVersion);
  deps.logger.info({ host: hostNqn, name: connector.host, agentVersion }, 'agent registered');
  return host;
}

export async function getHost(deps: DriverDeps, nqn: string): Promise<Host> {
  const h = await deps.hosts.getHost(nqn);
  if (!h) throw hostNotFound(nqn);
  return h;
}
