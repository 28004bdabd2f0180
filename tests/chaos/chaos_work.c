/* chaos_work.c — the client threads of keymeld-chaos: keygens of 2..5
 * participants (default tweak none or BIP-86, sometimes a subset, sometimes
 * a participant who must approve) and, on each completed one, 1..3 signing
 * batches of 1..4 items mixing plain signatures, adaptor Single/And/Or,
 * subset items and per-item tweaks. Everything goes through the client SDK.
 *
 * Outages are ridden out the way a real client would: the SDK already
 * repeats a POST with the same bytes for 20 s and long polls through
 * transport errors; on top of that a call that still ends in a transport
 * error or a 5xx is repeated (same handle, so creates and registrations
 * resend the very same bytes: idempotent) until the run's hard deadline.
 * A keygen create the gateway never acknowledged cannot be repeated (the SDK
 * makes fresh ids each call): it is counted, not recorded. Anything refused
 * for another reason is a violation. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chaos.h"
#include "cli/devnet.h"
#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/musig.h"
#include "keymeld/secret.h"
#include "keymeld/single.h"

#define CH_WAIT_S 30 /* one wait call; repeated until the hard deadline */

uint64_t ch_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ch_sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

uint64_t ch_rng(uint64_t *x) {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

void ch_violation(ch_run *run, const char *fmt, ...) {
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&run->mu);
    if (run->violations++ == 0) snprintf(run->first_violation, sizeof run->first_violation, "%s", msg);
    pthread_mutex_unlock(&run->mu);
    fprintf(stderr, "chaos: VIOLATION: %s\n", msg);
}

km_err ch_sdk_open(ch_run *run, km_sdk **out) {
    km_err err = km_sdk_new(out, run->ctx, run->t.base_url);
    for (int i = 0; !err && i < run->n_enclaves; i++)
        err = km_sdk_trust_root(*out, (uint32_t)i, run->roots[i].data, run->roots[i].len);
    if (!err) err = km_sdk_pin_pcr(*out, 0, run->pcr0, sizeof run->pcr0);
    size_t n = 0;
    if (!err) err = km_sdk_verify_enclaves(*out, &n);
    if (!err && n != (size_t)run->n_enclaves) err = KM_ERR_STATE;
    return err;
}

/* A failure that an outage explains: no answer, or 502/503/504 (the SDK
 * records "...: HTTP 503 ..."). A 500 is the gateway's own fault: not
 * excused. */
static int transient(km_err e, const km_sdk *sdk) {
    if (e == KM_ERR_IO) return 1;
    const char *m = km_sdk_last_error(sdk);
    return e == KM_ERR_STATE && (strstr(m, "HTTP 502") || strstr(m, "HTTP 503") || strstr(m, "HTTP 504"));
}

/* A create never acknowledged: counted, and the first reason kept. */
static void unacked(ch_run *run, atomic_uint *counter, const km_sdk *sdk) {
    atomic_fetch_add(counter, 1);
    pthread_mutex_lock(&run->mu);
    if (!run->first_unacked[0])
        snprintf(run->first_unacked, sizeof run->first_unacked, "%s", km_sdk_last_error(sdk));
    pthread_mutex_unlock(&run->mu);
}

/* May a failed call be repeated? Counts the repeat. */
static int may_retry(ch_run *run, km_err e, const km_sdk *sdk) {
    if (!(e == KM_ERR_RANGE || transient(e, sdk)) || ch_now_ms() >= run->hard_end_ms) return 0;
    atomic_fetch_add(&run->retries, 1);
    ch_sleep_ms(100);
    return 1;
}

static int append(ch_run *run, void ***arr, size_t *n, size_t *cap, void *p) {
    pthread_mutex_lock(&run->mu);
    int ok = 1;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        void **a = realloc(*arr, nc * sizeof *a);
        if (a) {
            *arr = a;
            *cap = nc;
        } else {
            ok = 0;
        }
    }
    if (ok) (*arr)[(*n)++] = p;
    pthread_mutex_unlock(&run->mu);
    return ok;
}

static km_uuid new_id(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    km_uuid u;
    memset(&u, 0, sizeof u);
    if (km_uuid_v7(&u, (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u) != KM_OK) abort();
    return u;
}

/* ---- keygen ----------------------------------------------------------------------- */

/* The aggregate of members (NULL: everyone) of kg under tweak, from the
 * client's own keys. Returns KM_OK or the aggregation's error. */
static km_err own_key(ch_run *run, const ch_keygen *kg, const uint16_t *members, size_t n, const km_tweak *tw,
                      unsigned char out[32]) {
    unsigned char keys[CH_MAX_N][33];
    for (size_t i = 0; i < n; i++)
        memcpy(keys[i], kg->p[members ? members[i] : i].pub, 33);
    km_musig_keyagg ka;
    km_err err = km_musig_key_agg(run->ctx, &ka, &keys[0][0], n, NULL);
    if (!err) err = km_musig_keyagg_tweak(run->ctx, &ka, tw);
    if (!err) memcpy(out, ka.output_xonly, 32);
    return err;
}

int ch_keygen_wait(ch_run *run, km_sdk *sdk, ch_keygen *kg, unsigned wait_s) {
    const int again = kg->completed || kg->failed;
    for (;;) {
        km_sdk_keygen_result res;
        km_err err = km_sdk_keygen_wait(sdk, kg->s, wait_s, &res);
        if (err == KM_OK) {
            unsigned char mine[32];
            km_err e2 = own_key(run, kg, NULL, kg->n, &kg->tweak, mine);
            if (e2 || memcmp(mine, res.output_xonly, 32) || res.n_participants != kg->n)
                ch_violation(run, "keygen result is not the key the client aggregates itself");
            if (again && (kg->failed || memcmp(kg->output_xonly, res.output_xonly, 32)))
                ch_violation(run, "keygen outcome changed: %s, now completed",
                             kg->failed ? "was failed" : "another key");
            memcpy(kg->output_xonly, res.output_xonly, 32);
            kg->completed = 1;
            kg->confirmed = again;
            km_sdk_keygen_result_clear(&res);
            return 1;
        }
        const char *why = km_sdk_last_error(sdk);
        if (err == KM_ERR_STATE && !strncmp(why, "keygen failed: ", 15)) {
            if (again && kg->completed)
                ch_violation(run, "keygen outcome changed: was completed, now failed");
            if (!again) snprintf(kg->reason, sizeof kg->reason, "%s", why + 15);
            kg->failed = 1;
            kg->confirmed = again;
            return 1;
        }
        if (err == KM_ERR_VERIFY || err == KM_ERR_DECRYPT) {
            ch_violation(run, "keygen result refused by the SDK: %s", why);
            kg->failed = 1;
            snprintf(kg->reason, sizeof kg->reason, "client check: %s", why);
            return 1;
        }
        if (!may_retry(run, err, sdk)) {
            if (!again) snprintf(kg->reason, sizeof kg->reason, "wait: %s (%s)", km_err_name(err), why);
            return 0;
        }
    }
}

/* Create and join one keygen; returns it (recorded) if acknowledged. */
static ch_keygen *keygen(ch_client *c, km_sdk *sdk, uint64_t *rng) {
    ch_run *run = c->run;
    ch_keygen *kg = calloc(1, sizeof *kg);
    if (!kg) abort();
    kg->n = 2 + (size_t)(ch_rng(rng) % (CH_MAX_N - 1));
    for (size_t i = 0; i < kg->n; i++)
        if (km_devnet_keypair(run->ctx, kg->p[i].sk, kg->p[i].pub, NULL) != KM_OK ||
            km_devnet_keypair(run->ctx, kg->p[i].auth, NULL, NULL) != KM_OK)
            abort();
    if (ch_rng(rng) % 2)
        km_tweak_bip86(&kg->tweak);
    else
        km_tweak_none(&kg->tweak);
    kg->has_subset = kg->n >= 3 && ch_rng(rng) % 3 == 0;
    kg->approval = ch_rng(rng) % 4 == 0;
    km_subset_def sub;
    if (kg->has_subset) {
        kg->subset_id = new_id();
        kg->subset_members[0] = 0;
        kg->subset_members[1] = 1;
        sub.id = kg->subset_id;
        sub.n = 2;
        sub.members = kg->subset_members;
    }
    km_sdk_keygen_params kp;
    memset(&kp, 0, sizeof kp);
    kp.n_participants = kg->n;
    kp.tweak = kg->tweak;
    kp.n_subsets = kg->has_subset ? 1 : 0;
    kp.subsets = kg->has_subset ? &sub : NULL;
    kp.timeout_secs = 3600;
    km_err err = km_sdk_keygen_create(sdk, &kp, &kg->s);
    if (err) {
        if (transient(err, sdk))
            unacked(run, &run->kg_unacked, sdk);
        else
            ch_violation(run, "keygen create refused: %s", km_sdk_last_error(sdk));
        km_wipe(kg, sizeof *kg);
        free(kg);
        return NULL;
    }
    kg->acked = 1;
    size_t n_dummy;
    if (km_sdk_session_info(kg->s, &kg->id, &n_dummy) != KM_OK) abort();
    if (!append(run, (void ***)&run->kgs, &run->n_kgs, &run->cap_kgs, kg)) abort();

    kg->joined = 1;
    for (size_t i = 0; i < kg->n && kg->joined; i++) {
        for (;;) {
            err = km_sdk_keygen_join(sdk, kg->s, i, kg->p[i].sk, kg->p[i].auth, kg->approval && i == 0);
            if (!err || !may_retry(run, err, sdk)) break;
        }
        if (err) {
            kg->joined = 0;
            snprintf(kg->reason, sizeof kg->reason, "join %zu: %s", i, km_sdk_last_error(sdk));
            ch_violation(run, "keygen join %zu not accepted: %s", i, km_sdk_last_error(sdk));
        }
    }
    if (kg->joined) (void)ch_keygen_wait(run, sdk, kg, CH_WAIT_S);
    return kg;
}

/* ---- signing ---------------------------------------------------------------------- */

static void make_item(ch_run *run, const ch_keygen *kg, uint64_t *rng, km_sign_item *it,
                      unsigned char sec[2][32]) {
    memset(it, 0, sizeof *it);
    it->id = new_id();
    if (km_random_bytes(it->msg, 32) != KM_OK) abort();
    unsigned r = (unsigned)(ch_rng(rng) % 100);
    if (r < 55) {
        it->adaptor = KM_ADAPTOR_NONE;
    } else if (r < 70) {
        it->adaptor = KM_ADAPTOR_SINGLE;
        it->n_points = 1;
    } else if (r < 85) {
        it->adaptor = KM_ADAPTOR_AND;
        it->n_points = 2;
    } else {
        it->adaptor = KM_ADAPTOR_OR;
        it->n_points = 2;
    }
    for (uint16_t k = 0; k < it->n_points; k++)
        if (km_devnet_keypair(run->ctx, sec[k], NULL, NULL) != KM_OK ||
            km_adaptor_point_from_secret(run->ctx, it->points[k], sec[k]) != KM_OK)
            abort();
    if (kg->has_subset && ch_rng(rng) % 3 == 0) {
        it->has_subset = 1;
        it->subset_id = kg->subset_id;
    }
    if (ch_rng(rng) % 8 == 0) { /* this item's own tweak, the other one than the default */
        it->own_tweak = 1;
        if (kg->tweak.mode == KM_TWEAK_NONE)
            km_tweak_bip86(&it->tweak);
        else
            km_tweak_none(&it->tweak);
    }
}

static void record_R(ch_run *run, const unsigned char x[32]) {
    pthread_mutex_lock(&run->mu);
    if (run->n_R == run->cap_R) {
        size_t nc = run->cap_R ? run->cap_R * 2 : 1024;
        unsigned char(*a)[32] = realloc(run->R, nc * 32);
        if (!a) abort();
        run->R = a;
        run->cap_R = nc;
    }
    memcpy(run->R[run->n_R++], x, 32);
    pthread_mutex_unlock(&run->mu);
}

/* One unit: a BIP-340 signature, or a pre-signature for point T that the
 * secret t completes. Records x(R') and, for an adaptor, x(R' - T). */
static int check_unit(ch_run *run, const km_sdk_unit *u, const unsigned char *T, const unsigned char *t,
                      const unsigned char key[32], const unsigned char msg[32], char *why, size_t cap) {
    if (!T) {
        if (u->has_T || km_single_schnorr_verify(run->ctx, u->sig, msg, 32, key) != KM_OK) {
            snprintf(why, cap, "signature does not verify");
            return 0;
        }
        record_R(run, u->sig);
        return 1;
    }
    unsigned char sig[64], legacy[65];
    if (!u->has_T || memcmp(u->T, T, 33)) {
        snprintf(why, cap, "pre-signature for another adaptor point");
        return 0;
    }
    if (km_single_schnorr_verify(run->ctx, u->sig, msg, 32, key) == KM_OK) {
        snprintf(why, cap, "a pre-signature verifies as a plain signature");
        return 0;
    }
    if (km_adaptor_presig_verify(run->ctx, u->sig, T, key, msg) != KM_OK ||
        km_adaptor_adapt(run->ctx, sig, u->sig, t, key, msg) != KM_OK ||
        km_single_schnorr_verify(run->ctx, sig, msg, 32, key) != KM_OK ||
        km_adaptor_legacy_from_presig(run->ctx, legacy, u->sig, T, key, msg) != KM_OK) {
        snprintf(why, cap, "pre-signature does not verify or complete");
        return 0;
    }
    record_R(run, u->sig);
    static const unsigned char zero[33];
    if (memcmp(legacy, zero, 33)) record_R(run, legacy + 1);
    return 1;
}

int ch_check_result(ch_run *run, ch_signing *s, const km_sdk_sign_result *res) {
    const ch_keygen *kg = s->kg;
    char why[120] = "";
    if (res->n != s->n_items) {
        snprintf(s->reason, sizeof s->reason, "result: %zu items, %zu asked", res->n, s->n_items);
        return 0;
    }
    for (size_t i = 0; i < s->n_items; i++) {
        const km_sign_item *it = &s->items[i];
        const km_sdk_item_result *r = &res->items[i];
        unsigned char key[32];
        const km_tweak *tw = it->own_tweak ? &it->tweak : &kg->tweak;
        km_err err = it->has_subset ? own_key(run, kg, kg->subset_members, 2, tw, key)
                                    : own_key(run, kg, NULL, kg->n, tw, key);
        unsigned units = it->adaptor == KM_ADAPTOR_OR ? it->n_points : 1;
        if (err || memcmp(r->item_id.b, it->id.b, 16) || r->adaptor != it->adaptor || r->n_units != units ||
            memcmp(r->key_xonly, key, 32) ||
            (!it->has_subset && !it->own_tweak && memcmp(key, kg->output_xonly, 32))) {
            snprintf(s->reason, sizeof s->reason, "item %zu: another item, shape or key than asked", i);
            return 0;
        }
        int ok = 1;
        if (it->adaptor == KM_ADAPTOR_NONE) {
            ok = check_unit(run, &r->units[0], NULL, NULL, key, it->msg, why, sizeof why);
        } else if (it->adaptor == KM_ADAPTOR_SINGLE) {
            ok =
                check_unit(run, &r->units[0], it->points[0], s->secrets[i][0], key, it->msg, why, sizeof why);
        } else if (it->adaptor == KM_ADAPTOR_AND) {
            unsigned char T[33], t[32];
            const unsigned char *pts[2] = {it->points[0], it->points[1]};
            const unsigned char *secs[2] = {s->secrets[i][0], s->secrets[i][1]};
            ok = km_adaptor_point_sum(run->ctx, T, pts, 2) == KM_OK &&
                 km_adaptor_secret_sum(run->ctx, t, secs, 2) == KM_OK &&
                 check_unit(run, &r->units[0], T, t, key, it->msg, why, sizeof why);
            km_wipe(t, sizeof t);
        } else {
            for (unsigned k = 0; ok && k < units; k++)
                ok = check_unit(run, &r->units[k], it->points[k], s->secrets[i][k], key, it->msg, why,
                                sizeof why);
        }
        if (!ok) {
            snprintf(s->reason, sizeof s->reason, "item %zu: %s", i, why[0] ? why : "adaptor sums");
            return 0;
        }
        s->units_verified += units;
    }
    return 1;
}

/* Is res the result first received (kept in s->units)? Keeps it if s has none. */
static int same_units(ch_signing *s, const km_sdk_sign_result *res, int keep) {
    if (res->n != s->n_items) return 0;
    for (size_t i = 0; i < res->n; i++)
        for (unsigned k = 0; k < res->items[i].n_units && k < 2; k++) {
            if (keep)
                memcpy(s->units[i][k], res->items[i].units[k].sig, 64);
            else if (memcmp(s->units[i][k], res->items[i].units[k].sig, 64))
                return 0;
        }
    return 1;
}

int ch_signing_wait(ch_run *run, km_sdk *sdk, ch_signing *s, unsigned wait_s) {
    const int again = s->completed || s->failed;
    for (;;) {
        km_sdk_sign_result res;
        km_err err = km_sdk_sign_wait(sdk, s->kg->s, &s->id, s->items, s->n_items, wait_s, &res);
        if (err == KM_OK) {
            if (!again) {
                if (!ch_check_result(run, s, &res)) ch_violation(run, "signing result: %s", s->reason);
                (void)same_units(s, &res, 1);
            } else if (s->failed || !same_units(s, &res, 0)) {
                /* A session driven twice would show another result here. */
                ch_violation(run, "signing outcome changed: %s, now completed",
                             s->failed ? "was failed" : "another result");
            }
            s->completed = 1;
            s->confirmed = again;
            km_sdk_sign_result_clear(&res);
            return 1;
        }
        const char *why = km_sdk_last_error(sdk);
        if (err == KM_ERR_STATE && !strncmp(why, "signing failed: ", 16)) {
            if (again && s->completed)
                ch_violation(run, "signing outcome changed: was completed, now failed");
            if (!again) snprintf(s->reason, sizeof s->reason, "%s", why + 16);
            s->failed = 1;
            s->confirmed = again;
            return 1;
        }
        if (err == KM_ERR_VERIFY || err == KM_ERR_DECRYPT || err == KM_ERR_PARSE) {
            s->completed = 1;
            snprintf(s->reason, sizeof s->reason, "SDK refused the result: %s", why);
            ch_violation(run, "signing result refused by the SDK: %s", why);
            return 1;
        }
        if (!may_retry(run, err, sdk)) {
            if (!again) snprintf(s->reason, sizeof s->reason, "wait: %s (%s)", km_err_name(err), why);
            return 0;
        }
    }
}

/* Create (and approve) one signing session; recorded if acknowledged. */
static ch_signing *signing(ch_client *c, km_sdk *sdk, uint64_t *rng, ch_keygen *kg) {
    ch_run *run = c->run;
    ch_signing *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->kg = kg;
    s->id = new_id();
    s->n_items = 1 + (size_t)(ch_rng(rng) % CH_MAX_ITEMS);
    for (size_t i = 0; i < s->n_items; i++)
        make_item(run, kg, rng, &s->items[i], s->secrets[i]);
    km_err err;
    for (;;) {
        err = km_sdk_sign_create(sdk, kg->s, &s->id, s->items, s->n_items, 3600);
        if (!err || !may_retry(run, err, sdk)) break;
    }
    if (err) {
        if (transient(err, sdk) || err == KM_ERR_RANGE)
            unacked(run, &run->sg_unacked, sdk);
        else
            ch_violation(run, "signing create refused: %s", km_sdk_last_error(sdk));
        km_wipe(s, sizeof *s);
        free(s);
        return NULL;
    }
    s->acked = 1;
    atomic_fetch_add(&run->sessions_started, 1);
    if (!append(run, (void ***)&run->sgs, &run->n_sgs, &run->cap_sgs, s)) abort();
    if (!kg->approval) return s;
    /* The SDK's approval is deterministic: a repeat after a lost answer is
     * the same request and is answered like the first. */
    for (;;) {
        err = km_sdk_sign_approve(sdk, kg->s, 0, kg->p[0].auth, &s->id, s->items, s->n_items);
        if (!err || !may_retry(run, err, sdk)) break;
    }
    if (err) {
        snprintf(s->reason, sizeof s->reason, "approve: %s", km_sdk_last_error(sdk));
        ch_violation(run, "approval not accepted: %s", km_sdk_last_error(sdk));
    }
    return s;
}

static int more_work(const ch_run *run) {
    if (ch_now_ms() >= run->work_end_ms) return 0;
    return run->max_sessions == 0 || atomic_load(&run->sessions_started) < run->max_sessions;
}

void *ch_client_main(void *arg) {
    ch_client *c = arg;
    ch_run *run = c->run;
    uint64_t rng = run->seed ^ (0x9E3779B97F4A7C15ull * (c->index + 1));
    if (!rng) rng = 1;
    km_sdk *sdk = NULL;
    km_err err = ch_sdk_open(run, &sdk);
    if (err) {
        ch_violation(run, "client %u: SDK handle: %s (%s)", c->index, km_err_name(err),
                     sdk ? km_sdk_last_error(sdk) : "");
        km_sdk_free(sdk);
        return NULL;
    }
    while (more_work(run)) {
        ch_keygen *kg = keygen(c, sdk, &rng);
        if (!kg || !kg->completed) continue;
        ch_signing *batch[3];
        size_t n = 1 + (size_t)(ch_rng(&rng) % 3);
        /* Created back to back, then awaited: several sessions are in
         * flight at any kill. */
        for (size_t i = 0; i < n; i++)
            batch[i] = signing(c, sdk, &rng, kg);
        for (size_t i = 0; i < n; i++)
            if (batch[i]) (void)ch_signing_wait(run, sdk, batch[i], CH_WAIT_S);
    }
    km_sdk_free(sdk);
    return NULL;
}
