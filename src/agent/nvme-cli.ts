/**
 * nvme-cli: the commands the agent runs, the ONE place their results are classified, and the
 * one parser that folds nvme-cli 1.x and 2.x JSON into a single shape.
 * Facts: docs/KERNEL.md §2; os-brick `_connect_target` classifies the same way.
 */
import type { PortalSpec } from './connection-data.ts';
import type { RunResult } from './host/port.ts';

export interface ConnectTunables {
  /** Seconds; -1 = retry forever (I/O queues meanwhile: see fastIoFailTmo). */
  ctrlLossTmo: number;
  reconnectDelay: number;
  keepAliveTmo: number;
  /** Seconds after which queued I/O fails while reconnecting; unset = kernel default (off). */
  fastIoFailTmo?: number;
  nrIoQueues?: number;
}

/** The Lightbits PVE plugin's settings (`-k 30 -c 10 -l -1`): survive long outages, never drop the device. */
export const DEFAULT_TUNABLES: ConnectTunables = { ctrlLossTmo: -1, reconnectDelay: 10, keepAliveTmo: 30 };

/**
 * `nvme connect` for one portal. Long options only: short letters differ between 1.x and 2.x
 * (`-f` is fast_io_fail_tmo in 1.x and host-iface in 2.x). `--fast_io_fail_tmo` really is spelt
 * with underscores in both (nvme-cli fabrics.c), unlike its dashed neighbours.
 * No `-o json`: nvme-cli before 1.16 rejects it, and the controller is found in sysfs anyway.
 * Never `-D`: a duplicate controller to the same portal is what "idempotent" must avoid.
 */
export function connectArgs(nqn: string, portal: PortalSpec, t: ConnectTunables, hostNqn?: string): string[] {
  const args = ['connect', '-t', portal.transport, '-a', portal.address, '-s', String(portal.port), '-n', nqn];
  args.push(
    `--keep-alive-tmo=${t.keepAliveTmo}`,
    `--reconnect-delay=${t.reconnectDelay}`,
    `--ctrl-loss-tmo=${t.ctrlLossTmo}`,
  );
  if (t.fastIoFailTmo !== undefined) args.push(`--fast_io_fail_tmo=${t.fastIoFailTmo}`);
  if (t.nrIoQueues !== undefined) args.push(`--nr-io-queues=${t.nrIoQueues}`);
  if (hostNqn) args.push('-q', hostNqn);
  return args;
}

/**
 * Per controller, never `-n <nqn>`: that removes every controller of the subsystem for every
 * host NQN, i.e. every other volume of a shared subsystem too (nvme-disconnect(1); docs/DECISIONS.md).
 */
export function disconnectArgs(ctrl: string): string[] {
  return ['disconnect', '-d', ctrl];
}

export function rescanArgs(ctrl: string): string[] {
  return ['ns-rescan', `/dev/${ctrl}`];
}

export type NvmeOutcome =
  | { kind: 'ok' }
  | { kind: 'already-connected' }
  | { kind: 'not-installed'; message: string }
  | { kind: 'timeout'; message: string }
  | { kind: 'failed'; message: string };

const EALREADY = 114;

/**
 * Classifies any nvme-cli result, exit code first and text second (os-brick's order).
 * "Already connected" has had four forms: exit 70 or EALREADY (114, 1.x, message suppressed);
 * 2.0's "Operation already in progress" with exit 1; 2.4+'s "already connected" with exit 1,
 * which os-brick also finds on stdout. A caller still re-reads sysfs afterwards: the text only
 * says nvme-cli believed a controller existed.
 * nvme-cli exits 0 when `disconnect -d` fails and only prints it, so exit 0 with a
 * "Failed to" line is a failure.
 */
export function classify(r: RunResult): NvmeOutcome {
  const text = `${r.stdout}\n${r.stderr}`;
  const message = firstLine(r.stderr) || firstLine(r.stdout) || `exit status ${r.code}`;
  if (r.code === 127) return { kind: 'not-installed', message };
  if (r.code === 124) return { kind: 'timeout', message };
  if (r.code === 70 || r.code === EALREADY) return { kind: 'already-connected' };
  if (/already connected|operation already in progress/i.test(text)) return { kind: 'already-connected' };
  if (r.code === 0) return /failed to /i.test(r.stderr) ? { kind: 'failed', message } : { kind: 'ok' };
  return { kind: 'failed', message };
}

function firstLine(s: string): string {
  return (
    s
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? ''
  );
}

/** `{"device":"nvme3"}` (-o json), `device: nvme3` (≤2.6) or `connecting to device: nvme3` (2.7+). */
export function parseConnectedDevice(stdout: string): string | null {
  return /"device"\s*:\s*"(nvme\d+)"/.exec(stdout)?.[1] ?? /device:\s*(nvme\d+)/.exec(stdout)?.[1] ?? null;
}

export interface ListedPath {
  name: string;
  transport: string;
  address: string;
  state: string | null;
  anaState: string | null;
}

export interface ListedSubsystem {
  name: string;
  nqn: string;
  hostNqn: string | null;
  paths: ListedPath[];
}

/**
 * `nvme list-subsys -o json` in one shape. 1.x: root object `{Subsystems: [...]}`; 2.x: root
 * array of hosts `[{HostNQN, HostID, Subsystems: [...]}]`. Either way `Paths` lists the first
 * namespace's paths (or the controllers), `ANAState` only when a namespace was named (2.1+),
 * and 2.16 skips subsystems without controllers. So the agent reads sysfs for decisions and
 * uses this only for diagnostics.
 */
export function normalizeListSubsys(json: unknown): ListedSubsystem[] {
  const hosts: { HostNQN?: unknown; Subsystems?: unknown }[] = Array.isArray(json)
    ? json
    : typeof json === 'object' && json !== null
      ? [json as { Subsystems?: unknown }]
      : [];
  const out: ListedSubsystem[] = [];
  for (const h of hosts) {
    for (const s of Array.isArray(h.Subsystems) ? h.Subsystems : []) {
      const paths = Array.isArray(s?.Paths) ? s.Paths : [];
      out.push({
        name: String(s?.Name ?? ''),
        nqn: String(s?.NQN ?? ''),
        hostNqn: typeof h.HostNQN === 'string' ? h.HostNQN : null,
        paths: paths.map((p: Record<string, unknown>) => ({
          name: String(p.Name ?? ''),
          transport: String(p.Transport ?? ''),
          address: String(p.Address ?? ''),
          state: typeof p.State === 'string' ? p.State : null,
          anaState: typeof p.ANAState === 'string' ? p.ANAState : null,
        })),
      });
    }
  }
  return out;
}
