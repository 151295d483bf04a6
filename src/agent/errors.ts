/**
 * Failures of the host agent. Each has a stable `code` that travels to the service in the
 * attachment report (`error: {code, message}`), so the codes are part of the wire protocol.
 */
import { CodedError } from '../shared/errors.ts';

export type AgentErrorCode =
  /** The connection info is malformed (names the field). */
  | 'invalid_connection_info'
  /** No portal could be connected. */
  | 'connect_failed'
  /** Controllers are there but the volume's block device did not appear before the deadline. */
  | 'device_not_found'
  /** A namespace at the expected place belongs to another volume (UUID mismatch). */
  | 'wrong_volume'
  /** The device is open, mounted, swapped on or has holders; nothing was done. */
  | 'in_use'
  /** A flush, map removal or disconnect failed; see `errors` of the TeardownError. */
  | 'teardown_failed'
  /** DM multipath was asked for but is not usable on this host. */
  | 'dm_unavailable'
  /** multipathd did not assemble the map before the deadline. */
  | 'dm_map_missing'
  /** A required binary (nvme, multipathd) is not installed. */
  | 'command_unavailable'
  /** The target refused the host's DH-HMAC-CHAP authentication (kernel log: no key, authentication failed). */
  | 'auth_rejected'
  /** A live controller could not be given the new secret; it keeps the generation reported. */
  | 'auth_rotation_failed'
  /** nvme-cli 3.x reads nvme-fabrics.conf, which the agent does not write yet: new connects carry no secret. */
  | 'auth_unsupported'
  /** /etc/nvme/config.json is not a JSON array of host entries: the agent leaves it alone. */
  | 'nvme_config_invalid';

export class AgentError extends CodedError<AgentErrorCode> {}

/** The `{code, message}` a report carries for any thrown value. */
export function errorBody(e: unknown): { code: string; message: string } {
  if (e instanceof AgentError) return { code: e.code, message: e.message };
  // TeardownError (an AggregateError) already names every failed step in its message.
  if (e instanceof AggregateError) return { code: 'teardown_failed', message: e.message };
  return { code: 'internal', message: e instanceof Error ? e.message : String(e) };
}
