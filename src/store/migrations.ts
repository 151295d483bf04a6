import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Knex } from 'knex';

/** `db/migrations` of this package, wherever it is installed. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../db/migrations/', import.meta.url));

const MIGRATION_FILE = /^\d{14}_[a-z0-9_]+\.(ts|js)$/;

interface MigrationModule {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/**
 * A knex migration source that imports the files of `db/migrations` itself: knex's own loader
 * `require()`s files, which cannot load ESM TypeScript. The sources are `.ts`, the compiled build
 * `.js`; a migration is named by its `.ts` file either way, the name knex records in
 * `knex_migrations`, so a database migrated by one runs under the other.
 */
export class TsMigrationSource implements Knex.MigrationSource<string> {
  constructor(private readonly dir: string = MIGRATIONS_DIR) {}

  async getMigrations(): Promise<string[]> {
    const files = await readdir(this.dir);
    return files.filter((f) => MIGRATION_FILE.test(f)).sort();
  }

  getMigrationName(migration: string): string {
    return migration.replace(/\.js$/, '.ts');
  }

  async getMigration(migration: string): Promise<MigrationModule> {
    return (await import(pathToFileURL(path.join(this.dir, migration)).href)) as MigrationModule;
  }
}

export async function migrateLatest(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest({ migrationSource: new TsMigrationSource() })) as [number, string[]];
  return applied;
}

export async function migrateRollbackAll(knex: Knex): Promise<void> {
  await knex.migrate.rollback({ migrationSource: new TsMigrationSource() }, true);
}
