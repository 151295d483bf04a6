/**
 * Requests for the schema-driven fuzz test: valid ones generated from the OpenAPI document's
 * schemas by json-schema-faker, mutated by fast-check arbitraries (wrong types, missing and extra
 * fields, odd strings, numbers JSON cannot carry, broken percent-encoding, content types and
 * encodings), all from one seed.
 */
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { generateSync, type JsonSchema } from 'json-schema-faker';
import { loadSpec } from '../../src/server/spec.ts';

export type Principal = 'admin' | 'host' | 'none' | 'wrong';

export interface Operation {
  id: string;
  method: string;
  template: string;
  access: 'admin' | 'host' | 'any' | 'open';
  pathParams: { name: string; schema: JsonSchema }[];
  queryParams: { name: string; schema: JsonSchema }[];
  body: JsonSchema | null;
}

/** A JSON text fragment written as is (numbers JSON.stringify cannot write: 2^64 exactly, 1e400). */
export class RawJson {
  constructor(readonly text: string) {}
}

/** JSON.stringify, with RawJson values written verbatim. */
export function toJson(value: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(value, (_k, v) => {
    if (v instanceof RawJson) {
      raws.push(v.text);
      return `\u0001raw${raws.length - 1}\u0001`;
    }
    return v;
  });
  return (text ?? 'null').replace(/"\\u0001raw(\d+)\\u0001"/g, (_m, i) => raws[Number(i)]!);
}

/** Every operation of api-spec/portalis.yaml, its local `$ref`s resolved. */
export function specOperations(): Operation[] {
  const spec = loadSpec() as Record<string, any>;
  const deref = (s: unknown): any => {
    if (Array.isArray(s)) return s.map(deref);
    if (s && typeof s === 'object') {
      const ref = (s as { $ref?: unknown }).$ref;
      if (typeof ref === 'string')
        return deref(
          ref
            .slice(2)
            .split('/')
            .reduce((x: any, p) => x[p], spec),
        );
      return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, deref(v)]));
    }
    return s;
  };
  const ops: Operation[] = [];
  for (const [template, item] of Object.entries(spec.paths as Record<string, any>)) {
    for (const method of ['get', 'put', 'post', 'delete']) {
      const op = item[method];
      if (!op) continue;
      const params = deref([...(item.parameters ?? []), ...(op.parameters ?? [])]) as any[];
      const open = Array.isArray(op.security) && op.security.length === 0;
      ops.push({
        id: op.operationId,
        method: method.toUpperCase(),
        template,
        access: open ? 'open' : (op['x-portalis-access'] ?? 'admin'),
        pathParams: params.filter((p) => p.in === 'path').map((p) => ({ name: p.name, schema: p.schema })),
        queryParams: params.filter((p) => p.in === 'query').map((p) => ({ name: p.name, schema: p.schema })),
        body: op.requestBody ? deref(op.requestBody.content['application/json'].schema) : null,
      });
    }
  }
  return ops;
}

/** A schema-valid value (json-schema-faker, seeded). */
export function validValue(schema: JsonSchema, seed: number): unknown {
  return generateSync(schema, { seed, maxItems: 3, maxLength: 48, optionalsProbability: 0.6 });
}

/** UTF-16 code units, lone surrogates included (fast-check's default units are well-formed). */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

const ODD_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  '\udc00\ud800',
  '\r\n\t',
  '\u0001\u001f\u007f\u0085',
  '\u202e\u200b\ufeff',
  '😀',
  '%00',
  '%ZZ',
  '../../etc/passwd',
  "'; DROP TABLE volumes; --",
  'nqn.2014-08.org.nvmexpress:uuid:\u0000',
  'ABCDEF01-2345-6789-ABCD-EF0123456789',
];

/** Strings a client may send: fixed odd ones, random code units, huge ones. */
export const oddString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...ODD_STRINGS),
  fc.string({ unit: codeUnit, maxLength: 24 }),
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.constantFrom(2_000, 70_000).map((n) => 'x'.repeat(n)),
);

/** Numbers, including those past 2^53 and 2^63 and those JSON.parse turns into Infinity. */
export const oddNumber: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(-1, 0, -0, 1.5, 2 ** 31, 2 ** 53 + 2, 2 ** 63, 2 ** 64, 1e308, -1e308),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc
    .constantFrom(
      '9223372036854775807',
      '9223372036854775808',
      '18446744073709551616',
      '123456789012345678901234567890',
      '1e400',
      '-1e400',
      '1E999',
      '0.00000000000000000000001',
    )
    .map((t) => new RawJson(t)),
);

/** Any value in place of a field. */
export const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  oddString,
  oddNumber,
  fc.constantFrom(null, true, false, [], {}, [null], { '': '' }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** A path segment as a client may send it: valid-looking, broken percent-encoding, or any code units. */
export const oddPathSegment: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '%ZZ',
    '%',
    '%E0%A4%A',
    '%C0%AE%C0%AE',
    '%ED%A0%80',
    '%00',
    'a%2Fb',
    '%2e%2e',
    '..',
    '%20',
    '%FF%FE',
    'x'.repeat(3000),
    'ABCDEF01-2345-6789-ABCD-EF0123456789',
  ),
  fc.string({ unit: codeUnit, maxLength: 16 }).map(encodeSegment),
);

/** Percent-encodes any UTF-16 string, a lone surrogate as its WTF-8 bytes (encodeURIComponent throws on it). */
export function encodeSegment(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c >= 0xd800 && c <= 0xdfff)
      out += [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)]
        .map((b) => `%${b.toString(16).toUpperCase()}`)
        .join('');
    else out += encodeURIComponent(ch);
  }
  return out || '%20';
}

export type Mutation =
  | { kind: 'field'; pick: number; value: unknown }
  | { kind: 'drop'; pick: number }
  | { kind: 'extra'; key: string; value: unknown }
  | { kind: 'body'; value: unknown }
  | { kind: 'text-body'; text: string }
  | { kind: 'path'; pick: number; segment: string }
  | { kind: 'query'; name: string | null; value: string }
  | { kind: 'content-type'; value: string | null }
  | { kind: 'encoding'; value: string; valid: boolean }
  | { kind: 'method'; value: string };

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('field' as const), pick: fc.nat(), value: oddValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('drop' as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('extra' as const),
      key: fc.oneof(fc.constantFrom('bogus', '', '__proto__', 'constructor', 'k\u0000', '\ud800'), oddString),
      value: oddValue,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('body' as const), value: oddValue }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('text-body' as const),
      text: fc.oneof(
        fc.constantFrom(
          '{',
          '{"a":',
          'null',
          '[]',
          '"str"',
          '{"a":1}{"b":2}',
          '\u0000',
          '[[[[[[[[[[',
          'x'.repeat(70_000),
        ),
        fc.constantFrom(10_000, 100_000).map((n) => '['.repeat(n) + ']'.repeat(n)),
        fc.string({ unit: codeUnit, maxLength: 32 }),
      ),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('path' as const), pick: fc.nat(), segment: oddPathSegment }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('query' as const),
      name: fc.option(fc.constantFrom('since', 'wait', 'force', 'status', 'volume_id', 'host_nqn', 'bogus'), {
        nil: null,
      }),
      value: oddPathSegment,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('content-type' as const),
      value: fc.constantFrom(
        null,
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/json; charset=utf-16',
        'application/json; charset=latin1',
        'application/json; charset=bogus',
        'application/merge-patch+json',
        'application/json;;',
        '*/*',
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('encoding' as const),
      value: fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'zstd', 'x-bogus', 'gzip, gzip', 'GZIP'),
      valid: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('method' as const),
      value: fc.constantFrom('PATCH', 'PUT', 'POST', 'GET', 'DELETE', 'OPTIONS', 'HEAD'),
    }),
  },
);

/** The leaf paths of a value (`['connector', 'host']`), to pick one to change or drop. */
export function leafPaths(v: unknown, at: string[] = []): string[][] {
  if (v && typeof v === 'object' && !(v instanceof RawJson)) {
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
    const below = entries.flatMap(([k, x]) => leafPaths(x, [...at, k]));
    return at.length > 0 ? [at, ...below] : below;
  }
  return at.length > 0 ? [at] : [];
}

export function setAt(root: unknown, path: string[], value: unknown, drop = false): unknown {
  if (path.length === 0) return value;
  const copy: any = Array.isArray(root) ? [...root] : { ...(root as object) };
  const [head, ...rest] = path;
  if (rest.length === 0) {
    if (drop) delete copy[head!];
    else copy[head!] = value;
  } else copy[head!] = setAt(copy[head!], rest, value, drop);
  return copy;
}

/** The body bytes for a content-encoding; `valid: false` sends bytes that do not decompress. */
export function encodeBody(text: string, encoding: string, valid: boolean): Buffer {
  const raw = Buffer.from(text, 'utf8');
  if (!valid) return Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.from('not really compressed')]);
  switch (encoding.toLowerCase()) {
    case 'gzip':
      return gzipSync(raw);
    case 'deflate':
      return deflateSync(raw);
    case 'br':
      return brotliCompressSync(raw);
    case 'gzip, gzip':
      return gzipSync(gzipSync(raw));
    default:
      return raw;
  }
}
