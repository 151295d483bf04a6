/**
 * Service configuration from the environment: the table SETTINGS (also `portalis help` and the
 * table of docs/configuration.md) read by the shared parser, then the rules between settings.
 * An invalid value stops start-up with a ConfigError that names the variable.
 */
import path from 'node:path';
import { bool, ConfigError, choice, httpUrl, int, invalid, listenAddress, parseSettings, text } from './shared/env.ts';
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

const token = (v: string) => (v.length >= 16 ? v : invalid('must be at least 16 characters'));

/** The service's settings: variable, kind, default and bounds, and the meaning the guide gives. */
export const SETTINGS = {
  PORTALIS_PORT: int({ def: 8080, min: 0, max: 65535, doc: 'HTTP(S) port' }),
  PORTALIS_HOST: text({ def: '127.0.0.1', parse: listenAddress, doc: 'address to listen on' }),
  PORTALIS_TLS_CERT: text({
    doc:
      'PEM certificate file (the chain, leaf first): the port serves HTTPS; needs `PORTALIS_TLS_KEY`; re-read on ' +
      'SIGHUP',
  }),
  PORTALIS_TLS_KEY: text({
    doc: 'PEM private key file of `PORTALIS_TLS_CERT` (both or neither: one alone stops start-up)',
  }),
  PORTALIS_ADMIN_TOKEN: text({
    parse: token,
    shown: 'generated',
    doc:
      'bearer token of the orchestrator API (at least 16 characters); generated on first start, kept in the data ' +
      'directory and printed',
  }),
  DATABASE_URL: text({
    parse: (v) => (/^postgres(ql)?:\/\//.test(v) ? v : invalid('must be a postgres:// or postgresql:// URL')),
    shown: 'embedded',
    doc: 'PostgreSQL URL; unset starts the embedded PostgreSQL under the data directory',
  }),
  PORTALIS_DATA_DIR: text({
    def: '.portalis',
    shown: '`./.portalis`',
    doc: 'embedded PostgreSQL data and the generated admin token',
  }),
  PORTALIS_BACKEND: choice<BackendKind>({
    def: 'sim',
    choices: ['sim', 'lightos'],
    shown: '`sim`',
    doc: "`sim` (the simulator) or `lightos` (a LightOS cluster's API v2)",
  }),
  PORTALIS_SIM_URL: text({
    parse: httpUrl,
    shown: 'in-process',
    doc: "the simulator's URL for `sim`; unset starts a 3-node in-memory simulator inside the service",
  }),
  PORTALIS_LIGHTOS_ENDPOINTS: text({
    parse: (v) =>
      v
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean)
        .map(httpUrl),
    shown: '–',
    doc:
      'comma-separated LightOS API base URLs, required for `lightos` (e.g. ' +
      '`https://10.0.0.1:443,https://10.0.0.2:443`)',
  }),
  PORTALIS_LIGHTOS_JWT: text({ doc: 'LightOS JWT, sent as `Authorization: Bearer` (never logged)' }),
  PORTALIS_LIGHTOS_PROJECT: text({ def: 'default', shown: '`default`', doc: 'LightOS project of the volumes' }),
  PORTALIS_LIGHTOS_TIMEOUT_MS: int({
    def: 30_000,
    min: 100,
    max: 600_000,
    doc: 'per-request timeout towards the backend',
  }),
  PORTALIS_LIGHTOS_OPERATION_TIMEOUT_MS: int({
    min: 100,
    max: 3_600_000,
    shown: '3 × request + 10 s',
    doc: 'deadline of one backend operation with its retries and state waits',
  }),
  PORTALIS_LIGHTOS_POLL_INTERVAL_MS: int({
    min: 10,
    max: 60_000,
    shown: '1000 (`sim`: 100)',
    doc: 'pause between backend state polls',
  }),
  PORTALIS_LIGHTOS_TLS_VERIFY: bool({ def: true, doc: "verify the backend's TLS certificate" }),
  PORTALIS_DEFAULT_REPLICAS: int({
    def: 3,
    min: 1,
    max: 3,
    doc: 'replica count of a volume created without `replicas`',
  }),
  PORTALIS_DB_POOL_MAX: int({
    def: 10,
    min: 2,
    max: 500,
    doc: 'PostgreSQL connection pool of volume operations (each holds one across its backend calls)',
  }),
  PORTALIS_DB_AGENT_POOL_MAX: int({
    def: 4,
    min: 1,
    max: 500,
    doc: 'a second pool for the agents (token checks, long polls, reports): no volume operation delays them',
  }),
  PORTALIS_DB_READ_POOL_MAX: int({
    def: 4,
    min: 1,
    max: 500,
    doc:
      'a third pool for reads (get, list, health matrix), `/metrics` and `/readyz`: they answer while volume ' +
      'operations hold the first',
  }),
  PORTALIS_VOLUME_BACKEND_NAME: text({
    def: 'portalis',
    parse: (v) =>
      /^[A-Za-z0-9._:@-]{1,255}$/.test(v)
        ? v
        : invalid(`must be 1-255 letters, digits or . _ : @ -, got ${JSON.stringify(v)}`),
    doc: '`volume_backend_name` in `GET /v1/capabilities`',
  }),
  PORTALIS_CAPABILITIES_REFRESH_MS: int({
    def: 60_000,
    min: 0,
    max: 86_400_000,
    doc: 'how long `GET /v1/capabilities` serves cached capacity figures; one replica of the fleet reads them',
  }),
  PORTALIS_RESERVED_PERCENTAGE: int({
    def: 0,
    min: 0,
    max: 100,
    doc: '`reserved_percentage` in `GET /v1/capabilities`',
  }),
  PORTALIS_LOG_LEVEL: text({ def: 'info', doc: 'pino log level (JSON lines on stdout)' }),
  PORTALIS_EVENT_RETENTION_DAYS: int({
    def: 7,
    min: 1,
    max: 3650,
    doc:
      'how long the path-health history (`GET /v1/attachments/{id}/events`) is kept; pruned hourly, once per ' +
      'fleet',
  }),
  PORTALIS_PORTAL_REFRESH_MS: int({
    def: 30_000,
    min: 100,
    max: 86_400_000,
    doc:
      "how often live attachments' portals are checked against the backend, by one replica " +
      '([live-paths.md](live-paths.md))',
  }),
  PORTALIS_METRICS_TOKEN: text({
    parse: token,
    doc:
      'a second bearer token that may read `GET /metrics` and nothing else (at least 16 characters); the admin ' +
      'token always may',
  }),
  PORTALIS_INBAND_AUTH: choice({
    def: 'off',
    choices: ['off', 'required'] as const,
    doc:
      '`required`: the service generates DH-HMAC-CHAP secrets per host, sets them at the backend and delivers them ' +
      'to its agent; a host without them cannot connect ([security.md](security.md))',
  }),
  PORTALIS_SECRETS_KEY: text({
    doc:
      "32-byte key (base64 or hex) that encrypts the hosts' secrets in PostgreSQL; required with " +
      '`PORTALIS_INBAND_AUTH=required`',
  }),
  PORTALIS_SECRETS_KEY_FILE: text({ doc: 'a file holding `PORTALIS_SECRETS_KEY` instead (one of the two)' }),
};

export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): ServiceConfig {
  const s = parseSettings(SETTINGS, env);
  const backend = s.PORTALIS_BACKEND;
  const endpoints = s.PORTALIS_LIGHTOS_ENDPOINTS ?? [];
  if (backend === 'lightos' && endpoints.length === 0) {
    throw new ConfigError(
      'PORTALIS_LIGHTOS_ENDPOINTS',
      'required when PORTALIS_BACKEND=lightos (comma-separated API URLs)',
    );
  }
  const inbandAuth = s.PORTALIS_INBAND_AUTH;
  // The key's variables are in SETTINGS for help and the guide; loadSecretsKey reads them (one of
  // the two, a file's content trimmed) and checks the key's length.
  const secretsKey = loadSecretsKey(env);
  if (inbandAuth === 'required' && !secretsKey)
    throw new ConfigError(
      'PORTALIS_SECRETS_KEY',
      "required with PORTALIS_INBAND_AUTH=required (or PORTALIS_SECRETS_KEY_FILE): it encrypts the hosts' secrets at rest",
    );

  return {
    inbandAuth,
    secrets: secretsKey ? new SecretBox(secretsKey) : null,
    port: s.PORTALIS_PORT,
    host: s.PORTALIS_HOST,
    adminToken: s.PORTALIS_ADMIN_TOKEN ?? null,
    databaseUrl: s.DATABASE_URL ?? null,
    dataDir: path.resolve(cwd, s.PORTALIS_DATA_DIR),
    backend,
    simUrl: s.PORTALIS_SIM_URL ?? null,
    lightos: {
      endpoints,
      jwt: s.PORTALIS_LIGHTOS_JWT ?? null,
      project: s.PORTALIS_LIGHTOS_PROJECT,
      requestTimeoutMs: s.PORTALIS_LIGHTOS_TIMEOUT_MS,
      operationTimeoutMs: s.PORTALIS_LIGHTOS_OPERATION_TIMEOUT_MS ?? null,
      // The simulator changes state within milliseconds; a real cluster within seconds.
      pollIntervalMs: s.PORTALIS_LIGHTOS_POLL_INTERVAL_MS ?? (backend === 'sim' ? 100 : 1000),
      tlsVerify: s.PORTALIS_LIGHTOS_TLS_VERIFY,
    },
    defaultReplicas: s.PORTALIS_DEFAULT_REPLICAS,
    logLevel: s.PORTALIS_LOG_LEVEL,
    dbPoolMax: s.PORTALIS_DB_POOL_MAX,
    dbAgentPoolMax: s.PORTALIS_DB_AGENT_POOL_MAX,
    dbReadPoolMax: s.PORTALIS_DB_READ_POOL_MAX,
    tls: tlsFiles(s.PORTALIS_TLS_CERT, s.PORTALIS_TLS_KEY, cwd),
    eventRetentionDays: s.PORTALIS_EVENT_RETENTION_DAYS,
    portalRefreshMs: s.PORTALIS_PORTAL_REFRESH_MS,
    metricsToken: s.PORTALIS_METRICS_TOKEN ?? null,
    capabilities: {
      backendName: s.PORTALIS_VOLUME_BACKEND_NAME,
      refreshMs: s.PORTALIS_CAPABILITIES_REFRESH_MS,
      reservedPercentage: s.PORTALIS_RESERVED_PERCENTAGE,
    },
  };
}

/** Both or neither: a certificate without its key (or the reverse) is a mistake, not plain HTTP. */
function tlsFiles(cert: string | undefined, key: string | undefined, cwd: string): ServiceConfig['tls'] {
  if (cert && !key)
    throw new ConfigError('PORTALIS_TLS_KEY', 'required with PORTALIS_TLS_CERT (the PEM private key file)');
  if (key && !cert)
    throw new ConfigError('PORTALIS_TLS_CERT', 'required with PORTALIS_TLS_KEY (the PEM certificate file)');
  return cert && key ? { certFile: path.resolve(cwd, cert), keyFile: path.resolve(cwd, key) } : null;
}

/**
 * With in-band authentication on, the agents' long polls carry their hosts' DH-HMAC-CHAP secrets:
 * over plain HTTP anyone on the path reads them. Start-up still goes on (a TLS-terminating proxy
 * in front is a sound set-up the service cannot see), but says so, unless the service listens on
 * loopback only, where nothing crosses a network.
 */
export function plainSecretsWarning(c: Pick<ServiceConfig, 'inbandAuth' | 'tls' | 'host'>): string | null {
  if (c.inbandAuth !== 'required' || c.tls) return null;
  const h = c.host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h)) return null;
  return (
    `PORTALIS_INBAND_AUTH=required without PORTALIS_TLS_CERT on ${c.host}: the hosts' secrets go to ` +
    'their agents over plain HTTP; set PORTALIS_TLS_CERT and PORTALIS_TLS_KEY, or terminate TLS in front'
  );
}
