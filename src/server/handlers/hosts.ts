import type { Context } from 'openapi-backend';
import { effectiveHealth } from '../../driver/agent-sync.ts';
import type { DriverDeps } from '../../driver/deps.ts';
import { getHost, issueHostToken, revokeHostToken } from '../../driver/hosts.ts';
import { LIVE_STATUSES } from '../../driver/model.ts';
import { presentHost } from '../presenters/presenters.ts';
import type { HandlerResult } from './types.ts';

export function hostHandlers(deps: DriverDeps) {
  return {
    /** Issues (or re-issues, revoking the old one) the agent token of a host. */
    async issueHostToken(c: Context): Promise<HandlerResult> {
      const b = c.request.requestBody as { nqn: string; name?: string };
      const { host, token } = await issueHostToken(deps, b.nqn, b.name);
      return { status: 201, body: { host: presentHost(host), token } };
    },

    async listHosts(): Promise<HandlerResult> {
      return { status: 200, body: { hosts: (await deps.hosts.listHosts()).map(presentHost) } };
    },

    async getHost(c: Context): Promise<HandlerResult> {
      return { status: 200, body: presentHost(await getHost(deps, c.request.params.nqn as string)) };
    },

    async revokeHostToken(c: Context): Promise<HandlerResult> {
      await revokeHostToken(deps, c.request.params.nqn as string);
      return { status: 200, body: { revoked: true } };
    },

    /** The volume × host matrix of what the agents report, for every live attachment. */
    async getMultipathHealth(): Promise<HandlerResult> {
      const now = new Date();
      const live = (await deps.store.listAttachments({})).filter((a) => LIVE_STATUSES.includes(a.status));
      const byVolume = new Map<string, ReturnType<typeof cell>[]>();
      function cell(a: (typeof live)[number]) {
        const paths = a.report?.paths ?? [];
        return {
          host_nqn: a.hostNqn,
          host: a.hostName,
          attachment_id: a.id,
          state: a.report?.state ?? null,
          health: effectiveHealth(a.report, now),
          paths_total: paths.length,
          paths_live: paths.filter((p) => p.state === 'live').length,
          reported_at: a.report ? a.report.reportedAt.toISOString() : null,
        };
      }
      for (const a of live) byVolume.set(a.volumeId, [...(byVolume.get(a.volumeId) ?? []), cell(a)]);
      const cells = [...byVolume.values()].flat();
      const count = (h: string) => cells.filter((x) => x.health === h).length;
      return {
        status: 200,
        body: {
          generated_at: now.toISOString(),
          summary: {
            optimal: count('optimal'),
            degraded: count('degraded'),
            failed: count('failed'),
            unknown: count('unknown'),
          },
          volumes: [...byVolume.entries()].map(([volume_id, hosts]) => ({ volume_id, hosts })),
        },
      };
    },
  };
}
