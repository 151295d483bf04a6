/**
 * Agent settings from the environment. Every setting has a documented default; a bad value
 * stops start-up with a message naming the variable (the README lists them).
 */
import { readFileSync } from 'node:fs';
import type { ConnectTunables } from './nvme-cli.ts';

export class AgentConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'AgentConfigError';
  }
}

export interface AgentSettings {
  tunables: ConnectTunables;
  iopolicy?: string;
  enforceMultipath: boolean;
  deviceTimeoutMs?: number;
  commandTimeoutMs: number;
  recheckIntervalMs: number;
  reportRefreshMs: number;
  pollWaitSeconds: number;
  roots: { sysRoot?: string; devRoot?: string; etcRoot?: string; procRoot?: string };
}

export interface DaemonSettings extends AgentSettings {
  url: string;
  token: string;
  /** PEM CA certificate(s) trusted for an https service URL, besides the system store. */
  caPem?: string;
  /** null: no metrics endpoint. */
  metrics: { host: string; port: number } | null;
}

type Env = Record<string, string | undefined>;

/** [variable, default, meaning]: printed by `--help` and in the report. */
export const AGENT_SETTINGS: [string, string, string][] = [
  ['PORTALIS_URL', '(required)', 'driver service base URL, for the daemon'],
  ['PORTALIS_TOKEN', '(required)', 'host-scoped bearer token, for the daemon (never logged)'],
  ['PORTALIS_CA_FILE', '(unset)', 'PEM CA file trusted for an https PORTALIS_URL, besides the system store'],
  ['PORTALIS_AGENT_METRICS_PORT', '(off)', "port of the daemon's Prometheus GET /metrics (no token: keep it local)"],
  ['PORTALIS_AGENT_METRICS_HOST', '127.0.0.1', 'address the metrics endpoint listens on'],
  ['PORTALIS_AGENT_CTRL_LOSS_TMO', '-1', 'nvme connect --ctrl-loss-tmo (seconds, -1 = forever)'],
  ['PORTALIS_AGENT_RECONNECT_DELAY', '10', 'nvme connect --reconnect-delay (seconds)'],
  ['PORTALIS_AGENT_KEEP_ALIVE_TMO', '30', 'nvme connect --keep-alive-tmo (seconds)'],
  [
    'PORTALIS_AGENT_FAST_IO_FAIL_TMO',
    '(unset)',
    'nvme connect --fast_io_fail_tmo (seconds); unset = kernel default (off)',
  ],
  ['PORTALIS_AGENT_NR_IO_QUEUES', '(unset)', 'nvme connect --nr-io-queues'],
  [
    'PORTALIS_AGENT_IOPOLICY',
    '(unset)',
    'subsystem iopolicy: numa, round-robin or queue-depth; unset = leave as is (numa)',
  ],
  ['PORTALIS_AGENT_ENFORCE_MULTIPATH', 'false', 'connector enforce_multipath'],
  ['PORTALIS_AGENT_DEVICE_TIMEOUT', '10 + reconnect delay', 'seconds to wait for a block device or DM map'],
  ['PORTALIS_AGENT_COMMAND_TIMEOUT', '60', 'seconds before a command (nvme, multipathd) is killed'],
  ['PORTALIS_AGENT_RECHECK_INTERVAL', '30', 'seconds between path re-check passes (self-healing)'],
  ['PORTALIS_AGENT_REPORT_INTERVAL', '60', 'seconds after which an unchanged report is sent again'],
  ['PORTALIS_AGENT_POLL_WAIT', '30', 'long-poll wait in seconds'],
  ['PORTALIS_AGENT_SYS_ROOT', '/sys', 'where sysfs is (tests, containers)'],
  ['PORTALIS_AGENT_DEV_ROOT', '/dev', 'where /dev is'],
  ['PORTALIS_AGENT_ETC_ROOT', '/etc', 'where /etc is (nvme/hostnqn, nvme/hostid)'],
  ['PORTALIS_AGENT_PROC_ROOT', '/proc', 'where /proc is'],
  ['PORTALIS_LOG_LEVEL', 'info', 'pino log level (logs go to stderr)'],
];

function int(
  env: Env,
  name: string,
  def: number | undefined,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const n = Number(raw.trim());
  if (!Number.isInteger(n) || n < min || n > max)
    throw new AgentConfigError(name, `must be an integer between ${min} and ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return def;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new AgentConfigError(name, `must be true or false, got ${JSON.stringify(env[name])}`);
}

export function loadAgentSettings(env: Env): AgentSettings {
  const iopolicy = env.PORTALIS_AGENT_IOPOLICY?.trim() || undefined;
  if (iopolicy && !['numa', 'round-robin', 'queue-depth'].includes(iopolicy)) {
    throw new AgentConfigError(
      'PORTALIS_AGENT_IOPOLICY',
      `must be numa, round-robin or queue-depth, got ${JSON.stringify(iopolicy)}`,
    );
  }
  const deviceTimeout = int(env, 'PORTALIS_AGENT_DEVICE_TIMEOUT', undefined, 1);
  return {
    tunables: {
      ctrlLossTmo: int(env, 'PORTALIS_AGENT_CTRL_LOSS_TMO', -1, -1)!,
      reconnectDelay: int(env, 'PORTALIS_AGENT_RECONNECT_DELAY', 10, 1)!,
      keepAliveTmo: int(env, 'PORTALIS_AGENT_KEEP_ALIVE_TMO', 30, 1)!,
      fastIoFailTmo: int(env, 'PORTALIS_AGENT_FAST_IO_FAIL_TMO', undefined, -1),
      nrIoQueues: int(env, 'PORTALIS_AGENT_NR_IO_QUEUES', undefined, 1, 1024),
    },
    iopolicy,
    enforceMultipath: bool(env, 'PORTALIS_AGENT_ENFORCE_MULTIPATH', false),
    deviceTimeoutMs: deviceTimeout === undefined ? undefined : deviceTimeout * 1000,
    commandTimeoutMs: int(env, 'PORTALIS_AGENT_COMMAND_TIMEOUT', 60, 1)! * 1000,
    recheckIntervalMs: int(env, 'PORTALIS_AGENT_RECHECK_INTERVAL', 30, 1)! * 1000,
    reportRefreshMs: int(env, 'PORTALIS_AGENT_REPORT_INTERVAL', 60, 1, 120)! * 1000,
    pollWaitSeconds: int(env, 'PORTALIS_AGENT_POLL_WAIT', 30, 0, 300)!,
    roots: {
      sysRoot: env.PORTALIS_AGENT_SYS_ROOT || undefined,
      devRoot: env.PORTALIS_AGENT_DEV_ROOT || undefined,
      etcRoot: env.PORTALIS_AGENT_ETC_ROOT || undefined,
      procRoot: env.PORTALIS_AGENT_PROC_ROOT || undefined,
    },
  };
}

export function loadDaemonSettings(env: Env): DaemonSettings {
  const url = env.PORTALIS_URL?.trim();
  if (!url)
    throw new AgentConfigError('PORTALIS_URL', 'is required for the agent daemon (the driver service base URL)');
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw new AgentConfigError('PORTALIS_URL', `must be an http(s) URL, got ${JSON.stringify(url)}`);
  }
  const token = env.PORTALIS_TOKEN?.trim();
  if (!token) throw new AgentConfigError('PORTALIS_TOKEN', 'is required for the agent daemon (the host-scoped token)');
  const caFile = env.PORTALIS_CA_FILE?.trim() || undefined;
  let caPem: string | undefined;
  if (caFile) {
    try {
      caPem = readFileSync(caFile, 'utf8');
    } catch (e) {
      throw new AgentConfigError(
        'PORTALIS_CA_FILE',
        `cannot read ${caFile}: ${(e as NodeJS.ErrnoException).code ?? e}`,
      );
    }
    if (!caPem.includes('-----BEGIN CERTIFICATE-----'))
      throw new AgentConfigError('PORTALIS_CA_FILE', `${caFile} holds no PEM certificate`);
  }
  const metricsPort = int(env, 'PORTALIS_AGENT_METRICS_PORT', undefined, 1, 65535);
  const metricsHost = env.PORTALIS_AGENT_METRICS_HOST?.trim() || '127.0.0.1';
  if (!/^[A-Za-z0-9.:_-]+$/.test(metricsHost))
    throw new AgentConfigError('PORTALIS_AGENT_METRICS_HOST', `not an address: ${JSON.stringify(metricsHost)}`);
  return {
    ...loadAgentSettings(env),
    url: url.replace(/\/+$/, ''),
    token,
    ...(caPem ? { caPem } : {}),
    metrics: metricsPort === undefined ? null : { host: metricsHost, port: metricsPort },
  };
}
