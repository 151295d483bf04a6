/**
 * os-brick in the guest, driven the way Nova drives it: one long-lived Debian `/usr/bin/python3`
 * running `osbrick.py` (os-brick imported once, privsep in-process), one JSON request per line.
 * See osbrick.py for the exact calls. Requests are sent one at a time, as nova-compute's
 * connect/disconnect lock serialises them on a host anyway.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { runDir, waitFor } from './lib.ts';
import type { Connector, NvmeofConnectionData } from './rest.ts';
import { repoRoot } from './stack.ts';

export const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(repoRoot, 'test', 'kernel', 'guest', 'osbrick.py');

/** A log record os-brick (or oslo) emitted at WARNING or above during one call. */
export interface BrickWarning {
  level: string;
  logger: string;
  message: string;
}

export interface BrickAnswer<T> {
  ok: boolean;
  result?: T;
  error?: string;
  message?: string;
  traceback?: string;
  /** The call's duration inside Python (what Nova would wait), ms. */
  ms: number;
  warnings: BrickWarning[];
  /** The commands os-brick ran during the call (`nvme connect -a …`), as oslo logged them. */
  commands: string[];
}

export class OsBrick {
  readonly logFile = path.join(runDir, 'osbrick.log');
  private readonly answers: string[] = [];
  private exit: { code: number | null; signal: string | null } | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly startedAt = performance.now();

  private constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (l) => this.answers.push(l));
    child.on('exit', (code, signal) => {
      this.exit = { code, signal };
    });
  }

  /** Starts the Python process; `ready()` waits for it. */
  static spawn(): OsBrick {
    const stderr = openSync(path.join(runDir, 'osbrick.stderr.log'), 'a');
    const child = spawn(
      PYTHON,
      [SCRIPT, '--log', path.join(runDir, 'osbrick.log'), '--lock-path', '/tmp/osbrick-locks'],
      { stdio: ['pipe', 'pipe', stderr] },
    );
    return new OsBrick(child);
  }

  /** Waits for the script's `ready` line (its imports are slow under emulation); ms since spawn. */
  async ready(deadlineMs = 180_000): Promise<number> {
    await this.nextAnswer('os-brick to start (python imports)', deadlineMs);
    return Math.round(performance.now() - this.startedAt);
  }

  private async nextAnswer(what: string, deadlineMs: number): Promise<string> {
    return waitFor(
      what,
      () => {
        if (this.answers.length) return this.answers.shift();
        if (this.exit) throw new Error(`osbrick.py exited (${JSON.stringify(this.exit)}): ${this.stderrTail()}`);
        return undefined;
      },
      deadlineMs,
    );
  }

  /** One request; its answer (a failure of os-brick is an answer with `ok: false`, not a throw). */
  call<T>(req: Record<string, unknown>, deadlineMs = 180_000): Promise<BrickAnswer<T>> {
    const run = async () => {
      this.child.stdin!.write(`${JSON.stringify(req)}\n`);
      return JSON.parse(await this.nextAnswer(`os-brick ${String(req.op)}`, deadlineMs)) as BrickAnswer<T>;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** os-brick's version string (`6.1.0` on Debian 12). */
  async version(): Promise<string> {
    const a = await this.call<{ os_brick: string }>({ op: 'ping' });
    return must(a, 'ping').os_brick;
  }

  /** Nova's get_volume_connector: get_connector_properties(…, multipath, enforce_multipath=True, host). */
  connector(ip: string, host: string): Promise<BrickAnswer<Connector>> {
    return this.call<Connector>({ op: 'connector', ip, host, multipath: true });
  }

  /** Nova's connect: NVMeOFConnector(use_multipath=True, device_scan_attempts=5).connect_volume(data). */
  connect(data: NvmeofConnectionData): Promise<BrickAnswer<{ type: string; path: string }>> {
    return this.call({ op: 'connect', data, use_multipath: true, device_scan_attempts: 5 });
  }

  /** Nova's disconnect: disconnect_volume(data with device_path, None). */
  disconnect(data: NvmeofConnectionData, devicePath: string): Promise<BrickAnswer<null>> {
    return this.call({ op: 'disconnect', data: { ...data, device_path: devicePath }, use_multipath: true });
  }

  stderrTail(lines = 20): string {
    try {
      return readFileSync(path.join(runDir, 'osbrick.stderr.log'), 'utf8')
        .trimEnd()
        .split('\n')
        .slice(-lines)
        .join('\n');
    } catch {
      return '(no stderr)';
    }
  }

  /** The lines of os-brick's DEBUG log (`HH:MM:SS.mmm pid LEVEL logger message`). */
  logLines(): string[] {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n');
    } catch {
      return [];
    }
  }

  /** The last lines of os-brick's DEBUG log (for a failing part). */
  tail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** SIGKILL (a setup that failed: nothing may keep the guest's node process alive). */
  kill(): void {
    if (!this.exit) this.child.kill('SIGKILL');
  }

  /** Closes stdin (the script ends) and waits for the exit. */
  async stop(): Promise<{ code: number | null; signal: string | null }> {
    this.child.stdin!.end();
    return waitFor('osbrick.py to exit', () => this.exit ?? undefined, 20_000);
  }
}

/** The result of a successful call, or a throw naming os-brick's exception and its log. */
export function must<T>(a: BrickAnswer<T>, what: string): T {
  if (!a.ok) {
    throw new Error(
      `os-brick ${what} failed: ${a.error}: ${a.message}\n${a.traceback ?? ''}` +
        `warnings: ${JSON.stringify(a.warnings)}\ncommands: ${JSON.stringify(a.commands)}`,
    );
  }
  return a.result as T;
}
