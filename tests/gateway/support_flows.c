/* support_flows.c — see support_flows.h. */
#include "support_flows.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/attestation.h"
#include "keymeld/ecies.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/single.h"

#ifndef KM_ENCLAVE_BIN
#error "KM_ENCLAVE_BIN must name the keymeld-enclave binary"
#endif

/* Pause between polls after a transport error or a 5xx (gateway restarting,
 * enclave being restored): short, the waits are bounded by their deadline. */
#define RETRY_PAUSE_MS 50
/* Longest single long poll: well under the client's 70 s call limit. */
#define LONG_POLL_MAX_S 30

/* ---- small helpers --------------------------------------------------------- */

uint64_t km_gwflow_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void km_gwflow_print(const char *label, const km_client_response *r) {
    fprintf(stderr, "%s: HTTP %ld %.*s\n", label, r->status,
            r->body.data ? (int)(r->body.len > 2000 ? 2000 : r->body.len) : 0,
            r->body.data ? (const char *)r->body.data : "");
}

const char *km_gwflow_str(const km_client_response *r, const char *name) {
    if (!r || !r->json) return NULL;
    return json_string_value(json_object_get(r->json, name));
}

/* A new JSON string of hex (NULL on allocation failure). */
static json_t *hexj(const unsigned char *p, size_t n) {
    char *s = malloc(2 * n + 1);
    if (!s) return NULL;
    json_t *j = km_hex_encode(s, 2 * n + 1, p, n) == KM_OK ? json_string(s) : NULL;
    free(s);
    return j;
}

static json_t *uuidj(const km_uuid *u) {
    char s[37];
    km_uuid_format(s, u);
    return json_string(s);
}

/* Decode a hex JSON string field into a new buffer. */
static km_err get_hex(const json_t *o, const char *name, km_buf *out) {
    km_buf_init(out);
    const char *s = json_string_value(json_object_get(o, name));
    if (!s) return KM_ERR_PARSE;
    size_t n = strlen(s);
    if (n % 2) return KM_ERR_PARSE;
    unsigned char *p = malloc(n / 2 + 1);
    if (!p) return KM_ERR_NOMEM;
    size_t got = 0;
    km_err err = km_hex_decode_var(p, n / 2 + 1, &got, s, n);
    if (!err) err = km_buf_put(out, p, got);
    free(p);
    return err;
}

/* One call; out is cleared first. */
static km_err call(km_client *c, const char *method, const char *target, const json_t *body,
                   const secp256k1_keypair *signer, km_client_response *out) {
    km_client_response_clear(out);
    return km_client_call(c, method, target, body, signer, out);
}

static km_client *client_of(km_gwflow *f, km_client *c) {
    return c ? c : f->client;
}

/* A throwaway key pair from a secret key (wiped by the caller). */
static km_err keypair_of(km_ctx *ctx, secp256k1_keypair *kp, const unsigned char sec[32]) {
    return secp256k1_keypair_create(km_ctx_secp(ctx), kp, sec) ? KM_OK : KM_ERR_INVALID_KEY;
}

/* PCR0 of a dev enclave is SHA-384 of its binary; hashed once per process. */
static pthread_once_t g_pcr0_once = PTHREAD_ONCE_INIT;
static unsigned char g_pcr0[48];
static int g_pcr0_ok;

static void pcr0_init(void) {
    int fd = open(KM_ENCLAVE_BIN, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    km_buf b;
    km_buf_init(&b);
    unsigned char chunk[65536];
    ssize_t r;
    int ok = 1;
    while ((r = read(fd, chunk, sizeof chunk)) != 0) {
        if (r < 0) {
            if (errno == EINTR) continue;
            ok = 0;
            break;
        }
        if (km_buf_put(&b, chunk, (size_t)r) != KM_OK) {
            ok = 0;
            break;
        }
    }
    close(fd);
    if (ok && b.len) {
        km_sha384(g_pcr0, b.data, b.len);
        g_pcr0_ok = 1;
    }
    km_buf_free(&b);
}

/* ---- flow lifetime ------------------------------------------------------------ */

km_err km_gwflow_new(km_gwflow *f, const km_gwtest *t, int n_users, int n_enclaves, const uint8_t *flags) {
    if (!f) return KM_ERR_ARG;
    memset(f, 0, sizeof *f);
    for (int u = 0; u < KM_GWFLOW_MAX_USERS; u++)
        km_buf_init(&f->w.records[u]);
    if (!t || !t->ctx || n_users < 1 || n_users > KM_GWFLOW_MAX_USERS || n_enclaves < 1 ||
        n_enclaves > t->n_enclaves || n_enclaves > KM_GWFLOW_MAX_ENCLAVES)
        return KM_ERR_ARG;
    for (int u = 0; flags && u < n_users; u++)
        if (flags[u] & ~KM_FLAG_REQUIRE_APPROVAL) return KM_ERR_ARG;
    if (pthread_mutex_init(&f->lock, NULL) != 0) return KM_ERR_NOMEM;
    f->lock_ok = 1;
    f->t = t;
    km_rounds_world *w = &f->w;
    w->ctx = t->ctx;
    w->n_users = n_users;
    w->n_enclaves = n_enclaves;
    f->n_enclaves = n_enclaves;
    km_err err = km_uuid_v7(&w->keygen_id, unix_ms());
    if (!err) err = km_random_bytes(w->secret, 32);
    if (!err) err = km_session_derive(w->ctx, w->secret, &w->session);
    for (int i = 0; i < n_enclaves; i++)
        f->enclave_ids[i] = (uint32_t)i;
    for (int u = 0; !err && u < n_users; u++) {
        err = km_uuid_v7(&w->users[u], unix_ms());
        w->assign[u] = (uint16_t)(u % n_enclaves);
        w->flags[u] = flags ? flags[u] : 0;
        if (!err) err = km_devnet_keypair(w->ctx, w->seckeys[u], w->pubkeys[u], NULL);
        if (!err) err = km_devnet_keypair(w->ctx, w->auth_sec[u], NULL, w->auth_x[u]);
    }
    km_tweak_bip86(&w->tweak);
    if (!err) err = km_gwtest_client(t, &f->client);
    return err;
}

void km_gwflow_free(km_gwflow *f) {
    if (!f) return;
    km_rounds_world *w = &f->w;
    free(w->seen_R);
    w->seen_R = NULL;
    w->n_seen_R = w->cap_seen_R = 0;
    for (int u = 0; u < KM_GWFLOW_MAX_USERS; u++) {
        km_buf_free(&w->records[u]);
        json_decref(f->reg_body[u]);
        f->reg_body[u] = NULL;
    }
    json_decref(f->create_body);
    f->create_body = NULL;
    km_session_free(w->session);
    w->session = NULL;
    km_wipe(w->seckeys, sizeof w->seckeys);
    km_wipe(w->auth_sec, sizeof w->auth_sec);
    km_wipe(w->secret, sizeof w->secret);
    km_client_free(f->client);
    f->client = NULL;
    if (f->lock_ok) pthread_mutex_destroy(&f->lock);
    f->lock_ok = 0;
}

km_err km_gwflow_reconnect(km_gwflow *f) {
    km_client_free(f->client);
    f->client = NULL;
    return km_gwtest_client(f->t, &f->client);
}

/* ---- attestation ---------------------------------------------------------------- */

km_err km_gwflow_attest_enclave(const km_gwtest *t, km_client *c, uint32_t id, unsigned char pub33[33],
                                long *http_status) {
    memset(pub33, 0, 33);
    if (http_status) *http_status = 0;
    if (!t || !c || id >= (uint32_t)t->n_enclaves) return KM_ERR_ARG;
    pthread_once(&g_pcr0_once, pcr0_init);
    if (!g_pcr0_ok) return KM_ERR_IO;
    unsigned char nonce[32], adv[33];
    char nonce_hex[65], target[160];
    km_client_response r = {0};
    km_buf doc, root;
    km_buf_init(&doc);
    km_buf_init(&root);
    km_attest_reason why = KM_ATTEST_OK;
    km_err err = km_random_bytes(nonce, sizeof nonce);
    if (!err) err = km_hex_encode(nonce_hex, sizeof nonce_hex, nonce, 32);
    if (err) return err;
    snprintf(target, sizeof target, "/api/v1/enclaves/%u?nonce=%s", id, nonce_hex);
    err = call(c, "GET", target, NULL, NULL, &r);
    if (err) goto out;
    if (http_status) *http_status = r.status;
    if (r.status != 200) {
        err = KM_ERR_STATE;
        goto out;
    }
    const char *pk = km_gwflow_str(&r, "public_key");
    if (!pk || strlen(pk) != 66 || km_hex_decode(adv, 33, pk, 66) != KM_OK) {
        err = KM_ERR_PARSE;
        goto out;
    }
    if ((err = get_hex(r.json, "attestation_document", &doc)) != KM_OK) goto out;
    /* The root is pinned from the enclave's own directory, never taken from
     * the gateway or the document. */
    if ((err = km_gwtest_ca_root(t, (int)id, &root)) != KM_OK) goto out;
    km_attest_pcr want = {.index = 0, .len = 48};
    memcpy(want.value, g_pcr0, 48);
    km_attest_policy pol = {.now = (uint64_t)time(NULL),
                            .max_age_ms = 60000,
                            .max_future_ms = 5000,
                            .pcrs = &want,
                            .pcr_count = 1,
                            .nonce = nonce,
                            .nonce_len = sizeof nonce,
                            .public_key = adv,
                            .public_key_len = 33};
    err = km_attest_verify(doc.data, doc.len, root.data, root.len, &pol, NULL, &why);
    if (err) {
        fprintf(stderr, "flows: attestation of enclave %u refused: %s\n", id, km_attest_reason_str(why));
        goto out;
    }
    /* The harness knows which key it started the enclave with: a gateway
     * advertising another (even attested) key is not the one configured. */
    if (memcmp(adv, t->enc[id].pub, 33) != 0) {
        err = KM_ERR_VERIFY;
        goto out;
    }
    memcpy(pub33, adv, 33);
out:
    km_client_response_clear(&r);
    km_buf_free(&doc);
    km_buf_free(&root);
    return err;
}

km_err km_gwflow_attest(km_gwflow *f, km_client *c) {
    c = client_of(f, c);
    for (int i = 0; i < f->n_enclaves; i++) {
        km_err err = km_gwflow_attest_enclave(f->t, c, f->enclave_ids[i], f->w.enc[i].pub, NULL);
        if (err) {
            f->detail = "attestation";
            return err;
        }
    }
    f->attested = 1;
    return KM_OK;
}

/* ---- keygen ------------------------------------------------------------------------ */

static km_err build_create_body(km_gwflow *f, uint32_t timeout_secs, uint32_t max_signings, json_t **out) {
    km_rounds_world *w = &f->w;
    *out = NULL;
    km_keygen_init init;
    memset(&init, 0, sizeof init);
    memcpy(init.session_secret, w->secret, 32);
    unsigned char pubs[KM_GWFLOW_MAX_ENCLAVES][33];
    for (int i = 0; i < f->n_enclaves; i++)
        memcpy(pubs[i], w->enc[i].pub, 33);
    init.n_enclaves = (uint16_t)f->n_enclaves;
    init.enclave_pubs = pubs;
    init.n_participants = (uint16_t)w->n_users;
    init.user_ids = w->users;
    init.enclave_index = w->assign;
    init.n_subsets = 0;
    init.subsets = NULL;
    init.tweak = w->tweak;
    km_buf pt, blob;
    km_buf_init(&pt);
    km_buf_init(&blob);
    unsigned char auth_x[32];
    km_session_auth_pubkey(w->session, auth_x);
    json_t *parts = json_array(), *inits = json_array();
    json_t *body = json_pack("{s:o,s:o,s:I,s:I}", "keygen_id", uuidj(&w->keygen_id), "session_auth_key",
                             hexj(auth_x, 32), "timeout_secs", (json_int_t)timeout_secs,
                             "max_signing_sessions", (json_int_t)max_signings);
    km_err err = (parts && inits && body) ? KM_OK : KM_ERR_NOMEM;
    if (!err) err = km_keygen_init_encode(&init, &pt);
    km_wipe(init.session_secret, 32);
    for (int i = 0; !err && i < f->n_enclaves; i++) {
        km_ad ad;
        err = km_ad_build(&ad, KM_AD_KEYGEN_INIT, &w->keygen_id, w->enc[i].pub, 33);
        if (!err) err = km_ecies_seal(w->ctx, w->enc[i].pub, ad.bytes, ad.len, pt.data, pt.len, &blob);
        if (!err &&
            json_array_append_new(inits, json_pack("{s:I,s:o}", "enclave_id", (json_int_t)f->enclave_ids[i],
                                                   "blob", hexj(blob.data, blob.len))) != 0)
            err = KM_ERR_NOMEM;
    }
    for (int u = 0; !err && u < w->n_users; u++)
        if (json_array_append_new(parts, json_pack("{s:o,s:I}", "user_id", uuidj(&w->users[u]), "enclave_id",
                                                   (json_int_t)f->enclave_ids[w->assign[u]])) != 0)
            err = KM_ERR_NOMEM;
    if (!err &&
        (json_object_set(body, "participants", parts) || json_object_set(body, "enclave_inits", inits)))
        err = KM_ERR_NOMEM;
    km_buf_free(&pt); /* holds the session secret */
    km_buf_free(&blob);
    json_decref(parts);
    json_decref(inits);
    if (err)
        json_decref(body);
    else
        *out = body;
    return err;
}

static km_err post_session(km_gwflow *f, km_client *c, const char *target, const json_t *body,
                           km_client_response *out) {
    return call(client_of(f, c), "POST", target, body, km_session_auth_keypair(f->w.session), out);
}

km_err km_gwflow_create_keygen(km_gwflow *f, km_client *c, uint32_t timeout_secs,
                               uint32_t max_signing_sessions, km_client_response *out) {
    if (!f->attested) return KM_ERR_STATE;
    pthread_mutex_lock(&f->lock);
    km_err err =
        f->create_body ? KM_OK : build_create_body(f, timeout_secs, max_signing_sessions, &f->create_body);
    pthread_mutex_unlock(&f->lock);
    if (err) return err;
    return post_session(f, c, "/api/v1/keygen", f->create_body, out);
}

static km_err build_register_body(km_gwflow *f, int u, json_t **out) {
    km_rounds_world *w = &f->w;
    *out = NULL;
    km_registration reg;
    unsigned char rp[KM_REGISTRATION_LEN];
    memcpy(reg.session_secret, w->secret, 32);
    memcpy(reg.seckey, w->seckeys[u], 32);
    memcpy(reg.auth_pub, w->auth_x[u], 32);
    reg.flags = w->flags[u];
    km_registration_encode(&reg, rp);
    km_wipe(&reg, sizeof reg);
    km_ad ad;
    km_buf blob;
    km_buf_init(&blob);
    km_err err = km_ad_build(&ad, KM_AD_REGISTER, &w->keygen_id, w->users[u].b, 16);
    if (!err) err = km_ecies_seal(w->ctx, w->enc[w->assign[u]].pub, ad.bytes, ad.len, rp, sizeof rp, &blob);
    km_wipe(rp, sizeof rp);
    if (!err) {
        *out = json_pack("{s:o,s:o,s:o,s:b}", "user_id", uuidj(&w->users[u]), "blob",
                         hexj(blob.data, blob.len), "auth_key", hexj(w->auth_x[u], 32), "require_approval",
                         (w->flags[u] & KM_FLAG_REQUIRE_APPROVAL) ? 1 : 0);
        if (!*out) err = KM_ERR_NOMEM;
    }
    km_buf_free(&blob);
    return err;
}

km_err km_gwflow_register(km_gwflow *f, km_client *c, int u, km_client_response *out) {
    if (u < 0 || u >= f->w.n_users) return KM_ERR_ARG;
    if (!f->attested) return KM_ERR_STATE;
    pthread_mutex_lock(&f->lock);
    km_err err = f->reg_body[u] ? KM_OK : build_register_body(f, u, &f->reg_body[u]);
    pthread_mutex_unlock(&f->lock);
    if (err) return err;
    char id[37], target[128];
    km_uuid_format(id, &f->w.keygen_id);
    snprintf(target, sizeof target, "/api/v1/keygen/%s/participants", id);
    /* Signed by the participant's own auth key: the gateway learns that the
     * registrant holds the key that will sign its approvals. */
    secp256k1_keypair kp;
    err = keypair_of(f->w.ctx, &kp, f->w.auth_sec[u]);
    if (!err) err = call(client_of(f, c), "POST", target, f->reg_body[u], &kp, out);
    km_wipe(&kp, sizeof kp);
    return err;
}

/* Check an opened keygen result against the client's own computation. */
static km_err check_keygen_result(km_gwflow *f, const unsigned char *res, size_t len) {
    km_rounds_world *w = &f->w;
    km_cursor cur;
    unsigned char agg[32], output[32], tweak_data[32];
    uint8_t parity, mode;
    uint16_t n;
    km_cursor_init(&cur, res, len);
    km_err err = km_cursor_get_bytes(&cur, agg, 32);
    if (!err) err = km_cursor_get_bytes(&cur, output, 32);
    if (!err) err = km_cursor_get_u8(&cur, &parity);
    if (!err) err = km_cursor_get_u8(&cur, &mode);
    if (!err) err = km_cursor_get_bytes(&cur, tweak_data, 32);
    if (!err) err = km_cursor_get_u16(&cur, &n);
    if (err || n != w->n_users) {
        f->detail = "keygen result malformed or another participant count";
        return KM_ERR_PARSE;
    }
    for (uint16_t i = 0; i < n; i++) {
        unsigned char pk[33];
        if (km_cursor_get_bytes(&cur, pk, 33) != KM_OK) return KM_ERR_PARSE;
        /* Every listed key must be the participant's own, in init order: a
         * substituted key would let someone else sign for the group. */
        if (memcmp(pk, w->pubkeys[i], 33) != 0) {
            f->detail = "keygen result lists another public key";
            return KM_ERR_VERIFY;
        }
    }
    if (mode != (uint8_t)w->tweak.mode) {
        f->detail = "keygen result names another tweak";
        return KM_ERR_VERIFY;
    }
    size_t bad;
    memset(&w->keyagg, 0, sizeof w->keyagg);
    err = km_musig_key_agg(w->ctx, &w->keyagg, &w->pubkeys[0][0], (size_t)w->n_users, &bad);
    if (!err) err = km_musig_keyagg_tweak(w->ctx, &w->keyagg, &w->tweak);
    if (err) {
        f->detail = "client key aggregation";
        return err;
    }
    if (memcmp(agg, w->keyagg.agg_xonly, 32) || memcmp(output, w->keyagg.output_xonly, 32)) {
        f->detail = "keygen result names another aggregate key";
        return KM_ERR_VERIFY;
    }
    return KM_OK;
}

/* The poll loop shared by the waits: GET target_base?wait=N signed by
 * signer until the "status" field is final or the deadline passes.
 * Returns KM_OK with out holding a final answer (*final_status names it),
 * KM_ERR_RANGE (deadline, last answer not final), KM_ERR_IO (deadline, no
 * answer), KM_ERR_NOT_FOUND (404), KM_ERR_STATE (another 4xx). */
static km_err poll_final(km_client *c, const char *target_base, const secp256k1_keypair *signer,
                         unsigned seconds, const char *const *finals, km_client_response *out,
                         const char **final_status) {
    uint64_t deadline = km_gwflow_now_ms() + (uint64_t)seconds * 1000u;
    km_err last = KM_ERR_IO;
    *final_status = NULL;
    for (;;) {
        uint64_t now = km_gwflow_now_ms();
        if (now >= deadline) return last;
        uint64_t left_s = (deadline - now) / 1000u;
        unsigned wait_s = left_s > LONG_POLL_MAX_S ? LONG_POLL_MAX_S : (unsigned)left_s;
        char target[256];
        snprintf(target, sizeof target, "%s?wait=%u", target_base, wait_s);
        km_err err = call(c, "GET", target, NULL, signer, out);
        if (err == KM_ERR_IO || (!err && out->status >= 500)) {
            last = err ? KM_ERR_IO : KM_ERR_RANGE;
            sleep_ms(RETRY_PAUSE_MS);
            continue;
        }
        if (err) return err;
        if (out->status == 404) return KM_ERR_NOT_FOUND;
        if (out->status != 200) return KM_ERR_STATE;
        last = KM_ERR_RANGE;
        const char *st = km_gwflow_str(out, "status");
        for (size_t i = 0; st && finals[i]; i++)
            if (!strcmp(st, finals[i])) {
                *final_status = finals[i];
                return KM_OK;
            }
        if (wait_s == 0) sleep_ms(RETRY_PAUSE_MS); /* less than a second left: do not spin */
    }
}

static const char *const FINALS[] = {"completed", "failed", NULL};

km_err km_gwflow_wait_keygen(km_gwflow *f, km_client *c, unsigned seconds, km_client_response *out) {
    char id[37], base[128];
    km_uuid_format(id, &f->w.keygen_id);
    snprintf(base, sizeof base, "/api/v1/keygen/%s", id);
    const char *st;
    km_err err =
        poll_final(client_of(f, c), base, km_session_auth_keypair(f->w.session), seconds, FINALS, out, &st);
    if (err) return err;
    if (!strcmp(st, "failed")) return KM_ERR_STATE;
    km_buf sealed;
    err = get_hex(out->json, "result", &sealed);
    if (err) {
        km_buf_free(&sealed);
        f->detail = "completed keygen without a result";
        return KM_ERR_PARSE;
    }
    unsigned char *res = malloc(sealed.len ? sealed.len : 1);
    size_t rl = 0;
    km_ad ad;
    pthread_mutex_lock(&f->lock);
    err = res ? km_ad_build(&ad, KM_AD_KEYGEN_RESULT, &f->w.keygen_id, NULL, 0) : KM_ERR_NOMEM;
    if (!err)
        err = km_session_open(f->w.session, ad.bytes, ad.len, sealed.data, sealed.len, res, sealed.len, &rl);
    if (err)
        f->detail = "open keygen result";
    else
        err = check_keygen_result(f, res, rl);
    if (!err) f->keygen_done = 1;
    pthread_mutex_unlock(&f->lock);
    free(res);
    km_buf_free(&sealed);
    return err;
}

/* A step of km_gwflow_keygen: the call must answer `want`. */
static km_err expect(km_err err, const km_client_response *r, long want, const char *what) {
    if (err) {
        fprintf(stderr, "flows: %s: %s\n", what, km_strerror(err));
        return err;
    }
    if (r->status != want) {
        km_gwflow_print(what, r);
        return KM_ERR_STATE;
    }
    return KM_OK;
}

km_err km_gwflow_keygen(km_gwflow *f, unsigned seconds) {
    km_client_response r = {0};
    km_err err = f->attested ? KM_OK : km_gwflow_attest(f, NULL);
    if (err) fprintf(stderr, "flows: attestation: %s\n", km_strerror(err));
    if (!err) err = expect(km_gwflow_create_keygen(f, NULL, 600, 0, &r), &r, 201, "create keygen");
    for (int u = 0; !err && u < f->w.n_users; u++)
        err = expect(km_gwflow_register(f, NULL, u, &r), &r, 201, "register");
    if (!err) {
        err = km_gwflow_wait_keygen(f, NULL, seconds, &r);
        if (err) {
            fprintf(stderr, "flows: keygen: %s (%s)\n", km_strerror(err), f->detail ? f->detail : "-");
            km_gwflow_print("keygen status", &r);
        }
    }
    km_client_response_clear(&r);
    return err;
}

/* ---- signing ------------------------------------------------------------------------ */

km_err km_gwflow_sign_body(km_gwflow *f, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                           uint32_t timeout_secs, json_t **body) {
    km_buf init;
    *body = NULL;
    pthread_mutex_lock(&f->lock);
    km_err err = km_rounds_sign_init_body(&f->w, signing_id, items, n, &init);
    pthread_mutex_unlock(&f->lock);
    /* init = keygen_id | signing_id | u32 len | sealed: only the sealed
     * batch travels in JSON, the ids are fields of their own. */
    if (!err && init.len <= 36) err = KM_ERR_PARSE;
    if (!err) {
        *body = json_pack("{s:o,s:o,s:o,s:I}", "signing_id", uuidj(signing_id), "keygen_id",
                          uuidj(&f->w.keygen_id), "items", hexj(init.data + 36, init.len - 36),
                          "timeout_secs", (json_int_t)timeout_secs);
        if (!*body) err = KM_ERR_NOMEM;
    }
    km_buf_free(&init);
    return err;
}

km_err km_gwflow_sign_post(km_gwflow *f, km_client *c, const json_t *body, km_client_response *out) {
    return post_session(f, c, "/api/v1/signing", body, out);
}

km_err km_gwflow_sign_create(km_gwflow *f, km_client *c, const km_uuid *signing_id, const km_sign_item *items,
                             size_t n, uint32_t timeout_secs, km_client_response *out) {
    json_t *body;
    km_err err = km_gwflow_sign_body(f, signing_id, items, n, timeout_secs, &body);
    if (!err) err = km_gwflow_sign_post(f, c, body, out);
    json_decref(body);
    return err;
}

km_err km_gwflow_approve_sig(km_gwflow *f, km_client *c, int u, const km_uuid *signing_id,
                             const unsigned char sig64[64], km_client_response *out) {
    if (u < 0 || u >= f->w.n_users) return KM_ERR_ARG;
    char sid[37], uid[37], target[160];
    km_uuid_format(sid, signing_id);
    km_uuid_format(uid, &f->w.users[u]);
    snprintf(target, sizeof target, "/api/v1/signing/%s/approve/%s", sid, uid);
    json_t *body = json_pack("{s:o}", "signature", hexj(sig64, 64));
    if (!body) return KM_ERR_NOMEM;
    secp256k1_keypair kp;
    km_err err = keypair_of(f->w.ctx, &kp, f->w.auth_sec[u]);
    if (!err) err = call(client_of(f, c), "POST", target, body, &kp, out);
    km_wipe(&kp, sizeof kp);
    json_decref(body);
    return err;
}

km_err km_gwflow_approve(km_gwflow *f, km_client *c, int u, const km_uuid *signing_id,
                         const km_sign_item *items, size_t n, km_client_response *out) {
    unsigned char sig[64];
    pthread_mutex_lock(&f->lock);
    km_err err = km_rounds_approval(&f->w, u, signing_id, items, n, sig);
    pthread_mutex_unlock(&f->lock);
    if (!err) err = km_gwflow_approve_sig(f, c, u, signing_id, sig, out);
    return err;
}

km_err km_gwflow_wait_signing(km_gwflow *f, km_client *c, const km_uuid *signing_id, unsigned seconds,
                              km_client_response *out, km_buf *plaintext) {
    km_buf_init(plaintext);
    char id[37], base[128];
    km_uuid_format(id, signing_id);
    snprintf(base, sizeof base, "/api/v1/signing/%s", id);
    const char *st;
    km_err err =
        poll_final(client_of(f, c), base, km_session_auth_keypair(f->w.session), seconds, FINALS, out, &st);
    if (err) return err;
    if (!strcmp(st, "failed")) return KM_ERR_STATE;
    km_buf sealed;
    err = get_hex(out->json, "result", &sealed);
    if (err) {
        km_buf_free(&sealed);
        f->detail = "completed signing without a result";
        return KM_ERR_PARSE;
    }
    pthread_mutex_lock(&f->lock);
    err = km_rounds_open_result(&f->w, signing_id, &sealed, plaintext);
    if (err) f->detail = f->w.detail;
    pthread_mutex_unlock(&f->lock);
    km_buf_free(&sealed);
    return err;
}

km_err km_gwflow_check_result(km_gwflow *f, const km_sign_item *items, const km_rounds_secrets *secrets,
                              size_t n, const km_buf *plaintext) {
    if (!f->keygen_done) return KM_ERR_STATE; /* no verified key to check against */
    pthread_mutex_lock(&f->lock);
    km_err err = km_rounds_check_result(&f->w, items, secrets, n, plaintext);
    if (err) f->detail = f->w.detail;
    pthread_mutex_unlock(&f->lock);
    return err;
}

/* ---- secrets in logs ----------------------------------------------------------------- */

int km_gwflow_secret_in_logs(const km_gwtest *t, const unsigned char *s, size_t n) {
    char lo[65], up[65];
    if (n > 32 || km_hex_encode(lo, sizeof lo, s, n) != KM_OK) return 1; /* fail closed */
    for (size_t i = 0; i < 2 * n; i++)
        up[i] = (lo[i] >= 'a' && lo[i] <= 'f') ? (char)(lo[i] - 'a' + 'A') : lo[i];
    up[2 * n] = '\0';
    const void *needles[3] = {s, lo, up};
    size_t lens[3] = {n, 2 * n, 2 * n};
    int found = 0;
    for (int k = 0; k < 3 && !found; k++) {
        int r = km_gwtest_log_contains(t, needles[k], lens[k]);
        if (r) found = r;
        for (int i = 0; !found && i < t->n_enclaves; i++) {
            r = km_gwtest_enclave_log_contains(t, i, needles[k], lens[k]);
            if (r) found = r;
        }
    }
    km_wipe(lo, sizeof lo);
    km_wipe(up, sizeof up);
    return found;
}

km_err km_gwflow_logs_clean(km_gwflow *f) {
    km_rounds_world *w = &f->w;
    unsigned char data_key[32], auth_sec[32];
    km_err err = km_session_derive_raw(w->ctx, w->secret, data_key, auth_sec);
    if (err) return err;
    struct {
        const unsigned char *p;
        const char *what;
    } s[3 + 2 * KM_GWFLOW_MAX_USERS];
    size_t n = 0;
    s[n].p = w->secret, s[n++].what = "session secret";
    s[n].p = data_key, s[n++].what = "session data key";
    s[n].p = auth_sec, s[n++].what = "session auth key";
    for (int u = 0; u < w->n_users; u++) {
        s[n].p = w->seckeys[u], s[n++].what = "participant secret key";
        s[n].p = w->auth_sec[u], s[n++].what = "participant auth key";
    }
    for (size_t i = 0; !err && i < n; i++) {
        int r = km_gwflow_secret_in_logs(f->t, s[i].p, 32);
        if (r < 0) err = KM_ERR_IO;
        if (r > 0) {
            f->detail = s[i].what;
            err = KM_ERR_STATE;
        }
    }
    km_wipe(data_key, sizeof data_key);
    km_wipe(auth_sec, sizeof auth_sec);
    return err;
}

/* ---- single-signer keys ---------------------------------------------------------------- */

km_err km_gwflow_key_new(km_ctx *ctx, km_gwflow_key *k) {
    memset(k, 0, sizeof *k);
    km_err err = km_uuid_v7(&k->key_id, unix_ms());
    if (!err) err = km_uuid_v7(&k->user_id, unix_ms());
    if (!err) err = km_devnet_keypair(ctx, k->seckey, k->pub33, k->xonly);
    if (!err) err = km_devnet_keypair(ctx, k->auth_sec, NULL, k->auth_x);
    if (err) km_gwflow_key_wipe(k);
    return err;
}

void km_gwflow_key_wipe(km_gwflow_key *k) {
    km_wipe(k->seckey, sizeof k->seckey);
    km_wipe(k->auth_sec, sizeof k->auth_sec);
}

km_err km_gwflow_key_import(const km_gwtest *t, km_client *c, km_gwflow_key *k, km_client_response *out) {
    km_client_response r = {0};
    json_t *body = json_pack("{s:o,s:o}", "key_id", uuidj(&k->key_id), "user_id", uuidj(&k->user_id));
    km_err err = body ? call(c, "POST", "/api/v1/keys/reserve", body, NULL, &r) : KM_ERR_NOMEM;
    json_decref(body);
    body = NULL;
    if (!err && r.status != 200) {
        km_gwflow_print("reserve", &r);
        err = KM_ERR_STATE;
    }
    json_int_t eid = -1;
    unsigned char adv[33];
    const char *pk = km_gwflow_str(&r, "enclave_public_key");
    if (!err) {
        eid = json_integer_value(json_object_get(r.json, "enclave_id"));
        if (!json_is_integer(json_object_get(r.json, "enclave_id")) || eid < 0 || eid >= t->n_enclaves ||
            !pk || strlen(pk) != 66 || km_hex_decode(adv, 33, pk, 66) != KM_OK)
            err = KM_ERR_PARSE;
    }
    /* Encrypt only to a key that the enclave itself attested just now. */
    if (!err) err = km_gwflow_attest_enclave(t, c, (uint32_t)eid, k->enclave_pub, NULL);
    if (!err && memcmp(adv, k->enclave_pub, 33) != 0) err = KM_ERR_VERIFY;
    km_client_response_clear(&r);
    if (err) return err;
    k->enclave_id = (uint32_t)eid;

    km_key_import imp;
    memcpy(imp.seckey, k->seckey, 32);
    memcpy(imp.auth_pub, k->auth_x, 32);
    imp.flags = 0;
    km_buf cmd;
    km_buf_init(&cmd);
    err = km_key_import_build(t->ctx, k->enclave_pub, &k->key_id, &k->user_id, &imp, &cmd);
    km_wipe(&imp, sizeof imp);
    /* cmd = key_id | user_id | u32 len | blob: the gateway takes the blob. */
    if (!err && cmd.len <= 36) err = KM_ERR_PARSE;
    if (!err) {
        body = json_pack("{s:o,s:o,s:I,s:o,s:o}", "key_id", uuidj(&k->key_id), "user_id", uuidj(&k->user_id),
                         "enclave_id", (json_int_t)k->enclave_id, "blob", hexj(cmd.data + 36, cmd.len - 36),
                         "auth_key", hexj(k->auth_x, 32));
        if (!body) err = KM_ERR_NOMEM;
    }
    km_buf_free(&cmd);
    secp256k1_keypair kp;
    if (!err) err = keypair_of(t->ctx, &kp, k->auth_sec);
    if (!err) err = call(c, "POST", "/api/v1/keys/import", body, &kp, out);
    km_wipe(&kp, sizeof kp);
    json_decref(body);
    return err;
}

km_err km_gwflow_key_sign(km_ctx *ctx, km_client *c, const km_gwflow_key *k, const km_uuid *request_id,
                          uint8_t algo, const unsigned char *msg, size_t msg_len,
                          unsigned char response_key32[32], km_client_response *out) {
    km_err err = km_random_bytes(response_key32, 32);
    if (err) return err;
    km_key_sign_req req = {.algo = algo,
                           .timestamp = (uint64_t)time(NULL),
                           .msg = msg,
                           .msg_len = msg_len,
                           .response_key = response_key32};
    km_buf cmd;
    km_buf_init(&cmd);
    err = km_key_sign_build(ctx, k->enclave_pub, &k->key_id, request_id, &req, NULL, &cmd);
    /* cmd = key_id | request_id | u32 len | blob | u8 has_approval */
    km_cursor cur;
    uint32_t len = 0;
    const unsigned char *blob = NULL;
    if (!err) {
        km_cursor_init(&cur, cmd.data, cmd.len);
        err = km_cursor_get_view(&cur, &blob, 32);
        if (!err) err = km_cursor_get_u32(&cur, &len);
        if (!err) err = km_cursor_get_view(&cur, &blob, len);
    }
    json_t *body = NULL;
    if (!err) {
        body = json_pack("{s:o,s:o,s:o,s:o}", "request_id", uuidj(request_id), "key_id", uuidj(&k->key_id),
                         "user_id", uuidj(&k->user_id), "blob", hexj(blob, len));
        if (!body) err = KM_ERR_NOMEM;
    }
    km_buf_free(&cmd);
    secp256k1_keypair kp;
    if (!err) err = keypair_of(ctx, &kp, k->auth_sec);
    if (!err) err = call(c, "POST", "/api/v1/sign/single", body, &kp, out);
    km_wipe(&kp, sizeof kp);
    json_decref(body);
    return err;
}

static const char *const KEYSIGN_FINALS[] = {"completed", "failed", NULL};

km_err km_gwflow_key_wait(km_ctx *ctx, km_client *c, const km_gwflow_key *k, const km_uuid *request_id,
                          uint8_t algo, const unsigned char *msg, size_t msg_len,
                          const unsigned char response_key32[32], unsigned seconds, km_client_response *out,
                          unsigned char sig64[64]) {
    memset(sig64, 0, 64);
    char id[37], base[128];
    km_uuid_format(id, request_id);
    snprintf(base, sizeof base, "/api/v1/sign/single/%s", id);
    secp256k1_keypair kp;
    const char *st = NULL;
    km_err err = keypair_of(ctx, &kp, k->auth_sec);
    if (!err) err = poll_final(c, base, &kp, seconds, KEYSIGN_FINALS, out, &st);
    km_wipe(&kp, sizeof kp);
    if (err) return err;
    if (!strcmp(st, "failed")) return KM_ERR_STATE;
    km_buf sealed;
    err = get_hex(out->json, "result", &sealed);
    if (!err)
        err = km_key_sign_result_open(ctx, response_key32, &k->key_id, request_id, algo, sealed.data,
                                      sealed.len, sig64);
    km_buf_free(&sealed);
    /* Opening proves only that someone knowing response_key made the blob:
     * the signature itself must verify under the imported key. */
    if (!err) {
        if (algo == KM_KEY_ALGO_SCHNORR)
            err = km_single_schnorr_verify(ctx, sig64, msg, msg_len, k->xonly);
        else if (algo == KM_KEY_ALGO_ECDSA && msg_len == 32)
            err = km_single_ecdsa_verify(ctx, sig64, msg, k->pub33);
        else
            err = KM_ERR_ARG;
    }
    if (err) memset(sig64, 0, 64);
    return err;
}

km_err km_gwflow_key_delete(km_ctx *ctx, km_client *c, const km_gwflow_key *k, km_client_response *out) {
    uint64_t ts = (uint64_t)time(NULL);
    unsigned char digest[32], sig[64];
    km_key_delete_digest(digest, &k->key_id, ts);
    km_err err = km_single_schnorr_sign(ctx, sig, digest, 32, k->auth_sec);
    if (err) return err;
    json_t *body = json_pack("{s:I,s:o}", "timestamp", (json_int_t)ts, "signature", hexj(sig, 64));
    if (!body) return KM_ERR_NOMEM;
    char uid[37], kid[37], target[128];
    km_uuid_format(uid, &k->user_id);
    km_uuid_format(kid, &k->key_id);
    snprintf(target, sizeof target, "/api/v1/keys/%s/%s", uid, kid);
    secp256k1_keypair kp;
    err = keypair_of(ctx, &kp, k->auth_sec);
    if (!err) err = call(c, "DELETE", target, body, &kp, out);
    km_wipe(&kp, sizeof kp);
    json_decref(body);
    return err;
}

/* ---- items --------------------------------------------------------------------------- */

km_err km_gwflow_item(km_sign_item *it) {
    memset(it, 0, sizeof *it);
    km_err err = km_uuid_v7(&it->id, unix_ms());
    if (!err) err = km_random_bytes(it->msg, 32);
    it->adaptor = KM_ADAPTOR_NONE;
    return err;
}

km_err km_gwflow_adaptor_item(km_ctx *ctx, km_sign_item *it, unsigned char secret32[32]) {
    km_err err = km_gwflow_item(it);
    if (!err) err = km_devnet_keypair(ctx, secret32, NULL, NULL);
    if (!err) err = km_adaptor_point_from_secret(ctx, it->points[0], secret32);
    it->adaptor = KM_ADAPTOR_SINGLE;
    it->n_points = 1;
    return err;
}
