import type { Knex } from 'knex';

/**
 * Path-health history: one row per change of an attachment's reported agent state or health,
 * with the paths and the error as the agent reported them, kept for a bounded time (the
 * service prunes rows older than its retention). `attachments.health_since` says since when
 * the attachment has been in its current reported (state, health), for the health matrix.
 *
 * The partial index on live attachments serves the health matrix, which reads only those.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('attachment_events', (t) => {
    t.bigIncrements('id').primary();
    t.uuid('attachment_id').notNullable().references('id').inTable('attachments').onDelete('CASCADE');
    t.timestamp('at', { useTz: true }).notNullable();
    t.text('from_state').nullable();
    t.text('to_state').notNullable();
    t.text('from_health').nullable();
    t.text('to_health').nullable();
    t.jsonb('paths').notNullable();
    t.jsonb('error').nullable();
    t.index(['attachment_id', 'at']);
    t.index(['at']);
  });
  await knex.schema.alterTable('attachments', (t) => {
    t.timestamp('health_since', { useTz: true }).nullable();
  });
  await knex.raw(`
    CREATE INDEX attachments_live_matrix ON attachments (volume_id, host_nqn)
      WHERE status IN ('attaching', 'attached')`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS attachments_live_matrix');
  await knex.schema.alterTable('attachments', (t) => t.dropColumn('health_since'));
  await knex.schema.dropTable('attachment_events');
}
