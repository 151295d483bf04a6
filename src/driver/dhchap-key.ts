/**
 * DH-HMAC-CHAP secrets in the NVMe transport representation (NVMe Base Specification 2.0,
 * 8.13.5.8 "Secret representation", from TP 8006):
 *
 *   DHHC-1:<hh>:<base64(secret || CRC-32(secret), little-endian)>:
 *
 * - `hh` names the transformation the consumer applies to the secret before use: `00` none,
 *   `01` SHA-256, `02` SHA-384, `03` SHA-512. With `00` the secret may be 32, 48 or 64 bytes;
 *   with a hash it is that hash's length (32, 48, 64).
 * - The CRC is the ordinary CRC-32 (the zlib/IEEE polynomial) of the secret bytes, appended
 *   little-endian: the kernel's `nvme_auth_extract_key()` (drivers/nvme/common/auth.c) computes
 *   `~crc32(~0, key, key_len)` and compares it with `get_unaligned_le32()` of the last 4 bytes;
 *   libnvme's `nvme_gen_dhchap_key` / nvme-cli's `gen-dhchap-key` write the same.
 * - We generate `00` secrets of 32 random bytes: with `01`-`03` nvme-cli 2.x and the kernel run
 *   the secret through HMAC(secret, NQN || "NVMe-over-Fabrics") first, which ties it to one NQN
 *   and buys nothing for a secret that is random already (nvme-cli 3.0's `gen-kxchap-secret`
 *   records no transformation by default either: nvme-cli wiki, "How to set up inband
 *   authentication").
 */
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { DriverError } from './errors.ts';

const SECRET_LENGTHS: Record<number, readonly number[]> = { 0: [32, 48, 64], 1: [32], 2: [48], 3: [64] };
const FORMAT = /^DHHC-1:(0[0-3]):([A-Za-z0-9+/]+={0,2}):$/;

/** A new random secret, `DHHC-1:00:…:` (32 bytes, no transformation). */
export function generateDhchapSecret(bytes = 32): string {
  return encodeDhchapSecret(randomBytes(bytes), 0);
}

export function encodeDhchapSecret(secret: Buffer, hash = 0): string {
  if (!SECRET_LENGTHS[hash]?.includes(secret.length))
    throw new RangeError(`a ${secret.length}-byte secret cannot have transformation ${hash}`);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(secret));
  return `DHHC-1:${hash.toString(16).padStart(2, '0')}:${Buffer.concat([secret, crc]).toString('base64')}:`;
}

/**
 * The secret bytes and transformation of a `DHHC-1` string; an `invalid_request` DriverError
 * (never the secret in its message) when the format, the length or the CRC is wrong.
 */
export function decodeDhchapSecret(text: string): { secret: Buffer; hash: number } {
  const bad = (why: string) => new DriverError('invalid_request', `not a DHHC-1 secret: ${why}`);
  const m = FORMAT.exec(text);
  if (!m) throw bad('expected DHHC-1:<hh>:<base64>:');
  const hash = Number.parseInt(m[1]!, 16);
  const raw = Buffer.from(m[2]!, 'base64');
  const secret = raw.subarray(0, raw.length - 4);
  if (!SECRET_LENGTHS[hash]!.includes(secret.length)) throw bad(`a ${secret.length}-byte secret`);
  if (raw.readUInt32LE(raw.length - 4) !== crc32(secret)) throw bad('CRC mismatch');
  return { secret, hash };
}
