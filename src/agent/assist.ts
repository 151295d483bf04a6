/**
 * The agent beside a host that connects its volumes itself (docs/DECISIONS.md, "Who connects an
 * attachment"). On a Nova compute host os-brick connects what Cinder's driver returned and
 * disconnects it again (Nova calls `disconnect_volume` before Cinder's `attachment_delete`). An
 * agent that connected the same portals as well raced os-brick for them: os-brick master treats a
 * portal another process connected first as unknown ("Race condition with some other
 * application") and, recognising none, raises VolumeDeviceNotFound and disconnects every
 * controller of the target in its clean-up (os_brick/initiator/connectors/nvmeof.py). So for a
 * host-connected attachment the agent
 * - never connects a portal the host was handed (`host_portals`), never disconnects the volume;
 * - observes: the host's controllers are the ones at those portals;
 * - adds, once the host's device is there, the portals the service added since (a replica moved,
 *   a node joined or was readdressed): os-brick never learns of them, and the new path joins the
 *   host's head device through native multipath;
 * - after terminate removes only controllers it added and nothing else needs.
 */
import type { PortalTuple } from '../driver/model.ts';
import { type AttachSpec, type PortalSpec, parsePortals } from './connection-data.ts';
import type { Attacher, DisconnectResult, PathsResult } from './attacher.ts';
import { connectPortals, portalKey, servesPortal } from './portals.ts';
import { listControllers } from './sysfs.ts';

/** What a host-connected volume looks like on the host now. */
export interface HostView {
  /** Controllers at the portals the host was handed: the host's own. */
  hostControllers: string[];
  paths: PathsResult;
}

/**
 * `host_portals` as the agent's portal specs (the service stores them as os-brick's tuples).
 * Without them (a service older than the rule, or a row without portals) every portal of the
 * connection counts as the host's: the agent then adds nothing and removes nothing.
 */
export function hostPortalSpecs(spec: AttachSpec, hostPortals: PortalTuple[] | null | undefined): PortalSpec[] {
  const all = spec.targets.flatMap((t) => t.portals);
  if (!hostPortals?.length) return all;
  try {
    return parsePortals(hostPortals, 'host_portals');
  } catch {
    return all;
  }
}

/** The spec with the host's portals in place of the current ones (what the host's controllers serve). */
export function atPortals(spec: AttachSpec, portals: PortalSpec[]): AttachSpec {
  return { ...spec, targets: spec.targets.map((t) => ({ ...t, portals })) };
}

/** The portals of `spec` outside `host`: what the agent may add (and later remove). */
export function addedPortals(spec: AttachSpec, host: PortalSpec[]): PortalSpec[] {
  const own = new Set(host.map(portalKey));
  return spec.targets.flatMap((t) => t.portals).filter((p) => !own.has(portalKey(p)));
}

export class HostAssist {
  constructor(private readonly attacher: Attacher) {}

  /** The host's controllers and the volume's paths, without changing anything. */
  async observe(spec: AttachSpec, hostPortals: PortalSpec[]): Promise<HostView> {
    const hostNqn = await this.attacher.hostNqn(spec);
    const [ctrls, paths] = await Promise.all([
      Promise.all(spec.targets.map((t) => listControllers(this.attacher.host, t.nqn))).then((x) => x.flat()),
      this.attacher.getPaths(spec),
    ]);
    const hostControllers = ctrls
      .filter((c) => hostPortals.some((p) => servesPortal(c, p, hostNqn)))
      .map((c) => c.name);
    return { hostControllers, paths };
  }

  /**
   * Connects the connection's portals outside `hostPortals` that have no controller, under the
   * subsystem's lock (as the agent's own connects). Native multipath only: a single-path host
   * asked for one path, and its device is the host's choice. Returns the portals it connected.
   */
  async addPaths(spec: AttachSpec, hostPortals: PortalSpec[]): Promise<{ added: string[]; failures: string[] }> {
    const none = { added: [], failures: [] };
    if (spec.mode !== 'native') return none;
    const extra = addedPortals(spec, hostPortals);
    if (!extra.length) return none;
    const target = { ...spec.targets[0]!, portals: extra };
    return this.attacher.locks.runAll([target.nqn], async () => {
      const hostNqn = await this.attacher.hostNqn(spec);
      const ctx = this.attacher.ctx;
      const out = await connectPortals(ctx, target, hostNqn, 'all', spec.hostNqn);
      return {
        added: out.states
          .filter((s) => s.controller && !out.preexisting.has(s.controller.name))
          .map((s) => s.controller!.name),
        failures: out.failures.map((f) => `${f.portal}: ${f.message}`),
      };
    });
  }

  /**
   * After terminate: removes the controllers the agent added (at `candidates`, never at a portal
   * the host was handed) that no other attachment of this host needs and nothing uses, refusing
   * while the volume's device is in use unless forced (Attacher.disconnect's rules).
   */
  release(spec: AttachSpec, candidates: PortalSpec[], others: AttachSpec[], force: boolean): Promise<DisconnectResult> {
    return this.attacher.disconnect(spec, { force, otherAttachments: others, onlyAt: candidates });
  }
}
