/* demo_stress.c — N signing sessions in flight at once: worker threads, each
 * with its own SDK handle (verified enclaves, its own copy of the session),
 * first submit their share of the sessions, then wait for each; every
 * signature is verified with libsecp256k1. Prints the throughput. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/demos/demos.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"

typedef struct stress_shared {
    km_demo_env *env;
    const char *session_json;
    unsigned char output_xonly[32];
    unsigned count, threads;
    atomic_uint submitted, verified, failed, finished;
} stress_shared;

typedef struct stress_worker {
    stress_shared *sh;
    unsigned index;
    pthread_t thread;
    km_err err;
    char what[160];
} stress_worker;

static void item_for(unsigned i, km_sign_item *it) {
    memset(it, 0, sizeof *it);
    char label[64];
    snprintf(label, sizeof label, "keymeld demo stress %u", i);
    km_sha256(it->msg, label, strlen(label));
}

static void *worker(void *arg) {
    stress_worker *w = arg;
    stress_shared *sh = w->sh;
    km_sdk *sdk = NULL;
    km_sdk_session *s = NULL;
    size_t mine = 0;
    for (unsigned i = w->index; i < sh->count; i += sh->threads)
        mine++;
    km_uuid *sids = calloc(mine ? mine : 1, sizeof *sids);
    km_sign_item *items = calloc(mine ? mine : 1, sizeof *items);
    km_err err = sids && items ? KM_OK : KM_ERR_NOMEM;
    size_t nv = 0;
    if (!err) err = km_tool_sdk_from_devnet(sh->env->ctx, sh->env->dev, &sdk);
    if (!err) err = km_sdk_verify_enclaves(sdk, &nv);
    if (!err) err = km_sdk_session_import(sh->env->ctx, sh->session_json, &s);
    if (err) snprintf(w->what, sizeof w->what, "worker setup: %s", sdk ? km_sdk_last_error(sdk) : "");
    /* Phase 1: submit every session of this worker, so that all N are in flight. */
    for (size_t k = 0; !err && k < mine; k++) {
        unsigned i = w->index + (unsigned)k * sh->threads;
        item_for(i, &items[k]);
        err = km_demo_item_id(&items[k].id);
        if (!err) err = km_uuid_v7(&sids[k], km_tool_unix_ms());
        if (!err) err = km_sdk_sign_create(sdk, s, &sids[k], &items[k], 1, 600);
        if (err)
            snprintf(w->what, sizeof w->what, "create %u: %s", i, km_sdk_last_error(sdk));
        else
            atomic_fetch_add(&sh->submitted, 1);
    }
    /* Phase 2: wait for and check each. */
    for (size_t k = 0; !err && k < mine; k++) {
        km_sdk_sign_result r;
        memset(&r, 0, sizeof r);
        err = km_sdk_sign_wait(sdk, s, &sids[k], &items[k], 1, sh->env->t->timeout_s, &r);
        if (err) snprintf(w->what, sizeof w->what, "wait: %s", km_sdk_last_error(sdk));
        if (!err &&
            (r.n != 1 || r.items[0].n_units != 1 ||
             !km_demo_schnorr_ok(sh->env->ctx, r.items[0].units[0].sig, items[k].msg, sh->output_xonly))) {
            err = KM_ERR_VERIFY;
            snprintf(w->what, sizeof w->what, "signature check (libsecp256k1)");
        }
        km_sdk_sign_result_clear(&r);
        if (!err) atomic_fetch_add(&sh->verified, 1);
    }
    if (err) atomic_fetch_add(&sh->failed, 1);
    w->err = err;
    atomic_fetch_add(&sh->finished, 1);
    free(sids);
    free(items);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
    return NULL;
}

int km_demo_stress(km_demo_env *env) {
    km_demo_party parties[2];
    km_sdk_session *s = NULL;
    km_sdk_keygen_result r;
    char *json = NULL;
    stress_worker *ws = NULL;
    km_tweak tw;
    km_tweak_bip86(&tw);
    int rc = km_demo_keygen(env, 2, &tw, NULL, 0, NULL, parties, &s, &r);
    if (rc) goto out;
    km_err err = km_sdk_session_export(s, &json);
    if (err) {
        rc = km_demo_fail(env, "session export", err);
        goto out;
    }
    stress_shared sh;
    memset(&sh, 0, sizeof sh);
    sh.env = env;
    sh.session_json = json;
    memcpy(sh.output_xonly, r.output_xonly, 32);
    sh.count = env->count;
    sh.threads = env->threads < env->count ? env->threads : env->count;
    ws = calloc(sh.threads, sizeof *ws);
    if (!ws) {
        rc = km_demo_fail(env, "threads", KM_ERR_NOMEM);
        goto out;
    }
    km_tool_say(env->t, "  %u signing sessions over %u threads (one SDK handle each)\n", sh.count,
                sh.threads);
    km_demo_step(env, "all sessions submitted, signed and verified");
    double t0 = km_tool_now_ms();
    unsigned started = 0;
    for (unsigned i = 0; i < sh.threads; i++) {
        ws[i].sh = &sh;
        ws[i].index = i;
        if (pthread_create(&ws[i].thread, NULL, worker, &ws[i]) != 0) break;
        started++;
    }
    km_spinner *sp = km_spinner_start(env->t, "stress");
    while (atomic_load(&sh.finished) + 0u < started) {
        char label[96];
        snprintf(label, sizeof label, "stress: %u/%u submitted, %u/%u verified", atomic_load(&sh.submitted),
                 sh.count, atomic_load(&sh.verified), sh.count);
        km_spinner_update(sp, label);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(ws[i].thread, NULL);
    km_spinner_stop(sp);
    double ms = km_tool_now_ms() - t0;
    for (unsigned i = 0; i < started && !rc; i++)
        if (ws[i].err) rc = km_tool_fail(env->t, ws[i].err, "stress worker", ws[i].what);
    if (!rc && (started != sh.threads || atomic_load(&sh.verified) != sh.count))
        rc = km_demo_fail(env, "stress: not every session verified", KM_ERR_STATE);
    if (rc) goto out;
    km_demo_step_done(env);
    double tps = sh.count / (ms / 1000.0);
    km_tool_say(env->t, "  %u/%u signatures verified in %.2f s: %.1f signatures/s\n", sh.count, sh.count,
                ms / 1000.0, tps);
    if (env->t->out) {
        json_object_set_new(env->t->out, "sessions", json_integer(sh.count));
        json_object_set_new(env->t->out, "threads", json_integer(sh.threads));
        json_object_set_new(env->t->out, "signatures_per_second", json_real(tps));
    }
out:
    free(ws);
    if (json) {
        km_wipe(json, strlen(json));
        free(json);
    }
    km_wipe(parties, sizeof parties);
    km_sdk_keygen_result_clear(&r);
    km_sdk_session_free(s);
    return rc;
}
