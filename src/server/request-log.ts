import type { Request, Response } from 'express';
import type { Logger } from '../shared/logger.ts';
import type { ServiceMetrics } from './metrics.ts';

/**
 * One log line per request (headers are never logged: they carry the bearer token) and, with
 * metrics on, its count and duration. The route label is the OpenAPI operation (bounded), never the
 * raw path (unbounded ids); `unmatched` for a path that has none.
 */
export function observe(
  req: Request,
  res: Response,
  route: string,
  metrics: ServiceMetrics | undefined,
  log: Logger,
): void {
  const start = performance.now();
  // A long poll is open from its arrival until its answer or the client's hang-up.
  const poll = metrics && route === 'agentListAttachments';
  if (poll) metrics.longPolls.inc();
  let closed = false;
  const done = () => {
    if (closed) return;
    closed = true;
    if (poll) metrics.longPolls.dec();
    const labels = { route, method: req.method, status: String(res.statusCode) };
    metrics?.httpRequests.inc(labels);
    metrics?.httpDuration.observe(labels, (performance.now() - start) / 1000);
  };
  res.on('close', done);
  res.on('finish', () => {
    log.info(
      { method: req.method, path: req.path, status: res.statusCode, ms: Math.round(performance.now() - start) },
      'request',
    );
    done();
  });
}
