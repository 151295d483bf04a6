import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { DriverError } from './errors.ts';
import { decodeDhchapSecret, encodeDhchapSecret, generateDhchapSecret } from './dhchap-key.ts';

/** Debian's nvme-cli, when installed (`.ci/run` installs it): the reference implementation of the format. */
const NVME = ['/usr/sbin/nvme', '/usr/bin/nvme'].find((p) => existsSync(p));

describe('DHHC-1 secrets', () => {
  it('generates 32 random bytes with no transformation, CRC-32 appended little-endian', () => {
    const a = generateDhchapSecret();
    assert.match(a, /^DHHC-1:00:[A-Za-z0-9+/]{48}:$/);
    const raw = Buffer.from(a.split(':')[2]!, 'base64');
    assert.equal(raw.length, 36);
    const { secret, hash } = decodeDhchapSecret(a);
    assert.equal(hash, 0);
    assert.deepEqual(secret, raw.subarray(0, 32));
    assert.notEqual(generateDhchapSecret(), a, 'two secrets differ');
  });

  it('matches a known vector: 32 zero bytes carry CRC-32 0x190a55ad', () => {
    // CRC-32 (IEEE) of 32 zero bytes is 0x190A55AD, stored as ad 55 0a 19.
    const text = encodeDhchapSecret(Buffer.alloc(32), 0);
    const raw = Buffer.from(text.split(':')[2]!, 'base64');
    assert.deepEqual([...raw.subarray(32)], [0xad, 0x55, 0x0a, 0x19]);
  });

  it('refuses a wrong CRC, length or shape without echoing the secret', () => {
    const good = generateDhchapSecret();
    const raw = Buffer.from(good.split(':')[2]!, 'base64');
    raw[0]! ^= 1;
    const flipped = `DHHC-1:00:${raw.toString('base64')}:`;
    for (const bad of [
      flipped,
      good.replace('DHHC-1:00', 'DHHC-1:01').replace(/.{4}:$/, 'AAAA:'),
      'DHHC-1:00:abc',
      'x',
    ]) {
      assert.throws(
        () => decodeDhchapSecret(bad),
        (e: unknown) =>
          e instanceof DriverError &&
          e.code === 'invalid_request' &&
          !e.message.includes(bad.split(':')[2] ?? '\u0000'),
      );
    }
    assert.throws(() => encodeDhchapSecret(Buffer.alloc(48), 1), RangeError);
  });

  it('agrees with nvme-cli: check-dhchap-key accepts ours, and we accept gen-dhchap-key output', {
    skip: !NVME && 'nvme-cli is not installed',
  }, () => {
    const ours = generateDhchapSecret();
    // nvme-cli 2.x prints the decoded key and exits 0 for a valid one, exits non-zero on a CRC error.
    execFileSync(NVME!, ['check-dhchap-key', `--key=${ours}`], { stdio: 'pipe' });
    const raw = Buffer.from(ours.split(':')[2]!, 'base64');
    raw[5]! ^= 0xff;
    assert.throws(() =>
      execFileSync(NVME!, ['check-dhchap-key', `--key=DHHC-1:00:${raw.toString('base64')}:`], { stdio: 'pipe' }),
    );
    const theirs = execFileSync(NVME!, ['gen-dhchap-key', '--key-length=32', '--hmac=0'], { encoding: 'utf8' }).trim();
    assert.equal(decodeDhchapSecret(theirs).secret.length, 32);
  });
});
