import pino, { type Logger } from 'pino';

export type { Logger };

const SECRET_FIELDS = [
  'host_secret',
  'ctrl_secret',
  'hostSecret',
  'ctrlSecret',
  'targetSecret',
  'dhchap_key',
  'dhchap_ctrl_key',
  'dhchap_secret',
  'dhchap_ctrl_secret',
  'dhchap',
];

/**
 * Every secret the process handles travels in one of these places; pino replaces them with
 * "[redacted]" so that a token never reaches a log line, whatever logs the object.
 */
const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'token',
  'adminToken',
  'jwt',
  '*.token',
  '*.jwt',
  '*.password',
  // DH-HMAC-CHAP secrets (in-band authentication), under the names the service, the LightOS wire
  // format, the agent's poll and nvme-cli's config.json give them, at the top and two levels down.
  ...SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]),
];

export function createLogger(
  opts: { level?: string; name?: string; destination?: pino.DestinationStream } = {},
): Logger {
  const level = opts.level ?? process.env.PORTALIS_LOG_LEVEL ?? 'info';
  return pino(
    { name: opts.name ?? 'portalis', level, redact: { paths: REDACT, censor: '[redacted]' } },
    opts.destination,
  );
}

/** A logger that drops everything; the default in tests and library code. */
export const silentLogger: Logger = pino({ level: 'silent' });
