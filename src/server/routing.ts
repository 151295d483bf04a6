import type { OpenAPIBackend, Operation } from 'openapi-backend';

/** A request's operation, or why it has none (answered 404 or 405). */
export type Route = { op: Operation; miss?: undefined } | { op?: undefined; miss: 'not_found' | 'method_not_allowed' };

/** `/volumes/{id}` → `^/volumes/[^/]+$`, the literal parts escaped (openapi-backend's `pathTemplateToPattern`). */
function templatePattern(path: string): RegExp {
  const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(
    `^${path
      .replace(/\{[^}]+\}/g, '\0')
      .split('\0')
      .map(literal)
      .join('[^/]+')}$`,
  );
}

/**
 * The service's one match of a request to its operation, with openapi-backend's routing rules
 * (5.21, `router.js`) compiled once: its own `matchOperation` rebuilds the list of operations from
 * the document with a lodash chain and compiles a RegExp per operation on every call (with the three
 * matches a request used to make, ~8 % of the service's CPU per initialize_connection in a
 * `--cpu-prof` of `portalis serve`). The document does not change after `init()`.
 *
 * The rules: the router's normalisation (method lower-cased, the path trimmed, its query and
 * trailing slashes dropped; the API root is `/`, so every path is under it), then an exact path with
 * the method, then the templates that match, the most literal first, with the method; a path that
 * matches with another method only is a 405. routing.test.ts checks it against the router itself.
 */
export function compileRouter(api: OpenAPIBackend): (method: string, path: string) => Route {
  const { router } = api;
  const operations = api.getOperations();
  const templates = operations
    .map((op) => ({ op, re: templatePattern(op.path), literal: op.path.replace(/\{.*?\}/g, '').length }))
    // Array.prototype.sort is stable, as lodash's orderBy: equal lengths keep the document's order.
    .sort((a, b) => b.literal - a.literal);
  return (rawMethod, rawPath) => {
    const req = router.normalizeRequest({ method: rawMethod, path: rawPath, headers: {} });
    const path = router.normalizePath(req.path);
    const exact = operations.find((op) => op.path === path && op.method === req.method);
    if (exact) return { op: exact };
    const matching = templates.filter((t) => t.re.test(path));
    if (matching.length === 0) return { miss: 'not_found' };
    const op = matching.find((t) => t.op.method === req.method)?.op;
    return op ? { op } : { miss: 'method_not_allowed' };
  };
}
