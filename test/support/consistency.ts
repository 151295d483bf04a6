import type { Target } from './target.ts';
import { SimClient } from './sim-client.ts';

/** Attachment statuses under which the host may still be in the backend ACL. */
const MAY_HOLD_ACCESS = new Set(['attaching', 'attached', 'detaching']);

/**
 * The service's records against the backend's ACLs, through both APIs (so it holds by URL too):
 * no host in a volume's ACL without an unfinished attachment of it, and no `attached` attachment
 * whose host is missing from the ACL. Returns what does not match (empty when consistent).
 */
export async function aclMismatches(t: Target): Promise<string[]> {
  const r = await t.http.get('/v1/attachments').set('authorization', `Bearer ${t.token}`);
  if (r.status !== 200) throw new Error(`GET /v1/attachments: ${r.status} ${JSON.stringify(r.body)}`);
  const attachments = r.body.attachments as { id: string; volume_id: string; host_nqn: string; status: string }[];
  const state = (await new SimClient(t.simUrl, { jwt: t.simJwt }).state()) as {
    volumes: { name: string; acl: string[] }[];
  };
  const acls = new Map<string, Set<string>>();
  for (const v of state.volumes) {
    const m = /^volume-([0-9a-f-]{36})$/.exec(v.name);
    if (m) acls.set(m[1]!, new Set(v.acl.filter((h) => h !== 'ALLOW_NONE')));
  }
  const problems: string[] = [];
  for (const [volumeId, acl] of acls) {
    const mine = attachments.filter((a) => a.volume_id === volumeId);
    for (const h of acl) {
      if (!mine.some((a) => a.host_nqn === h && MAY_HOLD_ACCESS.has(a.status)))
        problems.push(`volume ${volumeId}: ${h} is in the ACL without a live attachment`);
    }
  }
  for (const a of attachments) {
    if (a.status === 'attached' && !acls.get(a.volume_id)?.has(a.host_nqn))
      problems.push(`attachment ${a.id} (volume ${a.volume_id}) is attached but ${a.host_nqn} is not in the ACL`);
  }
  return problems;
}
