import { pollAgentTasks, recordAgentReport } from '../../driver/agent-sync.ts';
import type { DriverDeps } from '../../driver/deps.ts';
import { secretsForAgent } from '../../driver/host-secrets.ts';
import { registerAgent } from '../../driver/hosts.ts';
import { hostOf, hostPrincipalOf } from '../access.ts';
import type { Handlers, Reply } from '../call.ts';
import { presentDhchapPair, presentHost } from '../presenters/presenters.ts';

/** The agent-facing API: each call acts for the host the token was issued to, and only that host. */
export function agentHandlers(deps: DriverDeps): Handlers<'agentRegister' | 'agentListAttachments' | 'agentReport'> {
  return {
    async agentRegister(c) {
      const host = await registerAgent(
        deps,
        hostOf(c),
        c.body.connector,
        c.headers['x-portalis-agent-version'] ?? null,
      );
      return { status: 200, body: { host: presentHost(host) } };
    },

    async agentListAttachments(c) {
      const { query: q, res } = c;
      const { hostNqn, tokenHash } = hostPrincipalOf(c);
      // Only plain values go on: the wait must not keep the Call (see DeferredResult).
      const since = q.since ?? null;
      const waitMs = (q.wait ?? 0) * 1000;
      return { later: () => longPoll(deps, res, hostNqn, since, waitMs, tokenHash) };
    },

    async agentReport(c) {
      const b = c.body;
      await recordAgentReport(deps, hostOf(c), c.params.id, {
        state: b.state,
        devicePath: b.device_path,
        sizeBytes: b.size_bytes,
        health: b.health,
        paths: b.paths,
        error: b.error,
      });
      return { status: 200, body: { ok: true } };
    },
  };
}

async function longPoll(
  deps: DriverDeps,
  res: { on?: (e: string, f: () => void) => void },
  hostNqn: string,
  since: number | null,
  waitMs: number,
  tokenHash: string,
): Promise<Reply<'agentListAttachments'>> {
  // A client that gives up on its long poll must not keep a waiter behind.
  const abort = new AbortController();
  res.on?.('close', () => abort.abort());
  const list = await pollAgentTasks(deps, hostNqn, since, waitMs, { signal: abort.signal, tokenHash });
  // The host's own secrets, read for the host the token names and no other (the poll above has
  // checked the token again after its wait). Without a secrets key the field is left out.
  const secrets = await secretsForAgent(deps, hostNqn);
  return {
    status: 200,
    body: {
      version: list.version,
      attachments: list.tasks.map((t) => ({
        id: t.attachmentId,
        volume_id: t.volumeId,
        desired: t.desired,
        force: t.force,
        size_gb: t.volumeSizeGb,
        connection_info: t.connectionInfo,
        connected_by: t.connectedBy,
        host_portals: t.hostPortals,
      })),
      ...(secrets === undefined
        ? {}
        : {
            dhchap: secrets && {
              current: presentDhchapPair(secrets.current),
              previous: secrets.previous && presentDhchapPair(secrets.previous),
            },
          }),
    },
  };
}
