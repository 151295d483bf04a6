/**
 * In-band authentication on the kernel target: a host's DH-HMAC-CHAP secrets in its configfs
 * entry, `hosts/<host nqn>/`:
 *
 *   dhchap_key        what the host must prove (`DHHC-1:…:`); `nvmet_auth_set_key()` in
 *                     drivers/nvme/target/auth.c parses the `DHHC-1:<hh>` prefix and takes the
 *                     hash from it when <hh> is not 00
 *   dhchap_ctrl_key   what the target proves back (bidirectional authentication)
 *   dhchap_hash       the HMAC, `hmac(sha256)` by default (written explicitly: our secrets are
 *                     `00`, untransformed, so nothing else would choose it)
 *   dhchap_dhgroup    the FFDHE group of the DH exchange, `null` by default (HMAC-CHAP without
 *                     DH); `ffdheNNNN` needs CONFIG_CRYPTO_DH_RFC7919_GROUPS, which Debian 12's
 *                     kernel lacks, so it is written only when asked for
 * These attributes exist only in a kernel built with CONFIG_NVME_TARGET_AUTH ("nvmet: Implement
 * basic In-Band Authentication", Linux 6.0); Debian 12's 6.1 is built without it. Without them
 * the target cannot enforce authentication, which is reported as `unsupported`, not an error:
 * the plane then serves as it did before (the NQN ACL alone).
 * A secret is never part of an error message: a refused write names the attribute only.
 */
import { type Configfs, ensureDir, errnoOf } from './configfs.ts';

export interface TargetHostSecrets {
  hostSecret: string;
  ctrlSecret: string;
}

export interface HostAuthOptions {
  /** dhchap_dhgroup to write (e.g. `ffdhe2048`); unset leaves the kernel's default (`null`). */
  dhgroup?: string;
}

export const DHCHAP_HASH = 'hmac(sha256)';

/** Writes the host's secrets; `unsupported` when this kernel's target has no DH-HMAC-CHAP attributes. */
export async function writeHostAuth(
  fs: Configfs,
  hostNqn: string,
  secrets: TargetHostSecrets,
  opts: HostAuthOptions = {},
): Promise<'written' | 'unsupported'> {
  const dir = `hosts/${hostNqn}`;
  await ensureDir(fs, dir);
  if (!(await fs.list(dir)).includes('dhchap_key')) return 'unsupported';
  const attrs: [string, string][] = [
    ['dhchap_hash', DHCHAP_HASH],
    ...(opts.dhgroup ? ([['dhchap_dhgroup', opts.dhgroup]] as [string, string][]) : []),
    ['dhchap_key', secrets.hostSecret],
    ['dhchap_ctrl_key', secrets.ctrlSecret],
  ];
  for (const [attr, value] of attrs) {
    try {
      await fs.write(`${dir}/${attr}`, value);
    } catch (err) {
      throw new Error(`nvmet: writing ${dir}/${attr} failed (${errnoOf(err) ?? 'error'})`);
    }
  }
  return 'written';
}
