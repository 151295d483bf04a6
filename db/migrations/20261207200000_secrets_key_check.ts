import type { Knex } from 'knex';

/**
 * `secrets_key_check`: one value sealed with the fleet's PORTALIS_SECRETS_KEY by the first replica
 * that starts with a key. Every replica opens it at start-up and refuses to start when it cannot
 * (another key), instead of sealing new secrets that the other replicas cannot open and answering
 * `secrets_unreadable` on every poll of those hosts. One row at most (`id = 1`). Expand-only: a
 * table the previous release neither reads nor writes.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('secrets_key_check', (t) => {
    t.smallint('id').primary();
    t.binary('sealed').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.check('id = 1', [], 'secrets_key_check_one_row');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('secrets_key_check');
}
