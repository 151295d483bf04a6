import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { GENERATED_PATH, generateApiTypes } from './api-types.ts';

describe('the generated API types', () => {
  it('are what api-spec/portalis.yaml generates (else run `npm run gen:types` and commit the result)', async () => {
    const fresh = await generateApiTypes();
    const checkedIn = readFileSync(GENERATED_PATH, 'utf8');
    // The first line that differs, not two 1,600-line texts side by side.
    const [a, b] = [checkedIn.split('\n'), fresh.split('\n')];
    const at = a.findIndex((line, i) => line !== b[i]);
    const line = at === -1 ? Math.min(a.length, b.length) + 1 : at + 1;
    assert.ok(checkedIn === fresh, `src/server/generated/api.ts is stale from line ${line}: run \`npm run gen:types\``);
  });
});
