/* fuzz/fuzz_sdk.c — the client SDK (include/keymeld/client.h, src/client/)
 * against a malicious gateway: every answer the SDK receives comes from the
 * fuzz input.
 *
 * Input: u8 scenario | answer*, where an answer is u8 kind | u16 length |
 * body (fz_util.h, FZ_SDK_STATUS). The link options of this target (see
 * fuzz/CMakeLists.txt) wrap the SDK's two HTTP entry points,
 * km_client_call and km_client_call_raw, which src/client/sdk*.c call for
 * every request: the wrappers serve the next answer of the input (status,
 * Content-Type, body, parsed exactly as src/client/http.c parses a real
 * answer) and fail like a refused connection once the input is used up, so
 * that every retry and poll loop ends. clock_gettime, time and nanosleep are
 * wrapped too: while an input runs they read and advance a fake clock (a
 * sleep returns at once; a failed connection costs one fake second), so the
 * SDK's retry pauses and long-poll deadlines pass in microseconds.
 * km_random_bytes gives FZ_SDK_RANDOM bytes, so the nonce of an attestation
 * request, a coordinator's session secret and a key-sign response key are
 * known to the seeds (fuzz/seeds/gen_seeds.c), which make answers that pass
 * every check. The fakes apply to the fuzzing thread only, and only while
 * an input runs.
 *
 * Scenarios ((u8 scenario & 0x7f) % SC_COUNT; bit 0x80 picks the rich session
 * with a subset and a batch with Single, Or and And adaptors, FZ_SDK_RICH): list and verify every enclave;
 * verify, create a keygen as coordinator, join both participants, wait for the result, sign (create and wait
 * in one request); import a session, verify, join, wait, sign with separate create and wait; import and sign
 * without waiting for the keygen (the SDK fetches the result itself); verify, import a single key, sign with
 * it (Schnorr and ECDSA), delete it; import, approve, wait without a keygen; import a session invitation
 * given by the input, which must export and import again to the same text.
 *
 * Oracle beyond crashes, leaks and UB: a keygen result returned with KM_OK
 * must list exactly the joined participants' keys and carry their
 * aggregate (recomputed here); every signature returned with KM_OK must
 * verify (libsecp256k1) under the key computed here from the participants'
 * own keys (or, when not every participant joined through this session,
 * under the key the SDK reports for the item); a single-key signature must
 * verify under the imported key. Any violation aborts. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "client/http.h"
#include "fz_util.h"
#include "keymeld/adaptor.h"
#include "keymeld/client.h"
#include "keymeld/musig.h"
#include "keymeld/proto_key.h"
#include "keymeld/single.h"

/* ---- the fake environment ------------------------------------------------------ */

/* Start of the fake monotonic clock, in ms (any value; not zero). */
#define FAKE_MONO0 1000000ull
/* Calls one input may make before the SDK counts as looping. */
#define MAX_CALLS 20000u

static __thread int g_fake; /* 1 while an input runs on this thread */
static uint64_t g_mono_ms;
static unsigned g_calls;
static fz_reader g_in;
static int g_trace; /* FZ_SDK_TRACE set: print requests and results (replaying one input) */
static int g_rich;  /* this input uses the rich session and batch (FZ_SDK_RICH) */

int __real_clock_gettime(clockid_t id, struct timespec *ts);
time_t __real_time(time_t *t);
int __real_nanosleep(const struct timespec *req, struct timespec *rem);
km_err __real_km_random_bytes(void *buf, size_t len);

int __wrap_clock_gettime(clockid_t id, struct timespec *ts);
time_t __wrap_time(time_t *t);
int __wrap_nanosleep(const struct timespec *req, struct timespec *rem);
km_err __wrap_km_random_bytes(void *buf, size_t len);
km_err __wrap_km_client_call(km_client *c, const char *method, const char *target, const json_t *body,
                             const secp256k1_keypair *signer, km_client_response *out);
km_err __wrap_km_client_call_raw(km_client *c, const char *method, const char *target,
                                 const unsigned char *body, size_t len, const char *content_type,
                                 const secp256k1_keypair *signer, const km_client_auth_override *ov,
                                 km_client_response *out);

static uint64_t fake_unix_ms(void) {
    return FZ_SDK_NOW * 1000u + (g_mono_ms - FAKE_MONO0);
}

int __wrap_clock_gettime(clockid_t id, struct timespec *ts) {
    if (!g_fake) return __real_clock_gettime(id, ts);
    uint64_t ms = id == CLOCK_REALTIME ? fake_unix_ms() : g_mono_ms;
    ts->tv_sec = (time_t)(ms / 1000u);
    ts->tv_nsec = (long)(ms % 1000u) * 1000000L;
    return 0;
}

time_t __wrap_time(time_t *t) {
    if (!g_fake) return __real_time(t);
    time_t now = (time_t)(fake_unix_ms() / 1000u);
    if (t) *t = now;
    return now;
}

int __wrap_nanosleep(const struct timespec *req, struct timespec *rem) {
    if (!g_fake) return __real_nanosleep(req, rem);
    if (req->tv_sec < 0 || req->tv_nsec < 0 || req->tv_nsec >= 1000000000L) {
        errno = EINVAL;
        return -1;
    }
    g_mono_ms += (uint64_t)req->tv_sec * 1000u + (uint64_t)req->tv_nsec / 1000000u;
    if (rem) memset(rem, 0, sizeof *rem);
    return 0;
}

km_err __wrap_km_random_bytes(void *buf, size_t len) {
    if (!g_fake) return __real_km_random_bytes(buf, len);
    memset(buf, FZ_SDK_RANDOM, len);
    return KM_OK;
}

/* The next answer of the input, as http.c's perform would return it. */
static km_err serve(const char *target, km_client_response *out) {
    memset(out, 0, sizeof *out);
    if (!target || target[0] != '/') abort(); /* the SDK builds every target itself */
    if (++g_calls > MAX_CALLS) {
        fprintf(stderr, "fuzz_sdk: more than %u requests in one input (last %s): the SDK loops\n", MAX_CALLS,
                target);
        abort();
    }
    if (g_trace)
        fprintf(stderr, "fuzz_sdk: request %u: %s (%zu input bytes left)\n", g_calls, target, g_in.left);
    if (!g_in.left) {
        g_mono_ms += 1000u;
        return KM_ERR_IO;
    }
    uint8_t kind = fz_u8(&g_in);
    size_t len;
    const uint8_t *body = fz_piece(&g_in, &len);
    long status = FZ_SDK_STATUS[kind & 15];
    if (status == 0) {
        g_mono_ms += 1000u;
        return (kind & 15) == FZ_A_TOO_BIG ? KM_ERR_RANGE : KM_ERR_IO;
    }
    if ((len && km_buf_put(&out->body, body, len) != KM_OK) || km_buf_put(&out->body, "", 1) != KM_OK)
        abort();
    out->body.len--;
    out->status = status;
    if (!(kind & FZ_SDK_NOT_JSON) && len > 0) {
        json_error_t jerr;
        out->json = json_loadb((const char *)out->body.data, len, JSON_REJECT_DUPLICATES, &jerr);
    }
    return KM_OK;
}

km_err __wrap_km_client_call(km_client *c, const char *method, const char *target, const json_t *body,
                             const secp256k1_keypair *signer, km_client_response *out) {
    (void)c, (void)method, (void)body, (void)signer;
    if (!out) return KM_ERR_ARG;
    return serve(target, out);
}

km_err __wrap_km_client_call_raw(km_client *c, const char *method, const char *target,
                                 const unsigned char *body, size_t len, const char *content_type,
                                 const secp256k1_keypair *signer, const km_client_auth_override *ov,
                                 km_client_response *out) {
    (void)c, (void)method, (void)body, (void)len, (void)content_type, (void)signer, (void)ov;
    if (!out) return KM_ERR_ARG;
    return serve(target, out);
}

/* ---- the oracle ----------------------------------------------------------------- */

static void fail(const char *what) {
    fprintf(stderr, "fuzz_sdk: ORACLE: %s\n", what);
    abort();
}

static void own_pub(size_t i, unsigned char pub[33]) {
    unsigned char sk[32];
    fz_sdk_user_sk(i, sk);
    fz_pub33(sk, pub);
}

/* The output key of the participants' own keys (members: the subset's
 * participants, or NULL for all) under tweak (x-only). */
static void expected_key(const uint16_t *members, size_t n, const km_tweak *tweak, unsigned char out32[32]) {
    unsigned char pubs[FZ_SDK_N][33];
    if (!members) n = FZ_SDK_N;
    for (size_t i = 0; i < n; i++)
        own_pub(members ? members[i] : i, pubs[i]);
    km_musig_keyagg ka;
    size_t bad;
    if (km_musig_key_agg(fz_ctx(), &ka, &pubs[0][0], n, &bad) != KM_OK ||
        km_musig_keyagg_tweak(fz_ctx(), &ka, tweak) != KM_OK)
        abort();
    memcpy(out32, ka.output_xonly, 32);
}

static void check_schnorr(const unsigned char sig[64], const unsigned char *msg, size_t len,
                          const unsigned char xonly32[32], const char *what) {
    const secp256k1_context *secp = km_ctx_secp(fz_ctx());
    secp256k1_xonly_pubkey pk;
    if (!secp256k1_xonly_pubkey_parse(secp, &pk, xonly32) ||
        !secp256k1_schnorrsig_verify(secp, sig, msg, len, &pk))
        fail(what);
}

/* A keygen result the SDK accepted, all participants having joined through
 * the session: exactly their keys, and their aggregates. */
static void check_keygen(const km_sdk_keygen_result *r, const km_tweak *tweak, int rich) {
    if (r->n_participants != FZ_SDK_N) fail("keygen: another participant count accepted");
    for (size_t i = 0; i < FZ_SDK_N; i++) {
        unsigned char pub[33];
        own_pub(i, pub);
        if (memcmp(r->pubkeys[i], pub, 33)) fail("keygen: a substituted participant key accepted");
    }
    unsigned char want[32];
    expected_key(NULL, 0, tweak, want);
    if (memcmp(r->output_xonly, want, 32)) fail("keygen: an aggregate other than the joined keys' accepted");
    if (r->n_subsets != (rich ? 1u : 0u)) fail("keygen: another subset count accepted");
    if (rich) {
        km_uuid sub;
        fz_sdk_uuid(FZ_SDK_TAG_SUBSET, &sub);
        expected_key(FZ_SDK_SUBSET_MEMBERS, 1, tweak, want);
        if (memcmp(r->subset_ids[0].b, sub.b, 16) || memcmp(r->subset_output[0], want, 32))
            fail("keygen: a subset key other than the members' aggregate accepted");
    }
}

/* A signing result the SDK accepted. all_joined: the keys are known here,
 * so each item's key is recomputed from them; otherwise the key the SDK
 * reports is used. Plain units must verify (BIP-340), adaptor units must be
 * pre-signatures for the right point that do not verify as signatures. */
static void check_sign(const km_sdk_sign_result *r, const km_sign_item *items, size_t n, int all_joined,
                       const km_tweak *session_tweak) {
    const secp256k1_context *secp = km_ctx_secp(fz_ctx());
    if (r->n != n || !r->items) fail("sign: another item count accepted");
    for (size_t i = 0; i < n; i++) {
        const km_sign_item *it = &items[i];
        const km_sdk_item_result *ir = &r->items[i];
        unsigned char key[32];
        if (all_joined)
            expected_key(it->has_subset ? FZ_SDK_SUBSET_MEMBERS : NULL, 1,
                         it->own_tweak ? &it->tweak : session_tweak, key);
        else
            memcpy(key, ir->key_xonly, 32);
        if (memcmp(key, ir->key_xonly, 32)) fail("sign: the SDK reports another key");
        if (memcmp(ir->item_id.b, it->id.b, 16) || ir->adaptor != it->adaptor ||
            ir->n_units != km_sign_item_units(it))
            fail("sign: another item accepted");
        unsigned char and_T[33];
        if (it->adaptor == KM_ADAPTOR_AND) {
            const unsigned char *pts[2] = {it->points[0], it->points[1]};
            if (km_adaptor_point_sum(fz_ctx(), and_T, pts, 2) != KM_OK) abort();
        }
        for (uint16_t v = 0; v < ir->n_units; v++) {
            const km_sdk_unit *u = &ir->units[v];
            if (it->adaptor == KM_ADAPTOR_NONE) {
                if (u->has_T) fail("sign: an adaptor point on a plain item accepted");
                check_schnorr(u->sig, it->msg, 32, key, "sign: a signature that does not verify accepted");
                continue;
            }
            const unsigned char *want = it->adaptor == KM_ADAPTOR_AND  ? and_T
                                        : it->adaptor == KM_ADAPTOR_OR ? it->points[v]
                                                                       : it->points[0];
            secp256k1_xonly_pubkey pk;
            if (!u->has_T || memcmp(u->T, want, 33)) fail("sign: a pre-signature for another point accepted");
            if (!secp256k1_xonly_pubkey_parse(secp, &pk, key) ||
                secp256k1_schnorrsig_verify(secp, u->sig, it->msg, 32, &pk))
                fail("sign: a pre-signature that is a valid signature accepted");
            if (km_adaptor_presig_verify(fz_ctx(), u->sig, want, key, it->msg) != KM_OK)
                fail("sign: a pre-signature that does not verify accepted");
        }
    }
}

/* ---- the scenarios ---------------------------------------------------------------- */

enum {
    SC_VERIFY_ALL,
    SC_COORDINATOR,
    SC_IMPORTED,
    SC_IMPORTED_NO_WAIT,
    SC_SINGLE_KEY,
    SC_APPROVE,
    SC_SESSION_JSON,
    SC_COUNT
};

#define WAIT_S 5u

/* Every SDK operation goes through op(): with FZ_SDK_TRACE it prints the result. */
#define OP(sdk, call) op((sdk), #call, (call))
static km_err op(km_sdk *sdk, const char *what, km_err err) {
    if (g_trace)
        fprintf(stderr, "fuzz_sdk: %.48s... -> %s (%s)\n", what, km_err_name(err), km_sdk_last_error(sdk));
    return err;
}

static km_sdk *new_sdk(void) {
    km_sdk *sdk = NULL;
    if (km_sdk_new(&sdk, fz_ctx(), "http://127.0.0.1:9") != KM_OK ||
        km_sdk_trust_root(sdk, UINT32_MAX, (const unsigned char *)FZ_DEV_ROOT_PEM, strlen(FZ_DEV_ROOT_PEM)) !=
            KM_OK ||
        km_sdk_pin_pcr(sdk, 0, FZ_SDK_PCR0, sizeof FZ_SDK_PCR0) != KM_OK)
        abort();
    return sdk;
}

static km_sdk_session *import_session(void) {
    char *json = fz_sdk_session_json(g_rich);
    km_sdk_session *s = NULL;
    if (km_sdk_session_import(fz_ctx(), json, &s) != KM_OK) abort();
    free(json);
    return s;
}

/* Join every participant; returns 1 if all joined. */
static int join_all(km_sdk *sdk, km_sdk_session *s) {
    int all = 1;
    for (size_t i = 0; i < FZ_SDK_N; i++) {
        unsigned char sk[32], ak[32];
        fz_sdk_user_sk(i, sk);
        fz_sdk_auth_sk(i, ak);
        if (OP(sdk, km_sdk_keygen_join(sdk, s, i, sk, ak, 0)) != KM_OK) all = 0;
    }
    return all;
}

static void wait_keygen(km_sdk *sdk, km_sdk_session *s, int all_joined, const km_tweak *tweak) {
    km_sdk_keygen_result r;
    if (OP(sdk, km_sdk_keygen_wait(sdk, s, WAIT_S, &r)) == KM_OK) {
        if (all_joined) check_keygen(&r, tweak, g_rich);
        km_sdk_keygen_result_clear(&r);
    }
}

static void sign_one_request(km_sdk *sdk, const km_sdk_session *s, int all_joined, const km_tweak *tweak) {
    km_sign_item items[FZ_SDK_MAX_ITEMS];
    size_t n = fz_sdk_items(items, g_rich);
    km_uuid sid;
    fz_sdk_uuid(FZ_SDK_TAG_SIGNING, &sid);
    km_sdk_sign_result r;
    if (OP(sdk, km_sdk_sign(sdk, s, &sid, items, n, 60, WAIT_S, &r)) == KM_OK)
        check_sign(&r, items, n, all_joined, tweak);
    km_sdk_sign_result_clear(&r);
}

static void sign_two_requests(km_sdk *sdk, const km_sdk_session *s, int all_joined, const km_tweak *tweak) {
    km_sign_item items[FZ_SDK_MAX_ITEMS];
    size_t n = fz_sdk_items(items, g_rich);
    km_uuid sid;
    fz_sdk_uuid(FZ_SDK_TAG_SIGNING, &sid);
    km_sdk_sign_result r;
    (void)OP(sdk,
             km_sdk_sign_create(sdk, s, &sid, items, n, 60)); /* a wait follows whatever the create said */
    if (OP(sdk, km_sdk_sign_wait(sdk, s, &sid, items, n, WAIT_S, &r)) == KM_OK)
        check_sign(&r, items, n, all_joined, tweak);
    km_sdk_sign_result_clear(&r);
}

static void single_key(km_sdk *sdk) {
    km_uuid kid, uid;
    fz_sdk_uuid(FZ_SDK_TAG_KEY, &kid);
    fz_sdk_uuid(FZ_SDK_TAG_KEYUSER, &uid);
    unsigned char sk[32], ak[32], pub[33], sig[64];
    fz_sdk_user_sk(4, sk);
    fz_sdk_auth_sk(4, ak);
    fz_pub33(sk, pub);
    uint32_t eid;
    (void)OP(sdk, km_sdk_key_import(sdk, &kid, &uid, sk, ak, 0, &eid));
    if (OP(sdk, km_sdk_key_sign(sdk, &kid, &uid, pub, ak, KM_KEY_ALGO_SCHNORR, FZ_SDK_MSG, sizeof FZ_SDK_MSG,
                                0, WAIT_S, sig)) == KM_OK)
        check_schnorr(sig, FZ_SDK_MSG, sizeof FZ_SDK_MSG, pub + 1,
                      "key sign: a Schnorr signature that does not verify");
    if (OP(sdk, km_sdk_key_sign(sdk, &kid, &uid, pub, ak, KM_KEY_ALGO_ECDSA, FZ_SDK_MSG, sizeof FZ_SDK_MSG, 1,
                                WAIT_S, sig)) == KM_OK) {
        const secp256k1_context *secp = km_ctx_secp(fz_ctx());
        secp256k1_ecdsa_signature es;
        secp256k1_pubkey pk;
        if (!secp256k1_ecdsa_signature_parse_compact(secp, &es, sig) ||
            !secp256k1_ec_pubkey_parse(secp, &pk, pub, 33) ||
            !secp256k1_ecdsa_verify(secp, &es, FZ_SDK_MSG, &pk))
            fail("key sign: an ECDSA signature that does not verify (or not low-S) accepted");
    }
    (void)OP(sdk, km_sdk_key_delete(sdk, &kid, &uid, ak));
}

/* The rest of the input is a session invitation: what imports must export,
 * import again and export to the very same text; what is refused must
 * leave no session. */
static void session_json(void) {
    size_t len;
    const uint8_t *p = fz_rest(&g_in, &len);
    char *text = fz_strndup(p, len);
    km_sdk_session *s = (km_sdk_session *)1, *again = NULL;
    char *e1 = NULL, *e2 = NULL;
    km_err err = km_sdk_session_import(fz_ctx(), text, &s);
    if (g_trace) fprintf(stderr, "fuzz_sdk: session import -> %s\n", km_err_name(err));
    if (err) {
        if (s) fail("session: a refused import returned a session");
        free(text);
        return;
    }
    size_t n = 0;
    km_uuid kid, uid;
    uint32_t eid;
    if (km_sdk_session_info(s, &kid, &n) != KM_OK || n < 1 || n > KM_SDK_MAX_PARTICIPANTS ||
        km_sdk_session_participant(s, n - 1, &uid, &eid) != KM_OK ||
        km_sdk_session_participant(s, n, &uid, &eid) != KM_ERR_RANGE)
        fail("session: an imported session answers info wrongly");
    if (km_sdk_session_export(s, &e1) != KM_OK || km_sdk_session_import(fz_ctx(), e1, &again) != KM_OK ||
        km_sdk_session_export(again, &e2) != KM_OK || strcmp(e1, e2))
        fail("session: an imported session does not export and import again to the same text");
    free(e1);
    free(e2);
    km_sdk_session_free(again);
    km_sdk_session_free(s);
    free(text);
}

static void run(uint8_t scenario) {
    km_sdk *sdk = new_sdk();
    km_sdk_session *s = NULL;
    km_tweak bip86;
    km_tweak_bip86(&bip86);
    unsigned char pub[33];
    switch ((scenario & (FZ_SDK_RICH - 1)) % SC_COUNT) {
    case SC_VERIFY_ALL: {
        size_t n = 0;
        (void)OP(sdk, km_sdk_verify_enclaves(sdk, &n));
        break;
    }
    case SC_COORDINATOR: {
        (void)OP(sdk, km_sdk_verify_enclave(sdk, FZ_SDK_ENCLAVE, pub));
        km_uuid users[FZ_SDK_N];
        for (size_t i = 0; i < FZ_SDK_N; i++)
            fz_sdk_uuid((uint8_t)(FZ_SDK_TAG_USER + i), &users[i]);
        km_sdk_keygen_params p = {.n_participants = FZ_SDK_N, .user_ids = users, .timeout_secs = 60};
        p.tweak = bip86;
        uint16_t members[1] = {FZ_SDK_SUBSET_MEMBERS[0]};
        km_subset_def sub = {.n = 1, .members = members};
        fz_sdk_uuid(FZ_SDK_TAG_SUBSET, &sub.id);
        if (g_rich) {
            p.n_subsets = 1;
            p.subsets = &sub;
        }
        if (OP(sdk, km_sdk_keygen_create(sdk, &p, &s)) != KM_OK) break;
        int all = join_all(sdk, s);
        wait_keygen(sdk, s, all, &bip86);
        sign_one_request(sdk, s, all, &bip86);
        break;
    }
    case SC_IMPORTED: {
        s = import_session();
        (void)OP(sdk, km_sdk_verify_enclave(sdk, FZ_SDK_ENCLAVE, pub));
        int all = join_all(sdk, s);
        wait_keygen(sdk, s, all, &bip86);
        sign_two_requests(sdk, s, all, &bip86);
        break;
    }
    case SC_IMPORTED_NO_WAIT:
        s = import_session();
        sign_one_request(sdk, s, 0, &bip86);
        break;
    case SC_SINGLE_KEY:
        (void)OP(sdk, km_sdk_verify_enclave(sdk, FZ_SDK_ENCLAVE, pub));
        single_key(sdk);
        break;
    case SC_APPROVE: {
        s = import_session();
        km_sign_item items[FZ_SDK_MAX_ITEMS];
        size_t n = fz_sdk_items(items, g_rich);
        km_uuid sid;
        fz_sdk_uuid(FZ_SDK_TAG_SIGNING, &sid);
        unsigned char ak[32];
        fz_sdk_auth_sk(0, ak);
        (void)OP(sdk, km_sdk_sign_approve(sdk, s, 0, ak, &sid, items, n));
        sign_two_requests(sdk, s, 0, &bip86);
        break;
    }
    case SC_SESSION_JSON:
        session_json();
        break;
    }
    km_sdk_session_free(s);
    km_sdk_free(sdk);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    g_trace = getenv("FZ_SDK_TRACE") != NULL;
    (void)fz_ctx(); /* the context takes real randomness, before any fake */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    g_in.p = data + 1;
    g_in.left = size - 1;
    g_mono_ms = FAKE_MONO0;
    g_calls = 0;
    g_rich = (data[0] & FZ_SDK_RICH) != 0;
    g_fake = 1;
    run(data[0]);
    g_fake = 0;
    return 0;
}
