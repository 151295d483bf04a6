/**
 * `portalis agent …`: the host agent's command line. Subcommands run the same Attacher the
 * daemon runs.
 *
 *   portalis agent                              the daemon (PORTALIS_URL, PORTALIS_TOKEN)
 *   portalis agent connector-properties         prints the connector dict as JSON
 *   portalis agent attach --connection-info F   F: a file or '-' (stdin); the `data` dict or the
 *                                               whole connection_info; prints {device_path, …}
 *   portalis agent detach --connection-info F [--force]
 *
 * Exit status: 0 done, 1 the operation failed (a JSON `{error}` on stdout), 2 bad usage or
 * configuration (the message names the option or variable).
 */
import type pino from 'pino';
import { type Logger, createLogger } from '../shared/logger.ts';
import { ConfigError, settingsHelp } from '../shared/env.ts';
import { UsageError } from '../shared/errors.ts';
import {
  AGENT_SETTINGS,
  type AgentSettings,
  DAEMON_SETTINGS,
  loadAgentSettings,
  loadDaemonSettings,
} from './config.ts';
import { parseConnectionData, toAttachSpec } from './connection-data.ts';
import { connectorProperties } from './connector-properties.ts';
import { Attacher, TeardownError } from './attacher.ts';
import { AgentError } from './errors.ts';
import { toWire } from './health.ts';
import { LinuxHost } from './host/linux.ts';
import type { HostPort } from './host/port.ts';
import { AgentDaemon } from './daemon.ts';
import { HttpServiceClient, type ServiceClient } from './service-client.ts';

export interface AgentIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  stdin?: AsyncIterable<string | Buffer>;
  /** Test seams: the host (default LinuxHost with the configured roots), the service client, a stop signal. */
  host?: HostPort;
  service?: ServiceClient;
  signal?: AbortSignal;
}

const USAGE = `usage: portalis agent [connector-properties | attach --connection-info <file|->
                      | detach --connection-info <file|-> [--force]]
  no subcommand: run the daemon (needs PORTALIS_URL and PORTALIS_TOKEN)
settings (environment, default):
${settingsHelp({ ...DAEMON_SETTINGS, ...AGENT_SETTINGS })}
`;

function parseFlags(args: string[]): { connectionInfo?: string; force: boolean } {
  const out: { connectionInfo?: string; force: boolean } = { force: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--force') out.force = true;
    else if (a === '--connection-info') out.connectionInfo = args[++i];
    else if (a.startsWith('--connection-info=')) out.connectionInfo = a.slice('--connection-info='.length);
    else throw new UsageError(`unknown argument ${JSON.stringify(a)}`);
  }
  return out;
}

async function readInput(io: AgentIo, host: HostPort, src: string | undefined): Promise<unknown> {
  if (!src) throw new UsageError('--connection-info <file|-> is required');
  let text: string | null;
  if (src === '-') {
    if (!io.stdin) throw new UsageError('no stdin to read the connection info from');
    text = '';
    for await (const chunk of io.stdin) text += chunk.toString();
  } else {
    text = await host.readFile(src);
    if (text === null) throw new UsageError(`--connection-info: ${src} does not exist`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--connection-info: not JSON (${(e as Error).message})`);
  }
}

function logger(io: AgentIo, env: Record<string, string | undefined>, level: string): Logger {
  return createLogger({
    name: 'portalis-agent',
    level: env.PORTALIS_LOG_LEVEL ?? level,
    destination: { write: (s: string) => void io.stderr.write(s) } as pino.DestinationStream,
  });
}

function attacherFor(host: HostPort, s: AgentSettings, log: Logger): Attacher {
  return new Attacher(host, {
    tunables: s.tunables,
    iopolicy: s.iopolicy,
    deviceTimeoutMs: s.deviceTimeoutMs,
    commandTimeoutMs: s.commandTimeoutMs,
    log,
  });
}

function printJson(io: AgentIo, v: unknown): void {
  io.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

export async function runAgentCli(
  argv: string[],
  env: Record<string, string | undefined>,
  io: AgentIo,
): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    if (sub === 'help' || sub === '--help' || sub === '-h') {
      io.stdout.write(USAGE);
      return 0;
    }
    if (sub === undefined) return await runDaemon(env, io);
    const settings = loadAgentSettings(env);
    const host = io.host ?? new LinuxHost(settings.roots);
    const log = logger(io, env, 'warn');
    switch (sub) {
      case 'connector-properties':
        parseFlags(rest);
        printJson(io, await connectorProperties(host, { enforceMultipath: settings.enforceMultipath }));
        return 0;
      case 'attach': {
        const flags = parseFlags(rest);
        if (flags.force) throw new UsageError('--force is only for detach');
        const spec = toAttachSpec(parseConnectionData(await readInput(io, host, flags.connectionInfo)));
        // One shot: nobody retries a failed attach, so what it connected goes again
        // (docs/DECISIONS.md, "A failed attach: the CLI undoes, the daemon keeps").
        const r = await attacherFor(host, settings, log).connect(spec, { undoOnFailure: true });
        printJson(io, {
          device_path: r.devicePath,
          size_bytes: r.sizeBytes,
          paths: r.paths.map(toWire),
          health: r.health,
          elapsed_ms: Math.round(r.elapsedMs),
          trace: r.trace,
        });
        return 0;
      }
      case 'detach': {
        const flags = parseFlags(rest);
        const spec = toAttachSpec(parseConnectionData(await readInput(io, host, flags.connectionInfo)));
        const r = await attacherFor(host, settings, log).disconnect(spec, { force: flags.force });
        printJson(io, detachJson(r));
        return 0;
      }
      default:
        throw new UsageError(`unknown subcommand ${JSON.stringify(sub)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`portalis agent: ${e.message}\n${USAGE}`);
      return 2;
    }
    if (e instanceof ConfigError) {
      io.stderr.write(`portalis agent: invalid configuration: ${e.message}\n`);
      return 2;
    }
    if (e instanceof TeardownError) {
      printJson(io, { ...detachJson(e.result), error: { code: 'teardown_failed', message: e.message } });
      io.stderr.write(`portalis agent: ${e.message}\n`);
      return 1;
    }
    if (e instanceof AgentError) {
      printJson(io, { error: { code: e.code, message: e.message, details: e.details } });
      io.stderr.write(`portalis agent: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

function detachJson(r: TeardownError['result']) {
  return {
    devices: r.devices,
    flushed: r.flushed,
    removed_maps: r.removedMaps,
    disconnected: r.disconnected,
    kept: r.kept,
    errors: r.errors,
    trace: r.trace,
  };
}

async function runDaemon(env: Record<string, string | undefined>, io: AgentIo): Promise<number> {
  const s = loadDaemonSettings(env);
  const host = io.host ?? new LinuxHost(s.roots);
  const log = logger(io, env, 'info');
  const service = io.service ?? new HttpServiceClient({ url: s.url, token: s.token, ca: s.caPem });
  // prom-client (~50 ms of imports) only when the metrics port is on: the one-shot subcommands
  // and a daemon without metrics start without it.
  const metrics = s.metrics ? new (await import('./metrics.ts')).AgentMetrics() : undefined;
  const metricsServer = s.metrics ? await metrics!.listen(s.metrics.host, s.metrics.port) : undefined;
  if (metricsServer) log.info({ url: metricsServer.url }, 'agent metrics listening');
  const daemon = new AgentDaemon({
    observer: metrics,
    attacher: attacherFor(host, s, log),
    host,
    service,
    connectorProperties: () => connectorProperties(host, { enforceMultipath: s.enforceMultipath }),
    clock: host.clock,
    log,
    recheckIntervalMs: s.recheckIntervalMs,
    reportRefreshMs: s.reportRefreshMs,
    pollWaitSeconds: s.pollWaitSeconds,
  });
  let signal = io.signal;
  let cleanup = () => {};
  if (!signal) {
    const ac = new AbortController();
    const stop = () => ac.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    cleanup = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    };
    signal = ac.signal;
  }
  log.info(
    { url: s.url, recheckIntervalMs: s.recheckIntervalMs, tunables: s.tunables, iopolicy: s.iopolicy ?? '(unchanged)' },
    'portalis agent starting',
  );
  try {
    await daemon.run(signal);
  } finally {
    cleanup();
    await metricsServer?.close();
  }
  log.info('portalis agent stopped');
  return 0;
}
