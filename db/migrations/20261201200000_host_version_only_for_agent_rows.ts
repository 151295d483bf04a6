import type { Knex } from 'knex';

/**
 * A host's version moves only for attachments its agent can see. The agent's list holds only
 * attachments with connection info (see `PgHostStore.agentView`), so a row without it before and
 * after a write (initialize_connection's `attaching` record, written before the grant; a failed
 * one's `error`) changes nothing the agent is shown. Bumping for it woke every poll of the host
 * once more per attach, each wake a read and an answer with nothing new. The host record is
 * still created with the first attachment, as before (hosts list the hosts attachments name).
 */

/** The 20261121010000 migration's rule, which both versions of the function end with. */
const BUMP_ON_CHANGE = `
      IF TG_OP = 'INSERT'
         OR OLD.status IS DISTINCT FROM NEW.status
         OR OLD.connection_info IS DISTINCT FROM NEW.connection_info
         OR OLD.detach_force IS DISTINCT FROM NEW.detach_force THEN
        PERFORM portalis_bump_host(NEW.host_nqn, NEW.host_name);
      END IF;
      RETURN NULL;`;

const replaceFunction = (body: string) => `
    CREATE OR REPLACE FUNCTION portalis_attachment_changed() RETURNS trigger AS $$
    BEGIN${body}
    END $$ LANGUAGE plpgsql;`;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    replaceFunction(`
      IF NEW.connection_info IS NULL AND (TG_OP = 'INSERT' OR OLD.connection_info IS NULL) THEN
        IF TG_OP = 'INSERT' THEN
          INSERT INTO hosts (nqn, name, version) VALUES (NEW.host_nqn, NEW.host_name, 0)
            ON CONFLICT (nqn) DO NOTHING;
        END IF;
        RETURN NULL;
      END IF;${BUMP_ON_CHANGE}`),
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(replaceFunction(BUMP_ON_CHANGE));
}
