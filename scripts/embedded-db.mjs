// Starts the embedded PostgreSQL for the test runner: the same code as the service's default
// database (src/store/embedded.ts), loaded through tsx.
import { register } from 'tsx/esm/api';

register();
const { startEmbeddedPostgres: start } = await import('../src/store/embedded.ts');

export async function startEmbeddedPostgres(dir) {
  return start({ dir, persistent: false });
}
