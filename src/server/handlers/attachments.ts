import type { Context } from 'openapi-backend';
import type { DriverDeps } from '../../driver/deps.ts';
import { DriverError } from '../../driver/errors.ts';
import type { AttachmentStatus } from '../../driver/model.ts';
import { presentAttachment } from '../presenters/presenters.ts';
import type { HandlerResult } from './types.ts';

export function attachmentHandlers(deps: DriverDeps) {
  return {
    async listAttachments(c: Context): Promise<HandlerResult> {
      const q = c.request.query as { volume_id?: string; host_nqn?: string; status?: AttachmentStatus };
      const list = await deps.store.listAttachments({ volumeId: q.volume_id, hostNqn: q.host_nqn, status: q.status });
      return { status: 200, body: { attachments: list.map(presentAttachment) } };
    },

    async getAttachment(c: Context): Promise<HandlerResult> {
      const id = c.request.params.id as string;
      const a = await deps.store.getAttachment(id);
      if (!a) throw new DriverError('attachment_not_found', `attachment ${id} does not exist`);
      return { status: 200, body: presentAttachment(a) };
    },
  };
}
