/**
 * What every agent operation works with: the host port (the only way to the machine), the log,
 * and the connect settings and deadlines. The connector builds one and passes it down.
 */
import type { Logger } from '../shared/logger.ts';
import type { HostPort } from './host/port.ts';
import type { ConnectTunables } from './nvme-cli.ts';
import type { Trace } from './trace.ts';

export interface AgentContext {
  host: HostPort;
  log: Logger;
  tunables: ConnectTunables;
  /** Subsystem iopolicy to set (`numa`, `round-robin`, `queue-depth`); undefined = leave as is. */
  iopolicy?: string;
  /** How long to wait for a block device (or DM map) to appear. */
  deviceTimeoutMs: number;
  /** Per-command timeout (nvme connect to a dead portal can hang in the TCP connect). */
  commandTimeoutMs: number;
  /** The trace of the operation this context runs for (set per call by the Attacher). */
  trace?: Trace;
}

/** Runs `fn` as a step of the operation's trace (just runs it when there is none). */
export function traced<T>(
  ctx: AgentContext,
  step: string,
  fn: () => Promise<T>,
  detail?: (v: T) => string | undefined,
): Promise<T> {
  return ctx.trace ? ctx.trace.span(step, fn, detail) : fn();
}
