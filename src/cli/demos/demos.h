/* demos.h — the demos of `keymeld demo NAME`: each runs a realistic flow
 * through a running devnet with the client SDK, checks every result
 * independently of the SDK (libsecp256k1 directly, keys recomputed from the
 * participants' public keys) and returns non-zero on any mismatch. */
#ifndef KM_CLI_DEMOS_H
#define KM_CLI_DEMOS_H

#include <stddef.h>

#include "cli/tool/tool.h"
#include "keymeld/client.h"

/** What a demo runs with. */
typedef struct km_demo_env {
    km_tool *t;          /* output: km_tool_say, t->out (JSON) */
    km_ctx *ctx;         /* shared, thread-safe */
    km_sdk *sdk;         /* enclaves verified */
    km_tool_devnet *dev; /* trust, to make more handles (stress) */
    const char *out_dir; /* where demos write their JSON files */
    unsigned count;      /* stress: sessions */
    unsigned threads;    /* stress: threads */
    json_t *steps;       /* [{"step", "ms"}] */
    double step_t0;
    const char *step_name;
    /* Testing only (`--secrets-out FILE`, not in the help): every secret and
     * message the demo used, so tests/cli/test_cli_secrets.c can search the
     * logs and the database for them. NULL unless asked for. */
    json_t *secrets;
} km_demo_env;

typedef struct km_demo {
    const char *name;
    const char *summary;
    int (*run)(km_demo_env *env);
} km_demo;

/** The demos, terminated by a NULL name. */
extern const km_demo km_demos[];

int km_demo_quickstart(km_demo_env *env);
int km_demo_taproot_spend(km_demo_env *env);
int km_demo_adaptors(km_demo_env *env);
int km_demo_batch(km_demo_env *env);
int km_demo_dlc(km_demo_env *env);
int km_demo_single_signer(km_demo_env *env);
int km_demo_stress(km_demo_env *env);

/* ---- helpers (demo_util.c) ---- */

/** Start / end a timed step (printed as "  step ... 123 ms", recorded in JSON). */
void km_demo_step(km_demo_env *env, const char *name);
void km_demo_step_done(km_demo_env *env);
/** Record a secret or message the demo used (kind: "secret_key", "auth_key",
 *  "session_secret", "message", "adaptor_secret") when --secrets-out was
 *  given; does nothing otherwise. p/n: the bytes (borrowed). */
void km_demo_note(km_demo_env *env, const char *kind, const void *p, size_t n);
/** Report a failed check or call; returns the exit code for err. */
int km_demo_fail(km_demo_env *env, const char *what, km_err err);

/** Participants of a demo keygen: their secret and auth keys. */
typedef struct km_demo_party {
    unsigned char sec[32], auth_sec[32], pub33[33];
} km_demo_party;

/** A keygen with fresh participant keys, every participant joining through
 *  env->sdk, then the wait; the result is checked independently (the
 *  aggregate and output keys recomputed from the parties' keys).
 *  approval: participants with approval[i] set require approvals (NULL: none).
 *  Returns an exit code (0 ok); on success *s, *r and parties (n entries,
 *  caller-allocated) are filled. */
int km_demo_keygen(km_demo_env *env, size_t n, const km_tweak *tweak, const km_subset_def *subsets,
                   size_t n_subsets, const int *approval, km_demo_party *parties, km_sdk_session **s,
                   km_sdk_keygen_result *r);
/** Submit items, approve for every participant with approval[i] set, wait.
 *  Returns an exit code. */
int km_demo_sign(km_demo_env *env, km_sdk *sdk, km_sdk_session *s, const km_sign_item *items, size_t n,
                 const int *approval, const km_demo_party *parties, size_t n_parties, km_sdk_sign_result *r);
/** The key an item must verify under, computed here from the parties' public
 *  keys (the signer set: all, or the subset's members) and the tweak (the
 *  item's own, else the keygen's). */
KM_WARN_UNUSED km_err km_demo_expected_key(km_ctx *ctx, const km_demo_party *parties, size_t n_parties,
                                           const km_tweak *keygen_tweak, const km_subset_def *subsets,
                                           size_t n_subsets, const km_sign_item *it, unsigned char out32[32]);
/** A fresh adaptor secret and its point. */
KM_WARN_UNUSED km_err km_demo_adaptor_secret(km_ctx *ctx, unsigned char t32[32], unsigned char T33[33]);
/** BIP-340 verify with libsecp256k1 directly: 1 valid, 0 not. */
int km_demo_schnorr_ok(km_ctx *ctx, const unsigned char sig[64], const unsigned char msg32[32],
                       const unsigned char xonly[32]);
/** Fresh item id. */
KM_WARN_UNUSED km_err km_demo_item_id(km_uuid *id);
/** Write a JSON value to OUT/name (mode 0644). Returns an exit code. */
int km_demo_write(km_demo_env *env, const char *name, json_t *v);
/** Lowercase hex of n bytes as a new JSON string. */
json_t *km_demo_hexj(const unsigned char *p, size_t n);

#endif
