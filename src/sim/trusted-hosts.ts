/**
 * The simulator's LightOS in-band authentication subset: trusted hosts and their secrets, with
 * the paths and bodies the adapter sends (src/backend/lightos/trusted-hosts.ts, where the wire
 * format and what is not public about it are described). Like LightOS as documented, a trusted
 * host holds one secret pair; setting it again replaces it.
 *
 *   POST /api/v2/trustedHosts                    {hostNqn}                  → 200 {hostNqn}; 409 when it exists
 *   GET  /api/v2/trustedHosts/{hostNqn}                                     → 200 {hostNqn, secretsSet}; 404
 *   PUT  /api/v2/trustedHosts/{hostNqn}/secrets  {hostSecret, targetSecret} → 200 {hostNqn, secretsSet}; 404; 400
 *
 * The secrets are never answered back (an API that returned them would hand them to every
 * holder of a JWT); tests read them in-process through `secretsOf`.
 */
import { Router } from 'express';
import { badRequest, conflict, notFound } from './model.ts';

export interface SimTrustedHostSecrets {
  hostSecret: string;
  targetSecret: string;
}

/** Shape only: a `DHHC-1` string (NVMe Base Specification 2.0, 8.13.5.8). The CRC is the target kernel's to check. */
const DHHC = /^DHHC-1:0[0-3]:[A-Za-z0-9+/]+={0,2}:$/;
const NQN = /^nqn\.[\x21-\x7e]{1,219}$/;

export class SimTrustedHosts {
  readonly #hosts = new Map<string, SimTrustedHostSecrets | null>();

  /** `onSecrets`: the data plane's hook (the nvmet plane writes them into the host's configfs entry). */
  constructor(
    private readonly onSecrets: (hostNqn: string, s: SimTrustedHostSecrets) => Promise<void> = async () => {},
  ) {}

  has(hostNqn: string): boolean {
    return this.#hosts.has(hostNqn);
  }

  /** The pair the simulated target accepts from `hostNqn`, null when none is set (tests only). */
  secretsOf(hostNqn: string): SimTrustedHostSecrets | null {
    return this.#hosts.get(hostNqn) ?? null;
  }

  router(): Router {
    const r = Router();
    r.post('/trustedHosts', (req, res) => {
      const hostNqn = (req.body as { hostNqn?: unknown } | undefined)?.hostNqn;
      if (typeof hostNqn !== 'string' || !NQN.test(hostNqn)) throw badRequest('hostNqn must be an NQN');
      if (this.#hosts.has(hostNqn)) throw conflict(`trusted host ${hostNqn} already exists`);
      this.#hosts.set(hostNqn, null);
      res.json({ hostNqn });
    });
    r.get('/trustedHosts/:nqn', (req, res) => {
      if (!this.#hosts.has(req.params.nqn)) throw notFound(`trusted host ${req.params.nqn} not found`);
      res.json({ hostNqn: req.params.nqn, secretsSet: this.#hosts.get(req.params.nqn) !== null });
    });
    r.put('/trustedHosts/:nqn/secrets', async (req, res) => {
      const nqn = req.params.nqn;
      if (!this.#hosts.has(nqn)) throw notFound(`trusted host ${nqn} not found`);
      const b = (req.body ?? {}) as { hostSecret?: unknown; targetSecret?: unknown };
      for (const field of ['hostSecret', 'targetSecret'] as const) {
        const v = b[field];
        // The message names the field, never its value.
        if (typeof v !== 'string' || !DHHC.test(v)) throw badRequest(`${field} must be a DHHC-1 secret`);
      }
      const secrets = { hostSecret: b.hostSecret as string, targetSecret: b.targetSecret as string };
      this.#hosts.set(nqn, secrets);
      await this.onSecrets(nqn, secrets);
      res.json({ hostNqn: nqn, secretsSet: true });
    });
    return r;
  }
}
