/**
 * The port of the hosts' DH-HMAC-CHAP secrets (in-band authentication), beside `ports.ts`; the
 * adapter is `src/store/secret-store.ts`, the use cases `host-secrets.ts`.
 */

/** One generation of a host's DH-HMAC-CHAP secrets, in the `DHHC-1` representation (dhchap-key.ts). */
export interface DhchapPair {
  generation: number;
  /** What the host proves. */
  hostSecret: string;
  /** What the target proves back (bidirectional authentication). */
  ctrlSecret: string;
}

/**
 * Where a host's secret rotation stands: `idle` (generation `generation` in force, nothing under
 * way), `staged` (the next generation is generated and stored, not yet at the backend),
 * `at_backend` (the backend holds it; delivered to the agent; waiting for every live path to
 * authenticate with it), `confirmed` (they all did; the previous generation is still to retire).
 */
export type RotationStep = 'idle' | 'staged' | 'at_backend' | 'confirmed';

export interface HostAuthState {
  hostNqn: string;
  /** The generation in force; 0 before the host's first secrets. */
  generation: number;
  nextGeneration: number | null;
  step: RotationStep;
  /** The last failure of a step (the step is retried from where it stopped). */
  lastError: string | null;
  updatedAt: Date;
}

/**
 * The hosts' DH-HMAC-CHAP secrets, encrypted at rest, and the state of their rotation. Every
 * transition is a compare-and-set on the step, so that concurrent or repeated rotations of one
 * host move it forward once.
 */
export interface HostSecretStore {
  /** null when the host never had secrets. */
  state(nqn: string): Promise<HostAuthState | null>;
  /**
   * Starts a rotation when the host is `idle`: stores `make(pair in force)` (null before the
   * first secrets) encrypted as generation in force + 1; when one is under way, leaves it and
   * does not call `make`. Returns the state either way. The host must exist.
   */
  begin(nqn: string, make: (inForce: DhchapPair | null) => Omit<DhchapPair, 'generation'>): Promise<HostAuthState>;
  /** Moves `from` → `to` for generation `next`; false when another call moved it first. Clears the last error. */
  advance(nqn: string, next: number, from: RotationStep, to: RotationStep): Promise<boolean>;
  /** Records why a step failed; the state stays where it was. */
  recordError(nqn: string, message: string): Promise<void>;
  /**
   * `confirmed` → `idle`: `next` in force, every older generation retired (its ciphertexts
   * dropped); with `then`, in the same transaction, `then` staged as generation `next + 1` (the
   * controller-secret half of a rotation follows its host-secret half).
   */
  finish(nqn: string, next: number, then?: Omit<DhchapPair, 'generation'>): Promise<boolean>;
  /**
   * What the host's agent must hold now, read in one round trip (it rides on every long-poll
   * answer): null when the host has no secrets. While a new generation is only `staged`, the
   * backend does not know it: `current` is the one in force. From `at_backend` on, `current` is
   * the new one and `previous` the one in force (for paths not yet moved); after retirement,
   * `current` alone.
   */
  delivery(nqn: string): Promise<{ current: DhchapPair; previous: DhchapPair | null } | null>;
  /** The decrypted pair of one generation; null when absent or retired. */

  pair(nqn: string, generation: number): Promise<DhchapPair | null>;
  /**
   * True when every live path of the host's live attachments, as its agent last reported them,
   * authenticated with `generation` or a later one (true too when there are none).
   */
  pathsOnGeneration(nqn: string, generation: number): Promise<boolean>;
  /**
   * A live attachment of the host whose agent reports paths and none of them live (the host cut
   * off from its storage), null when there is none.
   */
  withoutLivePath(nqn: string): Promise<string | null>;
  /** Wakes the host's agent (its long poll answers with the secrets it must now use). */
  notifyAgent(nqn: string): Promise<void>;
  /**
   * Runs `fn` holding the host's rotation lock (across every replica), with a store whose calls
   * run under it: a step reads the state, calls the backend and moves the state while holding it.
   */
  withHostLock<T>(nqn: string, fn: (store: HostSecretStore) => Promise<T>): Promise<T>;
  /** Hosts whose rotation is under way. */
  unfinished(): Promise<string[]>;
}
