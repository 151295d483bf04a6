import type { Context } from 'openapi-backend';
import type { DriverDeps } from '../../driver/deps.ts';
import { DriverError } from '../../driver/errors.ts';
import type { AttachmentStatus } from '../../driver/model.ts';
import { confinedHost } from '../access.ts';
import { attachmentEvents } from '../../driver/health.ts';
import { presentEvent } from '../presenters/health.ts';
import { presentAttachment } from '../presenters/presenters.ts';
import type { HandlerResult } from './types.ts';

export function attachmentHandlers(deps: DriverDeps) {
  return {
    async listAttachments(c: Context): Promise<HandlerResult> {
      const q = c.request.query as { volume_id?: string; host_nqn?: string; status?: AttachmentStatus };
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

    async getAttachment(c: Context): Promise<HandlerResult> {
      const id = c.request.params.id as string;
      const a = await deps.store.getAttachment(id);
      if (!a) throw new DriverError('attachment_not_found', `attachment ${id} does not exist`);
      const host = confinedHost(c);
      // Another host's attachment answers as a missing one: a host token learns nothing of others.
      if (host && a.hostNqn !== host) throw new DriverError('attachment_not_found', `attachment ${id} does not exist`);
      return { status: 200, body: presentAttachment(a) };
    },

    async listAttachmentEvents(c: Context): Promise<HandlerResult> {
      const q = c.request.query as { limit?: number };
      const events = await attachmentEvents(deps, c.request.params.id as string, {
        hostNqn: confinedHost(c),
        limit: q.limit ?? 100,
      });
      return { status: 200, body: { events: events.map(presentEvent) } };
    },
  };
}
