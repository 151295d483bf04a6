/**
 * HTTP to a LightOS cluster through any of its API endpoints, as the Cinder driver's
 * `LightOSConnection.send_cmd` does it:
 *
 * - start at a random endpoint, and stay on the last one that answered (sticky);
 * - fail over only when there is no HTTP answer at all (refused, reset, timeout…);
 * - with several endpoints, give up after one full cycle; with one, retry until the
 *   operation deadline (pausing `pollIntervalMs` between tries, where Cinder spins);
 * - every HTTP status, 4xx and 5xx included, is an answer and goes back to the caller.
 *
 * Each attempt gets the whole per-request timeout (as in Cinder), so an operation may overrun
 * its deadline by at most one request timeout.
 */
import { Agent as HttpsAgent } from 'node:https';
import axios, { type AxiosInstance } from 'axios';
import { poll } from '../../shared/poll.ts';
import type { ResolvedLightosConfig } from './config.ts';
import { lightosError, type Op, type TransportAttempt } from './errors.ts';

export interface HttpAnswer {
  status: number;
  /** Parsed JSON, or undefined when the body was empty or not JSON (see `malformed`). */
  body: unknown;
  /** Why the body could not be parsed, when it could not. */
  malformed?: string;
  endpoint: string;
}

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
}

type Outcome = { ok: true; answer: HttpAnswer } | { ok: false; attempt: TransportAttempt };

export class LightosTransport {
  private readonly http: AxiosInstance;
  private current: number;

  constructor(private readonly cfg: ResolvedLightosConfig) {
    this.current = Math.min(cfg.endpoints.length - 1, Math.floor(cfg.random() * cfg.endpoints.length));
    this.http = axios.create({
      timeout: cfg.requestTimeoutMs,
      // Every status is an answer the caller maps; bodies are parsed here, not by axios.
      validateStatus: () => true,
      responseType: 'text',
      transformResponse: [(d: unknown) => d],
      maxRedirects: 0,
      // The storage management network is reached directly; an ambient HTTP(S)_PROXY must not
      // capture calls that carry the cluster JWT.
      proxy: false,
      httpsAgent: new HttpsAgent({ rejectUnauthorized: cfg.tlsVerify }),
    });
  }

  /** The endpoint the next request starts at (exposed for tests of stickiness). */
  get currentEndpoint(): string {
    return this.cfg.endpoints[this.current];
  }

  /** Sends one request; returns any HTTP answer, throws backend_unavailable/backend_timeout when there is none. */
  async request(op: Op, req: HttpRequest): Promise<HttpAnswer> {
    const { endpoints, clock, pollIntervalMs } = this.cfg;
    const attempts: TransportAttempt[] = [];
    if (endpoints.length === 1) {
      const r = await poll<HttpAnswer>(
        async () => {
          const o = await this.attempt(op, req, 0);
          if (o.ok) return { done: true, value: o.answer };
          attempts.push(o.attempt);
          return { done: false, last: o.attempt };
        },
        { deadlineMs: Math.max(0, op.deadline - clock.now()), intervalMs: pollIntervalMs, clock },
      );
      if (r.done) return r.value;
    } else {
      const start = this.current;
      for (let i = 0; i < endpoints.length; i++) {
        const idx = (start + i) % endpoints.length;
        const o = await this.attempt(op, req, idx);
        if (o.ok) {
          this.current = idx;
          return o.answer;
        }
        attempts.push(o.attempt);
        this.cfg.logger.warn(
          { operation: op.name, endpoint: o.attempt.endpoint, reason: o.attempt.reason },
          'LightOS endpoint did not answer; failing over',
        );
      }
    }
    const timedOut = attempts.some((a) => a.timedOut);
    throw lightosError(
      op,
      timedOut
        ? { kind: 'timeout', attempts, requestTimeoutMs: this.cfg.requestTimeoutMs }
        : { kind: 'unreachable', attempts },
    );
  }

  private async attempt(op: Op, req: HttpRequest, idx: number): Promise<Outcome> {
    const endpoint = this.cfg.endpoints[idx];
    const headers: Record<string, string> = { Accept: 'application/json', ...req.headers };
    if (req.body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.cfg.jwt) headers.Authorization = `Bearer ${this.cfg.jwt}`;
    const started = Date.now();
    try {
      const res = await this.http.request<string>({
        method: req.method,
        url: endpoint + req.path,
        headers,
        data: req.body === undefined ? undefined : JSON.stringify(req.body),
      });
      const answer = parseAnswer(endpoint, res.status, typeof res.data === 'string' ? res.data : '');
      this.cfg.logger.debug(
        {
          operation: op.name,
          method: req.method,
          path: req.path,
          endpoint,
          status: res.status,
          ms: Date.now() - started,
        },
        'LightOS request',
      );
      return { ok: true, answer };
    } catch (err) {
      const code = (err as { code?: string }).code;
      const timedOut = code === 'ECONNABORTED' || code === 'ETIMEDOUT';
      const reason = timedOut ? `timed out after ${this.cfg.requestTimeoutMs} ms` : (code ?? (err as Error).message);
      return { ok: false, attempt: { endpoint, reason, timedOut } };
    }
  }
}

function parseAnswer(endpoint: string, status: number, text: string): HttpAnswer {
  if (text.trim() === '') return { status, body: undefined, endpoint };
  try {
    return { status, body: JSON.parse(text), endpoint };
  } catch {
    return { status, body: undefined, endpoint, malformed: `not JSON: ${JSON.stringify(text.slice(0, 120))}` };
  }
}

/** The server's own explanation of a non-2xx answer (grpc-gateway puts it in `message`). */
export function answerMessage(a: HttpAnswer): string {
  const b = a.body as { message?: unknown; error?: unknown } | undefined;
  if (b && typeof b.message === 'string') return b.message;
  if (b && typeof b.error === 'string') return b.error;
  return a.malformed ?? '';
}
