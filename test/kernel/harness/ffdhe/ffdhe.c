// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The RFC 7919 FFDHE groups ("ffdhe2048(dh)" … "ffdhe8192(dh)") as a module of their own, for a
 * kernel built with CONFIG_CRYPTO_DH=y but without CONFIG_CRYPTO_DH_RFC7919_GROUPS (Debian 12):
 * the kernel's own crypto/dh.c of the same source version, compiled with the option on, whose
 * templates wrap the built-in "dh" algorithm. Only the templates are registered here: "dh"
 * itself stays the kernel's (registering it again would fail with -EEXIST). Used by the kernel
 * tests only (test/kernel/harness/nvme-auth.ts; docs/KERNEL.md §6).
 */
#include <linux/module.h>
#include <crypto/internal/kpp.h>

/*
 * The templates decode their secret with __crypto_dh_decode_key, which crypto/dh_helper.c does
 * not export; its helpers are compiled in here under other names (and not exported), so
 * nothing clashes with the kernel's own.
 */
#define __crypto_dh_decode_key ffdhe___crypto_dh_decode_key
#define crypto_dh_decode_key ffdhe_crypto_dh_decode_key
#define crypto_dh_encode_key ffdhe_crypto_dh_encode_key
#define crypto_dh_key_len ffdhe_crypto_dh_key_len
#undef EXPORT_SYMBOL_GPL
#define EXPORT_SYMBOL_GPL(sym)
#include "dh_helper.c"

#define CONFIG_CRYPTO_DH_RFC7919_GROUPS 1
/* dh.c's init and exit: keep its template calls, skip its "dh" (the kernel has it). */
#define crypto_register_kpp(alg) ((void)(alg), 0)
#define crypto_unregister_kpp(alg) ((void)(alg))
#include "dh.c"

MODULE_ALIAS_CRYPTO("ffdhe2048");
MODULE_ALIAS_CRYPTO("ffdhe3072");
MODULE_ALIAS_CRYPTO("ffdhe4096");
MODULE_ALIAS_CRYPTO("ffdhe6144");
MODULE_ALIAS_CRYPTO("ffdhe8192");
