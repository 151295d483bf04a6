/**
 * LightOS in-band authentication (DH-HMAC-CHAP): the host's "trusted-host" resource and its
 * "trusted-host secrets". The one place that knows their wire format.
 *
 * Public (Lightbits documentation, "NVMe/TCP In-Band Authentication"): a cluster feature flag
 * turns it on; a trusted host is created per host NQN; its secrets can be set or changed at any
 * time; once enabled, only trusted hosts with secrets set can connect; a connected host whose
 * secrets change is not disconnected. One secret pair per host is all the document describes.
 * Not public: the REST paths and field names (the document shows the `lbcli` commands, the REST
 * reference does not list the resource). Those below are our assumption, in the API v2 style of
 * the documented resources (camelCase collections, `POST` to create, `PUT` to set, 409 for an
 * existing name); docs/DECISIONS.md, "LightOS trusted hosts", says so. Change them here only.
 *
 *   POST /api/v2/trustedHosts                    {hostNqn}                  → 200, or 409 when it exists
 *   PUT  /api/v2/trustedHosts/{hostNqn}/secrets  {hostSecret, targetSecret} → 200
 */
import type { DhchapPair } from '../../driver/ports.ts';
import type { LightosCalls } from './calls.ts';
import { answerMessage, type HttpAnswer } from './transport.ts';

const enc = encodeURIComponent;

const TRUSTED_HOSTS_PATH = '/api/v2/trustedHosts';
const trustedHostSecretsPath = (hostNqn: string) => `${TRUSTED_HOSTS_PATH}/${enc(hostNqn)}/secrets`;

/** The secrets body: LightOS keeps one pair, so only the newest generation is sent. */
const secretsBody = (p: DhchapPair) => ({ hostSecret: p.hostSecret, targetSecret: p.ctrlSecret });

/**
 * Every form in which a refusal could quote a secret we sent: the DHHC-1 text, its base64 part,
 * and the key bytes alone in base64, base64url and hex (either case).
 */
function secretForms(accepted: DhchapPair[]): string[] {
  return accepted
    .flatMap((p) =>
      [p.hostSecret, p.ctrlSecret].flatMap((text) => {
        const b64 = text.split(':')[2] ?? '';
        const raw = Buffer.from(b64, 'base64');
        const key = raw.subarray(0, Math.max(0, raw.length - 4));
        const hex = key.toString('hex');
        return [text, b64, key.toString('base64'), key.toString('base64url'), hex, hex.toUpperCase()];
      }),
    )
    .filter((f) => f.length >= 8);
}

/**
 * What of a refusal may go on into the error (its message reaches the 502 body, the state's
 * last_error and the log): the JSON message with every form of the secrets scrubbed. A body
 * that is not JSON (an HTML or text page from a proxy, say) is never passed on, not even its
 * first characters: a cut could leave part of a secret that no exact match finds.
 */
function redacted(a: HttpAnswer, accepted: DhchapPair[]): HttpAnswer {
  if (a.malformed) return { status: a.status, endpoint: a.endpoint, body: undefined, malformed: 'not JSON (withheld)' };
  let message = answerMessage(a);
  for (const f of secretForms(accepted)) message = message.split(f).join('<redacted>');
  message = message.replace(/DHHC-1:[^\s"']*/g, 'DHHC-1:<redacted>');
  return { status: a.status, endpoint: a.endpoint, body: message ? { message } : undefined };
}

/**
 * Creates the trusted host when absent and sets its secrets to `accepted[0]`. LightOS holds one
 * pair: the previous one (`accepted[1]`) cannot be kept valid beside it, and hosts already
 * connected stay connected (the document above), so a rotation moves the backend first and the
 * host's controllers re-authenticate with the new pair.
 */
export async function setTrustedHost(calls: LightosCalls, hostNqn: string, accepted: DhchapPair[]): Promise<void> {
  const newest = accepted[0];
  if (!newest) throw new RangeError('setTrustedHost needs at least one pair');
  const op = calls.begin('setTrustedHost', `host ${hostNqn}`);
  const created = await calls.send(op, { method: 'POST', path: TRUSTED_HOSTS_PATH, body: { hostNqn } });
  if (!calls.isOk(created) && created.status !== 409) calls.fail(op, redacted(created, accepted));
  const set = await calls.send(op, { method: 'PUT', path: trustedHostSecretsPath(hostNqn), body: secretsBody(newest) });
  if (!calls.isOk(set)) calls.fail(op, redacted(set, accepted));
}
