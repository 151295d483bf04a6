import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const SPEC_PATH = fileURLToPath(new URL('../../api-spec/portalis.yaml', import.meta.url));

/** The OpenAPI document of `api-spec/`, the single source of truth for routes and validation. */
export function loadSpec(): Record<string, unknown> {
  return parse(readFileSync(SPEC_PATH, 'utf8')) as Record<string, unknown>;
}
