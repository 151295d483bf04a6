/**
 * Cinder's `get_volume_stats`: what the backend offers, for the orchestrator's scheduler.
 * Most keys are fixed facts of Portalis on LightOS; only the capacity figures come from the
 * backend, and those are cached for `refreshMs` (Cinder also serves cached `_stats`, refreshed
 * periodically), so the scheduler's frequent polls never wait on the storage cluster.
 *
 * `shared_targets` is true: every volume is a namespace of the cluster's ONE subsystem, so a
 * connect or disconnect on a host touches a target other volumes share (`nvme disconnect -n`
 * is subsystem-wide). Cinder's manager turns true into None for NVMe-oF protocols, which makes
 * os-brick take its host-side lock; `false` would switch that lock off exactly where it matters
 * (Cinder `volume/manager.py` `_driver_shares_targets`; DECISIONS.md "One NVMe subsystem per cluster").
 */
import { type Clock, systemClock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import { VERSION } from '../shared/version.ts';
import type { DriverDeps } from './deps.ts';
import type { BackendCapacity, StorageBackend } from './ports.ts';

/** The fleet job that reads the backend's capacity for every replica (`runFleetJob`, published). */
export const CAPACITY_JOB = 'capacity';

/** The figures the fleet's capacity job last read, and how long ago (ms); null when it has not yet. */
export type SharedCapacity = () => Promise<{ capacity: BackendCapacity; ageMs: number } | null>;

/** This release's version (src/shared/version.ts). */
export const DRIVER_VERSION = VERSION;

export interface CapabilitySettings {
  /** `volume_backend_name` (Cinder's default is the driver's class name). */
  backendName: string;
  /** How long capacity figures are served from cache before the backend is asked again. */
  refreshMs: number;
  /** Cinder's `reserved_percentage`: capacity the scheduler keeps free. */
  reservedPercentage: number;
}

export const DEFAULT_CAPABILITY_SETTINGS: CapabilitySettings = {
  backendName: 'portalis',
  refreshMs: 60_000,
  reservedPercentage: 0,
};

/** GiB, or Cinder's `'unknown'` when the backend does not tell (a tenant JWT cannot read cluster stats). */
export type CapacityFigure = number | 'unknown';

/** The `get_volume_stats` dict; snake_case because Cinder defines these keys. */
export interface Capabilities {
  volume_backend_name: string;
  vendor_name: 'Portalis';
  driver_version: string;
  storage_protocol: 'NVMe-oF';
  total_capacity_gb: CapacityFigure;
  free_capacity_gb: CapacityFigure;
  reserved_percentage: number;
  multiattach: true;
  online_extend_support: true;
  thin_provisioning_support: true;
  thick_provisioning_support: false;
  QoS_support: true;
  compression: [true, false];
  shared_targets: true;
}

interface Figures {
  total: CapacityFigure;
  free: CapacityFigure;
  /** Clock time of the read (or of the failed attempt). */
  at: number;
}

const figure = (gb: number | null): CapacityFigure => (gb === null ? 'unknown' : Math.floor(gb));

/** What every answer says, whatever the backend's figures (test/contract/capabilities.test.ts lists them). */
export const FIXED_CAPABILITIES = {
  storage_protocol: 'NVMe-oF',
  multiattach: true,
  online_extend_support: true,
  thin_provisioning_support: true,
  thick_provisioning_support: false,
  QoS_support: true,
  compression: [true, false],
  shared_targets: true,
} as const satisfies Partial<Capabilities>;

export class CapabilitiesCache {
  private figures: Figures | null = null;
  private inflight: Promise<void> | null = null;

  constructor(
    private readonly backend: StorageBackend,
    private readonly settings: CapabilitySettings,
    private readonly clock: Clock,
    private readonly logger: Logger,
    /** Set: the figures come from the fleet's capacity job; the backend is asked only while none are fresh. */
    private readonly shared?: SharedCapacity,
  ) {}

  async get(): Promise<Capabilities> {
    const f = this.figures;
    if (!f || this.clock.now() - f.at >= this.settings.refreshMs) await this.refresh();
    return this.build(this.figures!);
  }

  /** One read at a time: concurrent callers share it. */
  private refresh(): Promise<void> {
    this.inflight ??= this.read().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async read(): Promise<void> {
    if (this.shared) {
      try {
        const s = await this.shared();
        // Older than two periods: no replica is running the job, so read here as a lone replica would.
        if (s && s.ageMs < 2 * this.settings.refreshMs) {
          const { totalGb, freeGb } = s.capacity;
          this.figures = { total: figure(totalGb), free: figure(freeGb), at: this.clock.now() - s.ageMs };
          return;
        }
      } catch (e) {
        this.logger.warn(
          { err: (e as Error).message },
          "could not read the fleet's capacity figures; asking the backend",
        );
      }
    }
    try {
      const c = await this.backend.capacity();
      this.figures = { total: figure(c.totalGb), free: figure(c.freeGb), at: this.clock.now() };
    } catch (e) {
      // Keep the last figures (or 'unknown') and ask again only after the interval: a backend
      // that is down must not make every scheduler poll wait for the operation deadline.
      this.logger.warn(
        { err: (e as Error).message },
        'could not read backend capacity; serving the last known figures',
      );
      this.figures = {
        total: this.figures?.total ?? 'unknown',
        free: this.figures?.free ?? 'unknown',
        at: this.clock.now(),
      };
    }
  }

  private build(f: Figures): Capabilities {
    return {
      volume_backend_name: this.settings.backendName,
      vendor_name: 'Portalis',
      driver_version: DRIVER_VERSION,
      total_capacity_gb: f.total,
      free_capacity_gb: f.free,
      reserved_percentage: this.settings.reservedPercentage,
      ...FIXED_CAPABILITIES,
    };
  }
}

export function capabilitiesCache(deps: DriverDeps): CapabilitiesCache {
  const settings = { ...DEFAULT_CAPABILITY_SETTINGS, ...deps.capabilities };
  return new CapabilitiesCache(deps.backend, settings, deps.clock ?? systemClock, deps.logger, deps.sharedCapacity);
}
