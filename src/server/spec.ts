import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const SPEC_PATH = fileURLToPath(new URL('../../api-spec/portalis.yaml', import.meta.url));

/**
 * The same document as JSON, written by the build (`scripts/build.mjs`) into `dist/` only:
 * parsing the YAML costs ~150 ms of the service's start-up, JSON.parse a few.
 */
export const SPEC_JSON_PATH = SPEC_PATH.replace(/\.yaml$/, '.json');

/** The OpenAPI document of `api-spec/`, the single source of truth for routes and validation. */
export function loadSpec(): Record<string, unknown> {
  if (existsSync(SPEC_JSON_PATH)) return JSON.parse(readFileSync(SPEC_JSON_PATH, 'utf8')) as Record<string, unknown>;
  // Loaded only here, so that the compiled service never loads the YAML parser.
  const { parse } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return parse(readFileSync(SPEC_PATH, 'utf8')) as Record<string, unknown>;
}
