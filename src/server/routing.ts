import type { OpenAPIBackend, Operation } from 'openapi-backend';

interface Router {
  getOperations(): Operation[];
  matchOperation(req: { method: string; path: string }, strict?: boolean): Operation | undefined;
  normalizeRequest(req: { method: string; path: string }): { method: string; path: string };
  isUnderApiRoot(path: string): boolean;
  normalizePath(path: string): string;
}

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
 * Makes openapi-backend's routing do once what it did on every request. Its router (5.21,
 * `router.js`) rebuilds the flat list of operations from the document with a lodash chain on
 * each `getOperations()` (called by `matchOperation`, twice, and by every `getOperation(id)` of
 * the validator), and compiles one RegExp per operation on each match: together with the three
 * matches a request makes here (access check, metrics label, handling), ~8 % of the service's
 * CPU per initialize_connection in a `--cpu-prof` of `portalis serve` (lodash alone 3 %).
 *
 * The document does not change after `init()`, so the list is built once and each template
 * compiled once; the match keeps the router's rules: normalise the request, an exact path with
 * the method first, then the templates that match, the most literal first, with the method;
 * `strict` throws the router's 404/405 messages, which openapi-backend maps to its handlers.
 */
export function compileRouting(api: OpenAPIBackend): void {
  const router = api.router as unknown as Router;
  const operations = router.getOperations();
  const byOperationId = new Map<string | undefined, Operation>();
  // The first of an id wins, as the router's `find`.
  for (const op of operations) if (!byOperationId.has(op.operationId)) byOperationId.set(op.operationId, op);
  const templates = operations
    .map((op) => ({ op, re: templatePattern(op.path), literal: op.path.replace(/\{.*?\}/g, '').length }))
    // Array.prototype.sort is stable, as lodash's orderBy: equal lengths keep the document's order.
    .sort((a, b) => b.literal - a.literal);
  router.getOperations = () => operations;
  (router as unknown as { getOperation(id: string): Operation | undefined }).getOperation = (id) =>
    byOperationId.get(id);
  router.matchOperation = (raw, strict) => {
    const req = router.normalizeRequest(raw);
    const miss = (why: string) => {
      if (strict) throw Error(why);
      return undefined;
    };
    if (!router.isUnderApiRoot(req.path)) return miss('404-notFound: no route matches request');
    const path = router.normalizePath(req.path);
    const exact = operations.find((op) => op.path === path && op.method === req.method);
    if (exact) return exact;
    const matching = templates.filter((t) => t.re.test(path));
    if (matching.length === 0) return miss('404-notFound: no route matches request');
    return (
      matching.find((t) => t.op.method === req.method)?.op ??
      miss('405-methodNotAllowed: this method is not registered for the route')
    );
  };
}
