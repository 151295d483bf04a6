/**
 * Runs Portalis's own programs in the guest through the real CLI (`node <repo>/bin/portalis.mjs
 * sim|serve|agent …`), each with its output in `<run folder>/<name>.log`, and waits for them with
 * deadlines: a program that exits while being waited for fails the wait at once, with the tail
 * of its log.
 *
 * `startStack` starts the simulator (nvmet data plane) and the driver service side by side (the
 * service does not need the simulator until its first request) and waits for both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { runDir, step, waitFor } from './lib.ts';
import { SimClient } from '../../support/sim-client.ts';
import { ServiceApi } from './rest.ts';

/** The repo: stage 2 runs the guest script in it (`PORTALIS_CWD`). */
export const repoRoot = process.cwd();

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class PortalisProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly startedAt = performance.now();
  exit: Exit | null = null;
  readonly exited: Promise<Exit>;

  /**
   * `detached`: the program leads its own process group, so that `kill(signal, true)` reaches
   * its children too (the commands it runs), as systemd's KillMode=control-group would.
   */
  constructor(
    readonly name: string,
    args: string[],
    env: Record<string, string>,
    opts: { detached?: boolean } = {},
  ) {
    this.logFile = path.join(runDir, `${name}.log`);
    const fd = openSync(this.logFile, 'a');
    this.child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'portalis.mjs'), ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', fd, fd],
      detached: opts.detached ?? false,
    });
    closeSync(fd);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.child.on('error', (err) => {
        this.exit = { code: 127, signal: null };
        console.log(`  ${name}: cannot start: ${err.message}`);
        resolve(this.exit);
      });
    });
  }

  /** Sends `signal` to the program, or to its whole process group (needs `detached`). */
  kill(signal: NodeJS.Signals, group = false): void {
    if (this.exit || this.child.pid === undefined) return;
    if (group) process.kill(-this.child.pid, signal);
    else this.child.kill(signal);
  }

  get running(): boolean {
    return this.exit === null;
  }

  tail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Throws (with the log's tail) when the process has exited. */
  checkRunning(): void {
    if (this.exit) {
      throw new Error(
        `${this.name} exited (code ${this.exit.code}, signal ${this.exit.signal}); its log ends:\n${this.tail()}`,
      );
    }
  }

  /** SIGTERM, then SIGKILL after `deadlineMs`; resolves with how it ended and how long it took. */
  async stop(deadlineMs = 20_000): Promise<Exit & { ms: number; killed: boolean }> {
    const t0 = performance.now();
    if (!this.exit) this.child.kill('SIGTERM');
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.child.kill('SIGKILL');
    }, deadlineMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return { ...exit, ms: Math.round(performance.now() - t0), killed };
  }
}

/** Polls GET `url` until it answers 200 while `proc` runs; returns the ms since `proc` started. */
export async function waitHttpReady(proc: PortalisProcess, url: string, deadlineMs: number): Promise<number> {
  let last: unknown = 'no answer yet';
  await waitFor(
    `${proc.name} to answer 200 at ${url}`,
    async () => {
      proc.checkRunning();
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
        last = `${res.status} ${(await res.text()).slice(0, 300)}`;
        return res.status === 200 ? true : undefined;
      } catch (err) {
        last = (err as Error).message;
        return undefined;
      }
    },
    deadlineMs,
    () => last,
  );
  return Math.round(performance.now() - proc.startedAt);
}

export interface StackOptions {
  /** The service's PostgreSQL (the host's, reached at 10.0.2.2). */
  databaseUrl: string;
  simPort?: number;
  servicePort?: number;
  /** Folder of the nvmet plane's backing files (guest tmpfs by default). */
  simDataDir?: string;
  simEnv?: Record<string, string>;
  serviceEnv?: Record<string, string>;
  /** For both to answer; generous, as node starts slowly under emulation. */
  readyDeadlineMs?: number;
}

export interface Stack {
  sim: PortalisProcess;
  service: PortalisProcess;
  simApi: SimClient;
  serviceApi: ServiceApi;
  simDataDir: string;
  /** ms from spawn to answering, each. */
  readyMs: { sim: number; service: number };
  /** Stops the service, then the simulator; returns how each ended. */
  stop(): Promise<Record<string, Exit & { ms: number; killed: boolean }>>;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const simPort = opts.simPort ?? 8090;
  const servicePort = opts.servicePort ?? 8080;
  const simDataDir = opts.simDataDir ?? '/tmp/portalis-sim-nvmet';
  const token = randomBytes(24).toString('base64url');
  const simUrl = `http://127.0.0.1:${simPort}`;
  const serviceUrl = `http://127.0.0.1:${servicePort}`;
  const deadline = opts.readyDeadlineMs ?? 150_000;

  const sim = new PortalisProcess('sim', ['sim'], {
    PORTALIS_SIM_PORT: String(simPort),
    PORTALIS_SIM_DATA_PLANE: 'nvmet',
    PORTALIS_SIM_DATA_DIR: simDataDir,
    ...opts.simEnv,
  });
  const service = new PortalisProcess('service', ['serve'], {
    PORTALIS_PORT: String(servicePort),
    PORTALIS_ADMIN_TOKEN: token,
    DATABASE_URL: opts.databaseUrl,
    PORTALIS_BACKEND: 'sim',
    PORTALIS_SIM_URL: simUrl,
    PORTALIS_DATA_DIR: '/tmp/portalis-service',
    ...opts.serviceEnv,
  });
  const stop = async () => {
    const out: Record<string, Exit & { ms: number; killed: boolean }> = {};
    out.service = await service.stop();
    out.sim = await sim.stop();
    return out;
  };
  try {
    const [simMs, serviceMs] = await step('start portalis sim (nvmet) and portalis serve', () =>
      Promise.all([
        waitHttpReady(sim, `${simUrl}/sim/v1/state`, deadline),
        waitHttpReady(service, `${serviceUrl}/readyz`, deadline),
      ]),
    );
    return {
      sim,
      service,
      simApi: new SimClient(simUrl),
      serviceApi: new ServiceApi(serviceUrl, token),
      simDataDir,
      readyMs: { sim: simMs, service: serviceMs },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
