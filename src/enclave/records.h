/* records.h — helpers shared by the keygen and signing handlers. */
#ifndef KM_ENCLAVE_RECORDS_H
#define KM_ENCLAVE_RECORDS_H

#include "enclave/enclave.h"
#include "enclave/sessions.h"

/** Reads u32 length (<= max) then a view of that many bytes. Returns 1 or 0. */
int km_get_vbytes(km_cursor *c, const unsigned char **p, size_t *len, size_t max);

/** BIP-340 signature by this enclave's key over a 32-byte digest. */
km_err km_enclave_sign(km_enclave *e, const unsigned char digest[32], unsigned char sig[64]);

/** 1 if sig over digest verifies under the key of the enclave that the keygen
 *  assigned `participant` to, and the record claims that enclave's index;
 *  else 0. This is what stops the gateway (or a participant) from injecting a
 *  key, nonce or partial signature for somebody else. */
int km_record_signed_by(km_enclave *e, const km_keygen_state *k, int participant, uint16_t claimed_index,
                        const unsigned char sig[64], const unsigned char digest[32]);

#endif
