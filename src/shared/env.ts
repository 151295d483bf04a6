/**
 * Settings from the environment, for every program (`serve`, `agent`, `sim`): each reader takes
 * the variable's name and its default (used when the variable is unset or empty) and throws a
 * ConfigError naming the variable for a value it cannot take. Whole numbers are decimal digits
 * only (as at the HTTP edge): `0x10` or `1e3` in a setting is a mistake, not 16 or 1000.
 */

/** An invalid setting: start-up stops with one line that names the variable. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

export type Env = Record<string, string | undefined>;

const set = (raw: string | undefined): raw is string => raw !== undefined && raw.trim() !== '';

/** A whole number in [min, max]; `def` when unset (undefined: none). */
export function intVar(env: Env, name: string, def: number, min: number, max?: number): number;
export function intVar(env: Env, name: string, def: undefined, min: number, max?: number): number | undefined;
export function intVar(
  env: Env,
  name: string,
  def: number | undefined,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const raw = env[name];
  if (!set(raw)) return def;
  const n = /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new ConfigError(name, `must be a whole number between ${min} and ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

export function boolVar(env: Env, name: string, def: boolean): boolean {
  const raw = env[name];
  if (!set(raw)) return def;
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(name, `must be true or false, got ${JSON.stringify(raw)}`);
}

/** One of `choices` (compared trimmed and in lower case). */
export function choiceVar<T extends string>(env: Env, name: string, def: T, choices: readonly T[]): T;
export function choiceVar<T extends string>(
  env: Env,
  name: string,
  def: undefined,
  choices: readonly T[],
): T | undefined;
export function choiceVar<T extends string>(
  env: Env,
  name: string,
  def: T | undefined,
  choices: readonly T[],
): T | undefined {
  const raw = env[name];
  if (!set(raw)) return def;
  const v = raw.trim().toLowerCase() as T;
  if (!choices.includes(v))
    throw new ConfigError(name, `must be one of ${choices.join(', ')}, got ${JSON.stringify(raw)}`);
  return v;
}
