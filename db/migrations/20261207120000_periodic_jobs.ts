import type { Knex } from 'knex';

/**
 * Periodic work once per fleet (docs/DECISIONS.md, "Periodic work once per fleet"): one row per
 * background job (the portal refresh, the path-health prune, the capacity read), which a replica
 * claims with one UPDATE when `due_at` has passed by the database's clock.
 * - `due_at`: when the job may be claimed next. A claim sets it to now() + the lease (renewed
 *   while the pass runs, so a replica that dies mid-pass holds it one lease at most); the end of
 *   the pass sets it to now() + the period.
 * - `owner`, `token`: who holds the latest claim; `token` grows by one with each claim, so a
 *   replica that lost its claim cannot renew or end a newer one.
 * - `claimed_at`, `finished_at`: when the latest pass started and when the last pass ended.
 * - `result`: what the last pass left for the other replicas (the capacity figures), or null.
 * Rows are created by the first claim of each job (an upsert), not here.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('periodic_jobs', (t) => {
    t.text('name').primary();
    t.text('owner').nullable();
    t.bigInteger('token').notNullable().defaultTo(0);
    t.timestamp('due_at', { useTz: true }).notNullable();
    t.timestamp('claimed_at', { useTz: true }).nullable();
    t.timestamp('finished_at', { useTz: true }).nullable();
    t.jsonb('result').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('periodic_jobs');
}
