import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { VERSION } from './version.ts';

const read = (rel: string) => readFileSync(new URL(`../../${rel}`, import.meta.url), 'utf8');

describe('the release version', () => {
  it('is the same in version.ts, package.json, the API document and the newest CHANGELOG.md entry', () => {
    assert.equal((JSON.parse(read('package.json')) as { version: string }).version, VERSION);
    assert.equal((parse(read('api-spec/portalis.yaml')) as { info: { version: string } }).info.version, VERSION);
    const newest = /^## (\d+\.\d+\.\d+)/m.exec(read('CHANGELOG.md'));
    assert.equal(newest?.[1], VERSION);
  });
});
