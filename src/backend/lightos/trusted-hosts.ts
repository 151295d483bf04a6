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
import type { HttpAnswer } from './transport.ts';

const enc = encodeURIComponent;

export const TRUSTED_HOSTS_PATH = '/api/v2/trustedHosts';
export const trustedHostSecretsPath = (hostNqn: string) => `${TRUSTED_HOSTS_PATH}/${enc(hostNqn)}/secrets`;

/** The secrets body: LightOS keeps one pair, so only the newest generation is sent. */
export const secretsBody = (p: DhchapPair) => ({ hostSecret: p.hostSecret, targetSecret: p.ctrlSecret });

/** A refusal that quotes what it refused must not carry a secret into an error message or a log. */
function redacted(a: HttpAnswer): HttpAnswer {
  const scrub = (v: unknown) => (typeof v === 'string' ? v.replace(/DHHC-1:[^\s"']*/g, 'DHHC-1:<redacted>') : v);
  const b = a.body as { message?: unknown; error?: unknown } | undefined;
  if (!b || typeof b !== 'object') return a;
  return { ...a, body: { ...b, message: scrub(b.message), error: scrub(b.error) } };
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
  if (!calls.isOk(created) && created.status !== 409) calls.fail(op, redacted(created));
  const set = await calls.send(op, { method: 'PUT', path: trustedHostSecretsPath(hostNqn), body: secretsBody(newest) });
  if (!calls.isOk(set)) calls.fail(op, redacted(set));
}
