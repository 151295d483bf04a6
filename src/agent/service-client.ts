/**
 * The agent side of the agent-facing API (docs/ARCHITECTURE.md, steps 9 and 14). The daemon talks
 * to the `ServiceClient` interface; `HttpServiceClient` is its axios implementation.
 *
 *   POST /v1/agent/register                       {connector} → 200 {host: {nqn, name}}
 *   GET  /v1/agent/attachments?since=&wait=       → 200 {version, attachments: [...]}
 *   PUT  /v1/agent/attachments/{id}/report        {state, device_path, …} → 200
 *
 * With a secrets key configured, the list also carries `dhchap`: this host's own DH-HMAC-CHAP
 * secrets (`current`, and `previous` while a rotation moves it), which the agent keeps in
 * /etc/nvme/config.json and its controllers' sysfs (host-auth.ts), never on a command line or in a
 * log; a report's `paths[].auth_generation` tells the service which generation each controller
 * holds (docs/agent.md).
 * The first list call sends no `since` and `wait=0`: "answer now". The token travels only in
 * the Authorization header and is never part of an error message or log line.
 */
import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { createRequire } from 'node:module';
import type { AxiosInstance, AxiosResponse, AxiosStatic } from 'axios';
import type { ConnectionInfo, Connector, PortalTuple } from '../driver/model.ts';
import type { components, operations } from '../server/generated/api.ts';
import { VERSION } from '../shared/version.ts';

/** The list's answer and one attachment of it, as api-spec/portalis.yaml defines them (generated types). */
type Listed = operations['agentListAttachments']['responses'][200]['content']['application/json'];
type ListedAttachment = Listed['attachments'][number];

export type DesiredState = ListedAttachment['desired'];

/**
 * An attachment of the list as the agent reads it: the spec's, with
 * - `size_gb`, `connected_by` and `host_portals` optional: a service older than them omits them
 *   (without `connected_by`, the agent's, as before docs/DECISIONS.md "Who connects an attachment");
 *   `size_gb` is the volume's size, and a connected device smaller than it is rescanned (online extend);
 * - the connection info and `host_portals` (host-connected: the portals the host was handed at its
 *   last initialize_connection) with os-brick's `[address, port, transport]` tuples, which OpenAPI 3.0
 *   can only describe as arrays of strings and integers.
 */
export type WireAttachment = Omit<ListedAttachment, 'size_gb' | 'connected_by' | 'host_portals' | 'connection_info'> &
  Partial<Pick<ListedAttachment, 'size_gb' | 'connected_by'>> & {
    connection_info: ConnectionInfo;
    host_portals?: PortalTuple[] | null;
  };

export type AttachmentList = Omit<Listed, 'attachments'> & { attachments: WireAttachment[] };

/** What the agent reports of an attachment (`PUT /v1/agent/attachments/{id}/report`), as the spec defines it. */
export type AttachmentReport = components['schemas']['AgentReport'];

/** The agent states of the wire (host-connected ones in docs/DECISIONS.md). */
export type ReportState = AttachmentReport['state'];

/** Of the registration's answer (the spec's Host) the agent reads the host's NQN and name. */
type Registered = { host: Pick<components['schemas']['Host'], 'nqn' | 'name'> };

export interface ServiceClient {
  /** 403 when the token's host is not `connector.nqn`. */
  register(connector: Connector): Promise<Registered>;
  /** Long poll: at once when the version differs from `since` (or `since` is null), else after `waitSeconds`. */
  listAttachments(since: number | null, waitSeconds: number, signal?: AbortSignal): Promise<AttachmentList>;
  report(id: string, report: AttachmentReport): Promise<void>;
}

export class ServiceError extends Error {
  constructor(
    message: string,
    /** HTTP status, or null when no answer came (refused, timeout, DNS). */
    readonly status: number | null,
  ) {
    super(message);
    this.name = 'ServiceError';
  }

  /** Worth repeating as is: no answer, 5xx, 429 or 408. 4xx other than those will not heal by retrying. */
  get retryable(): boolean {
    return this.status === null || this.status >= 500 || this.status === 429 || this.status === 408;
  }
}

export class HttpServiceClient implements ServiceClient {
  private readonly http: AxiosInstance;

  /**
   * `ca`: PEM CA certificate(s) to trust for an https URL. Node's `ca` option replaces the
   * bundled root store rather than adding to it (Node docs, tls.createSecureContext), so the
   * bundled roots (`tls.rootCertificates`) are passed along: a publicly signed service still
   * verifies.
   */
  constructor(opts: { url: string; token: string; timeoutMs?: number; ca?: string }) {
    // axios is loaded when a client is made, not when this module is: the daemon's module graph
    // imports this one, and the one-shot subcommands (attach, detach) would pay ~150 ms for it.
    const axios = createRequire(import.meta.url)('axios') as AxiosStatic;
    this.http = axios.create({
      ...(opts.ca ? { httpsAgent: new HttpsAgent({ ca: [...rootCertificates, opts.ca] }) } : {}),
      baseURL: opts.url.replace(/\/+$/, ''),
      timeout: opts.timeoutMs ?? 15_000,
      // The version on every request: the service records it at register (a host's `agent_version`);
      // a header, not a body field, so that a service older than it, whose schemas refuse unknown
      // fields, answers this agent all the same during a rolling upgrade.
      headers: {
        Authorization: `Bearer ${opts.token}`,
        'Content-Type': 'application/json',
        'X-Portalis-Agent-Version': VERSION,
      },
      validateStatus: () => true,
      // No proxy surprises on compute hosts: the service URL is dialled as given.
      proxy: false,
    });
  }

  private async call<T>(
    method: 'get' | 'post' | 'put',
    path: string,
    body?: unknown,
    extra: { timeout?: number; signal?: AbortSignal } = {},
  ): Promise<T> {
    let res: AxiosResponse<unknown>;
    try {
      res = await this.http.request({ method, url: path, data: body, timeout: extra.timeout, signal: extra.signal });
    } catch (e) {
      const code = (e as { code?: string }).code ?? (e as Error).message;
      throw new ServiceError(`${method.toUpperCase()} ${path.split('?')[0]}: no answer (${code})`, null);
    }
    if (res.status >= 200 && res.status < 300) return res.data as T;
    const err = (res.data as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ServiceError(
      `${method.toUpperCase()} ${path.split('?')[0]}: ${res.status}${err ? ` ${err.code ?? ''}: ${err.message ?? ''}` : ''}`,
      res.status,
    );
  }

  register(connector: Connector): Promise<Registered> {
    return this.call('post', '/v1/agent/register', { connector });
  }

  async listAttachments(since: number | null, waitSeconds: number, signal?: AbortSignal): Promise<AttachmentList> {
    const q = since === null ? `wait=0` : `since=${since}&wait=${waitSeconds}`;
    const wait = since === null ? 0 : waitSeconds;
    const body = await this.call<AttachmentList>('get', `/v1/agent/attachments?${q}`, undefined, {
      timeout: (wait + 15) * 1000,
      signal,
    });
    if (typeof body?.version !== 'number' || !Array.isArray(body.attachments))
      throw new ServiceError('GET /v1/agent/attachments: malformed answer', 502);
    return body;
  }

  async report(id: string, report: AttachmentReport): Promise<void> {
    await this.call('put', `/v1/agent/attachments/${encodeURIComponent(id)}/report`, report);
  }
}
