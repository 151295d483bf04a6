/**
 * How many LightOS API requests the simulator answered, by route: what a test counts to prove a
 * pass costs the backend calls it claims (the portal refresh's pages), read at the simulator so
 * that nothing between the client and the wire (a retry, a second call hidden in one port
 * method) goes uncounted. Served by the admin API as `GET /sim/v1/requests` (reset by `DELETE`).
 */
import type { NextFunction, Request, Response } from 'express';

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

export interface RequestCountView {
  total: number;
  /** `METHOD /path` with every UUID written `{uuid}` and without the query string. */
  byRoute: Record<string, number>;
}

export class RequestCounts {
  private counts = new Map<string, number>();
  private total = 0;

  /** Express middleware: counts the request (faulted ones too: the client sent them). */
  readonly middleware = (req: Request, _res: Response, next: NextFunction): void => {
    const route = `${req.method} ${req.originalUrl.split('?', 1)[0]!.replace(UUID, '{uuid}')}`;
    this.counts.set(route, (this.counts.get(route) ?? 0) + 1);
    this.total += 1;
    next();
  };

  view(): RequestCountView {
    return { total: this.total, byRoute: Object.fromEntries(this.counts) };
  }

  reset(): void {
    this.counts = new Map();
    this.total = 0;
  }
}
