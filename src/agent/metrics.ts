import { createServer, type Server } from 'node:http';
import client from 'prom-client';
import type { DaemonObserver } from './daemon.ts';

/**
 * The agent's own Prometheus metrics (`PORTALIS_AGENT_METRICS_PORT`, off by default): what it did
 * to this host's kernel. Served without a token, so it listens on loopback unless told otherwise.
 */
export class AgentMetrics implements DaemonObserver {
  readonly registry = new client.Registry();
  private readonly connects: client.Counter<'result'>;
  private readonly connectSeconds: client.Histogram<'result'>;
  private readonly disconnects: client.Counter<'result'>;
  private readonly disconnectSeconds: client.Histogram<'result'>;
  private readonly reconnected: client.Counter;

  constructor() {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: 'portalis_agent_' });
    const buckets = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];
    this.connects = new client.Counter({
      name: 'portalis_agent_connects_total',
      help: 'Volumes connected (a device that was not there), by result (ok, failed)',
      labelNames: ['result'],
      registers,
    });
    this.connectSeconds = new client.Histogram({
      name: 'portalis_agent_connect_duration_seconds',
      help: 'Time from the start of a connect to the device (or the failure), by result',
      labelNames: ['result'],
      buckets,
      registers,
    });
    this.disconnects = new client.Counter({
      name: 'portalis_agent_disconnects_total',
      help: 'Teardowns by result: ok, refused (the device is in use; nothing done), failed',
      labelNames: ['result'],
      registers,
    });
    this.disconnectSeconds = new client.Histogram({
      name: 'portalis_agent_disconnect_duration_seconds',
      help: 'Teardown time by result',
      labelNames: ['result'],
      buckets,
      registers,
    });
    this.reconnected = new client.Counter({
      name: 'portalis_agent_paths_reconnected_total',
      help: 'Paths of connected devices brought back by the periodic recheck (self-healing)',
      registers,
    });
    for (const result of ['ok', 'failed']) this.connects.inc({ result }, 0);
    for (const result of ['ok', 'refused', 'failed']) this.disconnects.inc({ result }, 0);
  }

  connect(result: 'ok' | 'failed', ms: number): void {
    this.connects.inc({ result });
    this.connectSeconds.observe({ result }, ms / 1000);
  }

  disconnect(result: 'ok' | 'refused' | 'failed', ms: number): void {
    this.disconnects.inc({ result });
    this.disconnectSeconds.observe({ result }, ms / 1000);
  }

  pathsReconnected(n: number): void {
    this.reconnected.inc(n);
  }

  /** Serves `GET /metrics` on host:port; resolves once listening. */
  async listen(host: string, port: number): Promise<{ url: string; close(): Promise<void> }> {
    const server: Server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(e as Error).message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const addr = server.address();
    const bound = typeof addr === 'object' && addr ? addr.port : port;
    return {
      url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}/metrics`,
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    };
  }
}
