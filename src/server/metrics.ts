import client from 'prom-client';
import type { StorageBackend } from '../driver/ports.ts';
import type { MetricsSources } from '../store/metrics-source.ts';

/**
 * The service's Prometheus registry. It lives in the server (composition root): the domain never
 * sees prom-client; the backend is measured by a decorator around the StorageBackend port.
 */
export class ServiceMetrics {
  readonly registry = new client.Registry();
  readonly httpRequests: client.Counter<'route' | 'method' | 'status'>;
  readonly httpDuration: client.Histogram<'route' | 'method' | 'status'>;
  readonly backendCalls: client.Counter<'operation'>;
  readonly backendErrors: client.Counter<'operation' | 'code'>;
  readonly backendDuration: client.Histogram<'operation'>;
  readonly longPolls: client.Gauge;
  private newScrape: () => void = () => {};

  constructor(sources: MetricsSources | null) {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: 'portalis_' });
    this.httpRequests = new client.Counter({
      name: 'portalis_http_requests_total',
      help: 'HTTP requests by route (OpenAPI operation), method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.httpDuration = new client.Histogram({
      name: 'portalis_http_request_duration_seconds',
      help: 'HTTP request latency by route, method and status (long polls included)',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.backendCalls = new client.Counter({
      name: 'portalis_backend_calls_total',
      help: 'Storage backend operations by operation',
      labelNames: ['operation'],
      registers,
    });
    this.backendErrors = new client.Counter({
      name: 'portalis_backend_errors_total',
      help: 'Storage backend operations that failed, by operation and error code',
      labelNames: ['operation', 'code'],
      registers,
    });
    this.backendDuration = new client.Histogram({
      name: 'portalis_backend_call_duration_seconds',
      help: 'Storage backend operation latency (with its retries and state waits) by operation',
      labelNames: ['operation'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.longPolls = new client.Gauge({
      name: 'portalis_agent_long_polls_open',
      help: 'Agent long polls being held open by this process',
      registers,
    });
    if (!sources) return;
    new client.Gauge({
      name: 'portalis_attachments',
      help: 'Attachments by status',
      labelNames: ['status'],
      registers,
      async collect() {
        this.reset();
        for (const [status, n] of Object.entries(await sources.attachmentsByStatus())) this.set({ status }, n);
      },
    });
    // Both path gauges come from one query per scrape, and both health gauges from another
    // (`scrape()` forgets the last ones).
    let pathsQuery: ReturnType<MetricsSources['pathsByState']> | null = null;
    let healthQuery: ReturnType<MetricsSources['healthCounts']> | null = null;
    this.newScrape = () => {
      pathsQuery = null;
      healthQuery = null;
    };
    const pathsNow = () => (pathsQuery ??= sources.pathsByState());
    new client.Gauge({
      name: 'portalis_paths',
      help: "Paths of live attachments by controller state, from the agents' latest reports",
      labelNames: ['state'],
      registers,
      async collect() {
        const r = await pathsNow();
        this.reset();
        for (const [state, n] of Object.entries(r.state)) this.set({ state }, n);
      },
    });
    new client.Gauge({
      name: 'portalis_paths_ana',
      help: "Paths of live attachments by ANA state ('none' for a path without one), from the agents' latest reports",
      labelNames: ['ana_state'],
      registers,
      async collect() {
        const r = await pathsNow();
        this.reset();
        for (const [ana_state, n] of Object.entries(r.ana)) this.set({ ana_state }, n);
      },
    });
    // Counts, never one series per host or attachment: at 10,000 hosts those would be tens of
    // thousands of series per replica. Per-host detail stays in GET /v1/health/multipath.
    const healthNow = () => (healthQuery ??= sources.healthCounts());
    new client.Gauge({
      name: 'portalis_attachment_cells',
      help: 'Live attachments (health-matrix cells) by their state: optimal, degraded, failed, unknown, pending, detached',
      labelNames: ['health'],
      registers,
      async collect() {
        for (const [health, n] of Object.entries((await healthNow()).cells)) this.set({ health }, n);
      },
    });
    new client.Gauge({
      name: 'portalis_volumes_by_health',
      help: 'Volumes with a live attachment by their worst cell (failed, unknown, degraded, detached, pending, optimal)',
      labelNames: ['health'],
      registers,
      async collect() {
        for (const [health, n] of Object.entries((await healthNow()).volumes)) this.set({ health }, n);
      },
    });
    new client.Gauge({
      name: 'portalis_agents',
      help: 'Host agents that have contacted the service (seen) and those silent for 180 s (stale)',
      labelNames: ['state'],
      registers,
      async collect() {
        const a = await sources.agents();
        this.set({ state: 'seen' }, a.seen);
        this.set({ state: 'stale' }, a.stale);
      },
    });
    new client.Gauge({
      name: 'portalis_db_pool_connections',
      help: 'Database pool connections: used (handed out), free (idle) and waiting (callers queued for one)',
      labelNames: ['state'],
      registers,
      collect() {
        const p = sources.pool();
        this.set({ state: 'used' }, p.used);
        this.set({ state: 'free' }, p.free);
        this.set({ state: 'waiting' }, p.waiting);
      },
    });
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    this.newScrape();
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}

/**
 * The StorageBackend port, measured: calls, errors (by the DriverError code the adapter throws)
 * and latency per operation. Every method of the port goes through; `kind` is passed on.
 */
export function instrumentBackend(inner: StorageBackend, m: ServiceMetrics): StorageBackend {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function' || typeof prop !== 'string') return v;
      return async (...args: unknown[]) => {
        const end = m.backendDuration.startTimer({ operation: prop });
        m.backendCalls.inc({ operation: prop });
        // A promise the caller passed in (attachAccess's `ready`: the attaching insert) fails on
        // the caller's side: its rejection, passed through by the adapter, is no backend error.
        const callers = new Set<unknown>();
        for (const a of args) if (a instanceof Promise) a.catch((reason: unknown) => void callers.add(reason));
        try {
          return await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } catch (e) {
          const code = (e as { code?: unknown }).code;
          if (!callers.has(e))
            m.backendErrors.inc({ operation: prop, code: typeof code === 'string' ? code : 'error' });
          throw e;
        } finally {
          end();
        }
      };
    },
  });
}
