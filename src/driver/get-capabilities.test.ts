import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ManualClock } from '../shared/clock.ts';
import { silentLogger } from '../shared/logger.ts';
import {
  CapabilitiesCache,
  DEFAULT_CAPABILITY_SETTINGS,
  DRIVER_VERSION,
  FIXED_CAPABILITIES,
} from './get-capabilities.ts';
import type { BackendCapacity, StorageBackend } from './ports.ts';

/** A backend whose capacity() answers from a script and counts the calls; nothing else is used. */
function scriptedBackend(answers: (() => Promise<BackendCapacity>)[]) {
  let calls = 0;
  const backend = {
    capacity: () => {
      const next = answers[Math.min(calls, answers.length - 1)]!;
      calls++;
      return next();
    },
  } as unknown as StorageBackend;
  return { backend, calls: () => calls };
}

const ok = (totalGb: number | null, freeGb: number | null) => () => Promise.resolve({ totalGb, freeGb });
const failing = () => Promise.reject(new Error('LightOS capacity(): HTTP 500'));

function cache(backend: StorageBackend, clock: ManualClock, refreshMs = 60_000) {
  return new CapabilitiesCache(
    backend,
    { ...DEFAULT_CAPABILITY_SETTINGS, backendName: 'lightos-a', refreshMs, reservedPercentage: 5 },
    clock,
    silentLogger,
  );
}

describe('capabilities (get_volume_stats)', () => {
  it('reports the fixed keys and the backend capacity, rounded down to whole GiB', async () => {
    const { backend } = scriptedBackend([ok(10240.7, 10000.2)]);
    assert.deepEqual(await cache(backend, new ManualClock()).get(), {
      volume_backend_name: 'lightos-a',
      vendor_name: 'Portalis',
      driver_version: DRIVER_VERSION,
      total_capacity_gb: 10240,
      free_capacity_gb: 10000,
      reserved_percentage: 5,
      ...FIXED_CAPABILITIES,
    });
  });

  it('serves cached figures until the refresh interval has passed, then asks the backend again', async () => {
    const clock = new ManualClock();
    const { backend, calls } = scriptedBackend([ok(100, 90), ok(100, 80)]);
    const c = cache(backend, clock);
    assert.equal((await c.get()).free_capacity_gb, 90);
    await clock.advance(59_999);
    assert.equal((await c.get()).free_capacity_gb, 90);
    assert.equal(calls(), 1, 'no backend call within the interval');
    await clock.advance(1);
    assert.equal((await c.get()).free_capacity_gb, 80);
    assert.equal(calls(), 2);
  });

  it("a backend that does not report capacity gives 'unknown'", async () => {
    const { backend } = scriptedBackend([ok(null, null)]);
    const caps = await cache(backend, new ManualClock()).get();
    assert.deepEqual([caps.total_capacity_gb, caps.free_capacity_gb], ['unknown', 'unknown']);
  });

  it('a failed read keeps the last figures and is not retried before the interval', async () => {
    const clock = new ManualClock();
    const { backend, calls } = scriptedBackend([ok(100, 90), failing, ok(100, 70)]);
    const c = cache(backend, clock, 1000);
    assert.equal((await c.get()).free_capacity_gb, 90);
    await clock.advance(1000);
    assert.equal((await c.get()).free_capacity_gb, 90, 'the last known figures after a failure');
    assert.equal(calls(), 2);
    assert.equal((await c.get()).free_capacity_gb, 90);
    assert.equal(calls(), 2, 'a failing backend is not asked on every call');
    await clock.advance(1000);
    assert.equal((await c.get()).free_capacity_gb, 70);
  });

  it("a failure before any figures is 'unknown', not an error", async () => {
    const { backend } = scriptedBackend([failing]);
    const caps = await cache(backend, new ManualClock()).get();
    assert.equal(caps.free_capacity_gb, 'unknown');
  });

  it('concurrent calls share one backend read', async () => {
    let release!: (c: BackendCapacity) => void;
    const { backend, calls } = scriptedBackend([() => new Promise((r) => (release = r))]);
    const c = cache(backend, new ManualClock());
    const all = Promise.all([c.get(), c.get(), c.get()]);
    release({ totalGb: 10, freeGb: 5 });
    assert.deepEqual(
      (await all).map((x) => x.free_capacity_gb),
      [5, 5, 5],
    );
    assert.equal(calls(), 1);
  });

  it('driver_version is the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(DRIVER_VERSION, pkg.version);
  });
});
