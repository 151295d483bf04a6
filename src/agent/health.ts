/**
 * Path health of one attachment, as reported to the service (docs/ARCHITECTURE.md step 14;
 * the optimal/degraded/failed roll-up of the Proxmox multipath series, patch 06/13).
 */

import type { PathHealth, PathStatus as WirePathStatus } from '../driver/model.ts';

export type Health = PathHealth;

/**
 * Agent-side values of `state` for a path that has no usable controller/namespace pairing;
 * every other value is the controller's sysfs `state` (`live`, `connecting`, `resetting`, …).
 */
export type AgentPathState = 'missing' | 'no-namespace' | 'wrong-volume';

export interface ObservedPath {
  /** `nvme3`; null when no controller exists for the portal. */
  controller: string | null;
  address: string;
  port: number;
  transport: string;
  /** Controller state, or an AgentPathState. */
  state: string;
  /**
   * The per-path namespace's `ana_state`; null when the kernel exposes none (no ANA on the
   * target, or DM mode where nvme_core.multipath=N hides ANA attributes) or no namespace.
   */
  anaState: string | null;
  /** DM mode: multipathd's view of the path (`active`/`failed`), when known. */
  dmState?: string | null;
}

/** The wire shape (`paths[]` of `PUT /v1/agent/attachments/{id}/report`), shared with the service. */
export type PathReport = WirePathStatus;

const USABLE_ANA = new Set(['optimized', 'non-optimized']);

/** An ANA state that carries I/O; null (no ANA) counts as optimized, as the kernel treats it. */
export function anaCarriesIo(anaState: string | null): boolean {
  return anaState === null || USABLE_ANA.has(anaState);
}

/**
 * A path carries I/O when its controller is live and its ANA state is optimized or
 * non-optimized (the kernel's nvme_path_is_optimized/usable). Without ANA the kernel treats
 * the path as optimized, so a null ANA state counts as optimized. In DM mode multipathd must
 * also not have failed the path.
 */
export function isUsable(p: ObservedPath): boolean {
  if (p.state !== 'live') return false;
  if (p.dmState && p.dmState !== 'active') return false;
  return anaCarriesIo(p.anaState);
}

function isOptimized(p: ObservedPath): boolean {
  return isUsable(p) && (p.anaState === null || p.anaState === 'optimized');
}

/** optimal: every path usable and one optimized; degraded: some usable; failed: none. */
export function healthOf(paths: readonly ObservedPath[]): Health {
  const usable = paths.filter(isUsable).length;
  if (usable === 0) return 'failed';
  return usable === paths.length && paths.some(isOptimized) ? 'optimal' : 'degraded';
}

export function toWire(p: ObservedPath): PathReport {
  return {
    controller: p.controller,
    address: p.address,
    port: p.port,
    transport: p.transport,
    state: p.state,
    ana_state: p.anaState,
  };
}
