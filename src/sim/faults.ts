/**
 * Fault injection for the simulator's `/api/v2` routes: extra latency, a seeded error rate,
 * "fail the next N matching requests", "hang the next N matching requests" (accepted and never
 * answered, for client timeout tests) and the model faults `stateDelayMs` / `failCreate`.
 *
 * Hung requests are remembered and their sockets destroyed by `releaseHung()`, which the server
 * calls on close, so a test never leaves a half-open request behind.
 */
import type { NextFunction, Request, Response } from 'express';
import type { SimCluster } from './cluster.ts';
import { badRequest, grpcCodeFor } from './model.ts';

export interface RequestMatcher {
  count: number;
  method?: string;
  /** Substring of the request path. */
  path?: string;
  /** Let this many matching requests through first (to fail a later step of an operation). */
  skip?: number;
}

export interface FaultView {
  latencyMs: number;
  errorRate: number;
  errorStatus: number;
  seed: number;
  failNext: (RequestMatcher & { status: number }) | null;
  hangNext: RequestMatcher | null;
  stateDelayMs: number;
  failCreate: boolean;
  hung: number;
}

const DEFAULT_ERROR_STATUS = 503;

/** mulberry32: tiny, seedable, good enough to make error rates reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Faults {
  private latencyMs = 0;
  private errorRate = 0;
  private errorStatus = DEFAULT_ERROR_STATUS;
  private seed = 1;
  private random = rng(1);
  private failNext: (RequestMatcher & { status: number }) | null = null;
  private hangNext: RequestMatcher | null = null;
  private readonly hung = new Set<Response>();

  constructor(private readonly cluster: SimCluster) {}

  view(): FaultView {
    return {
      latencyMs: this.latencyMs,
      errorRate: this.errorRate,
      errorStatus: this.errorStatus,
      seed: this.seed,
      failNext: this.failNext && { ...this.failNext },
      hangNext: this.hangNext && { ...this.hangNext },
      stateDelayMs: this.cluster.stateDelayMs,
      failCreate: this.cluster.failCreate,
      hung: this.hung.size,
    };
  }

  /** Applies the fields present in `raw` (validated as a whole first: nothing changes on a 400). */
  apply(raw: unknown): void {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badRequest('faults must be a JSON object');
    const b = raw as Record<string, unknown>;
    const known = [
      'latencyMs',
      'errorRate',
      'errorStatus',
      'seed',
      'failNext',
      'hangNext',
      'stateDelayMs',
      'failCreate',
    ];
    const unknown = Object.keys(b).filter((k) => !known.includes(k));
    if (unknown.length > 0)
      throw badRequest(`unknown fault field(s): ${unknown.join(', ')}; known: ${known.join(', ')}`);
    const latency = b.latencyMs === undefined ? undefined : int(b.latencyMs, 'latencyMs', 0, 600_000);
    const rate = b.errorRate === undefined ? undefined : num(b.errorRate, 'errorRate', 0, 1);
    const status = b.errorStatus === undefined ? undefined : int(b.errorStatus, 'errorStatus', 400, 599);
    const seed = b.seed === undefined ? undefined : int(b.seed, 'seed', 0, 2 ** 32 - 1);
    const failNext = b.failNext === undefined ? undefined : matcher(b.failNext, 'failNext', true);
    const hangNext = b.hangNext === undefined ? undefined : matcher(b.hangNext, 'hangNext', false);
    const delay = b.stateDelayMs === undefined ? undefined : int(b.stateDelayMs, 'stateDelayMs', 0, 3_600_000);
    if (b.failCreate !== undefined && typeof b.failCreate !== 'boolean')
      throw badRequest('failCreate must be true or false');

    if (latency !== undefined) this.latencyMs = latency;
    if (rate !== undefined) this.errorRate = rate;
    if (status !== undefined) this.errorStatus = status;
    if (seed !== undefined || rate !== undefined) {
      this.seed = seed ?? this.seed;
      this.random = rng(this.seed);
    }
    if (failNext !== undefined) this.failNext = failNext as (RequestMatcher & { status: number }) | null;
    if (hangNext !== undefined) this.hangNext = hangNext;
    if (delay !== undefined) this.cluster.stateDelayMs = delay;
    if (typeof b.failCreate === 'boolean') this.cluster.failCreate = b.failCreate;
  }

  /** Back to no faults (hung requests stay hung until released). */
  clear(): void {
    this.latencyMs = 0;
    this.errorRate = 0;
    this.errorStatus = DEFAULT_ERROR_STATUS;
    this.seed = 1;
    this.random = rng(1);
    this.failNext = null;
    this.hangNext = null;
    this.cluster.stateDelayMs = 0;
    this.cluster.failCreate = false;
  }

  /** Destroys the sockets of every hung request. */
  releaseHung(): void {
    for (const res of this.hung) res.socket?.destroy();
    this.hung.clear();
  }

  /** Express middleware for `/api/v2`: hang, then failNext, then latency, then errorRate. */
  readonly middleware = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    if (this.hangNext && matches(this.hangNext, req) && !skipped(this.hangNext)) {
      if (--this.hangNext.count <= 0) this.hangNext = null;
      this.hung.add(res);
      res.on('close', () => this.hung.delete(res));
      return; // never answered
    }
    if (this.failNext && matches(this.failNext, req) && !skipped(this.failNext)) {
      const status = this.failNext.status;
      if (--this.failNext.count <= 0) this.failNext = null;
      sendFault(res, status, 'failNext');
      return;
    }
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
    if (this.errorRate > 0 && this.random() < this.errorRate) {
      sendFault(res, this.errorStatus, 'errorRate');
      return;
    }
    next();
  };
}

function sendFault(res: Response, status: number, which: string): void {
  if (res.headersSent || res.socket?.destroyed) return;
  res.status(status).json({ code: grpcCodeFor(status), message: `simulated failure (${which})`, details: [] });
}

/** True (and one fewer left to skip) while the matcher still lets matching requests through. */
function skipped(m: RequestMatcher): boolean {
  if (!m.skip) return false;
  m.skip -= 1;
  return true;
}

function matches(m: RequestMatcher, req: Request): boolean {
  if (m.method && m.method.toUpperCase() !== req.method) return false;
  return !m.path || req.originalUrl.includes(m.path);
}

function num(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
    throw badRequest(`${field} must be a number in ${min}..${max}`);
  return v;
}

function int(v: unknown, field: string, min: number, max: number): number {
  const n = num(v, field, min, max);
  if (!Number.isInteger(n)) throw badRequest(`${field} must be a whole number`);
  return n;
}

function matcher(v: unknown, field: string, withStatus: boolean): (RequestMatcher & { status?: number }) | null {
  if (v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw badRequest(`${field} must be an object or null`);
  const b = v as Record<string, unknown>;
  const out: RequestMatcher & { status?: number } = { count: int(b.count ?? 1, `${field}.count`, 0, 1_000_000) };
  if (withStatus) out.status = int(b.status ?? DEFAULT_ERROR_STATUS, `${field}.status`, 400, 599);
  if (b.method !== undefined) {
    if (typeof b.method !== 'string' || !/^[A-Za-z]+$/.test(b.method))
      throw badRequest(`${field}.method must be an HTTP method`);
    out.method = b.method.toUpperCase();
  }
  if (b.skip !== undefined) out.skip = int(b.skip, `${field}.skip`, 0, 1_000_000);
  if (b.path !== undefined) {
    if (typeof b.path !== 'string' || b.path === '') throw badRequest(`${field}.path must be a non-empty string`);
    out.path = b.path;
  }
  return out.count > 0 ? out : null;
}
