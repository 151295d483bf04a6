import type { Logger } from '../shared/logger.ts';
import type { Clock } from '../shared/clock.ts';
import type { CapabilitySettings, SharedCapacity } from './get-capabilities.ts';
import type {
  ClusterInfo,
  HealthStore,
  HostChangeFeed,
  HostSecretStore,
  HostStore,
  RefreshStore,
  StorageBackend,
  Store,
  VolumeLocks,
} from './ports.ts';

/** What the use cases of `driver/` need; built once by the composition root (`server/`). */
export interface DriverDeps {
  backend: StorageBackend;
  locks: VolumeLocks;
  /** For reads outside any lock. */
  store: Store;
  /** Cached cluster identity (the subsystem NQN changes only when the cluster is rebuilt). */
  clusterInfo: () => Promise<ClusterInfo>;
  logger: Logger;
  defaults: { replicas: number };
  /** `get_volume_stats` settings; unset fields take the defaults of `get-capabilities.ts`. */
  capabilities?: Partial<CapabilitySettings>;
  /** The capacity figures of the fleet's capacity job; unset, each process reads the backend itself. */
  sharedCapacity?: SharedCapacity;
  /** Time for caches and waits in the domain (tests pass a ManualClock); default the system clock. */
  clock?: Clock;
  hosts: HostStore;
  hostChanges: HostChangeFeed;
  health: HealthStore;
  refresh: RefreshStore;
  /** How long the path-health history is kept (default 7 days). */
  eventRetentionMs?: number;
  /** The hosts' DH-HMAC-CHAP secrets; unset when no secrets key is configured. */
  hostSecrets?: HostSecretStore;
  /** `required`: a host gets its secrets when its token is issued (PORTALIS_INBAND_AUTH). Default `off`. */
  inbandAuth?: 'off' | 'required';
}

/** Caches a successful answer; a failure is not cached, so the next call asks again. */
export function cacheOnSuccess<T>(fn: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => {
    if (!value) {
      value = fn();
      value.catch(() => (value = undefined));
    }
    return value;
  };
}
