import type { Knex } from 'knex';

/**
 * `attachments.portals_changed_at`: when the attachment's connection info (its portals) last
 * changed, set by the store on every write that changes it (the first one at attach, later ones
 * when the portal refresh follows the backend). Existing rows start from their last update.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('attachments', (t) => {
    t.timestamp('portals_changed_at', { useTz: true }).nullable();
  });
  await knex.raw('UPDATE attachments SET portals_changed_at = updated_at WHERE connection_info IS NOT NULL');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('attachments', (t) => {
    t.dropColumn('portals_changed_at');
  });
}
