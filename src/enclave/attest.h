/* attest.h — attestation documents of this enclave.
 *
 * Local runs use a development CA (`keymeld-enclave dev-ca init DIR`): the
 * document has the AWS Nitro shape, is signed by the development leaf, and
 * PCR0 is SHA-384 of the enclave binary so an operator can pin the build.
 * On Nitro the NSM device produces the document instead (not built yet). */
#ifndef KM_ENCLAVE_ATTEST_H
#define KM_ENCLAVE_ATTEST_H

#include "enclave/enclave.h"

/** Create DIR/root.pem, DIR/leaf.pem and DIR/leaf.key (0600) for a new
 *  development CA valid for ten years. Returns 0 or -1 (message on stderr). */
int km_dev_ca_init(const char *dir);

/** Load the development CA from DIR into e. Returns 0 or -1. */
int km_dev_ca_load(km_enclave *e, const char *dir);

/** SHA-384 of the running binary (/proc/self/exe): PCR0 in development mode.
 *  Returns 0 or -1. */
int km_self_measure(unsigned char out48[48]);

#endif
