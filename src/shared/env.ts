/**
 * Settings from the environment, for every program (`serve`, `agent`, `sim`): each program
 * declares its settings as one table (variable → kind, default, bounds, meaning) and reads them
 * all with `parseSettings`. The same table prints `--help` and is the table of the program's
 * guide in docs/ (a test compares them). A value is trimmed; unset or blank takes the default; a
 * value the setting cannot take throws a ConfigError naming the variable. Whole numbers are
 * decimal digits only (as at the HTTP edge): `0x10` or `1e3` in a setting is a mistake, not 16
 * or 1000. Rules between settings (both TLS files or neither…) stay in each program's loader.
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

/** One row of a program's table. */
export interface Setting<T> {
  /** The default as the guide shows it (Markdown: `unset`, `generated`, `1000 (\`sim\`: 100)`). */
  readonly shown: string;
  /** What it sets (Markdown). */
  readonly doc: string;
  /** The value of a set (trimmed, non-empty) variable, or of an unset one (`undefined`). */
  read(raw: string | undefined): T;
}

/** Thrown by a setting's reader; `parseSettings` names the variable. */
class Invalid extends Error {}

/** For a text setting's `parse`: this value cannot be taken, because `message`. */
export function invalid(message: string): never {
  throw new Invalid(message);
}

const quoted = (raw: string) => JSON.stringify(raw);

interface Common {
  doc: string;
  /** The default as the guide shows it, when not the default itself (or `unset`). */
  shown?: string;
}

function setting<T>(o: Common, def: unknown, read: (raw: string) => T, unset: () => T): Setting<T> {
  return {
    shown: o.shown ?? (def === undefined ? 'unset' : String(def)),
    doc: o.doc,
    read: (raw) => (raw === undefined ? unset() : read(raw)),
  };
}

interface IntOptions extends Common {
  def?: number;
  min: number;
  max?: number;
}

/** A whole number in [min, max]. */
export function int(o: IntOptions & { def: number }): Setting<number>;
export function int(o: IntOptions): Setting<number | undefined>;
export function int(o: IntOptions): Setting<number | undefined> {
  const max = o.max ?? Number.MAX_SAFE_INTEGER;
  return setting(
    o,
    o.def,
    (raw) => {
      const n = /^-?\d+$/.test(raw) ? Number(raw) : Number.NaN;
      if (!Number.isSafeInteger(n) || n < o.min || n > max)
        invalid(`must be a whole number between ${o.min} and ${max}, got ${quoted(raw)}`);
      return n;
    },
    () => o.def,
  );
}

/** true/false, yes/no, on/off, 1/0 (any case). */
export function bool(o: Common & { def: boolean }): Setting<boolean> {
  return setting(
    o,
    o.def,
    (raw) => {
      const v = raw.toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      return invalid(`must be true or false, got ${quoted(raw)}`);
    },
    () => o.def,
  );
}

interface ChoiceOptions<T extends string> extends Common {
  def?: T;
  choices: readonly T[];
}

/** One of `choices` (compared in lower case). */
export function choice<T extends string>(o: ChoiceOptions<T> & { def: T }): Setting<T>;
export function choice<T extends string>(o: ChoiceOptions<T>): Setting<T | undefined>;
export function choice<T extends string>(o: ChoiceOptions<T>): Setting<T | undefined> {
  return setting(
    o,
    o.def,
    (raw) => {
      const v = raw.toLowerCase() as T;
      if (!o.choices.includes(v)) invalid(`must be one of ${o.choices.join(', ')}, got ${quoted(raw)}`);
      return v;
    },
    () => o.def,
  );
}

interface TextOptions<T> extends Common {
  def?: string;
  /** Checks and converts a value (the default too); calls `invalid` for one it cannot take. */
  parse?: (value: string) => T;
  /** Set: the variable must be set; this says why. */
  required?: string;
}

/** Free text, checked and converted by `parse`. */
export function text<T = string>(o: TextOptions<T> & ({ def: string } | { required: string })): Setting<T>;
export function text<T = string>(o: TextOptions<T>): Setting<T | undefined>;
export function text<T = string>(o: TextOptions<T>): Setting<T | undefined> {
  const parse = o.parse ?? ((v: string) => v as T);
  return setting({ shown: o.required ? 'required' : undefined, ...o }, o.def, parse, () => {
    if (o.required) return invalid(o.required);
    return o.def === undefined ? undefined : parse(o.def);
  });
}

/** For `text({ parse })`: an http(s) URL, without trailing slashes. */
export function httpUrl(v: string): string {
  try {
    const u = new URL(v);
    if (u.protocol === 'http:' || u.protocol === 'https:') return v.replace(/\/+$/, '');
  } catch {}
  return invalid(`must be an http(s) URL, got ${quoted(v)}`);
}

/** For `text({ parse })`: an address to listen on (an IP address or a host name). */
export const listenAddress = (v: string): string =>
  /^[A-Za-z0-9.:_-]+$/.test(v) ? v : invalid(`not an address: ${quoted(v)}`);

export type SettingsTable = Record<string, Setting<unknown>>;
export type Settings<T extends SettingsTable> = { [K in keyof T]: T[K] extends Setting<infer V> ? V : never };

/** Reads every setting of `table` from `env`; the first bad one throws a ConfigError naming it. */
export function parseSettings<T extends SettingsTable>(table: T, env: Env): Settings<T> {
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(table)) {
    const raw = env[name]?.trim();
    try {
      out[name] = s.read(raw === '' ? undefined : raw);
    } catch (err) {
      if (err instanceof Invalid) throw new ConfigError(name, err.message);
      throw err;
    }
  }
  return out as Settings<T>;
}

/** The table as the program's guide shows it: `| variable | default | meaning |` rows. */
export function settingsMarkdown(table: SettingsTable): string[] {
  return [
    '| variable | default | meaning |',
    '| --- | --- | --- |',
    ...Object.entries(table).map(([name, s]) => `| \`${name}\` | ${s.shown} | ${s.doc} |`),
  ];
}

/** The table for `--help`: one line a variable, the Markdown taken out. */
export function settingsHelp(table: SettingsTable): string {
  const plain = (md: string) =>
    md
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/\\?`/g, '')
      .replace(/(^|\W)_([^_]+)_(?=\W|$)/g, '$1$2');
  const rows = Object.entries(table).map(([name, s]) => [name, plain(s.shown), plain(s.doc)] as const);
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map(([n, d, m]) => `  ${n.padEnd(w0)}  ${d.padEnd(w1)}  ${m}`).join('\n');
}
