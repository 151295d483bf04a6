/**
 * The identity policy: is this namespace the volume? One place for the uuid → nguid → nsid tiers
 * that native attach, path description and teardown all ask about.
 */
import { normHex, normUuid } from './connection-data.ts';
import type { BlockNamespace } from './sysfs.ts';

export interface NamespaceWant {
  uuid: string;
  nguid?: string;
  nsid?: string;
}

export type Identity = 'uuid' | 'nguid' | 'nsid' | 'conflict' | 'none';

/**
 * Is this namespace the volume? uuid first, then nguid, then nsid (os-brick's order), but an
 * identifier the namespace *has* and that differs is a definite "another volume": the weaker
 * identifiers are only consulted when the stronger one is absent. Otherwise a reused NSID on a
 * rebooted target would hand out another volume's device (os-brick bug #1964388).
 * Quirk: sysfs `uuid` shows the NGUID when the namespace has no UUID; `wwid` tells the two apart
 * (`uuid.<UUID>` only when there is a real UUID, else `eui.<NGUID>`). Without a `wwid` the uuid
 * attribute is taken as a UUID: refusing a device beats returning the wrong one.
 */
export function identify(ns: Pick<BlockNamespace, 'uuid' | 'nguid' | 'nsid' | 'wwid'>, want: NamespaceWant): Identity {
  const wwid = ns.wwid?.toLowerCase() ?? null;
  const realUuid = wwid === null ? ns.uuid : wwid.startsWith('uuid.') ? wwid.slice(5) : null;
  const nguid =
    ns.nguid ??
    (wwid?.startsWith('eui.') && wwid.length === 36 ? wwid.slice(4) : null) ??
    (realUuid === null && ns.uuid ? normHex(ns.uuid) : null);
  if (realUuid) {
    if (normUuid(realUuid) === normUuid(want.uuid)) return 'uuid';
    if (want.nguid && normHex(realUuid) === want.nguid) return 'nguid';
    return 'conflict';
  }
  if (nguid) {
    if (want.nguid) return nguid === want.nguid ? 'nguid' : 'conflict';
    if (nguid === normHex(want.uuid)) return 'nguid'; // backends that use the volume UUID as NGUID
  }
  if (want.nsid !== undefined && ns.nsid === want.nsid) return 'nsid';
  return 'none';
}

/** The identifiers that say "this is the volume", strongest first (os-brick's order). */
export const MATCH_TIERS = ['uuid', 'nguid', 'nsid'] as const satisfies readonly Identity[];

/** True when `identify` said "the volume", at any tier. */
export function isMatch(id: Identity): boolean {
  return (MATCH_TIERS as readonly Identity[]).includes(id);
}

/** What a target (or any spec with the volume's identifiers) asks for. */
export function wantOf(t: { uuid: string; nguid?: string; nsid?: string }): NamespaceWant {
  return { uuid: t.uuid, nguid: t.nguid, nsid: t.nsid };
}

/**
 * Another volume where this one is expected: a definite mismatch at the volume's NSID (at any
 * NSID when the connection info names none).
 */
export function isOtherVolume(
  ns: Pick<BlockNamespace, 'uuid' | 'nguid' | 'nsid' | 'wwid'>,
  want: NamespaceWant,
): boolean {
  return identify(ns, want) === 'conflict' && (want.nsid === undefined || ns.nsid === want.nsid);
}
