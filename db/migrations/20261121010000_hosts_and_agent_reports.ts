import type { Knex } from 'knex';

/**
 * Compute hosts (their agent's token and registered connector) and what each agent reports per
 * attachment.
 *
 * `hosts.version` changes whenever something the host's agent must act on changes: an
 * attachment of the host is created or changes status, connection info or force flag, or a
 * volume attached to it grows. Triggers keep it, so that every writer (any service process, any
 * code path) bumps it, and `pg_notify` wakes the long-polls of every service process.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('hosts', (t) => {
    t.text('nqn').primary();
    t.text('name').notNullable();
    t.jsonb('connector').nullable();
    t.text('token_hash').nullable().unique();
    t.timestamp('token_issued_at', { useTz: true }).nullable();
    t.timestamp('registered_at', { useTz: true }).nullable();
    t.timestamp('last_seen_at', { useTz: true }).nullable();
    t.bigInteger('version').notNullable().defaultTo(0);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.alterTable('attachments', (t) => {
    t.boolean('detach_force').notNullable().defaultTo(false);
    t.text('agent_state').nullable();
    t.text('device_path').nullable();
    t.bigInteger('size_bytes').nullable();
    t.text('health').nullable();
    t.jsonb('paths').nullable();
    t.jsonb('agent_error').nullable();
    t.timestamp('reported_at', { useTz: true }).nullable();
  });

  await knex.raw(`
    CREATE FUNCTION portalis_bump_host(host_nqn text, host_name text) RETURNS void AS $$
    BEGIN
      INSERT INTO hosts (nqn, name, version) VALUES (host_nqn, host_name, 1)
        ON CONFLICT (nqn) DO UPDATE SET version = hosts.version + 1;
      PERFORM pg_notify('portalis_host_changed', host_nqn);
    END $$ LANGUAGE plpgsql;

    CREATE FUNCTION portalis_attachment_changed() RETURNS trigger AS $$
    BEGIN
      IF TG_OP = 'INSERT'
         OR OLD.status IS DISTINCT FROM NEW.status
         OR OLD.connection_info IS DISTINCT FROM NEW.connection_info
         OR OLD.detach_force IS DISTINCT FROM NEW.detach_force THEN
        PERFORM portalis_bump_host(NEW.host_nqn, NEW.host_name);
      END IF;
      RETURN NULL;
    END $$ LANGUAGE plpgsql;

    CREATE TRIGGER attachments_notify_host AFTER INSERT OR UPDATE ON attachments
      FOR EACH ROW EXECUTE FUNCTION portalis_attachment_changed();

    CREATE FUNCTION portalis_volume_resized() RETURNS trigger AS $$
    DECLARE h record;
    BEGIN
      IF OLD.size_gb IS DISTINCT FROM NEW.size_gb THEN
        FOR h IN SELECT DISTINCT host_nqn, host_name FROM attachments
                  WHERE volume_id = NEW.id AND status IN ('attaching', 'attached') LOOP
          PERFORM portalis_bump_host(h.host_nqn, h.host_name);
        END LOOP;
      END IF;
      RETURN NULL;
    END $$ LANGUAGE plpgsql;

    CREATE TRIGGER volumes_notify_hosts AFTER UPDATE ON volumes
      FOR EACH ROW EXECUTE FUNCTION portalis_volume_resized();
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TRIGGER IF EXISTS volumes_notify_hosts ON volumes;
    DROP TRIGGER IF EXISTS attachments_notify_host ON attachments;
    DROP FUNCTION IF EXISTS portalis_volume_resized();
    DROP FUNCTION IF EXISTS portalis_attachment_changed();
    DROP FUNCTION IF EXISTS portalis_bump_host(text, text);
  `);
  await knex.schema.alterTable('attachments', (t) => {
    for (const c of [
      'detach_force',
      'agent_state',
      'device_path',
      'size_bytes',
      'health',
      'paths',
      'agent_error',
      'reported_at',
    ])
      t.dropColumn(c);
  });
  await knex.schema.dropTable('hosts');
}
