import type { Knex } from 'knex';

/**
 * Volumes the orchestrator created through Portalis, and their attachments.
 * The partial unique index is the last line of defence against a duplicate live attachment
 * for one (volume, host, instance): the advisory lock serialises the normal path, the index
 * makes a bug there fail loudly instead of granting twice.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('volumes', (t) => {
    t.uuid('id').primary();
    t.text('name').notNullable();
    t.integer('size_gb').notNullable();
    t.integer('replicas').notNullable();
    t.boolean('multiattach').notNullable().defaultTo(false);
    t.text('status').notNullable();
    t.text('backend_uuid').nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('attachments', (t) => {
    t.uuid('id').primary();
    t.uuid('volume_id').notNullable().references('id').inTable('volumes').onDelete('CASCADE');
    t.text('host_nqn').notNullable();
    t.text('host_name').notNullable();
    t.text('instance_uuid').nullable();
    t.jsonb('connector').notNullable();
    t.text('multipath_mode').notNullable();
    t.jsonb('connection_info').nullable();
    t.text('status').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('detached_at', { useTz: true }).nullable();
    t.index(['volume_id', 'status']);
    t.index(['host_nqn', 'status']);
  });

  await knex.raw(`
    CREATE UNIQUE INDEX attachments_one_live_per_host_instance
      ON attachments (volume_id, host_nqn, coalesce(instance_uuid, ''))
      WHERE status IN ('attaching', 'attached')`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('attachments');
  await knex.schema.dropTable('volumes');
}
