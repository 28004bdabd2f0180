/* chaos.h — what the parts of keymeld-chaos share (tests/chaos/): the run's
 * state, the records of every keygen and signing session the gateway
 * acknowledged, and the three jobs:
 *   chaos_work.c   client threads: a mixed workload through the client SDK
 *                  that rides out outages (idempotent retries), and the
 *                  client's own check of every result;
 *   chaos_check.c  after the storm: every acknowledged session final (or
 *                  lost), nonce points unique, PRAGMA integrity_check;
 *   chaos.c        options, the stack, the killer (kill -9 and restart),
 *                  the summary and its JSON.
 * The killer is the main thread: the harness ties the gateway and enclave
 * processes to the thread that started them (PR_SET_PDEATHSIG), so every
 * start and restart happens there. */
#ifndef KM_TESTS_CHAOS_CHAOS_H
#define KM_TESTS_CHAOS_CHAOS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/support_gateway.h"
#include "keymeld/client.h"

#define CH_MAX_N       5 /* participants of a keygen: 2..CH_MAX_N */
#define CH_MAX_ITEMS   4 /* items of a signing batch: 1..CH_MAX_ITEMS */
#define CH_MAX_CLIENTS 32

/** One participant's secrets (held by the client; wiped at the end). */
typedef struct ch_party {
    unsigned char sk[32], auth[32];
    unsigned char pub[33]; /* derived from sk by the client itself */
} ch_party;

/** A keygen as the client made it. */
typedef struct ch_keygen {
    km_sdk_session *s; /* owned; NULL when the create was not acknowledged */
    km_uuid id;
    size_t n;
    ch_party p[CH_MAX_N];
    km_tweak tweak;
    int has_subset; /* one subset of the first two participants */
    km_uuid subset_id;
    uint16_t subset_members[2];
    int approval; /* participant 0 requires approvals */
    int acked;    /* the create was answered 201 */
    int joined;   /* every registration was answered 201 */
    int completed, failed;
    int confirmed;                  /* re-read after the storm: the same outcome */
    char reason[200];               /* failure reason, or what went wrong */
    unsigned char output_xonly[32]; /* of the checked result */
} ch_keygen;

/** A signing session as the client made it. */
typedef struct ch_signing {
    ch_keygen *kg;
    km_uuid id;
    size_t n_items;
    km_sign_item items[CH_MAX_ITEMS];
    unsigned char secrets[CH_MAX_ITEMS][2][32]; /* adaptor secrets t of each item's points */
    int acked, completed, failed;
    size_t units_verified;                    /* signatures / pre-signatures checked by the client */
    unsigned char units[CH_MAX_ITEMS][2][64]; /* the result as first received (compared when re-read) */
    int confirmed;                            /* re-read after the storm: the same outcome */
    char reason[200];
} ch_signing;

/** The run. */
typedef struct ch_run {
    km_ctx *ctx;
    km_gwtest t;
    int n_enclaves;
    unsigned char pcr0[48];
    km_buf roots[KM_GWTEST_MAX_ENCLAVES];
    unsigned clients;
    uint64_t seed;
    uint64_t work_end_ms; /* monotonic: no new keygen after this */
    uint64_t hard_end_ms; /* monotonic: clients stop retrying after this */
    size_t max_sessions;  /* 0: bounded by time only */
    atomic_size_t sessions_started;
    atomic_int storm; /* 1 while the killer runs */

    pthread_mutex_t mu; /* guards everything below */
    ch_keygen **kgs;
    size_t n_kgs, cap_kgs;
    ch_signing **sgs;
    size_t n_sgs, cap_sgs;
    unsigned char (*R)[32]; /* x of every nonce point seen */
    size_t n_R, cap_R;
    unsigned violations;
    char first_violation[300];
    char first_unacked[300]; /* why the first create was never acknowledged */

    atomic_uint kills_gateway, kills_enclave;
    atomic_uint kg_unacked, sg_unacked; /* creates the gateway never acknowledged */
    atomic_uint retries;                /* calls repeated after an outage */
} ch_run;

/** Monotonic milliseconds. */
uint64_t ch_now_ms(void);
/** Sleep ms milliseconds (restarted on EINTR). */
void ch_sleep_ms(unsigned ms);
/** xorshift64* step (reproducible choices from the printed seed). */
uint64_t ch_rng(uint64_t *state);

/** Record a violation of the run's invariants (printed at once; the run then
 *  exits non-zero). Thread-safe. */
void ch_violation(ch_run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** A fresh SDK handle that trusts every enclave's development root, pins
 *  PCR0 and has verified every enclave. Returns KM_OK or the failing call's
 *  code (the handle, if made, in *out for km_sdk_last_error). */
km_err ch_sdk_open(ch_run *run, km_sdk **out);

/** Client thread: arg is a ch_client. Runs keygens and signing sessions until
 *  work_end_ms (or max_sessions), finishing what it started. */
typedef struct ch_client {
    ch_run *run;
    unsigned index;
    pthread_t th;
} ch_client;
void *ch_client_main(void *arg);

/** Check one completed signing result as the client: every unit verifies
 *  (BIP-340 under the key the client aggregates itself from its own
 *  participants' keys, for the item's message; adaptor pre-signatures
 *  verify against the client's point and complete with its secret); every
 *  nonce point is recorded. Returns 1 if everything verified, else 0 with
 *  the reason in s->reason. */
int ch_check_result(ch_run *run, ch_signing *s, const km_sdk_sign_result *res);

/** Wait (long polls of up to wait_s, repeated through outages until
 *  run->hard_end_ms) for a keygen / signing session to be final, and check
 *  it (a signing result with ch_check_result). Called again on a session
 *  already final, it re-reads it and records a violation if the outcome
 *  changed (another result, another state); sets confirmed.
 *  Returns 1 if final, 0 if not (reason in ->reason). */
int ch_keygen_wait(ch_run *run, km_sdk *sdk, ch_keygen *kg, unsigned wait_s);
int ch_signing_wait(ch_run *run, km_sdk *sdk, ch_signing *s, unsigned wait_s);

/** After the storm (every process running, no kills): wait up to wait_s for
 *  every acknowledged session to be completed or failed, with sdk. Returns
 *  the number lost (acknowledged, but gone or not final). */
size_t ch_settle(ch_run *run, km_sdk *sdk, unsigned wait_s);

/** Number of repeated nonce points among everything recorded (sorts run->R). */
size_t ch_nonce_repeats(ch_run *run);

/** PRAGMA integrity_check on the gateway's database (the gateway stopped).
 *  Out: result: "ok" or SQLite's first complaint. Returns 1 if "ok". */
int ch_integrity(const char *db_path, char *result, size_t cap);

#endif
