import type { Knex } from 'knex';

/**
 * `hosts.agent_version`: the version the host's agent sent (`x-portalis-agent-version`) when it
 * last registered; null for an agent older than 0.2.0, which does not send one. An expand-only
 * change (docs/DECISIONS.md, "Schema changes: expand, then contract"): a nullable column the
 * previous release neither reads nor writes.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('hosts', (t) => {
    t.text('agent_version').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('hosts', (t) => {
    t.dropColumn('agent_version');
  });
}
