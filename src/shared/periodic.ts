/**
 * A background job that runs every `periodMs`, measured from the end of its last pass, so passes
 * never overlap and a slow pass (a refresh over thousands of attachments, a large prune) delays
 * the next one instead of piling up behind it. `stop()` cancels the wait and resolves once the
 * pass in flight, if any, has ended: the service closes its database pool only after that.
 */
import { backgroundClock, type Clock } from './clock.ts';

export interface Periodic {
  stop(): Promise<void>;
}

export interface PeriodicOptions {
  /** Run a pass at once, before the first period (the history prune at start-up). */
  atStart?: boolean;
  /** Defaults to a system clock whose timers do not keep the process alive. */
  clock?: Clock;
  /** Told of a pass that threw; the schedule goes on. */
  onError?: (e: unknown) => void;
}

export function every(periodMs: number, pass: () => Promise<unknown>, opts: PeriodicOptions = {}): Periodic {
  const clock = opts.clock ?? backgroundClock;
  const abort = new AbortController();
  const loop = async () => {
    let first = true;
    while (!abort.signal.aborted) {
      if (!(first && opts.atStart)) await clock.sleep(periodMs, abort.signal);
      first = false;
      if (abort.signal.aborted) return;
      try {
        await pass();
      } catch (e) {
        opts.onError?.(e);
      }
    }
  };
  const running = loop();
  return {
    async stop() {
      abort.abort();
      await running;
    },
  };
}
