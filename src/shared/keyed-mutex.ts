/**
 * An in-process mutex per key: callers with the same key run one after another (FIFO),
 * callers with different keys run in parallel. Keys with no waiters are forgotten.
 * The service queues per-volume work on it before taking the PostgreSQL lock; the agent
 * serialises connect and disconnect per subsystem NQN with it.
 */
export class KeyedMutex {
  private tails = new Map<string, Promise<void>>();

  /** Runs `fn` once every earlier holder of `key` has finished. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.runAll([key], fn);
  }

  /**
   * Runs `fn` holding every key. Keys are taken in sorted order so that two callers with
   * overlapping key sets (DM attachments over several subsystems) cannot deadlock.
   */
  async runAll<T>(keys: readonly string[], fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const releases: (() => void)[] = [];
    try {
      for (const k of sorted) releases.push(await this.acquire(k));
      return await fn();
    } finally {
      for (const r of releases.reverse()) r();
    }
  }

  /** Keys currently held or waited for (for tests and diagnostics). */
  get busyKeys(): string[] {
    return [...this.tails.keys()];
  }

  private async acquire(key: string): Promise<() => void> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    return () => {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}
