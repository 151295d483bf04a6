/**
 * The cluster model's plumbing: a FIFO queue of data-plane calls (a slow data plane such as
 * nvmet must see changes in the order they happened) and cancellable state-transition timers
 * (so that close and reset leave nothing running).
 */
import type { Logger } from '../shared/logger.ts';

export class Sequencer {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly logger: Logger) {}

  /** Queues a data-plane call; resolves true when it succeeded (failures are logged, never thrown). */
  tell(what: string, fn: () => Promise<void>): Promise<boolean> {
    const p = this.queue.then(fn).then(
      () => true,
      (err: unknown) => {
        this.logger.error({ err, call: what }, 'simulator data plane call failed');
        return false;
      },
    );
    this.queue = p;
    return p;
  }

  /**
   * Queues a data-plane call whose failure the caller must see (start): rejects with its
   * error; later calls still run after it.
   */
  run(fn: () => Promise<void>): Promise<void> {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Resolves once every call queued so far (and any queued meanwhile) has finished. */
  async settled(): Promise<void> {
    let seen: Promise<unknown>;
    do {
      seen = this.queue;
      await seen;
    } while (seen !== this.queue);
  }

  /** Runs `fn` after `ms` (0 = next tick) unless cancelled first. */
  later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  cancelTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
