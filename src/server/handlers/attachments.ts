import type { DriverDeps } from '../../driver/deps.ts';
import { DriverError } from '../../driver/errors.ts';
import { attachmentNotFound } from '../../driver/guards.ts';
import { confinedHost } from '../access.ts';
import type { Handlers } from '../call.ts';
import { attachmentEvents } from '../../driver/health.ts';
import { presentEvent } from '../presenters/health.ts';
import { presentAttachment } from '../presenters/presenters.ts';

export function attachmentHandlers(
  deps: DriverDeps,
): Handlers<'listAttachments' | 'getAttachment' | 'listAttachmentEvents'> {
  return {
    async listAttachments(c) {
      const q = c.query;
      const host = confinedHost(c);
      if (host && q.host_nqn && q.host_nqn !== host)
        throw new DriverError('forbidden', "a host token may only list its own host's attachments");
      const list = await deps.store.listAttachments({
        volumeId: q.volume_id,
        hostNqn: host ?? q.host_nqn,
        status: q.status,
      });
      return { status: 200, body: { attachments: list.map((a) => presentAttachment(a)) } };
    },

    async getAttachment(c) {
      const id = c.params.id;
      const a = await deps.store.getAttachment(id);
      const host = confinedHost(c);
      // Another host's attachment answers as a missing one: a host token learns nothing of others.
      if (!a || (host && a.hostNqn !== host)) throw attachmentNotFound(id);
      return { status: 200, body: presentAttachment(a) };
    },

    async listAttachmentEvents(c) {
      const q = c.query;
      const events = await attachmentEvents(deps, c.params.id, {
        hostNqn: confinedHost(c),
        limit: q.limit ?? 100,
      });
      return { status: 200, body: { events: events.map(presentEvent) } };
    },
  };
}
