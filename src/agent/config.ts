/**
 * Agent settings from the environment. Every setting has a documented default; a bad value
 * stops start-up with a message naming the variable (docs/agent.md lists them).
 */
import { readFileSync } from 'node:fs';
import { ConfigError, type Env, boolVar, choiceVar, intVar } from '../shared/env.ts';
import type { ConnectTunables } from './nvme-cli.ts';

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

export function loadAgentSettings(env: Env): AgentSettings {
  const iopolicy = choiceVar(env, 'PORTALIS_AGENT_IOPOLICY', undefined, ['numa', 'round-robin', 'queue-depth']);
  const deviceTimeout = intVar(env, 'PORTALIS_AGENT_DEVICE_TIMEOUT', undefined, 1);
  return {
    tunables: {
      ctrlLossTmo: intVar(env, 'PORTALIS_AGENT_CTRL_LOSS_TMO', -1, -1)!,
      reconnectDelay: intVar(env, 'PORTALIS_AGENT_RECONNECT_DELAY', 10, 1)!,
      keepAliveTmo: intVar(env, 'PORTALIS_AGENT_KEEP_ALIVE_TMO', 30, 1)!,
      fastIoFailTmo: intVar(env, 'PORTALIS_AGENT_FAST_IO_FAIL_TMO', undefined, -1),
      nrIoQueues: intVar(env, 'PORTALIS_AGENT_NR_IO_QUEUES', undefined, 1, 1024),
    },
    iopolicy,
    enforceMultipath: boolVar(env, 'PORTALIS_AGENT_ENFORCE_MULTIPATH', false),
    deviceTimeoutMs: deviceTimeout === undefined ? undefined : deviceTimeout * 1000,
    commandTimeoutMs: intVar(env, 'PORTALIS_AGENT_COMMAND_TIMEOUT', 60, 1)! * 1000,
    recheckIntervalMs: intVar(env, 'PORTALIS_AGENT_RECHECK_INTERVAL', 30, 1)! * 1000,
    reportRefreshMs: intVar(env, 'PORTALIS_AGENT_REPORT_INTERVAL', 60, 1, 120)! * 1000,
    pollWaitSeconds: intVar(env, 'PORTALIS_AGENT_POLL_WAIT', 30, 0, 300)!,
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
  if (!url) throw new ConfigError('PORTALIS_URL', 'is required for the agent daemon (the driver service base URL)');
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw new ConfigError('PORTALIS_URL', `must be an http(s) URL, got ${JSON.stringify(url)}`);
  }
  const token = env.PORTALIS_TOKEN?.trim();
  if (!token) throw new ConfigError('PORTALIS_TOKEN', 'is required for the agent daemon (the host-scoped token)');
  const caFile = env.PORTALIS_CA_FILE?.trim() || undefined;
  let caPem: string | undefined;
  if (caFile) {
    try {
      caPem = readFileSync(caFile, 'utf8');
    } catch (e) {
      throw new ConfigError('PORTALIS_CA_FILE', `cannot read ${caFile}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
    if (!caPem.includes('-----BEGIN CERTIFICATE-----'))
      throw new ConfigError('PORTALIS_CA_FILE', `${caFile} holds no PEM certificate`);
  }
  const metricsPort = intVar(env, 'PORTALIS_AGENT_METRICS_PORT', undefined, 1, 65535);
  const metricsHost = env.PORTALIS_AGENT_METRICS_HOST?.trim() || '127.0.0.1';
  if (!/^[A-Za-z0-9.:_-]+$/.test(metricsHost))
    throw new ConfigError('PORTALIS_AGENT_METRICS_HOST', `not an address: ${JSON.stringify(metricsHost)}`);
  return {
    ...loadAgentSettings(env),
    url: url.replace(/\/+$/, ''),
    token,
    ...(caPem ? { caPem } : {}),
    metrics: metricsPort === undefined ? null : { host: metricsHost, port: metricsPort },
  };
}
