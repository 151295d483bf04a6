/**
 * Test support for code that talks to the simulator over HTTP: a JSON fetch, the one client of
 * its LightOS API and fault API (`SimClient`), and a condition wait with a deadline (never a
 * fixed sleep). The unit tests, the contract and integration tests and the kernel guest scripts
 * all use this client.
 */
import { poll } from '../../src/shared/poll.ts';
import { MemoryDataPlane } from '../../src/sim/memory-data-plane.ts';
import type { SimServer } from '../../src/sim/server.ts';

export interface JsonAnswer {
  status: number;
  body: any;
  headers: Headers;
}

export async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<JsonAnswer> {
  const init: RequestInit = {
    method,
    headers: { accept: 'application/json', ...headers },
    signal: AbortSignal.timeout(timeoutMs),
  };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(base + path, init);
  } catch (err) {
    throw new Error(`${method} ${base}${path}: no answer (${(err as Error).message})`, { cause: err });
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Resolves once `cond()` holds; rejects after `timeoutMs` (default 5 s). */
export async function waitUntil(
  cond: () => boolean | Promise<boolean>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<void> {
  const r = await poll(async () => ((await cond()) ? { done: true, value: true } : { done: false, last: null }), {
    deadlineMs: opts.timeoutMs ?? 5000,
    intervalMs: opts.intervalMs ?? 5,
  });
  if (!r.done) throw new Error(`timed out waiting for ${opts.what ?? 'condition'}`);
}

/** Waits until the simulator's volume `uuid` is Available; returns it as its LightOS API shows it. */
export async function availableVolume(base: string, uuid: string): Promise<any> {
  const get = () => call(base, 'GET', `/api/v2/projects/default/volumes/${uuid}`);
  await waitUntil(async () => (await get()).body.state === 'Available', { what: `volume ${uuid} Available` });
  return (await get()).body;
}

/** A volume or snapshot as the simulator's LightOS API shows it. */
export interface SimObject {
  UUID: string;
  name: string;
  size: string;
  state: string;
  [key: string]: unknown;
}

/**
 * The simulator's admin API (`/sim/v1`: state, faults, nodes, reset) and the parts of its LightOS
 * API v2 that tests read or drive directly. A call whose status is not the expected one throws,
 * naming the method, path, status and answer; `request` returns any answer as it is.
 */
export class SimClient {
  readonly url: string;

  constructor(
    url: string,
    private readonly opts: { jwt?: string; project?: string; timeoutMs?: number } = {},
  ) {
    this.url = url.replace(/\/+$/, '');
  }

  /** Any call, its answer as it is (the JWT, when set, goes with every call). */
  request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<JsonAnswer> {
    const auth: Record<string, string> = this.opts.jwt ? { authorization: `Bearer ${this.opts.jwt}` } : {};
    return call(this.url, method, path, body, { ...auth, ...headers }, this.opts.timeoutMs);
  }

  private async expect(ok: number[], method: string, path: string, body?: unknown): Promise<JsonAnswer> {
    const a = await this.request(method, path, body);
    if (!ok.includes(a.status))
      throw new Error(`${method} ${path} answered ${a.status}, expected ${ok.join(' or ')}: ${JSON.stringify(a.body)}`);
    return a;
  }

  private get volumes(): string {
    return `/api/v2/projects/${this.opts.project ?? 'default'}/volumes`;
  }

  // ------------------------------------------------------------------ admin API

  async state(): Promise<any> {
    return (await this.expect([200], 'GET', '/sim/v1/state')).body;
  }

  /** `PUT /sim/v1/faults`; throws unless the simulator took them. */
  faults(f: Record<string, unknown>): Promise<JsonAnswer> {
    return this.expect([200], 'PUT', '/sim/v1/faults', f);
  }

  /** The `/api/v2` requests the simulator answered since start or the last reset, by route. */
  async requests(): Promise<{ total: number; byRoute: Record<string, number> }> {
    return (await this.expect([200], 'GET', '/sim/v1/requests')).body;
  }

  async resetRequests(): Promise<void> {
    await this.expect([200], 'DELETE', '/sim/v1/requests');
  }

  /** The fault settings as they are now. */
  async faultsNow(): Promise<any> {
    return (await this.expect([200], 'GET', '/sim/v1/faults')).body;
  }

  async clearFaults(): Promise<void> {
    await this.expect([200, 204], 'DELETE', '/sim/v1/faults');
  }

  /** `POST /sim/v1/nodes/{uuid or index}/down|up`. */
  node(ref: string | number, up: boolean): Promise<JsonAnswer> {
    return this.expect([200], 'POST', `/sim/v1/nodes/${ref}/${up ? 'up' : 'down'}`);
  }

  /** `POST /sim/v1/nodes`: a node joins; the answer as it is. */
  addNode(body: { address?: string; port?: number } = {}): Promise<JsonAnswer> {
    return this.request('POST', '/sim/v1/nodes', body);
  }

  /** `DELETE /sim/v1/nodes/{uuid or index}`; the answer as it is. */
  removeNode(ref: string | number): Promise<JsonAnswer> {
    return this.request('DELETE', `/sim/v1/nodes/${ref}`);
  }

  /** `POST /sim/v1/volumes/{uuid}/replicas/move`; the answer as it is. */
  moveReplica(volumeUuid: string, from: string | number, to: string | number): Promise<JsonAnswer> {
    return this.request('POST', `/sim/v1/volumes/${volumeUuid}/replicas/move`, { from, to });
  }

  /** `PUT /sim/v1/nodes/{uuid or index}/address`; the answer as it is. */
  setNodeAddress(ref: string | number, address: string, port: number): Promise<JsonAnswer> {
    return this.request('PUT', `/sim/v1/nodes/${ref}/address`, { address, port });
  }

  async reset(): Promise<void> {
    await this.expect([200, 204], 'POST', '/sim/v1/reset');
  }

  // ------------------------------------------------------------------ LightOS API v2

  async clusterInfo(): Promise<{ UUID: string; subsystemNQN: string }> {
    return (await this.expect([200], 'GET', '/api/v2/clusterinfo')).body;
  }

  /** The volume as LightOS shows it, with its ETag (from the header, unquoted), or null (404). */
  async volume(uuid: string): Promise<{ body: any; etag: string } | null> {
    const a = await this.expect([200, 404], 'GET', `${this.volumes}/${uuid}`);
    if (a.status === 404) return null;
    return { body: a.body, etag: (a.headers.get('etag') ?? '').replace(/^"(.*)"$/, '$1') };
  }

  /** The simulator's volume of that name (LightOS `GET volumes/?name=`), or null. */
  async volumeByName(name: string): Promise<SimObject | null> {
    const a = await this.expect([200, 404], 'GET', `${this.volumes}/?name=${encodeURIComponent(name)}`);
    return a.status === 404 ? null : (a.body as SimObject);
  }

  /** The simulator's snapshot of that name (LightOS `GET snapshots/?Name=`), or null. */
  async snapshotByName(name: string): Promise<SimObject | null> {
    const path = `/api/v2/projects/${this.opts.project ?? 'default'}/snapshots/?Name=${encodeURIComponent(name)}`;
    const a = await this.expect([200, 404], 'GET', path);
    return a.status === 404 ? null : (a.body as SimObject);
  }

  /** The host NQNs in the volume's ACL (without the `ALLOW_NONE` placeholder). */
  async acl(volumeUuid: string): Promise<string[]> {
    const v = (await this.expect([200], 'GET', `${this.volumes}/${volumeUuid}`)).body;
    return (v.acl?.values ?? []).filter((h: string) => h !== 'ALLOW_NONE');
  }

  /** `PUT` with `If-Match`; returns the answer as it is (the caller checks 200 or 412). */
  putVolume(uuid: string, body: Record<string, unknown>, ifMatch?: string): Promise<JsonAnswer> {
    return this.request(
      'PUT',
      `${this.volumes}/${uuid}`,
      body,
      ifMatch === undefined ? {} : { 'If-Match': `"${ifMatch}"` },
    );
  }

  async deleteVolume(uuid: string): Promise<any> {
    return (await this.expect([200], 'DELETE', `${this.volumes}/${uuid}`)).body;
  }
}

/** A simulator on an ephemeral port over an in-memory data plane, and a client of it; the caller closes `sim`. */
export async function startTestSim(): Promise<{ sim: SimServer; dp: MemoryDataPlane; admin: SimClient }> {
  const dp = new MemoryDataPlane();
  // Imported here, not at the top: the kernel tests' guest scripts use SimClient from one esbuild
  // bundle, and the server's express (through `debug`) does a dynamic require('tty') that an ESM
  // bundle cannot do when it is evaluated (esbuild's "Dynamic require is not supported").
  const { startSimServer } = await import('../../src/sim/server.ts');
  const sim = await startSimServer({ port: 0, dataPlane: dp });
  return { sim, dp, admin: new SimClient(sim.url) };
}
