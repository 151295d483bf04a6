/**
 * Service configuration from the environment. Every setting has a variable and a default;
 * an invalid value stops start-up with a ConfigError that names the variable.
 */
import path from 'node:path';
import { ConfigError, boolVar, choiceVar, intVar } from './shared/env.ts';
import { loadSecretsKey, SecretBox } from './store/secret-box.ts';

export { ConfigError };

export type BackendKind = 'sim' | 'lightos';

export interface ServiceConfig {
  port: number;
  host: string;
  /** null: generate one (kept in the data directory) and print it. */
  adminToken: string | null;
  /** null: start the embedded PostgreSQL under dataDir. */
  databaseUrl: string | null;
  dataDir: string;
  backend: BackendKind;
  /** `sim`: the simulator's URL; null starts one in-process (3 nodes, in-memory data plane). */
  simUrl: string | null;
  lightos: {
    endpoints: string[];
    jwt: string | null;
    project: string;
    requestTimeoutMs: number;
    /** null: 3 × requestTimeoutMs + 10 s, as the Cinder LightOS driver. */
    operationTimeoutMs: number | null;
    pollIntervalMs: number;
    tlsVerify: boolean;
  };
  defaultReplicas: number;
  logLevel: string;
  dbPoolMax: number;
  /** The agent-facing pool (host store): never held by a volume lock, so a poll never queues behind one. */
  dbAgentPoolMax: number;
  /** The pool of reads outside any lock (get, list, health, metrics, readiness): never held by a volume lock either. */
  dbReadPoolMax: number;
  eventRetentionDays: number;
  /** How often every live attachment's portals are checked against the backend (ms). */
  portalRefreshMs: number;
  /** A bearer token that may read `/metrics` only; null: only the admin token may. */
  metricsToken: string | null;
  /** `GET /v1/capabilities` (Cinder's get_volume_stats). */
  capabilities: { backendName: string; refreshMs: number; reservedPercentage: number };
  /** HTTPS on the service port with this certificate and key (PEM files); null: plain HTTP. */
  tls: { certFile: string; keyFile: string } | null;
  /** `required`: every host authenticates in-band (DH-HMAC-CHAP) with the secrets the service generates. */
  inbandAuth: 'off' | 'required';
  /** Encrypts the hosts' secrets at rest; null when no key is configured (then no secrets are kept). */
  secrets: SecretBox | null;
}

/** The documented variables, their defaults and meaning; the table in docs/configuration.md states the same facts. */
export const SETTINGS = [
  ['PORTALIS_PORT', '8080', 'HTTP(S) port'],
  ['PORTALIS_HOST', '127.0.0.1', 'address to listen on'],
  [
    'PORTALIS_TLS_CERT',
    'unset',
    'PEM certificate (chain) file: serve HTTPS; needs PORTALIS_TLS_KEY; re-read on SIGHUP',
  ],
  ['PORTALIS_TLS_KEY', 'unset', 'PEM private key file of PORTALIS_TLS_CERT'],
  [
    'PORTALIS_ADMIN_TOKEN',
    'generated',
    'bearer token of the orchestrator API; generated on first start, kept in the data directory and printed',
  ],
  ['DATABASE_URL', 'embedded', 'PostgreSQL URL; unset starts an embedded PostgreSQL under the data directory'],
  ['PORTALIS_DATA_DIR', './.portalis', 'embedded PostgreSQL data and the generated admin token'],
  ['PORTALIS_BACKEND', 'sim', '`sim` (simulator) or `lightos` (LightOS API v2)'],
  ['PORTALIS_SIM_URL', 'in-process', 'simulator URL for `sim`; unset starts a 3-node in-memory simulator in-process'],
  [
    'PORTALIS_LIGHTOS_ENDPOINTS',
    '-',
    'comma-separated LightOS API base URLs (required for `lightos`), e.g. https://10.0.0.1:443',
  ],
  ['PORTALIS_LIGHTOS_JWT', 'unset', 'LightOS JWT, sent as a bearer token'],
  ['PORTALIS_LIGHTOS_PROJECT', 'default', 'LightOS project of the volumes'],
  ['PORTALIS_LIGHTOS_TIMEOUT_MS', '30000', 'per-request timeout towards the backend'],
  [
    'PORTALIS_LIGHTOS_OPERATION_TIMEOUT_MS',
    '3×req+10s',
    'deadline of one backend operation with its retries and state waits',
  ],
  ['PORTALIS_LIGHTOS_POLL_INTERVAL_MS', '1000 (sim: 100)', 'pause between backend state polls'],
  [
    'PORTALIS_LIGHTOS_TLS_VERIFY',
    'true',
    "verify the backend's TLS certificate (`false` for self-signed lab clusters)",
  ],
  ['PORTALIS_DEFAULT_REPLICAS', '3', 'replica count of a volume created without `replicas`'],
  ['PORTALIS_DB_POOL_MAX', '10', 'PostgreSQL connection pool size (volume operations hold one each)'],
  [
    'PORTALIS_DB_AGENT_POOL_MAX',
    '4',
    "the agents' own pool (token checks, long polls, reports), so volume operations never delay them",
  ],
  [
    'PORTALIS_DB_READ_POOL_MAX',
    '4',
    'the pool of reads, the scrape and the readiness check: they answer while volume operations wait on the backend',
  ],
  ['PORTALIS_VOLUME_BACKEND_NAME', 'portalis', '`volume_backend_name` reported by GET /v1/capabilities'],
  [
    'PORTALIS_CAPABILITIES_REFRESH_MS',
    '60000',
    'how long GET /v1/capabilities serves cached capacity figures before asking the backend again',
  ],
  ['PORTALIS_RESERVED_PERCENTAGE', '0', '`reserved_percentage` reported by GET /v1/capabilities'],
  ['PORTALIS_LOG_LEVEL', 'info', 'pino log level'],
  ['PORTALIS_EVENT_RETENTION_DAYS', '7', 'how long the path-health history (attachment events) is kept'],
  [
    'PORTALIS_PORTAL_REFRESH_MS',
    '30000',
    'how often live attachments follow the backend (replica moves, node changes)',
  ],
  [
    'PORTALIS_METRICS_TOKEN',
    'unset',
    'a second bearer token that may read GET /metrics only (at least 16 characters); the admin token always may',
  ],
  [
    'PORTALIS_INBAND_AUTH',
    'off',
    '`required`: the service generates DH-HMAC-CHAP secrets per host, sets them at the backend and ' +
      'delivers them to its agent; a host without them cannot connect (docs/security.md)',
  ],
  [
    'PORTALIS_SECRETS_KEY',
    'unset',
    "32-byte key (base64 or hex) that encrypts the hosts' secrets in PostgreSQL; required with PORTALIS_INBAND_AUTH=required",
  ],
  ['PORTALIS_SECRETS_KEY_FILE', 'unset', 'a file holding PORTALIS_SECRETS_KEY instead (one of the two)'],
] as const;

function url(name: string, raw: string): string {
  try {
    const u = new URL(raw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
    return raw.replace(/\/+$/, '');
  } catch {
    throw new ConfigError(name, `must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): ServiceConfig {
  const backend = choiceVar<BackendKind>(env, 'PORTALIS_BACKEND', 'sim', ['sim', 'lightos']);

  const token = env.PORTALIS_ADMIN_TOKEN || null;
  if (token !== null && token.length < 16)
    throw new ConfigError('PORTALIS_ADMIN_TOKEN', 'must be at least 16 characters');

  const metricsToken = env.PORTALIS_METRICS_TOKEN || null;
  if (metricsToken !== null && metricsToken.length < 16)
    throw new ConfigError('PORTALIS_METRICS_TOKEN', 'must be at least 16 characters');

  const databaseUrl = env.DATABASE_URL || null;
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL', 'must be a postgres:// or postgresql:// URL');
  }

  const endpoints = (env.PORTALIS_LIGHTOS_ENDPOINTS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((e) => url('PORTALIS_LIGHTOS_ENDPOINTS', e));
  if (backend === 'lightos' && endpoints.length === 0) {
    throw new ConfigError(
      'PORTALIS_LIGHTOS_ENDPOINTS',
      'required when PORTALIS_BACKEND=lightos (comma-separated API URLs)',
    );
  }

  const host = env.PORTALIS_HOST || '127.0.0.1';
  if (!/^[A-Za-z0-9.:_-]+$/.test(host))
    throw new ConfigError('PORTALIS_HOST', `not an address: ${JSON.stringify(host)}`);

  const inbandAuth = choiceVar<'off' | 'required'>(env, 'PORTALIS_INBAND_AUTH', 'off', ['off', 'required']);
  const secretsKey = loadSecretsKey(env);
  if (inbandAuth === 'required' && !secretsKey)
    throw new ConfigError(
      'PORTALIS_SECRETS_KEY',
      "required with PORTALIS_INBAND_AUTH=required (or PORTALIS_SECRETS_KEY_FILE): it encrypts the hosts' secrets at rest",
    );

  return {
    inbandAuth,
    secrets: secretsKey ? new SecretBox(secretsKey) : null,
    port: intVar(env, 'PORTALIS_PORT', 8080, 0, 65535),
    host,
    adminToken: token,
    databaseUrl,
    dataDir: path.resolve(cwd, env.PORTALIS_DATA_DIR || '.portalis'),
    backend,
    simUrl: env.PORTALIS_SIM_URL ? url('PORTALIS_SIM_URL', env.PORTALIS_SIM_URL) : null,
    lightos: {
      endpoints,
      jwt: env.PORTALIS_LIGHTOS_JWT || null,
      project: env.PORTALIS_LIGHTOS_PROJECT || 'default',
      requestTimeoutMs: intVar(env, 'PORTALIS_LIGHTOS_TIMEOUT_MS', 30_000, 100, 600_000),
      operationTimeoutMs: env.PORTALIS_LIGHTOS_OPERATION_TIMEOUT_MS
        ? intVar(env, 'PORTALIS_LIGHTOS_OPERATION_TIMEOUT_MS', 0, 100, 3_600_000)
        : null,
      // The simulator changes state within milliseconds; a real cluster within seconds.
      pollIntervalMs: intVar(env, 'PORTALIS_LIGHTOS_POLL_INTERVAL_MS', backend === 'sim' ? 100 : 1000, 10, 60_000),
      tlsVerify: boolVar(env, 'PORTALIS_LIGHTOS_TLS_VERIFY', true),
    },
    defaultReplicas: intVar(env, 'PORTALIS_DEFAULT_REPLICAS', 3, 1, 3),
    logLevel: env.PORTALIS_LOG_LEVEL || 'info',
    dbPoolMax: intVar(env, 'PORTALIS_DB_POOL_MAX', 10, 2, 500),
    dbAgentPoolMax: intVar(env, 'PORTALIS_DB_AGENT_POOL_MAX', 4, 1, 500),
    dbReadPoolMax: intVar(env, 'PORTALIS_DB_READ_POOL_MAX', 4, 1, 500),
    tls: tlsFiles(env, cwd),
    eventRetentionDays: intVar(env, 'PORTALIS_EVENT_RETENTION_DAYS', 7, 1, 3650),
    portalRefreshMs: intVar(env, 'PORTALIS_PORTAL_REFRESH_MS', 30_000, 100, 86_400_000),
    metricsToken,
    capabilities: {
      backendName: backendName(env),
      refreshMs: intVar(env, 'PORTALIS_CAPABILITIES_REFRESH_MS', 60_000, 0, 86_400_000),
      reservedPercentage: intVar(env, 'PORTALIS_RESERVED_PERCENTAGE', 0, 0, 100),
    },
  };
}

/** Both or neither: a certificate without its key (or the reverse) is a mistake, not plain HTTP. */
function tlsFiles(env: NodeJS.ProcessEnv, cwd: string): ServiceConfig['tls'] {
  const cert = env.PORTALIS_TLS_CERT || null;
  const key = env.PORTALIS_TLS_KEY || null;
  if (cert && !key)
    throw new ConfigError('PORTALIS_TLS_KEY', 'required with PORTALIS_TLS_CERT (the PEM private key file)');
  if (key && !cert)
    throw new ConfigError('PORTALIS_TLS_CERT', 'required with PORTALIS_TLS_KEY (the PEM certificate file)');
  return cert && key ? { certFile: path.resolve(cwd, cert), keyFile: path.resolve(cwd, key) } : null;
}

function backendName(env: NodeJS.ProcessEnv): string {
  const raw = env.PORTALIS_VOLUME_BACKEND_NAME || 'portalis';
  if (!/^[A-Za-z0-9._:@-]{1,255}$/.test(raw))
    throw new ConfigError(
      'PORTALIS_VOLUME_BACKEND_NAME',
      `must be 1-255 letters, digits or . _ : @ -, got ${JSON.stringify(raw)}`,
    );
  return raw;
}
