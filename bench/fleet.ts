/**
 * A fleet as an operator runs it (issue 22): `portalis sim` and `count` `portalis serve` replicas,
 * all real processes, on one scratch PostgreSQL database, each replica reaching the simulator
 * through the `lightos` adapter. Each replica counts its PostgreSQL statements (bench/pg-count.mjs,
 * preloaded), read with `queries()`; `cpuMs()` is the replicas' CPU time together.
 */
import path from 'node:path';
import { LISTENING, type Program, processCpuMs, ROOT, scratchDatabase, serviceEnv, startProgram } from './support.ts';
const COUNTER = path.join(ROOT, 'bench', 'pg-count.mjs');

export interface Fleet {
  urls: string[];
  simUrl: string;
  databaseUrl: string;
  replicas: Program[];
  /** User + system CPU ms of every replica, summed. */
  cpuMs(): number;
  /** The statements each replica has sent to PostgreSQL so far. */
  queries(): Promise<number[]>;
  stop(): Promise<void>;
}

export interface FleetOptions {
  /** Service settings added to every replica's environment. */
  env?: Record<string, string>;
  /** NODE_OPTIONS added for one replica (by index), e.g. `--cpu-prof`. */
  nodeOptions?: Record<number, string>;
}

export async function startFleet(serverUrl: string, name: string, count: number, o: FleetOptions = {}): Promise<Fleet> {
  const db = await scratchDatabase(serverUrl, name);
  const sim = startProgram(
    ['sim'],
    // 100 TiB: room for 2,000 hosts × 10 volumes of 1 GiB and more (10 TiB is the default).
    { PORTALIS_SIM_PORT: '0', PORTALIS_SIM_NODES: '3', PORTALIS_SIM_CAPACITY_GIB: String(100 * 1024) },
    LISTENING,
  );
  const replicas: Program[] = [];
  const stop = async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await sim.stop();
    await db.drop();
  };
  try {
    const simUrl = (await sim.ready).match[1]!;
    const start = (i: number) =>
      startProgram(
        ['serve'],
        {
          ...serviceEnv(db.url, simUrl),
          NODE_OPTIONS: `--import=${COUNTER} ${o.nodeOptions?.[i] ?? ''}`.trim(),
          ...o.env,
        },
        LISTENING,
      );
    // The first replica migrates the scratch database alone; the others then start side by side.
    replicas.push(start(0));
    const urls = [(await replicas[0]!.ready).match[1]!];
    for (let i = 1; i < count; i++) replicas.push(start(i));
    for (const r of replicas.slice(1)) urls.push((await r.ready).match[1]!);
    return {
      urls,
      simUrl,
      databaseUrl: db.url,
      replicas,
      cpuMs: () => replicas.reduce((sum, r) => sum + processCpuMs(r.child.pid!), 0),
      queries: () => Promise.all(replicas.map(queryCount)),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Asks one replica for its statement count (SIGUSR2) and reads the line it prints (10 s at most). */
function queryCount(r: Program): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      r.child.stdout!.off('data', onData);
      reject(new Error('no pg-queries line within 10 s'));
    }, 10_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /pg-queries (\d+)\n/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      r.child.stdout!.off('data', onData);
      resolve(Number(m[1]));
    };
    r.child.stdout!.on('data', onData);
    r.child.kill('SIGUSR2');
  });
}

const RECONNECT = new Set(['EPIPE', 'ECONNRESET', 'UND_ERR_SOCKET']);

/**
 * A client of the fleet that sends each request to the next replica, as a round-robin balancer.
 * With `retries`, a 502/503/504 (the database or backend unavailable for a moment) or a 409
 * `busy` is sent again after `retryMs`, doubled for each next attempt (at most 10 s), as the
 * Cinder driver's client does (`portalis_api_retries` 3, `portalis_api_retry_interval` 1 s:
 * integrations/cinder/portalis_cinder/client.py); `retried` counts them.
 */
export function roundRobin(urls: string[], o: { retries?: number; retryMs?: number } = {}) {
  let next = 0;
  const send = async (method: string, p: string, token: string, body?: unknown, signal?: AbortSignal) => {
    for (let attempt = 0; ; attempt++) {
      const url = urls[next++ % urls.length]!;
      let r: Response;
      try {
        r = await fetch(url + p, {
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal,
        });
      } catch (e) {
        // A kept-alive connection the replica closed (its 5 s keepAliveTimeout) just as this
        // request reused it: the write fails with EPIPE or ECONNRESET, or undici reads the close
        // first (UND_ERR_SOCKET, "other side closed"). Every Portalis call is idempotent, and
        // the Cinder driver and the agent send it again after a transport failure: so does this,
        // on a new connection, up to 3 times; `reconnected` counts them.
        const code = ((e as Error).cause as { code?: string } | undefined)?.code ?? '';
        if (!signal?.aborted && RECONNECT.has(code) && attempt < 3) {
          send.reconnected++;
          continue;
        }
        throw e;
      }
      const text = await r.text();
      const again = [502, 503, 504].includes(r.status) || (r.status === 409 && text.includes('"busy"'));
      if (again && attempt < (o.retries ?? 0)) {
        send.retried++;
        const pause = Math.min((o.retryMs ?? 1000) * 2 ** attempt, 10_000);
        await new Promise((resolve) => setTimeout(resolve, pause));
        continue;
      }
      if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${text}`);
      return JSON.parse(text) as Record<string, unknown>;
    }
  };
  send.retried = 0;
  send.reconnected = 0;
  return send;
}
