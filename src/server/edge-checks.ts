import { DriverError } from '../driver/errors.ts';

/**
 * Checks a request must pass before anything of it is routed into a handler, validated against
 * the schemas or stored: they catch what the OpenAPI schemas cannot express and what would
 * otherwise surface as a crash deep down (a URIError in routing, a PostgreSQL refusal).
 */

/**
 * The path parameters of `path` for the operation's `template` (`/v1/volumes/{id}/extend`),
 * percent-decoded. A segment that is not valid percent-encoded UTF-8 (`%ZZ`, a lone `%`, a
 * truncated sequence like `%E0%A4%A`, the overlong `%C0%AE` or an encoded surrogate `%ED%A0%80`,
 * which RFC 3629 forbids) makes decodeURIComponent throw a URIError (ECMA-262 "Decode"): that is
 * a 400 naming the parameter here, not an exception inside the router.
 */
export function decodePathParams(template: string, path: string): Record<string, string> {
  const want = template.split('/');
  const got = trimTrailingSlashes(path).split('/');
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length && i < got.length; i++) {
    const names = [...want[i]!.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
    if (names.length === 0) continue;
    let decoded: string;
    try {
      decoded = decodeURIComponent(got[i]!);
    } catch {
      throw new DriverError('invalid_request', `${names.join(', ')}: malformed percent-encoding in the path`, {
        details: { fields: names },
      });
    }
    if (names.length === 1) params[names[0]!] = decoded;
  }
  return params;
}

/** As openapi-backend matches paths (`ignoreTrailingSlashes`, its default). */
export function trimTrailingSlashes(path: string): string {
  let p = path;
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

/** A lone UTF-16 surrogate: with the `u` flag a well-formed pair is one code point, outside this range. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

export type TextProblem = 'nul' | 'surrogate';

function problemOf(s: string): TextProblem | null {
  if (s.includes('\u0000')) return 'nul';
  if (LONE_SURROGATE.test(s)) return 'surrogate';
  return null;
}

/** Request values are shallow (the deepest schema is 4 levels); anything deeper is refused early. */
const MAX_DEPTH = 32;

/** `connector.host`, `paths.0.address`: as the schema validation's messages name fields. */
const join = (parent: string, key: string | number): string => (parent ? `${parent}.${key}` : String(key));

/**
 * Rejects what PostgreSQL cannot hold, wherever it is in the value (strings and object keys, at
 * any depth), with a 400 naming the field:
 * - U+0000: `text` refuses it (SQLSTATE 22021) and so does `jsonb` (22P05);
 * - an unpaired UTF-16 surrogate (`"\ud800"` is valid JSON, RFC 8259 section 8.2): `jsonb` refuses
 *   the escape (22P02), and on its way to a `text` column Node's UTF-8 encoder would replace it by
 *   U+FFFD, silently changing the client's data;
 * - a number that is not finite: JSON.parse turns `1e400` into Infinity, which JSON.stringify
 *   writes back as `null`.
 * Iterative, so that a deeply nested body cannot exhaust the stack.
 */
export function assertStorable(value: unknown, root: string): void {
  const stack: { v: unknown; field: string; depth: number }[] = [{ v: value, field: root, depth: 0 }];
  while (stack.length > 0) {
    const { v, field, depth } = stack.pop()!;
    if (typeof v === 'string') {
      const p = problemOf(v);
      if (p) throw textError(field || 'body', p, false);
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw invalid(field || 'body', 'is out of range (not a finite number)');
    } else if (v && typeof v === 'object') {
      if (depth >= MAX_DEPTH) throw invalid(field || 'body', `is nested more than ${MAX_DEPTH} levels deep`);
      if (Array.isArray(v)) {
        for (const [i, x] of v.entries()) stack.push({ v: x, field: join(field, i), depth: depth + 1 });
      } else {
        for (const [k, x] of Object.entries(v)) {
          const p = problemOf(k);
          if (p) throw textError(field || 'body', p, true);
          stack.push({ v: x, field: join(field, k), depth: depth + 1 });
        }
      }
    }
  }
}

function textError(field: string, p: TextProblem, inKey: boolean): DriverError {
  const what = p === 'nul' ? 'a NUL character (U+0000)' : 'an unpaired UTF-16 surrogate (not valid Unicode)';
  return invalid(field, `${inKey ? 'has a key that contains' : 'contains'} ${what}, which no string may hold`);
}

function invalid(field: string, problem: string): DriverError {
  return new DriverError('invalid_request', `${field}: ${problem}`, { details: { fields: [field] } });
}

type ParameterSpec = { name?: string; in?: string; schema?: { type?: unknown }; $ref?: string };

/** `#/components/parameters/VolumeId` in `spec`, or the parameter itself when it is no reference. */
function resolveParameter(spec: Record<string, unknown>, p: ParameterSpec): ParameterSpec {
  if (!p.$ref?.startsWith('#/')) return p;
  let node: unknown = spec;
  for (const key of p.$ref.slice(2).split('/')) node = (node as Record<string, unknown> | undefined)?.[key];
  return (node as ParameterSpec | undefined) ?? p;
}

export type IntegerParameters = ReadonlyMap<string, readonly { name: string; in: 'path' | 'query' }[]>;

/** Each operation's path and query parameters of type integer, read once from the OpenAPI document. */
export function integerParameters(spec: Record<string, unknown>): IntegerParameters {
  const out = new Map<string, { name: string; in: 'path' | 'query' }[]>();
  for (const item of Object.values((spec.paths ?? {}) as Record<string, Record<string, unknown>>)) {
    const shared = (item.parameters ?? []) as ParameterSpec[];
    for (const op of Object.values(item)) {
      const o = op as { operationId?: string; parameters?: ParameterSpec[] };
      if (!o?.operationId) continue;
      const ints = [...shared, ...(o.parameters ?? [])]
        .map((p) => resolveParameter(spec, p))
        .filter((p) => p.schema?.type === 'integer' && (p.in === 'path' || p.in === 'query') && p.name)
        .map((p) => ({ name: p.name!, in: p.in as 'path' | 'query' }));
      if (ints.length > 0) out.set(o.operationId, ints);
    }
  }
  return out;
}

/** An optional minus and decimal digits: what an integer parameter may be written as. */
const DECIMAL = /^-?[0-9]+$/;

/**
 * Integer path and query parameters in decimal digits only. The schema validation coerces with
 * JavaScript's Number(), which takes `0x10` as 16, `0b11` as 3, `1e3` as 1000 and ` 7 ` as 7: a
 * mistyped `wait=0x10` would become a 16 s poll instead of a 400. The value's range is the schema's
 * (its `minimum` and `maximum`), checked next.
 */
export function assertDecimalIntegers(
  ints: readonly { name: string; in: 'path' | 'query' }[] | undefined,
  params: Record<string, string>,
  query: Record<string, unknown>,
): void {
  for (const p of ints ?? []) {
    const v = p.in === 'path' ? params[p.name] : query[p.name];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !DECIMAL.test(v))
      throw invalid(p.name, 'must be one integer in decimal digits (no hex, exponent, fraction, plus sign or spaces)');
  }
}
