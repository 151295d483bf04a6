/**
 * REST client for guest scenarios: the driver service's orchestrator API (admin token); the
 * simulator's is the shared `SimClient` (test/support/sim-client.ts). Every request has a timeout, and a status other
 * than the expected one throws with the method, path, status and answer, so that a failing
 * scenario says what the service or simulator answered.
 */
import type { PathStatus } from '../../../src/driver/model.ts';

export interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

export class Http {
  constructor(
    readonly base: string,
    private readonly headers: Record<string, string> = {},
    private readonly timeoutMs = 30_000,
  ) {}

  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    const init: RequestInit = {
      method,
      headers: { accept: 'application/json', ...this.headers, ...headers },
      signal: AbortSignal.timeout(this.timeoutMs),
    };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
    let res: Response;
    try {
      res = await fetch(this.base + path, init).catch((err: Error) => {
        // A read on a kept-alive socket the service closed meanwhile fails before any answer
        // ("fetch failed", cause `other side closed` / ECONNRESET): the service idles sockets out
        // after 5 s, and undici's own idle timer (the Keep-Alive header's 5 s less its 2 s
        // `keepAliveTimeoutThreshold`; undici 6, Node 20's fetch) fires late when the emulated
        // guest's event loop stalls that long. A GET is retried once on a fresh connection;
        // anything else is reported as it is.
        if (method !== 'GET' || !isSocketClosed(err)) throw err;
        return fetch(this.base + path, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
      });
    } catch (err) {
      const cause = (err as Error & { cause?: Error }).cause;
      const why = cause ? `${(err as Error).message}: ${cause.message}` : (err as Error).message;
      throw new Error(`${method} ${this.base}${path}: no answer (${why})`, { cause: err });
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  /** The answer's body when its status is one of `ok`; else throws naming what came back. */
  async expect(
    ok: number[],
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<any> {
    const a = await this.request(method, path, body, headers);
    if (!ok.includes(a.status)) {
      throw new Error(`${method} ${path} answered ${a.status}, expected ${ok.join(' or ')}: ${JSON.stringify(a.body)}`);
    }
    return a.body;
  }
}

/** A connector as os-brick's `get_connector_properties` returns it (the fields we send). */
export interface Connector {
  nqn: string;
  host: string;
  nvme_hostid?: string;
  uuid?: string;
  multipath?: boolean;
  nvme_native_multipath?: boolean;
  enforce_multipath?: boolean;
  [key: string]: unknown;
}

export interface NvmeofConnectionData {
  vol_uuid: string;
  target_nqn?: string;
  portals?: [string, number, string][];
  ns_id: string;
  host_nqn: string;
  multipath_mode: string;
  dm_replicas?: { vol_uuid: string; target_nqn: string; portals: [string, number, string][] }[];
  [key: string]: unknown;
}

/** One path of an agent report, as the service answers it. */
export type PathReport = PathStatus;

export interface AgentReportView {
  state: string;
  device_path: string | null;
  size_bytes: number | null;
  health: string | null;
  paths: PathReport[];
  error: { code: string; message: string } | null;
  reported_at: string;
}

export interface AttachmentView {
  id: string;
  volume_id: string;
  host_nqn: string;
  status: string;
  force: boolean;
  health: string;
  agent: AgentReportView | null;
  [key: string]: unknown;
}

/** The driver service's orchestrator API. */
export class ServiceApi {
  readonly http: Http;

  constructor(
    readonly url: string,
    token: string,
  ) {
    this.http = new Http(url, { authorization: `Bearer ${token}` });
  }

  createVolume(body: { id: string; size_gb: number; replicas?: number; multiattach?: boolean }) {
    return this.http.expect([200, 201], 'POST', '/v1/volumes', body);
  }

  getVolume(id: string) {
    return this.http.expect([200], 'GET', `/v1/volumes/${id}`);
  }

  async initializeConnection(
    id: string,
    connector: Connector,
  ): Promise<{ data: NvmeofConnectionData; attachmentId: string; raw: any }> {
    const r = await this.http.expect([200], 'POST', `/v1/volumes/${id}/initialize_connection`, { connector });
    if (r?.connection_info?.driver_volume_type !== 'nvmeof')
      throw new Error(`initialize_connection: not nvmeof: ${JSON.stringify(r)}`);
    return { data: r.connection_info.data, attachmentId: r.attachment_id, raw: r };
  }

  terminateConnection(id: string, connector: Connector | null, force?: boolean) {
    return this.http.expect(
      [200],
      'POST',
      `/v1/volumes/${id}/terminate_connection`,
      force === undefined ? { connector } : { connector, force },
    );
  }

  attachments(query: Record<string, string> = {}) {
    const q = new URLSearchParams(query).toString();
    return this.http.expect([200], 'GET', `/v1/attachments${q ? `?${q}` : ''}`);
  }

  /** One attachment with the agent's report (`agent`: state, device_path, size_bytes, paths, error) and `health`. */
  attachment(id: string): Promise<AttachmentView> {
    return this.http.expect([200], 'GET', `/v1/attachments/${id}`);
  }

  extendVolume(id: string, newSizeGb: number) {
    return this.http.expect([200], 'POST', `/v1/volumes/${id}/extend`, { new_size_gb: newSizeGb });
  }

  deleteVolume(id: string, force = false) {
    return this.http.expect([204], 'DELETE', `/v1/volumes/${id}${force ? '?force=true' : ''}`);
  }

  /** `POST /v1/hosts`: the host's agent token (`pth_…`). */
  async issueHostToken(nqn: string, name?: string): Promise<string> {
    const r = await this.http.expect([201], 'POST', '/v1/hosts', name === undefined ? { nqn } : { nqn, name });
    return r.token;
  }

  host(nqn: string) {
    return this.http.expect([200], 'GET', `/v1/hosts/${encodeURIComponent(nqn)}`);
  }
}

/** undici's error for a connection that closed before the answer (not a timeout, not a refusal). */
function isSocketClosed(err: Error): boolean {
  const cause = (err as Error & { cause?: { code?: string } }).cause;
  return err.message === 'fetch failed' && (cause?.code === 'UND_ERR_SOCKET' || cause?.code === 'ECONNRESET');
}
