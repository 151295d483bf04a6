/**
 * Adapter configuration and its defaults, which mirror the LightOS Cinder driver:
 * `lightos_api_service_timeout` 30 s per request, a logical operation deadline of
 * 3 × request timeout + 10 s, and 1 s between polls.
 */
import { type Clock, systemClock } from '../../shared/clock.ts';
import { type Logger, silentLogger } from '../../shared/logger.ts';

export interface LightosConfig {
  /** API base URLs, e.g. `https://10.0.0.1:443` or `http://127.0.0.1:8090`. */
  endpoints: string[];
  /** Sent as `Authorization: Bearer <jwt>` when set (LightOS multi-tenancy). */
  jwt?: string;
  /** LightOS project (Cinder's `lightos:project_name`), default `default`. */
  project?: string;
  /** Per-HTTP-request timeout, default 30000. */
  requestTimeoutMs?: number;
  /** Deadline of one port operation (retries and waits), default 3 × requestTimeoutMs + 10000. */
  operationTimeoutMs?: number;
  /** Pause between state polls and between retries, default 1000. */
  pollIntervalMs?: number;
  /** Verify TLS certificates of https endpoints (Cinder's `driver_ssl_cert_verify`), default true. */
  tlsVerify?: boolean;
  /**
   * Attempts at creating a snapshot, `pollIntervalMs × 2^i` apart (Cinder's
   * `lightos_api_service_snapshots_max_calls`, default 5).
   */
  snapshotMaxCalls?: number;
  /**
   * Volumes per page of the volume list (`GET .../volumes?limit=`), 1..1000, default 1000: the
   * most LightOS answers in one page (`ListVolumeRequest.limit`, durosapiv2.proto).
   */
  listPageSize?: number;
  clock?: Clock;
  logger?: Logger;
  /** Chooses the first endpoint (default Math.random); tests pin it. */
  random?: () => number;
}

export interface ResolvedLightosConfig {
  endpoints: string[];
  jwt?: string;
  project: string;
  requestTimeoutMs: number;
  operationTimeoutMs: number;
  pollIntervalMs: number;
  tlsVerify: boolean;
  snapshotMaxCalls: number;
  listPageSize: number;
  clock: Clock;
  logger: Logger;
  random: () => number;
}

function positive(v: number | undefined, name: string, def: number): number {
  if (v === undefined) return def;
  if (!Number.isFinite(v) || v <= 0)
    throw new TypeError(`LightOS backend config: ${name} must be a positive number of milliseconds, got ${v}`);
  return v;
}

export function resolveLightosConfig(c: LightosConfig): ResolvedLightosConfig {
  if (!Array.isArray(c.endpoints) || c.endpoints.length === 0) {
    throw new TypeError('LightOS backend config: endpoints must list at least one API URL');
  }
  const endpoints = c.endpoints.map((e, i) => {
    let url: URL;
    try {
      url = new URL(e);
    } catch {
      throw new TypeError(`LightOS backend config: endpoints[${i}] '${e}' is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`LightOS backend config: endpoints[${i}] '${e}' must be http:// or https://`);
    }
    return e.replace(/\/+$/, '');
  });
  const project = c.project ?? 'default';
  if (!/^[A-Za-z0-9._-]{1,256}$/.test(project))
    throw new TypeError(`LightOS backend config: project '${project}' is not a valid name`);
  const requestTimeoutMs = positive(c.requestTimeoutMs, 'requestTimeoutMs', 30_000);
  return {
    endpoints,
    jwt: c.jwt || undefined,
    project,
    requestTimeoutMs,
    operationTimeoutMs: positive(c.operationTimeoutMs, 'operationTimeoutMs', 3 * requestTimeoutMs + 10_000),
    pollIntervalMs: positive(c.pollIntervalMs, 'pollIntervalMs', 1000),
    tlsVerify: c.tlsVerify ?? true,
    snapshotMaxCalls: snapshotCalls(c.snapshotMaxCalls),
    listPageSize: pageSize(c.listPageSize),
    clock: c.clock ?? systemClock,
    logger: c.logger ?? silentLogger,
    random: c.random ?? Math.random,
  };
}

function snapshotCalls(v: number | undefined): number {
  if (v === undefined) return 5;
  if (!Number.isInteger(v) || v < 1 || v > 20)
    throw new TypeError(`LightOS backend config: snapshotMaxCalls must be a whole number in 1..20, got ${v}`);
  return v;
}

/** LightOS's largest page of volumes: `ListVolumeRequest.limit` "default/maximum value is 1000". */
export const MAX_LIST_PAGE = 1000;

function pageSize(v: number | undefined): number {
  if (v === undefined) return MAX_LIST_PAGE;
  if (!Number.isInteger(v) || v < 1 || v > MAX_LIST_PAGE)
    throw new TypeError(`LightOS backend config: listPageSize must be a whole number in 1..${MAX_LIST_PAGE}, got ${v}`);
  return v;
}
