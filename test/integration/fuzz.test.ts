import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { aclMismatches } from '../support/consistency.ts';
import {
  encodeBody,
  leafPaths,
  type Mutation,
  mutation,
  type Operation,
  type Principal,
  setAt,
  specOperations,
  toJson,
  validValue,
} from '../support/fuzz.ts';
import { lifecycleClient } from '../support/lifecycle.ts';
import { httpRequest } from '../support/raw-http.ts';
import { connector, NATIVE, startTarget, type Target } from '../support/target.ts';

/**
 * Schema-driven fuzzing of every operation of api-spec/portalis.yaml, over real HTTP through the
 * service's own server: valid requests from the schemas (json-schema-faker), most of them mutated
 * (fast-check), with the admin token, a host token, none and a wrong one. No answer may be a 5xx,
 * every error must carry the error body, the token must be checked first (401/403 whatever else
 * is wrong), and afterwards the backend's ACLs must match the live attachments.
 *
 * Seeded (PORTALIS_FUZZ_SEED, default 8) and bounded (PORTALIS_FUZZ_RUNS requests, default 1200);
 * e.g. `PORTALIS_FUZZ_RUNS=20000 node scripts/run-tests.mjs test/integration/fuzz.test.ts`.
 */
const SEED = Number(process.env.PORTALIS_FUZZ_SEED ?? 8);
const RUNS = Number(process.env.PORTALIS_FUZZ_RUNS ?? 1200);

interface Case {
  op: Operation;
  principal: Principal;
  seed: number;
  /** Use known ids for the path (existing volumes, attachments, …) rather than generated ones. */
  known: boolean;
  steer: number;
  mutations: Mutation[];
}

describe('schema-driven fuzzing of every operation', () => {
  let t: Target;
  let api: ReturnType<typeof lifecycleClient>;
  const ops = specOperations();
  // Known records the generated requests are pointed at, so that they reach real state.
  const pools = {
    volumes: [] as string[],
    snapshots: [] as string[],
    attachments: [] as string[],
    hostAttachments: [] as string[],
    hosts: [] as string[],
    connectors: [] as Record<string, unknown>[],
  };
  let agent: { conn: Record<string, unknown>; token: string };

  before(async () => {
    t = await startTarget({ listen: true });
    api = lifecycleClient(t);
    const conn = connector(NATIVE);
    const issued = await t.http.post('/v1/hosts').set(api.auth()).send({ nqn: conn.nqn, name: 'fuzz-agent' });
    agent = { conn, token: issued.body.token };
    assert.equal(
      (await t.http.post('/v1/agent/register').set('authorization', `Bearer ${agent.token}`).send({ connector: conn }))
        .status,
      200,
    );
    const other = connector(NATIVE);
    assert.equal((await t.http.post('/v1/hosts').set(api.auth()).send({ nqn: other.nqn })).status, 201);
    pools.hosts.push(other.nqn as string);
    pools.connectors.push(conn, other, connector());
    for (let i = 0; i < 4; i++) {
      const v = await api.created({ multiattach: i % 2 === 0 });
      pools.volumes.push(v.id);
    }
    const snap = await api.snap(pools.volumes[0]!);
    assert.equal(snap.status, 201);
    pools.snapshots.push(snap.body.id);
    for (const [i, c] of [conn, other].entries()) {
      const r = await api.init(pools.volumes[i]!, c);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      pools.attachments.push(r.body.attachment_id);
      if (c === conn) pools.hostAttachments.push(r.body.attachment_id);
    }
  });
  after(async () => t?.close());

  const pick = <T>(list: T[], n: number): T | undefined => (list.length > 0 ? list[n % list.length] : undefined);

  /** A known value for a path parameter of this operation, when there is one. */
  function knownParam(op: Operation, name: string, n: number): string | undefined {
    if (name === 'nqn') return pick(pools.hosts, n);
    if (op.template.startsWith('/v1/snapshots')) return pick(pools.snapshots, n);
    if (op.template.startsWith('/v1/agent/attachments')) return pick(pools.hostAttachments, n);
    if (op.template.startsWith('/v1/attachments')) return pick(pools.attachments, n);
    return pick(pools.volumes, n);
  }

  /** Points a generated body at known records and keeps it cheap (small volumes, short polls). */
  function steer(op: Operation, body: any, n: number): any {
    if (!body || typeof body !== 'object') return body;
    const b = { ...body };
    if (op.id === 'createVolume') {
      if (n % 3 !== 0) b.size_gb = 1 + (n % 4);
      if (n % 2 === 0) delete b.source;
      else if (b.source?.snapshot_id && n % 5 === 1) b.source = { snapshot_id: pick(pools.snapshots, n) };
      if (n % 4 !== 0) delete b.qos_policy_id;
    }
    if ('connector' in b && n % 3 !== 0) {
      b.connector = op.id === 'agentRegister' ? agent.conn : pick(pools.connectors, n);
    }
    if (op.id === 'createSnapshot' || op.id === 'createVolume') b.id = n % 2 === 0 ? randomUUID() : b.id;
    return b;
  }

  const caseArb: fc.Arbitrary<Case> = fc.record({
    op: fc.constantFrom(...ops),
    principal: fc.constantFrom<Principal>('admin', 'admin', 'host', 'host', 'none', 'wrong'),
    seed: fc.integer({ min: 1, max: 2 ** 30 }),
    known: fc.boolean(),
    steer: fc.nat(),
    // A quarter of the requests unmutated (valid, if the principal fits), the rest with 1 to 3 mutations.
    mutations: fc.oneof(
      { weight: 1, arbitrary: fc.constant([] as Mutation[]) },
      { weight: 3, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) },
    ),
  });

  function build(c: Case) {
    const { op } = c;
    let method = op.method;
    const segments = new Map<string, string>();
    for (const p of op.pathParams) {
      const known = c.known ? knownParam(op, p.name, c.steer) : undefined;
      segments.set(p.name, encodeURIComponent(known ?? String(validValue(p.schema, c.seed))));
    }
    const query: [string, string][] = [];
    for (const p of op.queryParams) {
      if ((c.seed + p.name.length) % 3 === 0) continue;
      let v = validValue(p.schema, c.seed + p.name.length);
      if (p.name === 'wait') v = 0; // long polls would hold the run up
      if (p.name === 'volume_id' && c.known) v = pick(pools.volumes, c.steer);
      query.push([p.name, encodeURIComponent(String(v))]);
    }
    let body: unknown = op.body ? steer(op, validValue(op.body, c.seed), c.steer) : undefined;
    let text: string | undefined;
    let contentType: string | null = op.body ? 'application/json' : null;
    let encoding: { value: string; valid: boolean } | null = null;
    for (const m of c.mutations) {
      switch (m.kind) {
        case 'field': {
          const leaves = leafPaths(body);
          body = leaves.length > 0 ? setAt(body, leaves[m.pick % leaves.length]!, m.value) : m.value;
          break;
        }
        case 'drop': {
          const leaves = leafPaths(body);
          if (leaves.length > 0) body = setAt(body, leaves[m.pick % leaves.length]!, undefined, true);
          break;
        }
        case 'extra':
          body =
            body && typeof body === 'object' && !Array.isArray(body)
              ? { ...body, [m.key]: m.value }
              : { [m.key]: m.value };
          break;
        case 'body':
          body = m.value;
          break;
        case 'text-body':
          text = m.text;
          break;
        case 'path': {
          const names = [...segments.keys()];
          if (names.length > 0) segments.set(names[m.pick % names.length]!, m.segment);
          break;
        }
        case 'query':
          query.push([m.name ?? 'bogus', m.value]);
          break;
        case 'content-type':
          contentType = m.value;
          break;
        case 'encoding':
          encoding = m;
          break;
        case 'method':
          method = m.value;
          break;
      }
    }
    if (body !== undefined && text === undefined) text = toJson(body);
    if (text !== undefined && contentType === null && !c.mutations.some((m) => m.kind === 'content-type'))
      contentType = 'application/json';
    const path =
      op.template.replace(/\{([^}]+)\}/g, (_m, name: string) => segments.get(name) ?? 'x') +
      (query.length > 0 ? `?${query.map(([k, v]) => `${encodeURIComponent(k)}=${v}`).join('&')}` : '');
    const headers: Record<string, string> = {};
    if (contentType) headers['content-type'] = contentType;
    const token = { admin: t.token, host: agent.token, none: null, wrong: `pth_${randomUUID()}` }[c.principal];
    if (token) headers.authorization = `Bearer ${token}`;
    let bytes: Buffer | undefined = text === undefined ? undefined : Buffer.from(text, 'utf8');
    if (encoding && bytes) {
      headers['content-encoding'] = encoding.value;
      bytes = encodeBody(text!, encoding.value, encoding.valid);
    }
    return { method, path, headers, body: bytes, methodChanged: method !== op.method };
  }

  it(`${RUNS} generated requests (seed ${SEED}): no 5xx, well-formed errors, the token first, consistent ACLs`, async (ctx) => {
    const cases = fc.sample(caseArb, { seed: SEED, numRuns: RUNS });
    const statuses = new Map<number, number>();
    const perOp = new Map<string, number>();
    const failures: string[] = [];
    let valid2xx = 0;
    let mutated = 0;
    const started = Date.now();
    for (const c of cases) {
      const req = build(c);
      if (c.mutations.length > 0) mutated += 1;
      const r = await httpRequest(t.url!, req);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      perOp.set(c.op.id, (perOp.get(c.op.id) ?? 0) + 1);
      const what = () =>
        `${req.method} ${req.path.slice(0, 200)} as ${c.principal} [${c.mutations.map((m) => m.kind).join(',')}] ` +
        `body ${req.body ? req.body.toString('utf8').slice(0, 200) : '-'} → ${r.status} ${r.text.slice(0, 300)}`;
      if (r.status >= 500) failures.push(`5xx: ${what()}`);
      if (r.status >= 400 && req.method !== 'HEAD') {
        const e = r.body?.error;
        if (
          typeof e?.code !== 'string' ||
          typeof e?.message !== 'string' ||
          (e.details !== undefined && typeof e.details !== 'object')
        )
          failures.push(`error body: ${what()}`);
      }
      if (!req.methodChanged && c.op.access !== 'open') {
        if ((c.principal === 'none' || c.principal === 'wrong') && r.status !== 401)
          failures.push(`not 401: ${what()}`);
        const misfit =
          (c.principal === 'host' && c.op.access === 'admin') || (c.principal === 'admin' && c.op.access === 'host');
        if (misfit && r.status !== 403) failures.push(`not 403: ${what()}`);
      }
      if (r.status >= 200 && r.status < 300) {
        valid2xx += 1;
        // Keep the pools growing with what the run creates.
        if (c.op.id === 'createVolume' && r.status === 201) pools.volumes.push(r.body.id);
        if (c.op.id === 'createSnapshot' && r.status === 201) pools.snapshots.push(r.body.id);
        if (c.op.id === 'initializeConnection') {
          pools.attachments.push(r.body.attachment_id);
          if (r.body.connection_info?.data?.host_nqn === agent.conn.nqn)
            pools.hostAttachments.push(r.body.attachment_id);
        }
      }
      if (failures.length >= 20) break;
    }
    const mismatches = await aclMismatches(t);
    const figures = {
      requests: cases.length,
      mutated,
      operations: perOp.size,
      answered_2xx: valid2xx,
      statuses: Object.fromEntries([...statuses].sort(([a], [b]) => a - b)),
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
    ctx.diagnostic(`fuzz figures: ${JSON.stringify(figures)}`);
    assert.deepEqual(failures, [], JSON.stringify(figures));
    assert.deepEqual(mismatches, []);
    assert.equal(perOp.size, ops.length, 'every operation was exercised');
    assert.ok(valid2xx > RUNS / 20, `enough requests reached a handler and succeeded (${valid2xx})`);
  });
});
