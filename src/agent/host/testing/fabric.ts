/**
 * The target side of the fake: storage subsystems, their namespaces and portals, and each
 * namespace's ANA state per portal. It stands in for the storage cluster (or the kernel nvmet
 * target of the kernel scenarios); tests change it to simulate outages, failover and node reboots.
 */
import type { AnaState } from '../../../driver/model.ts';
import { canonicalAddress } from '../../sysfs.ts';

export interface TargetPortal {
  key: string;
  address: string;
  port: number;
  transport: string;
  up: boolean;
}

export interface TargetNamespace {
  nsid: number;
  uuid?: string;
  /** 32 hex digits. */
  nguid?: string;
  sizeBytes: number;
  /** ANA state per portal key; missing = optimized. */
  ana: Map<string, AnaState>;
  /**
   * How a controller learns of it: `connect` (the identify list at connect time),
   * `rescan` (only `nvme ns-rescan`: a target without namespace-attribute AENs).
   */
  discovery: 'connect' | 'rescan';
}

export interface TargetSubsystem {
  nqn: string;
  namespaces: Map<number, TargetNamespace>;
  portals: Set<string>;
  /** Host NQNs allowed; empty = any host. */
  allowedHosts: Set<string>;
  nextCntlid: number;
}

/** Portals are keyed by the canonical address, as the kernel parses traddr into an IP. */
export function portalKey(transport: string, address: string, port: number): string {
  return `${transport}:${canonicalAddress(address)}:${port}`;
}

export class FakeFabric {
  readonly subsystems = new Map<string, TargetSubsystem>();
  readonly portals = new Map<string, TargetPortal>();
  /**
   * DH-HMAC-CHAP as nvmet's `hosts/<hostnqn>/dhchap_key` (docs/KERNEL.md §6): a host listed here
   * must connect with exactly this secret, or the connect is refused (NVME_SC_AUTH_REQUIRED).
   */
  readonly hostKeys = new Map<string, string>();

  addSubsystem(nqn: string, portals: { address: string; port?: number; transport?: string }[]): TargetSubsystem {
    const s: TargetSubsystem = {
      nqn,
      namespaces: new Map(),
      portals: new Set(),
      allowedHosts: new Set(),
      nextCntlid: 1,
    };
    for (const p of portals) {
      const transport = p.transport ?? 'tcp';
      const port = p.port ?? 4420;
      const key = portalKey(transport, p.address, port);
      if (!this.portals.has(key)) this.portals.set(key, { key, address: p.address, port, transport, up: true });
      s.portals.add(key);
    }
    this.subsystems.set(nqn, s);
    return s;
  }

  addNamespace(
    nqn: string,
    ns: {
      nsid: number;
      uuid?: string;
      nguid?: string;
      sizeBytes?: number;
      ana?: Record<string, AnaState>;
      discovery?: 'connect' | 'rescan';
    },
  ): TargetNamespace {
    const s = this.subsystem(nqn);
    const t: TargetNamespace = {
      nsid: ns.nsid,
      uuid: ns.uuid?.toLowerCase(),
      nguid: ns.nguid?.toLowerCase().replace(/-/g, ''),
      sizeBytes: ns.sizeBytes ?? 1 << 30,
      ana: new Map(Object.entries(ns.ana ?? {})),
      discovery: ns.discovery ?? 'connect',
    };
    s.namespaces.set(ns.nsid, t);
    return t;
  }

  subsystem(nqn: string): TargetSubsystem {
    const s = this.subsystems.get(nqn);
    if (!s) throw new Error(`fake fabric: no subsystem ${nqn}`);
    return s;
  }

  portal(address: string, port = 4420, transport = 'tcp'): TargetPortal {
    const p = this.portals.get(portalKey(transport, address, port));
    if (!p) throw new Error(`fake fabric: no portal ${address}:${port}`);
    return p;
  }

  anaOf(nqn: string, nsid: number, key: string): AnaState {
    return this.subsystems.get(nqn)?.namespaces.get(nsid)?.ana.get(key) ?? 'optimized';
  }
}
