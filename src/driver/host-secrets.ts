/**
 * Each host's DH-HMAC-CHAP secrets, owned by the service: generated here, sealed at rest by the
 * store, set at the backend (trusted host), handed only to the host's own agent, and rotated.
 *
 * A rotation, first secrets included (generation 0 → 1), is a state machine stored in
 * PostgreSQL (`host_auth`), each step retried from where it stopped:
 *   1. `staged`: the next generation is generated and stored (sealed). Nothing outside knows it.
 *   2. → `at_backend`: the backend is told to accept the new pair, and the old one while the host
 *      moves (where it can hold two); the agent is woken and gets both (`current`, `previous`).
 *      Not while a device of the host has no live path (`host_paths_down`): its controllers could
 *      only come back on the old secret, which a one-pair backend then refuses.
 *   3. → `confirmed`: every live path of the host's live attachments reported that it
 *      authenticated with the new generation (the agent re-authenticates in place).
 *   4. → `idle`: the backend keeps only the new pair; the old generation is retired (its
 *      ciphertexts dropped) and the agent woken to forget it.
 * One secret moves at a time: a rotation of a host that has secrets is two generations, the new
 * host secret with the controller secret in force (N+1), then the new controller secret (N+2),
 * staged by step 4 of N+1 in the same transaction. Linux 6.1 re-authenticates a controller on
 * each sysfs secret write, so an agent moving both at once runs one exchange with one new and
 * one old secret, which fails and drops every path (docs/DECISIONS.md, "Rotation order"). The
 * host's first secrets (0 → 1) are one generation: no controller holds a secret yet.
 * Every step runs under the host's lock in PostgreSQL (`withHostLock`), so replicas take turns.
 * A failure at any step leaves the old secret valid at a backend that holds both pairs; LightOS
 * holds one, and a step 2 PUT whose answer was lost may have replaced it (docs/DECISIONS.md,
 * "Rotation order": the host's new connects are refused until the step is retried). The
 * state names the step and the last error. `advanceRotation` resumes (the rotate call, repeated,
 * or the fleet's periodic pass).
 */
import type { DriverDeps } from './deps.ts';
import { generateDhchapSecret } from './dhchap-key.ts';
import { DriverError, isDriverError } from './errors.ts';
import { hostNotFound } from './guards.ts';
import type { DhchapPair, HostAuthState, HostSecretStore } from './ports.ts';

/**
 * What a rotation waits for: `backend` (step 2 or 4 to be retried), `agent` (step 3, or step 2
 * while a device of the host has no live path), nothing when idle.
 */
export type WaitingFor = 'backend' | 'agent' | null;

export interface RotationStatus {
  hostNqn: string;
  state: HostAuthState | null;
  waitingFor: WaitingFor;
}

/** What the host's agent is handed: the secrets to connect with, and the previous ones while a rotation moves it. */
export interface AgentSecrets {
  current: DhchapPair;
  previous: DhchapPair | null;
}

function secretsOf(deps: DriverDeps): HostSecretStore {
  if (!deps.hostSecrets)
    throw new DriverError(
      'auth_not_configured',
      'host secrets need a secrets key: set PORTALIS_SECRETS_KEY or PORTALIS_SECRETS_KEY_FILE',
    );
  return deps.hostSecrets;
}

async function mustExist(deps: DriverDeps, nqn: string): Promise<void> {
  if (!(await deps.hosts.getHost(nqn))) throw hostNotFound(nqn);
}

/** The code of `lastError` while a step waits for a device of the host to have a live path again. */
const HOST_PATHS_DOWN = 'host_paths_down';

const waitingFor = (s: HostAuthState | null): WaitingFor =>
  !s || s.step === 'idle'
    ? null
    : s.step === 'at_backend' || s.lastError?.startsWith(`staged: ${HOST_PATHS_DOWN}:`)
      ? 'agent'
      : 'backend';

/** The host's secret state (never the secrets). Throws `host_not_found`. */
export async function hostSecretStatus(deps: DriverDeps, nqn: string): Promise<RotationStatus> {
  const store = secretsOf(deps);
  await mustExist(deps, nqn);
  const state = await store.state(nqn);
  return { hostNqn: nqn, state, waitingFor: waitingFor(state) };
}

/** Gives the host its first secrets, or finishes a rotation under way; a host that has them is left alone. */
export async function ensureHostSecrets(deps: DriverDeps, nqn: string): Promise<RotationStatus> {
  const store = secretsOf(deps);
  await mustExist(deps, nqn);
  const state = await store.state(nqn);
  if (state && (state.generation > 0 || state.step !== 'idle')) return advanceRotation(deps, nqn);
  return startRotation(deps, store, nqn);
}

/**
 * Starts a rotation (a new generation) when none is under way, else resumes the one under way
 * (with `fromGeneration`, only when that generation is still the one in force);
 * then takes it as far as it can go now. Throws the backend's error when a backend step fails
 * (the state keeps it too); answers with `waitingFor: 'agent'` while paths still use the old one.
 */
export async function rotateHostSecrets(
  deps: DriverDeps,
  nqn: string,
  opts: { fromGeneration?: number } = {},
): Promise<RotationStatus> {
  const store = secretsOf(deps);
  await mustExist(deps, nqn);
  // A retried call (its answer lost) names the generation it rotates away from: when that one is
  // no longer in force, the rotation it asked for happened, and a second one must not start.
  if (opts.fromGeneration !== undefined) {
    const s = await store.state(nqn);
    if (s && s.generation > opts.fromGeneration) return advanceRotation(deps, nqn);
  }
  return startRotation(deps, store, nqn);
}

/** Begins a rotation (or joins the one under way) and advances it; the callers checked the store and the host. */
async function startRotation(deps: DriverDeps, store: HostSecretStore, nqn: string): Promise<RotationStatus> {
  // The host-secret half when the host has secrets (the controller secret in force kept), else the first pair.
  const begun = await store.begin(nqn, (inForce) => ({
    hostSecret: generateDhchapSecret(),
    ctrlSecret: inForce ? inForce.ctrlSecret : generateDhchapSecret(),
  }));
  if (begun.step === 'staged' && begun.nextGeneration !== null)
    deps.logger.info({ host: nqn, generation: begun.nextGeneration }, 'host secret rotation started');
  return advanceRotation(deps, nqn);
}

/** Takes the host's rotation, if any, as far as it can go now (see the steps above). */
export async function advanceRotation(deps: DriverDeps, nqn: string): Promise<RotationStatus> {
  // Under the host's lock, each step's state is read again before its backend call, and moved
  // before another replica can act: a replica on a stale `staged` read can no longer land the
  // old pair at the backend after another finished and staged the next (LightOS holds one pair).
  return secretsOf(deps).withHostLock(nqn, (store) => advanceLocked(deps, store, nqn));
}

async function advanceLocked(deps: DriverDeps, store: HostSecretStore, nqn: string): Promise<RotationStatus> {
  // Each pass moves one step or stops; four steps at most, the bound guards against a store
  // that reports a step it cannot leave.
  for (let i = 0; i < 8; i++) {
    const s = await store.state(nqn);
    if (!s || s.step === 'idle' || s.nextGeneration === null) return { hostNqn: nqn, state: s, waitingFor: null };
    const next = s.nextGeneration;
    try {
      if (s.step === 'staged') {
        const cutOff = s.generation > 0 ? await store.withoutLivePath(nqn) : null;
        if (cutOff) {
          // Its controllers hold the secret in force and reconnect with it; once the backend holds
          // only the new pair they are refused for ever, and with no live path the agent can
          // neither re-authenticate them (6.1 writes only to live controllers) nor replace them.
          await store.recordError(
            nqn,
            `staged: ${HOST_PATHS_DOWN}: attachment ${cutOff} has no live path; waiting for one`,
          );
          return { hostNqn: nqn, state: await store.state(nqn), waitingFor: 'agent' };
        }
        await deps.backend.setTrustedHost(nqn, await accepted(store, nqn, next, s.generation));
        await store.advance(nqn, next, 'staged', 'at_backend');
        await store.notifyAgent(nqn);
      } else if (s.step === 'at_backend') {
        if (!(await store.pathsOnGeneration(nqn, next))) return { hostNqn: nqn, state: s, waitingFor: 'agent' };
        await store.advance(nqn, next, 'at_backend', 'confirmed');
      } else {
        const then = await controllerHalf(store, nqn, next, s.generation);
        // Generation 0 → 1 set the new pair alone in step 2: there is nothing to retire there. A
        // host-secret half leaves retiring to its controller half's step 2, whose PUT replaces both.
        if (s.generation > 0 && !then) await deps.backend.setTrustedHost(nqn, await accepted(store, nqn, next, 0));
        if (await store.finish(nqn, next, then)) {
          await store.notifyAgent(nqn);
          deps.logger.info(
            { host: nqn, generation: next },
            then ? 'host secret moved; the controller secret follows' : 'host secret rotation finished',
          );
        }
      }
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      // The step's own error is the one to answer; failing to record it (the database down too) must not hide it.
      await store
        .recordError(nqn, `${s.step}: ${typeof code === 'string' ? `${code}: ` : ''}${(e as Error).message}`)
        .catch(() => undefined);
      deps.logger.warn({ host: nqn, step: s.step, code }, 'host secret rotation step failed; it is retried');
      throw e;
    }
  }
  const s = await store.state(nqn);
  return { hostNqn: nqn, state: s, waitingFor: waitingFor(s) };
}

/**
 * The controller-secret half to stage after generation `next`, when `next` is a host-secret half
 * (a new host secret beside the controller secret in force); undefined otherwise (a first pair, a
 * controller-secret half, or a rotation of both begun by an earlier release).
 */
async function controllerHalf(
  store: HostSecretStore,
  nqn: string,
  next: number,
  inForce: number,
): Promise<Omit<DhchapPair, 'generation'> | undefined> {
  if (inForce === 0) return undefined;
  const [n, cur] = await Promise.all([store.pair(nqn, next), store.pair(nqn, inForce)]);
  if (!n || !cur || n.ctrlSecret !== cur.ctrlSecret || n.hostSecret === cur.hostSecret) return undefined;
  return { hostSecret: n.hostSecret, ctrlSecret: generateDhchapSecret() };
}

/** The pairs the backend must accept: the new one, and the one in force while the host moves (none for 0). */
async function accepted(store: HostSecretStore, nqn: string, next: number, inForce: number): Promise<DhchapPair[]> {
  const pairs = await Promise.all([store.pair(nqn, next), inForce > 0 ? store.pair(nqn, inForce) : null]);
  if (!pairs[0]) throw new DriverError('internal', `host ${nqn}: secret generation ${next} is missing`);
  return pairs.filter((p): p is DhchapPair => p !== null);
}

/**
 * The secrets the host's agent must hold now (HostSecretStore.delivery), null when it has none;
 * undefined (the poll leaves the field out) without a secrets key, and when they cannot be opened
 * here (`secrets_unreadable`: this replica's secrets key is not the one that sealed them, or a row
 * is damaged). The poll then goes without them, so the host still gets its attachments and keeps
 * the secrets it holds; the log names the host and the code, never a value.
 */
export async function secretsForAgent(deps: DriverDeps, nqn: string): Promise<AgentSecrets | null | undefined> {
  if (!deps.hostSecrets) return undefined;
  try {
    return await deps.hostSecrets.delivery(nqn);
  } catch (e) {
    if (!isDriverError(e, 'secrets_unreadable')) throw e;
    deps.logger.error({ host: nqn, code: e.code }, 'host secrets do not open; the poll answers without them');
    return undefined;
  }
}

/** The fleet's periodic pass: every rotation under way moves on (a failing one keeps its error and waits). */
export async function advanceAllRotations(deps: DriverDeps): Promise<{ advanced: number; failed: number }> {
  if (!deps.hostSecrets) return { advanced: 0, failed: 0 };
  let advanced = 0;
  let failed = 0;
  for (const nqn of await deps.hostSecrets.unfinished()) {
    try {
      const r = await advanceRotation(deps, nqn);
      if (r.waitingFor === null) advanced++;
    } catch {
      failed++;
    }
  }
  return { advanced, failed };
}
