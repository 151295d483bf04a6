/**
 * One strategy per multipath mode, behind one interface: how the volume's device is made and
 * found. The attacher picks it by the spec's mode and never branches on the mode itself.
 * - native: every portal connected, the kernel's head device `nvmeSnI` over all paths (ANA);
 * - single: the first portal that connects, its device; os-brick's walk of `portals` without
 *   multipath (native.ts runs both, told apart by the spec's mode);
 * - dm: every replica connected with nvme_core.multipath=N, multipathd's `/dev/mapper/<map>`.
 */
import type { MultipathMode } from '../../driver/model.ts';
import type { AttachSpec } from '../connection-data.ts';
import type { AgentContext } from '../context.ts';
import type { BlockNamespace } from '../sysfs.ts';
import { attachDm, locateDm } from './dm.ts';
import { attachNative, locateNative } from './native.ts';
import type { Located } from './paths.ts';

export interface MultipathStrategy {
  /** Connects what is missing and waits for the device, with the context's deadline. */
  attach(ctx: AgentContext, spec: AttachSpec, hostNqn: string | null): Promise<Located>;
  /** Where the volume is now and its paths, without changing anything; `devices` are its block devices. */
  locate(ctx: AgentContext, spec: AttachSpec, hostNqn: string | null): Promise<Located & { devices: BlockNamespace[] }>;
}

const native: MultipathStrategy = { attach: attachNative, locate: locateNative };
const single: MultipathStrategy = { attach: attachNative, locate: locateNative };
const dm: MultipathStrategy = { attach: attachDm, locate: locateDm };

const STRATEGIES: Record<MultipathMode, MultipathStrategy> = { native, single, dm };

export function strategyFor(spec: AttachSpec): MultipathStrategy {
  return STRATEGIES[spec.mode];
}
