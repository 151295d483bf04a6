/**
 * A per-operation trace of the connector's steps (connect, sysfs scans, device wait, rescans,
 * disconnects) with times relative to the operation's start, on the host's clock. The daemon
 * logs it with each attach and detach, `portalis agent attach|detach` prints it, and the
 * kernel benchmark reads it to show where an attach spends its time.
 */
import type { Clock } from '../shared/clock.ts';

export interface TraceStep {
  /** What ran, e.g. `nvme connect 127.0.0.1:4420`, `device wait`, `sysfs scan`. */
  step: string;
  /** Start, in ms since the operation began. */
  atMs: number;
  /** Duration in ms (absent for an instant mark). */
  ms?: number;
  detail?: string;
}

export class Trace {
  readonly steps: TraceStep[] = [];
  private readonly t0: number;

  constructor(private readonly clock: Clock) {
    this.t0 = clock.now();
  }

  /** Milliseconds since the operation began. */
  elapsed(): number {
    return round(this.clock.now() - this.t0);
  }

  mark(step: string, detail?: string): void {
    this.steps.push({ step, atMs: this.elapsed(), ...(detail === undefined ? {} : { detail }) });
  }

  /** Runs `fn` as one traced step; a failure is traced too (and rethrown). */
  async span<T>(step: string, fn: () => Promise<T>, detail?: (v: T) => string | undefined): Promise<T> {
    const at = this.clock.now();
    const entry: TraceStep = { step, atMs: round(at - this.t0) };
    this.steps.push(entry);
    try {
      const v = await fn();
      const d = detail?.(v);
      if (d !== undefined) entry.detail = d;
      return v;
    } catch (e) {
      entry.detail = `failed: ${(e as Error).message}`;
      throw e;
    } finally {
      entry.ms = round(this.clock.now() - at);
    }
  }
}

const round = (ms: number) => Math.round(ms * 10) / 10;
