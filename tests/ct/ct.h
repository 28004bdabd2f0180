/* ct.h — shared by the constant-time check (tests/ct/ct_secrets.c and
 * tests/ct/ct_enclave.c): marking secrets for valgrind memcheck and checking
 * results without branching on undefined data. */
#ifndef KM_TESTS_CT_H
#define KM_TESTS_CT_H

#include <valgrind/memcheck.h>

#include "keymeld/context.h"

/* Bytes from here on are secret: a branch or an address computed from them
 * is a memcheck error. */
#define CT_SECRET(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
/* Bytes that are public by design (sent, published). */
#define CT_PUBLIC(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))

/** Count a failed functional check (line and text printed). */
void ct_fail(const char *what, int line);

/* A functional check. Its verdict is declassified first, as libsecp256k1's
 * ctime test does (SECP256K1_CHECKMEM_DEFINE(&ret) before CHECK(ret)): the
 * test, not the code under test, is what looks at it. */
#define CT_CHECK(cond)                                                                                       \
    do {                                                                                                     \
        int ct_ok_ = (cond);                                                                                 \
        VALGRIND_MAKE_MEM_DEFINED(&ct_ok_, sizeof ct_ok_);                                                   \
        if (!ct_ok_) ct_fail(#cond, __LINE__);                                                               \
    } while (0)

/** The enclave's single-signer handlers, in process (ct_enclave.c). */
void ct_enclave(km_ctx *ctx);

#endif
