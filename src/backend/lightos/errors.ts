/**
 * Every way a LightOS call can fail, and the ONE function that turns a failure into the
 * DriverError the port promises. Messages always start `LightOS <operation>(<subject>):`.
 */
import { DriverError, type ErrorCode } from '../../driver/errors.ts';

/** One logical port operation: its name, what it is about, and its deadline on the clock. */
export interface Op {
  name: string;
  /** e.g. `volume 4c5e…`; omitted for cluster-wide calls. */
  subject?: string;
  /** Clock time after which waits and retries stop. */
  deadline: number;
}

/** One attempt that got no HTTP answer. */
export interface TransportAttempt {
  endpoint: string;
  reason: string;
  timedOut: boolean;
}

export type LightosFailure =
  /** No endpoint gave any HTTP answer (refused, reset, DNS, TLS…). */
  | { kind: 'unreachable'; attempts: TransportAttempt[] }
  /** No HTTP answer, and at least one attempt ran into the per-request timeout. */
  | { kind: 'timeout'; attempts: TransportAttempt[]; requestTimeoutMs: number }
  /** A state wait passed the operation deadline. */
  | { kind: 'stuck'; waitingFor: string; state: string; waitedMs: number }
  /** Read-modify-write kept hitting a changed ETag until the deadline. */
  | { kind: 'conflict'; status: number; waitedMs: number }
  /** An HTTP answer the operation cannot accept. `notFound` is the code a 404 means here. */
  | { kind: 'http'; status: number; endpoint: string; message: string; notFound?: ErrorCode }
  /** A 2xx answer whose body is not the JSON the API documents. */
  | { kind: 'malformed'; endpoint: string; reason: string; status?: number }
  /** The thing the operation is about does not exist (a 404 where the port says so). */
  | { kind: 'notFound'; what: string; code: ErrorCode }
  /** The object disappeared in the middle of the operation. */
  | { kind: 'vanished'; what: string; during: string }
  /** The object settled in a state the operation cannot hand out (Failed…). */
  | { kind: 'endState'; what: string; state: string; cleanedUp: boolean }
  /** The caller asked for something the backend cannot do (e.g. shrink). */
  | { kind: 'invalid'; message: string };

const INSUFFICIENT_CAPACITY = /\b(not enough|insufficient|no|out of)\b.{0,20}\b(capacity|space|storage)\b/i;

function attemptsText(attempts: TransportAttempt[]): string {
  return attempts.map((a) => `${a.endpoint}: ${a.reason}`).join('; ');
}

function classify(f: LightosFailure): { code: ErrorCode; text: string; status?: number } {
  switch (f.kind) {
    case 'unreachable':
      return { code: 'backend_unavailable', text: `no API endpoint answered (${attemptsText(f.attempts)})` };
    case 'timeout':
      return {
        code: 'backend_timeout',
        text: `no answer within the ${f.requestTimeoutMs} ms request timeout (${attemptsText(f.attempts)})`,
      };
    case 'stuck':
      return {
        code: 'backend_timeout',
        text: `still in state ${f.state} after ${f.waitedMs} ms waiting for ${f.waitingFor}`,
      };
    case 'conflict':
      return {
        code: 'backend_timeout',
        text: `the volume kept changing under us (HTTP ${f.status} on If-Match) for ${f.waitedMs} ms`,
        status: f.status,
      };
    case 'malformed':
      return { code: 'backend_error', text: `malformed answer from ${f.endpoint}: ${f.reason}`, status: f.status };
    case 'notFound':
      return { code: f.code, text: `${f.what} not found`, status: 404 };
    case 'vanished':
      return { code: 'backend_error', text: `${f.what} disappeared while ${f.during}` };
    case 'endState':
      return {
        code: 'backend_error',
        text: `${f.what} ended in state ${f.state}${f.cleanedUp ? ' (deleted it)' : ''}`,
      };
    case 'invalid':
      return { code: 'invalid_request', text: f.message };
    case 'http': {
      const text = `HTTP ${f.status} from ${f.endpoint}${f.message ? `: ${f.message}` : ''}`;
      if (f.status >= 500) return { code: 'backend_error', text, status: f.status };
      if (f.status === 404 && f.notFound) return { code: f.notFound, text, status: f.status };
      // A refusal for lack of space is the request's size meeting the cluster's state, not a
      // fault of the driver: the orchestrator gets a 409 it can act on (smaller, or later). The
      // API gives it no code of its own, so it is told by its message.
      if (f.status >= 400 && f.status < 500 && INSUFFICIENT_CAPACITY.test(f.message))
        return { code: 'insufficient_capacity', text, status: f.status };
      if (f.status >= 400) return { code: 'backend_rejected', text, status: f.status };
      return { code: 'backend_error', text: `unexpected ${text}`, status: f.status };
    }
  }
}

/** The single mapping from a LightOS failure to the port's DriverError. */
export function lightosError(op: Op, failure: LightosFailure, cause?: unknown): DriverError {
  const { code, text, status } = classify(failure);
  const label = op.subject ? `${op.name}(${op.subject})` : `${op.name}()`;
  const details: Record<string, unknown> = { operation: op.name, backend: 'lightos' };
  if (status !== undefined) details.status = status;
  return new DriverError(code, `LightOS ${label}: ${text}`, { details, cause });
}
