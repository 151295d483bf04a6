/**
 * Agent settings from the environment: the tables AGENT_SETTINGS (every command) and
 * DAEMON_SETTINGS (the daemon's own), read by the shared parser; they are also `--help` and the
 * table of docs/agent.md. A bad value stops start-up with a message naming the variable.
 */
import { readFileSync } from 'node:fs';
import {
  bool,
  ConfigError,
  choice,
  type Env,
  httpUrl,
  int,
  listenAddress,
  parseSettings,
  text,
} from '../shared/env.ts';
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

/** What every agent command reads: the connect tunables, timings and where the host's files are. */
export const AGENT_SETTINGS = {
  PORTALIS_AGENT_CTRL_LOSS_TMO: int({
    def: -1,
    min: -1,
    doc: '`nvme connect --ctrl-loss-tmo` (seconds, -1 = forever)',
  }),
  PORTALIS_AGENT_RECONNECT_DELAY: int({ def: 10, min: 1, doc: '`nvme connect --reconnect-delay` (seconds)' }),
  PORTALIS_AGENT_KEEP_ALIVE_TMO: int({ def: 30, min: 1, doc: '`nvme connect --keep-alive-tmo` (seconds)' }),
  PORTALIS_AGENT_FAST_IO_FAIL_TMO: int({
    min: -1,
    shown: 'unset (not passed)',
    doc: "`nvme connect --fast_io_fail_tmo` (seconds); unset: the kernel's default (off)",
  }),
  PORTALIS_AGENT_NR_IO_QUEUES: int({
    min: 1,
    max: 1024,
    shown: 'unset (not passed)',
    doc: '`nvme connect --nr-io-queues`',
  }),
  PORTALIS_AGENT_IOPOLICY: choice({
    choices: ['numa', 'round-robin', 'queue-depth'],
    shown: 'unset',
    doc: "the subsystem's iopolicy: `numa`, `round-robin` or `queue-depth`; unset: left as it is (`numa`)",
  }),
  PORTALIS_AGENT_ENFORCE_MULTIPATH: bool({ def: false, doc: "the connector's `enforce_multipath`" }),
  PORTALIS_AGENT_DEVICE_TIMEOUT: int({
    min: 1,
    shown: '10 + reconnect delay',
    doc: 'seconds to wait for a block device or DM map',
  }),
  PORTALIS_AGENT_COMMAND_TIMEOUT: int({
    def: 60,
    min: 1,
    doc: 'seconds before a command (`nvme`, `multipathd`) is killed',
  }),
  PORTALIS_AGENT_RECHECK_INTERVAL: int({
    def: 30,
    min: 1,
    doc: 'seconds between path re-check passes (self-healing)',
  }),
  PORTALIS_AGENT_REPORT_INTERVAL: int({
    def: 60,
    min: 1,
    max: 120,
    doc: 'seconds after which an unchanged report is sent again (at most 120)',
  }),
  PORTALIS_AGENT_POLL_WAIT: int({ def: 30, min: 0, max: 300, doc: 'long-poll wait in seconds' }),
  PORTALIS_AGENT_SYS_ROOT: text({ shown: '`/sys`', doc: 'where sysfs is (tests, containers)' }),
  PORTALIS_AGENT_DEV_ROOT: text({ shown: '`/dev`', doc: 'where /dev is' }),
  PORTALIS_AGENT_ETC_ROOT: text({ shown: '`/etc`', doc: 'where /etc is (`nvme/hostnqn`, `nvme/hostid`)' }),
  PORTALIS_AGENT_PROC_ROOT: text({ shown: '`/proc`', doc: 'where /proc is' }),
  PORTALIS_LOG_LEVEL: text({ def: 'info', doc: 'pino log level (logs go to stderr)' }),
};

/** What only the daemon reads: the service, its token and CA, the metrics endpoint. */
export const DAEMON_SETTINGS = {
  PORTALIS_URL: text({
    parse: httpUrl,
    required: 'is required for the agent daemon (the driver service base URL)',
    doc: 'the driver service base URL',
  }),
  PORTALIS_TOKEN: text({
    required: 'is required for the agent daemon (the host-scoped token)',
    doc: 'the host-scoped bearer token (never logged)',
  }),
  PORTALIS_CA_FILE: text({
    doc: "PEM CA file trusted for an `https` `PORTALIS_URL`, besides the system's trusted roots",
  }),
  PORTALIS_AGENT_METRICS_PORT: int({
    min: 1,
    max: 65535,
    shown: 'unset: off',
    doc: "port of the daemon's Prometheus `GET /metrics` (no token: keep it local)",
  }),
  PORTALIS_AGENT_METRICS_HOST: text({
    def: '127.0.0.1',
    parse: listenAddress,
    doc: 'address the metrics endpoint listens on',
  }),
};

export function loadAgentSettings(env: Env): AgentSettings {
  const s = parseSettings(AGENT_SETTINGS, env);
  const seconds = (n: number) => n * 1000;
  return {
    tunables: {
      ctrlLossTmo: s.PORTALIS_AGENT_CTRL_LOSS_TMO,
      reconnectDelay: s.PORTALIS_AGENT_RECONNECT_DELAY,
      keepAliveTmo: s.PORTALIS_AGENT_KEEP_ALIVE_TMO,
      fastIoFailTmo: s.PORTALIS_AGENT_FAST_IO_FAIL_TMO,
      nrIoQueues: s.PORTALIS_AGENT_NR_IO_QUEUES,
    },
    iopolicy: s.PORTALIS_AGENT_IOPOLICY,
    enforceMultipath: s.PORTALIS_AGENT_ENFORCE_MULTIPATH,
    deviceTimeoutMs:
      s.PORTALIS_AGENT_DEVICE_TIMEOUT === undefined ? undefined : seconds(s.PORTALIS_AGENT_DEVICE_TIMEOUT),
    commandTimeoutMs: seconds(s.PORTALIS_AGENT_COMMAND_TIMEOUT),
    recheckIntervalMs: seconds(s.PORTALIS_AGENT_RECHECK_INTERVAL),
    reportRefreshMs: seconds(s.PORTALIS_AGENT_REPORT_INTERVAL),
    pollWaitSeconds: s.PORTALIS_AGENT_POLL_WAIT,
    roots: {
      sysRoot: s.PORTALIS_AGENT_SYS_ROOT,
      devRoot: s.PORTALIS_AGENT_DEV_ROOT,
      etcRoot: s.PORTALIS_AGENT_ETC_ROOT,
      procRoot: s.PORTALIS_AGENT_PROC_ROOT,
    },
  };
}

export function loadDaemonSettings(env: Env): DaemonSettings {
  const s = parseSettings(DAEMON_SETTINGS, env);
  const caFile = s.PORTALIS_CA_FILE;
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
  const metricsPort = s.PORTALIS_AGENT_METRICS_PORT;
  return {
    ...loadAgentSettings(env),
    url: s.PORTALIS_URL,
    token: s.PORTALIS_TOKEN,
    ...(caPem ? { caPem } : {}),
    metrics: metricsPort === undefined ? null : { host: s.PORTALIS_AGENT_METRICS_HOST, port: metricsPort },
  };
}
