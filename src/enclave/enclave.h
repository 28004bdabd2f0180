/* enclave.h — the keymeld-enclave process: its state and the command table.
 *
 * The enclave is the small trusted core (OpenSSH's monitor is the model): it
 * answers only the commands in its table, each in the states where it is
 * allowed, and keeps every secret in locked memory.
 */
#ifndef KM_ENCLAVE_ENCLAVE_H
#define KM_ENCLAVE_ENCLAVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/protocol.h"
#include "keymeld/secret.h"

/** Process-wide enclave state. One instance, created in main, passed to every
 *  handler (no globals). */
typedef struct km_enclave {
    km_ctx *ctx;
    km_secret *key;                /* enclave static secret key (32 bytes) */
    unsigned char pub[33];         /* its compressed public key */
    unsigned char fingerprint[32]; /* SHA-256(pub): the stable identity */
    unsigned char (*gateways)[32]; /* allowed gateway credentials (x-only) */
    size_t n_gateways;
    /* Development attestation (NULL dev_key: ATTEST is refused). */
    km_secret *dev_key;        /* leaf private key, PEM */
    km_buf dev_leaf, dev_root; /* certificates, PEM */
    unsigned char pcr0[48];    /* SHA-384 of this binary */
    /* Bounds (DESIGN §6: timeouts enforced; a full enclave refuses new work). */
    uint32_t max_keygens, max_signings;
    uint64_t keygen_ttl_s;     /* an unfinalised keygen is wiped after this */
    uint64_t signing_ttl_s;    /* a signing session is wiped after this */
    uint64_t expired_at;       /* the second of the last expiry scan (0: none yet) */
    uint64_t started_at;       /* monotonic seconds at start, for uptime */
    unsigned char boot_id[16]; /* random per process: tells a gateway this is a new process */
    pthread_mutex_t lock;      /* guards the session tables below */
    struct km_enclave_sessions *sessions;
    volatile int stopping;
} km_enclave;

/** What a handler produces: the body of a success response, or an error code
 *  with a detail text (no secrets). */
typedef struct km_reply {
    km_buf body;
    km_err err;
    char detail[KM_MSG_DETAIL_MAX + 1];
} km_reply;

typedef void (*km_cmd_handler)(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);

/** Seconds on the monotonic clock. */
uint64_t km_enclave_now(void);

/** Wipes sessions past their time to live. Caller holds e->lock. A second
 *  call in the same second returns at once: with times in whole seconds it
 *  would find nothing new, and the scan walks every session. */
void km_enclave_expire(km_enclave *e, uint64_t now);

/** Sets r to an error with a printf-style detail. */
void km_reply_fail(km_reply *r, km_err err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Runs one decoded request through the command table and encodes the
 *  response envelope into out. Unknown commands get KM_ERR_UNSUPPORTED. */
void km_enclave_dispatch(km_enclave *e, const km_msg *req, km_buf *out);

/* Command handlers (one file per group). */
void km_cmd_info(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);
void km_cmd_attest(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);
void km_cmd_keygen_init(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);
void km_cmd_keygen_register(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);
void km_cmd_keygen_finalize(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);
void km_cmd_sign_init(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);
void km_cmd_sign_approve(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);
void km_cmd_sign_partial(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);
void km_cmd_sign_finalize(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);
void km_cmd_session_clear(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);
/* Single-signer keys (cmd_key.c). */
void km_cmd_key_import(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);
void km_cmd_key_sign(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);
void km_cmd_key_delete(km_enclave *e, const unsigned char *body, size_t len, km_reply *r);

#endif
