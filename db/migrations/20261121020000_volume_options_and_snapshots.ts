import type { Knex } from 'knex';

/**
 * The rest of the Cinder volume contract: the options a volume is created with (compression,
 * thin provisioning, QoS policy, the snapshot or volume it was made from), soft deletion, and
 * snapshots.
 *
 * Volumes are soft-deleted (`deleted_at`): their ended attachments must outlive them, because the
 * host agent still has to tear the device down after a (force) delete, and it learns that from the
 * attachment rows, which the foreign key would otherwise cascade away.
 *
 * `snapshots.volume_id` deliberately has no ON DELETE: a volume with snapshots is refused
 * deletion (as Cinder's API does), so the key only makes a bug there fail loudly.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('volumes', (t) => {
    t.boolean('compression').notNullable().defaultTo(false);
    t.boolean('thin_provisioned').notNullable().defaultTo(true);
    t.text('qos_policy_id').nullable();
    t.uuid('source_snapshot_id').nullable();
    t.uuid('source_volume_id').nullable();
    t.timestamp('deleted_at', { useTz: true }).nullable();
  });

  await knex.schema.createTable('snapshots', (t) => {
    t.uuid('id').primary();
    t.uuid('volume_id').notNullable().references('id').inTable('volumes');
    t.text('name').nullable();
    t.text('backend_name').notNullable();
    t.text('backend_uuid').nullable();
    t.integer('size_gb').notNullable();
    t.text('status').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['volume_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('snapshots');
  await knex.schema.alterTable('volumes', (t) => {
    for (const c of [
      'compression',
      'thin_provisioned',
      'qos_policy_id',
      'source_snapshot_id',
      'source_volume_id',
      'deleted_at',
    ])
      t.dropColumn(c);
  });
}
