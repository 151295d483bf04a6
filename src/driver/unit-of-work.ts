/**
 * What an operation holding a volume's lock may use. A lock holder that read through the shared
 * pool (`DriverDeps.store`, the read pool; `hosts` and `health`, the agents' and the read pools)
 * would wait for a second pooled connection while holding one, and a few concurrent holders
 * would starve the pool: the work under the lock gets this handle, which has no such store.
 *
 * The locked part of each use case is a function of `(work: VolumeWork, …)` declared at module
 * level, where no `DriverDeps` is in scope; the use case passes only its request on
 * (`unit-of-work.test.ts` checks that no `DriverDeps` reaches code under the lock).
 */
import type { Logger } from '../shared/logger.ts';
import type { DriverDeps } from './deps.ts';
import type { ClusterInfo, StorageBackend, Store } from './ports.ts';

export interface VolumeWork {
  /** The records, read and written on the lock's own connection. */
  readonly store: Store;
  readonly backend: StorageBackend;
  /** Cached cluster identity (a backend call at most, never the database). */
  readonly clusterInfo: () => Promise<ClusterInfo>;
  readonly logger: Logger;
}

/** Runs `work` holding the volume's lock, with the lock's store and nothing of the pools. */
export function underVolumeLock<T>(
  deps: Pick<DriverDeps, 'locks' | 'backend' | 'clusterInfo' | 'logger'>,
  volumeId: string,
  work: (uow: VolumeWork) => Promise<T>,
): Promise<T> {
  const { backend, clusterInfo, logger } = deps;
  return deps.locks.withVolumeLock(volumeId, (store) => work({ store, backend, clusterInfo, logger }));
}
