/* error.c — the only place where km_err codes become text. */
#include "keymeld/error.h"

static const struct {
    const char *name;
    const char *text;
} km_err_table[KM_ERR__COUNT] = {
    [KM_OK] = {"ok", "success"},
    [KM_ERR_ARG] = {"invalid_argument", "invalid argument"},
    [KM_ERR_NOMEM] = {"out_of_memory", "out of memory or memory could not be locked"},
    [KM_ERR_PARSE] = {"malformed", "malformed input"},
    [KM_ERR_RANGE] = {"out_of_range", "length or value out of range"},
    [KM_ERR_INVALID_KEY] = {"invalid_key", "invalid secret key"},
    [KM_ERR_INVALID_POINT] = {"invalid_point", "invalid public key or point"},
    [KM_ERR_VERIFY] = {"verification_failed", "verification failed"},
    [KM_ERR_DECRYPT] = {"decryption_failed", "decryption failed (tampered data, wrong key or context)"},
    [KM_ERR_CRYPTO] = {"crypto_failure", "cryptographic library failure"},
    [KM_ERR_RANDOM] = {"no_randomness", "could not obtain randomness"},
    [KM_ERR_BUFFER_SMALL] = {"buffer_too_small", "output buffer too small"},
    [KM_ERR_STATE] = {"invalid_state", "operation not allowed in the current state"},
    [KM_ERR_NONCE_REUSE] = {"nonce_reuse", "secret nonce already used"},
    [KM_ERR_UNSUPPORTED] = {"unsupported", "unsupported version or mode"},
    [KM_ERR_IO] = {"io_error", "input/output error"},
    [KM_ERR_NOT_FOUND] = {"not_found", "not found"},
    [KM_ERR_DUPLICATE] = {"duplicate", "already exists"},
    [KM_ERR_ATTESTATION] = {"attestation_failed", "attestation verification failed"},
};

const char *km_strerror(km_err err) {
    if ((unsigned)err >= KM_ERR__COUNT) return "unknown error";
    return km_err_table[err].text;
}

const char *km_err_name(km_err err) {
    if ((unsigned)err >= KM_ERR__COUNT) return "unknown";
    return km_err_table[err].name;
}
