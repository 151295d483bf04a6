import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Document, OpenAPIBackend } from 'openapi-backend';
import { operationHandlers } from './operations.ts';
import { isOpen } from './pipeline.ts';
import { loadSpec } from './spec.ts';
import { integerParameters } from './edge-checks.ts';
import { silentLogger } from '../shared/logger.ts';
import type { DriverDeps } from '../driver/deps.ts';

/** The app loads the document in openapi-backend's quick mode; the full checks happen here. */
describe('api-spec/portalis.yaml', () => {
  it('is a valid OpenAPI document', async () => {
    const api = new OpenAPIBackend({ definition: loadSpec() as unknown as Document, strict: true, quick: false });
    await api.init();
    assert.ok(api.getOperations().length > 20);
  });

  it('has a handler for every operation, and no handler without an operation', async () => {
    const api = new OpenAPIBackend({ definition: loadSpec() as unknown as Document, quick: true });
    await api.init();
    const ids = api
      .getOperations()
      .map((o) => o.operationId!)
      .sort();
    // The typecheck holds the table to the generated operations; this holds it to the document itself.
    const handlers = operationHandlers({ deps: {} as DriverDeps, spec: loadSpec(), readiness: [], log: silentLogger });
    assert.deepEqual(Object.keys(handlers).sort(), ids);
  });

  it('asks a token of every operation but the health checks, the document and the dashboard', async () => {
    const api = new OpenAPIBackend({ definition: loadSpec() as unknown as Document, quick: true });
    await api.init();
    const open = api
      .getOperations()
      .filter(isOpen)
      .map((o) => o.operationId)
      .sort();
    assert.deepEqual(open, ['getDashboard', 'getDashboardAsset', 'getHealthz', 'getOpenApi', 'getReadyz']);
  });

  it('bounds every integer a request may carry (parameters and bodies), and the edge knows each integer parameter', async () => {
    const spec = loadSpec();
    const api = new OpenAPIBackend({ definition: spec as unknown as Document, quick: false });
    await api.init();
    const unbounded: string[] = [];
    // Every integer schema below a request's parameters and bodies, references resolved by init().
    const walk = (node: unknown, where: string): void => {
      if (!node || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      if (n.type === 'integer' && (typeof n.minimum !== 'number' || typeof n.maximum !== 'number'))
        unbounded.push(where);
      for (const [k, v] of Object.entries(n)) walk(v, `${where}.${k}`);
    };
    let params = 0;
    for (const op of api.getOperations()) {
      for (const p of op.parameters ?? [])
        walk((p as { schema?: unknown }).schema, `${op.operationId} ${(p as { name: string }).name}`);
      walk(op.requestBody, `${op.operationId} body`);
      params += (op.parameters ?? []).filter(
        (p) => (p as { schema?: { type?: string } }).schema?.type === 'integer',
      ).length;
    }
    assert.deepEqual(unbounded, []);
    const known = [...integerParameters(spec).values()].reduce((n, list) => n + list.length, 0);
    assert.ok(params >= 5, `${params} integer parameters`);
    assert.equal(known, params, 'the decimal-digits check covers every integer parameter');
  });
});
