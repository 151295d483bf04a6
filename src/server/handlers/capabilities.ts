import { capabilitiesCache } from '../../driver/get-capabilities.ts';
import type { DriverDeps } from '../../driver/deps.ts';
import type { Handlers } from '../call.ts';

export function capabilityHandlers(deps: DriverDeps): Handlers<'getCapabilities'> {
  // One cache per app: the capacity figures are shared by every caller for the refresh interval.
  const cache = capabilitiesCache(deps);
  return {
    async getCapabilities() {
      return { status: 200, body: await cache.get() };
    },
  };
}
