import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Document, OpenAPIBackend } from 'openapi-backend';
import { compileRouter } from './routing.ts';
import { loadSpec } from './spec.ts';

/** The compiled router answers exactly as openapi-backend's own, for the whole document. */
describe('compileRouter', () => {
  it('matches every request as openapi-backend does (operation, 404, 405, trailing slash, case)', async () => {
    const api = new OpenAPIBackend({ definition: loadSpec() as unknown as Document, quick: true });
    await api.init();
    const route = compileRouter(api);
    const paths = new Set<string>([
      '/',
      '/nope',
      '/v1',
      '/v1/volumes/a/b/c',
      '/v1/volumes/',
      '/v1/agent/attachments//',
      ' /healthz ',
    ]);
    for (const op of api.getOperations()) {
      paths.add(op.path);
      paths.add(op.path.replace(/\{[^}]+\}/g, 'x-1.2'));
      paths.add(`${op.path.replace(/\{[^}]+\}/g, 'abc')}/`);
      paths.add(`${op.path.replace(/\{[^}]+\}/g, 'abc')}/extra`);
    }
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'get'];
    let matched = 0;
    let compared = 0;
    for (const path of paths)
      for (const method of methods) {
        const req = { method, path, headers: {}, query: {} } as never;
        // The router's strict match throws its 404/405, which openapi-backend's handleRequest maps
        // to the notFound and methodNotAllowed handlers.
        let want: string;
        try {
          want = api.router.matchOperation(req, true).operationId!;
        } catch (e) {
          want = (e as Error).message.startsWith('405') ? 'method_not_allowed' : 'not_found';
        }
        const r = route(method, path);
        assert.equal(r.op?.operationId ?? r.miss, want, `${method} ${path}`);
        if (r.op) matched++;
        compared++;
      }
    // The comparison covered real matches and misses alike.
    assert.ok(matched > api.getOperations().length, `${matched} matched of ${compared}`);
    assert.ok(compared - matched > 100);
  });
});
