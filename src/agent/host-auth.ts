/**
 * The host side of in-band authentication (DH-HMAC-CHAP, issue 20): the daemon hands this the
 * `dhchap` of each long poll (the host's own secrets, `current` and, during a rotation,
 * `previous`), and it
 *   1. keeps /etc/nvme/config.json's host entry in step (nvme-config.ts), so that new connects,
 *      the agent's and os-brick's plain `nvme connect`, authenticate with the current secret;
 *   2. gives every controller of this host's subsystems that holds another secret the current one
 *      through sysfs `dhchap_secret` / `dhchap_ctrl_secret`, which re-authenticates it in place
 *      (Linux 6.1 `nvme_ctrl_dhchap_secret_store`; docs/KERNEL.md §6);
 *   3. tells, per path, the generation its controller holds (`auth_generation`).
 * Order 1 before 2: a controller that drops and reconnects meanwhile must find the new secret in
 * the file. Nothing is remembered across restarts: the file and sysfs say where the host stands.
 * Secrets are compared in constant time, and never logged or put in an error.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../shared/logger.ts';
import type { AttachSpec, PortalSpec, TargetSpec } from './connection-data.ts';
import { readHostId, readHostNqn } from './connector-properties.ts';
import { AgentError } from './errors.ts';
import type { HostPort } from './host/port.ts';
import { NVME_CONFIG_JSON, configFlavour, withHostKeys } from './nvme-config.ts';
import type { AttachmentList, AttachmentReport } from './service-client.ts';
import { servesPortal } from './portals.ts';
import { type Controller, listControllers } from './sysfs.ts';

/** The poll's `dhchap`: undefined from a service without in-band authentication, null for a host without secrets. */
export type Dhchap = AttachmentList['dhchap'];

/** Controllers of an agent-connected attachment refused on a retired secret (owned.ts). */
export interface RefusedPaths {
  refused(id: string, spec: Pick<AttachSpec, 'targets'>): Promise<Set<string>>;
}

/** A subsystem of this host's attachments and its portals: what a TargetSpec says of them. */
export type AuthTarget = Pick<TargetSpec, 'nqn' | 'portals'>;

function sameSecret(a: string, b: string): boolean {
  // Equal-length digests: timingSafeEqual needs them, and the length of a secret is not told either.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

export class HostAuth {
  private secrets: Dhchap = undefined;
  private flavour: 'json' | 'ini' | null | undefined;
  /** Controllers whose last secret write failed, with the errno (never the secret). */
  private readonly failed = new Map<string, string>();

  constructor(
    private readonly host: HostPort,
    private readonly log: Logger,
  ) {}

  /** True once the service has said anything about secrets (a `dhchap` field, null included). */
  get known(): boolean {
    return this.secrets !== undefined;
  }

  /**
   * Takes the poll's secrets and brings the file and the controllers of `targets` to `current`.
   * Safe to repeat (the recheck does, to retry a controller whose write failed): what is already
   * in step is left alone. Returns true when a controller was given a new secret.
   */
  async apply(dhchap: Dhchap, targets: AuthTarget[]): Promise<boolean> {
    this.secrets = dhchap;
    if (!dhchap) return false;
    const hostNqn = await readHostNqn(this.host);
    if (!hostNqn) {
      this.log.error({ code: 'auth_unsupported' }, 'no /etc/nvme/hostnqn: the host secrets cannot be applied');
      return false;
    }
    await this.writeConfig(dhchap, hostNqn, targets);
    return this.reauthenticate(dhchap, hostNqn, targets);
  }

  private async writeConfig(d: NonNullable<Dhchap>, hostNqn: string, targets: AuthTarget[]): Promise<void> {
    if (this.flavour === undefined) {
      const r = await this.host.run('nvme', ['version'], { timeoutMs: 10_000 });
      this.flavour = r.code === 0 ? configFlavour(r.stdout) : null;
    }
    if (this.flavour === 'ini') {
      // nvme-cli 3.0 reads /etc/nvme/nvme-fabrics.conf once it exists and config.json no more
      // (nvme-cli v3.0-rc1 Documentation/nvme-fabrics.conf.txt): keeping config.json would not be heard.
      this.log.error(
        { code: 'auth_unsupported' },
        'nvme-cli 3.x: the agent does not write nvme-fabrics.conf yet; new connects carry no secret',
      );
      return;
    }
    try {
      const hostId = await readHostId(this.host);
      const old = await this.host.readFile(NVME_CONFIG_JSON);
      const text = withHostKeys(old, {
        hostNqn,
        hostId,
        hostSecret: d.current.host_secret,
        ctrlSecret: d.current.ctrl_secret,
        subsystems: targets,
      });
      // The port's writeFile is a temporary file (random name, 'wx', 0600, fsynced) renamed over the
      // old one (linux.ts): a connect reading the file meanwhile sees the old text or the new, never
      // half of it. 0600: secrets.
      if (text !== old) await this.host.writeFile(NVME_CONFIG_JSON, text, { mode: 0o600 });
    } catch (e) {
      const code = e instanceof AgentError ? e.code : ((e as { code?: string }).code ?? 'internal');
      this.log.error({ code, err: e instanceof AgentError ? e.message : code }, `${NVME_CONFIG_JSON} not written`);
    }
  }

  private async reauthenticate(d: NonNullable<Dhchap>, hostNqn: string, targets: AuthTarget[]): Promise<boolean> {
    const nqns = new Set(targets.map((t) => t.nqn));
    // Live controllers only. Linux 6.1 `nvme_ctrl_dhchap_secret_store` queues a re-authentication
    // whatever the controller's state: on a controller waiting to reconnect, its exchange sent on a
    // queue without a socket and the kernel oopsed (NULL pointer dereference in kernel_sendpage from
    // nvme_tcp_try_send, kernel part agent-auth-rotate-all-down, 2026-12-07); on one in its
    // reconnect loop it raced the connect's own authentication and every later reconnect failed
    // (nvmet-auth `auth-rotate-reconnect`). A controller down through a rotation is replaced
    // instead (owned.ts); the service does not rotate while a device has no live path.
    const ctrls = (await listControllers(this.host)).filter(
      (c) => nqns.has(c.nqn) && (c.hostNqn === null || c.hostNqn === hostNqn) && c.state === 'live',
    );
    let moved = false;
    for (const name of [...this.failed.keys()]) if (!ctrls.some((c) => c.name === name)) this.failed.delete(name);
    for (const c of ctrls) {
      try {
        if (await this.writeSecrets(c.name, d)) moved = true;
        this.failed.delete(c.name);
      } catch (e) {
        const errno = (e as { code?: string }).code ?? 'error';
        this.failed.set(c.name, errno);
        this.log.warn(
          { controller: c.name, code: 'auth_rotation_failed', err: errno },
          'controller keeps its previous secret; retried at the next recheck',
        );
      }
    }
    return moved;
  }

  /**
   * Writes `d.current` to each of the controller's secret attributes that holds another one, the
   * host secret first, while its state is still `live`, read again before each write: never to a
   * controller that is not live (see reauthenticate). True when a write was made.
   */
  private async writeSecrets(name: string, d: NonNullable<Dhchap>): Promise<boolean> {
    const dir = `/sys/class/nvme/${name}`;
    let wrote = false;
    for (const [attr, secret] of [
      ['dhchap_secret', d.current.host_secret],
      ['dhchap_ctrl_secret', d.current.ctrl_secret],
    ] as const) {
      const held = (await this.host.readFile(`${dir}/${attr}`))?.trim() ?? 'none';
      // `none`: connected without a secret; 6.1 refuses a write then (EINVAL), only a new connect helps.
      if (held === 'none' || sameSecret(held, secret)) continue;
      if ((await this.host.readFile(`${dir}/state`))?.trim() !== 'live') break;
      await this.host.writeFile(`${dir}/${attr}`, secret);
      wrote = true;
    }
    return wrote;
  }

  /** What owned.ts needs: the refused controllers of an attachment (not at `handed(id)`'s portals). */
  forOwned(handed: (id: string) => PortalSpec[]): RefusedPaths {
    return { refused: (id, spec) => this.refusedControllers(spec.targets, handed(id)) };
  }

  /**
   * Controllers at `targets`' portals (this host's) that are down and hold a secret other than the
   * current one: on a target that keeps one pair per host (LightOS, nvmet) their reconnects are
   * refused until they are replaced (owned.ts). Not a controller at a portal in `handed` (another
   * attachment's `host_portals`: os-brick's to connect, never the agent's), nor one connected
   * without a secret (`none`). Empty without secrets.
   */
  async refusedControllers(targets: AuthTarget[], handed: PortalSpec[] = []): Promise<Set<string>> {
    const out = new Set<string>();
    const d = this.secrets;
    if (!d) return out;
    const hostNqn = await readHostNqn(this.host);
    const at = (c: Controller, portals: PortalSpec[]) => portals.some((p) => servesPortal(c, p, hostNqn));
    for (const c of await listControllers(this.host)) {
      const mine = c.hostNqn === null || c.hostNqn === hostNqn;
      if (!mine || c.state === 'live' || c.state === 'deleting') continue;
      if (!targets.some((t) => t.nqn === c.nqn && at(c, t.portals)) || at(c, handed)) continue;
      const held = (await this.host.readFile(`/sys/class/nvme/${c.name}/dhchap_secret`).catch(() => null))?.trim();
      if (!held || held === 'none') continue;
      if ((await this.generationOf(c.name)) !== d.current.generation) out.add(c.name);
    }
    return out;
  }

  /**
   * The generation `ctrl` holds, null when none of the known ones. Bidirectional (its
   * `dhchap_ctrl_secret` is not `none`): both attributes must hold the same generation, or a
   * controller whose controller-secret write failed after its host secret moved would count as
   * moved and let the rotation retire the old pair the target still presents.
   */
  async generationOf(ctrl: string): Promise<number | null> {
    const d = this.secrets;
    if (!d) return null;
    // A controller that vanished or an unreadable attribute says nothing: null, and the report goes.
    const read = async (attr: string) =>
      (await this.host.readFile(`/sys/class/nvme/${ctrl}/${attr}`).catch(() => null))?.trim();
    const held = await read('dhchap_secret');
    if (!held || held === 'none') return null;
    const heldCtrl = await read('dhchap_ctrl_secret');
    if (!heldCtrl) return null;
    // A rotation moves one secret at a time, so two generations can share a host secret (the
    // controller-secret half): the generation is the one whose two secrets both match.
    for (const g of [d.current, d.previous])
      if (g && sameSecret(held, g.host_secret) && (heldCtrl === 'none' || sameSecret(heldCtrl, g.ctrl_secret)))
        return g.generation;
    return null;
  }

  /**
   * The report with `auth_generation` on each path (only once the service spoke of secrets: an
   * older service's schema would refuse the field), and the failed re-authentication as its error
   * when it has none, so that the rotation's waiting shows why.
   */
  async decorate(r: AttachmentReport): Promise<AttachmentReport> {
    if (!this.known) return r;
    const paths = await Promise.all(
      r.paths.map(async (p) => ({
        ...p,
        auth_generation: p.controller ? await this.generationOf(p.controller) : null,
      })),
    );
    const stuck = r.paths.flatMap((p) => (p.controller && this.failed.has(p.controller) ? [p.controller] : []));
    const error =
      r.error ??
      (stuck.length
        ? {
            code: 'auth_rotation_failed',
            message: `not re-authenticated with the new secret: ${stuck.map((c) => `${c} (${this.failed.get(c)})`).join(', ')}`,
          }
        : null);
    return { ...r, paths, error };
  }
}
