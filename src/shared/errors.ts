/**
 * The one base of every failure Portalis reports with a stable code: the service's DriverError
 * (its codes map to HTTP statuses in src/driver/errors.ts) and the agent's AgentError (its codes
 * travel in attachment reports). Both carry `{code, message, details?}` and an optional cause.
 */
export class CodedError<C extends string = string> extends Error {
  readonly code: C;
  readonly details?: Record<string, unknown>;

  constructor(code: C, message: string, opts: { details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = opts.details;
  }
}

/** A command line the program cannot take: it prints its usage and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
