/**
 * Encryption at rest of the hosts' DH-HMAC-CHAP secrets: AES-256-GCM (node:crypto) with a fresh
 * random 96-bit nonce per value (NIST SP 800-38D, 8.2: a 96-bit IV; random IVs are safe for far
 * more values than a fleet's secrets under one key). The stored bytes are
 * `version(1) || nonce(12) || tag(16) || ciphertext`. The row's identity (host NQN, generation,
 * which secret) is the additional authenticated data, so a ciphertext copied into another row,
 * or another host's, fails to decrypt instead of handing one host's secret to another.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../shared/env.ts';

const VERSION = 1;
const NONCE = 12;
const TAG = 16;

export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new RangeError('the secrets key must be 32 bytes');
    this.#key = Buffer.from(key);
  }

  seal(plaintext: string, context: string): Buffer {
    const nonce = randomBytes(NONCE);
    const c = createCipheriv('aes-256-gcm', this.#key, nonce);
    c.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
    return Buffer.concat([Buffer.of(VERSION), nonce, c.getAuthTag(), body]);
  }

  /** Throws (without the plaintext or key in the message) when the bytes, the context or the key do not match. */
  open(sealed: Buffer, context: string): string {
    if (sealed.length < 1 + NONCE + TAG || sealed[0] !== VERSION) throw new Error('not a sealed secret');
    const d = createDecipheriv('aes-256-gcm', this.#key, sealed.subarray(1, 1 + NONCE));
    d.setAAD(Buffer.from(context, 'utf8'));
    d.setAuthTag(sealed.subarray(1 + NONCE, 1 + NONCE + TAG));
    return Buffer.concat([d.update(sealed.subarray(1 + NONCE + TAG)), d.final()]).toString('utf8');
  }

  /** Never print the key: a logged or inspected box shows nothing of it. */
  toJSON(): string {
    return 'SecretBox';
  }
}

/**
 * The 32-byte key from `PORTALIS_SECRETS_KEY` (base64 or 64 hex digits) or from the file
 * `PORTALIS_SECRETS_KEY_FILE` names (the same text; a file keeps it out of the environment of
 * child processes). Never from the command line, where `ps` shows it. Null when neither is set.
 */
export function loadSecretsKey(env: Record<string, string | undefined>): Buffer | null {
  const inline = env.PORTALIS_SECRETS_KEY?.trim();
  const file = env.PORTALIS_SECRETS_KEY_FILE?.trim();
  if (inline && file)
    throw new ConfigError(
      'PORTALIS_SECRETS_KEY',
      'set either PORTALIS_SECRETS_KEY or PORTALIS_SECRETS_KEY_FILE, not both',
    );
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(
        'PORTALIS_SECRETS_KEY_FILE',
        `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
    return parseKey('PORTALIS_SECRETS_KEY_FILE', text.trim());
  }
  return inline ? parseKey('PORTALIS_SECRETS_KEY', inline) : null;
}

function parseKey(variable: string, text: string): Buffer {
  const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length !== 32 || (!/^[0-9a-fA-F]{64}$/.test(text) && !/^[A-Za-z0-9+/]{43}=?$/.test(text)))
    throw new ConfigError(variable, 'must be 32 bytes as base64 or 64 hex digits (e.g. `openssl rand -base64 32`)');
  return key;
}
