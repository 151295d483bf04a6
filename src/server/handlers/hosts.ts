import type { DriverDeps } from '../../driver/deps.ts';
import { getHost, issueHostToken, revokeHostToken } from '../../driver/hosts.ts';
import { healthMatrix } from '../../driver/health.ts';
import {
  ensureHostSecrets,
  hostSecretStatus,
  type RotationStatus,
  rotateHostSecrets,
} from '../../driver/host-secrets.ts';
import type { CellHealth } from '../../driver/model.ts';
import type { Handlers } from '../call.ts';
import { presentMatrix } from '../presenters/health.ts';
import { presentHost, presentSecretStatus } from '../presenters/presenters.ts';

/** 200 when nothing is under way, 202 while the rotation waits (for the agent's paths to move). */
const rotation = (r: RotationStatus) =>
  ({ status: r.waitingFor === null ? 200 : 202, body: presentSecretStatus(r) }) as const;

export function hostHandlers(
  deps: DriverDeps,
): Handlers<
  | 'issueHostToken'
  | 'listHosts'
  | 'getHost'
  | 'revokeHostToken'
  | 'getMultipathHealth'
  | 'getHostSecrets'
  | 'ensureHostSecrets'
  | 'rotateHostSecrets'
> {
  return {
    /** Issues (or re-issues, revoking the old one) the agent token of a host. */
    async issueHostToken(c) {
      const b = c.body;
      const { host, token } = await issueHostToken(deps, b.nqn, b.name);
      return { status: 201, body: { host: presentHost(host), token } };
    },

    async listHosts() {
      return { status: 200, body: { hosts: (await deps.hosts.listHosts()).map(presentHost) } };
    },

    async getHost(c) {
      return { status: 200, body: presentHost(await getHost(deps, c.params.nqn)) };
    },

    async revokeHostToken(c) {
      await revokeHostToken(deps, c.params.nqn);
      return { status: 200, body: { revoked: true } };
    },

    async getHostSecrets(c) {
      return { status: 200, body: presentSecretStatus(await hostSecretStatus(deps, c.params.nqn)) };
    },

    async ensureHostSecrets(c) {
      return rotation(await ensureHostSecrets(deps, c.params.nqn));
    },

    async rotateHostSecrets(c) {
      return rotation(await rotateHostSecrets(deps, c.params.nqn, { fromGeneration: c.query.from_generation }));
    },

    /** The volume × host matrix of what the agents report, for every live attachment. */
    async getMultipathHealth(c) {
      const q = c.query;
      const page = { offset: q.offset ?? 0, limit: q.limit ?? 100 };
      const m = await healthMatrix(deps, {
        volumeId: q.volume_id,
        hostNqn: q.host_nqn,
        health: q.health ? (q.health.split(',') as CellHealth[]) : undefined,
        order: q.order,
        ...page,
      });
      return { status: 200, body: presentMatrix(m, page) };
    },
  };
}
