import type { Knex } from 'knex';

/**
 * In-band authentication (DH-HMAC-CHAP) secrets per host, and the state of their rotation
 * (docs/DECISIONS.md, "Host secrets and their rotation"). Expand-only: two new tables that the
 * previous release never reads; its replicas keep working on the migrated schema.
 *
 * - `host_secrets`: one row per host and generation. `host_secret` and `ctrl_secret` hold the
 *   `DHHC-1` strings sealed with AES-256-GCM (src/store/secret-box.ts), never plaintext; a
 *   retired generation keeps its row (when, which generation) but loses both ciphertexts.
 * - `host_auth`: per host, the generation in force and the rotation under way: `next_generation`
 *   and the step it has reached (`staged` → `at_backend` → `confirmed` → back to `idle`), with the
 *   last failure of a step, so that a retry resumes where the last attempt stopped.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE host_secrets (
      host_nqn text NOT NULL REFERENCES hosts (nqn) ON DELETE CASCADE,
      generation integer NOT NULL CHECK (generation > 0),
      host_secret bytea,
      ctrl_secret bytea,
      created_at timestamptz NOT NULL DEFAULT now(),
      retired_at timestamptz,
      PRIMARY KEY (host_nqn, generation),
      CHECK ((retired_at IS NULL) = (host_secret IS NOT NULL AND ctrl_secret IS NOT NULL))
    );
    CREATE TABLE host_auth (
      host_nqn text PRIMARY KEY REFERENCES hosts (nqn) ON DELETE CASCADE,
      generation integer NOT NULL DEFAULT 0 CHECK (generation >= 0),
      next_generation integer,
      step text NOT NULL DEFAULT 'idle' CHECK (step IN ('idle', 'staged', 'at_backend', 'confirmed')),
      last_error text,
      updated_at timestamptz NOT NULL DEFAULT now(),
      CHECK ((step = 'idle') = (next_generation IS NULL)),
      CHECK (next_generation IS NULL OR next_generation = generation + 1)
    );`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE host_auth; DROP TABLE host_secrets;');
}
