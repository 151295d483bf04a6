import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Document, OpenAPIBackend } from 'openapi-backend';
import { compileRouting } from './routing.ts';
import { loadSpec } from './spec.ts';

async function backend(compiled: boolean): Promise<OpenAPIBackend> {
  const api = new OpenAPIBackend({ definition: loadSpec() as unknown as Document, quick: true });
  await api.init();
  if (compiled) compileRouting(api);
  return api;
}

/** The compiled routing answers exactly as openapi-backend's own router, for the whole document. */
describe('compileRouting', () => {
  it('matches every request as the original router does (operation, 404, 405, trailing slash, strict)', async () => {
    const original = await backend(false);
    const compiled = await backend(true);
    const paths = new Set<string>([
      '/',
      '/nope',
      '/v1',
      '/v1/volumes/a/b/c',
      '/v1/volumes/',
      '/v1/agent/attachments//',
    ]);
    for (const op of original.getOperations()) {
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
        const want = original.router.matchOperation(req)?.operationId;
        assert.equal(compiled.router.matchOperation(req)?.operationId, want, `${method} ${path}`);
        const strict = (api: OpenAPIBackend) => {
          try {
            return api.router.matchOperation(req, true).operationId;
          } catch (e) {
            return (e as Error).message;
          }
        };
        assert.equal(strict(compiled), strict(original), `${method} ${path}, strict`);
        if (want) matched++;
        compared++;
      }
    // The comparison covered real matches and misses alike.
    assert.ok(matched > original.getOperations().length, `${matched} matched of ${compared}`);
    assert.ok(compared - matched > 100);
  });

  it('finds operations by id as the router does, and builds the list once', async () => {
    const original = await backend(false);
    const compiled = await backend(true);
    for (const op of original.getOperations())
      assert.equal(compiled.router.getOperation(op.operationId!)?.path, op.path, op.operationId);
    assert.equal(compiled.router.getOperation('noSuchOperation'), undefined);
    assert.equal(compiled.getOperations(), compiled.getOperations());
    assert.notEqual(original.getOperations(), original.getOperations());
  });
});
