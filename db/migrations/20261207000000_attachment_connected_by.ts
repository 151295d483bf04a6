import type { Knex } from 'knex';

/**
 * Who connects an attachment on its host (docs/DECISIONS.md, "Who connects an attachment"):
 * - `attachments.connected_by`: `agent` when the Portalis agent connects, heals and tears the
 *   device down itself; `host` when something else on the host does (os-brick under Nova), and
 *   the agent only observes and adds the paths that live-path changes bring. Decided once, at
 *   the first initialize_connection, from the connector: only `portalis agent
 *   connector-properties` writes `dm_multipath`, os-brick's `get_connector_properties` never
 *   does. Existing rows get the same rule.
 * - `attachments.host_portals`: for a host-connected attachment, the portals handed to the host
 *   at its last initialize_connection, which are the ones os-brick connected and will disconnect.
 *   The portal refresh never changes them (it changes `connection_info`): the agent adds only the
 *   portals outside this list, so it never races os-brick for a portal os-brick is connecting.
 * The host's version moves when `host_portals` changes, so that its agent's long poll wakes.
 */

/** `chooseConnectedBy()` of src/driver/connection-info.ts, in SQL (a JSON null still names the key). */
const RULE = `CASE WHEN NEW.connector->'dm_multipath' IS NOT NULL THEN 'agent' ELSE 'host' END`;

const BUMP_ON_CHANGE = (hostPortals: boolean) => `
      IF TG_OP = 'INSERT'
         OR OLD.status IS DISTINCT FROM NEW.status
         OR OLD.connection_info IS DISTINCT FROM NEW.connection_info${
           hostPortals ? '\n         OR OLD.host_portals IS DISTINCT FROM NEW.host_portals' : ''
         }
         OR OLD.detach_force IS DISTINCT FROM NEW.detach_force THEN
        PERFORM portalis_bump_host(NEW.host_nqn, NEW.host_name);
      END IF;
      RETURN NULL;`;

/** The 20261201200000 migration's function, with the rule above. */
const replaceFunction = (hostPortals: boolean) => `
    CREATE OR REPLACE FUNCTION portalis_attachment_changed() RETURNS trigger AS $$
    BEGIN
      IF NEW.connection_info IS NULL AND (TG_OP = 'INSERT' OR OLD.connection_info IS NULL) THEN
        IF TG_OP = 'INSERT' THEN
          INSERT INTO hosts (nqn, name, version) VALUES (NEW.host_nqn, NEW.host_name, 0)
            ON CONFLICT (nqn) DO NOTHING;
        END IF;
        RETURN NULL;
      END IF;${BUMP_ON_CHANGE(hostPortals)}
    END $$ LANGUAGE plpgsql;`;

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('attachments', (t) => {
    t.text('connected_by').nullable();
    t.jsonb('host_portals').nullable();
  });
  await knex.raw(
    `UPDATE attachments SET connected_by = ${RULE.replaceAll('NEW.', '')},
            host_portals = CASE WHEN ${RULE.replaceAll('NEW.', '')} = 'host' THEN connection_info->'data'->'portals' END`,
  );
  // A row inserted without the column (a replica of the previous release during a rolling
  // upgrade) gets the rule here: a default could only guess, and the choice is never revisited.
  // BEFORE triggers run before the NOT NULL check (PostgreSQL manual, "Overview of Trigger Behavior").
  await knex.raw(`
    CREATE FUNCTION portalis_attachment_connected_by() RETURNS trigger AS $$
    BEGIN
      IF NEW.connected_by IS NULL THEN
        NEW.connected_by := ${RULE};
      END IF;
      RETURN NEW;
    END $$ LANGUAGE plpgsql;
    CREATE TRIGGER attachments_connected_by BEFORE INSERT ON attachments
      FOR EACH ROW EXECUTE FUNCTION portalis_attachment_connected_by();`);
  await knex.raw(`ALTER TABLE attachments ALTER COLUMN connected_by SET NOT NULL,
    ADD CONSTRAINT attachments_connected_by_check CHECK (connected_by IN ('agent', 'host'))`);
  await knex.raw(replaceFunction(true));
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(replaceFunction(false));
  await knex.raw('DROP TRIGGER attachments_connected_by ON attachments');
  await knex.raw('DROP FUNCTION portalis_attachment_connected_by()');
  await knex.schema.alterTable('attachments', (t) => {
    t.dropColumn('host_portals');
    t.dropColumn('connected_by');
  });
}
