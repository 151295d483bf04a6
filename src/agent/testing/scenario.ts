/**
 * Test scenarios for the agent: a fake host with a storage cluster (subsystems, portals,
 * namespaces) and connection data for it, as the service would hand out.
 */
import type { ConnectionData, MultipathMode, PortalTuple } from '../../driver/model.ts';
import { ManualClock } from '../../shared/clock.ts';
import { Attacher, type AttacherOptions } from '../attacher.ts';
import { FakeHost, type FakeHostOptions } from '../host/testing/fake-host.ts';

export const NQN = 'nqn.2016-01.com.lightbitslabs:uuid:0f6c1d8e-3f53-4a36-9c35-7a1c1b2c3d4e';
export const NQN_B = 'nqn.2016-01.com.lightbitslabs:uuid:aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
export const VOL = '4c5e2f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6';
export const VOL2 = '5d6e7f80-2c3d-4e5f-9a01-b2c3d4e5f607';
export const ADDRS = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];

export interface Scenario {
  clock: ManualClock;
  host: FakeHost;
  attacher: Attacher;
}

export function scenario(
  opts: FakeHostOptions & { attacher?: AttacherOptions; addrs?: string[]; nqn?: string } = {},
): Scenario {
  const clock = (opts.clock as ManualClock | undefined) ?? new ManualClock();
  const host = new FakeHost({ ...opts, clock });
  host.fabric.addSubsystem(
    opts.nqn ?? NQN,
    (opts.addrs ?? ADDRS).map((address) => ({ address })),
  );
  const attacher = new Attacher(host, { deviceTimeoutMs: 20_000, ...opts.attacher });
  return { clock, host, attacher };
}

export function portals(addrs: string[] = ADDRS): PortalTuple[] {
  return addrs.map((a) => [a, 4420, 'tcp']);
}

export function nativeData(over: Partial<ConnectionData> = {}): ConnectionData {
  return {
    vol_uuid: VOL,
    target_nqn: NQN,
    portals: portals(),
    ns_id: '1',
    host_nqn: '',
    multipath_mode: 'native' as MultipathMode,
    access_mode: 'rw',
    discard: true,
    ...over,
  };
}

export function dmData(over: Partial<ConnectionData> = {}): ConnectionData {
  return {
    vol_uuid: VOL,
    dm_replicas: ADDRS.slice(0, 2).map((a) => ({
      vol_uuid: VOL,
      target_nqn: NQN,
      portals: [[a, 4420, 'tcp'] as PortalTuple],
    })),
    host_nqn: '',
    multipath_mode: 'dm',
    access_mode: 'rw',
    discard: true,
    ...over,
  };
}

/** Runs `p` to completion, advancing the manual clock while it waits. */
export async function drive<T>(clock: ManualClock, p: Promise<T>, stepMs = 100, maxMs = 120_000): Promise<T> {
  let settled = false;
  const tracked = p.finally(() => {
    settled = true;
  });
  tracked.catch(() => {});
  for (let spent = 0; spent <= maxMs; spent += stepMs) {
    await new Promise((r) => setImmediate(r));
    if (settled) break;
    await clock.advance(stepMs);
  }
  return tracked;
}
