import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../shared/env.ts';
import { loadSecretsKey, SecretBox } from './secret-box.ts';

describe('SecretBox (AES-256-GCM at rest)', () => {
  const box = new SecretBox(randomBytes(32));

  it('round-trips, with a fresh nonce per value: the same plaintext never gives the same bytes', () => {
    const a = box.seal('DHHC-1:00:secret:', 'ctx');
    const b = box.seal('DHHC-1:00:secret:', 'ctx');
    assert.notDeepEqual(a, b);
    assert.equal(box.open(a, 'ctx'), 'DHHC-1:00:secret:');
    assert.equal(a.includes(Buffer.from('DHHC-1')), false, 'no plaintext in the sealed bytes');
  });

  it('refuses another context (row), a changed byte or another key', () => {
    const sealed = box.seal('s', 'host-a/1/host');
    assert.throws(() => box.open(sealed, 'host-b/1/host'));
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 1]! ^= 1;
    assert.throws(() => box.open(flipped, 'host-a/1/host'));
    assert.throws(() => new SecretBox(randomBytes(32)).open(sealed, 'host-a/1/host'));
    assert.equal(JSON.stringify({ box }), '{"box":"SecretBox"}');
  });

  it('takes the key from the environment or a file, and names the setting when it is wrong', () => {
    const key = randomBytes(32);
    assert.deepEqual(loadSecretsKey({ PORTALIS_SECRETS_KEY: key.toString('base64') }), key);
    assert.deepEqual(loadSecretsKey({ PORTALIS_SECRETS_KEY: key.toString('hex') }), key);
    const dir = mkdtempSync(path.join(tmpdir(), 'portalis-key-'));
    writeFileSync(path.join(dir, 'key'), `${key.toString('base64')}\n`, { mode: 0o600 });
    assert.deepEqual(loadSecretsKey({ PORTALIS_SECRETS_KEY_FILE: path.join(dir, 'key') }), key);
    assert.equal(loadSecretsKey({}), null);
    const named = (variable: string) => (e: unknown) => e instanceof ConfigError && e.variable === variable;
    assert.throws(() => loadSecretsKey({ PORTALIS_SECRETS_KEY: 'short' }), named('PORTALIS_SECRETS_KEY'));
    assert.throws(
      () => loadSecretsKey({ PORTALIS_SECRETS_KEY_FILE: path.join(dir, 'missing') }),
      named('PORTALIS_SECRETS_KEY_FILE'),
    );
    assert.throws(
      () => loadSecretsKey({ PORTALIS_SECRETS_KEY: key.toString('hex'), PORTALIS_SECRETS_KEY_FILE: 'x' }),
      named('PORTALIS_SECRETS_KEY'),
    );
  });
});
