import net from 'node:net';
import { rssBytes, servedConnections } from './proc.ts';
import { waitUntil } from './sim-client.ts';

export interface FloodFigures {
  /** The service's resident memory before the flood and the most it reached during it, in bytes. */
  baseline: number;
  peak: number;
  /** The slowest `GET /healthz` during the flood, in ms. */
  slowestHealthz: number;
}

/** `GET /healthz`'s answer time in ms; anything but a 200 throws. */
async function healthz(url: string): Promise<number> {
  const start = performance.now();
  const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) });
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`/healthz answered ${r.status}`);
  return performance.now() - start;
}

/**
 * `sockets` connections to the service at `url` (process `pid`, on this machine), each sending
 * `pipelined` copies of `request` at once and never reading an answer. Samples the service's memory
 * and `/healthz` until the service has read every byte sent (or closed the connection), and ten
 * rounds more while its handlers finish; then closes the sockets.
 */
export async function floodUnread(
  url: string,
  pid: number,
  opts: { sockets: number; pipelined: number; request: string },
): Promise<FloodFigures> {
  const port = Number(new URL(url).port);
  const baseline = rssBytes(pid);
  const payload = opts.request.repeat(opts.pipelined);
  const sockets = await Promise.all(
    Array.from(
      { length: opts.sockets },
      () =>
        new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1', () => s.write(payload, (e) => (e ? reject(e) : resolve(s))));
          // Never read: the answers pile up in the kernel's buffers and then in the service's.
          s.pause();
          s.on('error', () => undefined);
        }),
    ),
  );
  let peak = baseline;
  let slowestHealthz = 0;
  try {
    let rounds = 0;
    await waitUntil(
      async () => {
        slowestHealthz = Math.max(slowestHealthz, await healthz(url));
        peak = Math.max(peak, rssBytes(pid));
        if (servedConnections(port).unread === 0) rounds++;
        return rounds >= 10;
      },
      { timeoutMs: 60_000, intervalMs: 50, what: 'the service to read every pipelined request' },
    );
  } finally {
    for (const s of sockets) s.destroy();
  }
  return { baseline, peak, slowestHealthz };
}

/** Requests the service has compiled its code for, so that the baseline is not the first use's. */
export async function warm(url: string, paths: string[], times = 20): Promise<void> {
  for (let i = 0; i < times; i++) {
    for (const p of paths) {
      const r = await fetch(url + p);
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`${p} answered ${r.status}`);
    }
  }
}
