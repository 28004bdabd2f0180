/* test_gateway_crash.c — the gateway killed with SIGKILL at random moments
 * while keygens and then signing sessions are in progress, and restarted on
 * the same database each time.
 *
 * Client threads (each with its own km_client) behave as the SDK does: a
 * request that gets no answer, or a 5xx, is retried with the same ids and
 * the very same body (creates and registrations are idempotent on identical
 * content). When the dust settles, every session the gateway ever
 * acknowledged (2xx) must still exist and end completed or failed with a
 * reason; every completed signature must verify under the key the client
 * computed itself; and no nonce point x(R) may appear twice across all
 * signatures (a session driven twice over different nonces would show up
 * here). The kill delays come from a seeded generator; the seed is printed
 * and KM_CRASH_SEED=<n> replays a run. Every wait is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keymeld/single.h"
#include "support_flows.h"
#include "support_gateway.h"

#define N_KEYGENS   50
#define N_USERS     3
#define N_ENCLAVES  2
#define SIGN_PER_KG 4
#define N_SIGNINGS  (N_KEYGENS * SIGN_PER_KG)
#define N_THREADS   4
#define KILLS_KG    4   /* kills while keygens run */
#define KILLS_SIGN  5   /* kills while signing sessions run */
#define PHASE_S     75  /* bound of each phase, seconds */
#define MAX_DELAY   300 /* ms, upper bound of the random delay before a kill */

static km_gwtest g_t;
static uint64_t g_rng;

static uint64_t rng_next(void) { /* xorshift64*: reproducible delays from the printed seed */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1Dull;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

typedef struct kg_state {
    km_gwflow f;
    int acked;     /* the create was answered 2xx at least once */
    int completed; /* wait_keygen verified the result */
    int failed;    /* ended failed */
    char error[160];
} kg_state;

typedef struct sign_state {
    int kg;
    km_sign_item item;
    km_uuid sid;
    json_t *body; /* built once: every retry sends identical bytes */
    int acked, completed, failed, verified;
    char reason[200];
    km_buf pt;
} sign_state;

static kg_state g_kg[N_KEYGENS];
static sign_state g_sign[N_SIGNINGS];
static uint64_t g_deadline;      /* of the current phase, monotonic ms */
static atomic_uint g_retries;    /* requests repeated because of no answer or a 5xx */
static atomic_uint g_unexpected; /* answers that are neither the wanted 2xx nor retryable */

static int time_left(void) {
    return km_gwflow_now_ms() < g_deadline;
}

static unsigned seconds_left(void) {
    uint64_t now = km_gwflow_now_ms();
    return now >= g_deadline ? 0 : (unsigned)((g_deadline - now) / 1000u);
}

/* Repeat a request until it is answered `want` (res = KM_OK) or the phase
 * ends (res = KM_ERR_IO); another 4xx answer ends it at once (res =
 * KM_ERR_STATE, described in errbuf). */
#define RETRY_UNTIL(res, call_expr, r, want, what, errbuf)                                                   \
    do {                                                                                                     \
        (res) = KM_ERR_IO;                                                                                   \
        while (time_left()) {                                                                                \
            km_err e_ = (call_expr);                                                                         \
            if (e_ == KM_OK && (r).status == (want)) {                                                       \
                (res) = KM_OK;                                                                               \
                break;                                                                                       \
            }                                                                                                \
            if (e_ == KM_OK && (r).status < 500) {                                                           \
                snprintf((errbuf), sizeof(errbuf), "%s: HTTP %ld %.100s", (what), (r).status,                \
                         (r).body.data ? (const char *)(r).body.data : "");                                  \
                atomic_fetch_add(&g_unexpected, 1);                                                          \
                (res) = KM_ERR_STATE;                                                                        \
                break;                                                                                       \
            }                                                                                                \
            if (e_ != KM_OK && e_ != KM_ERR_IO) {                                                            \
                snprintf((errbuf), sizeof(errbuf), "%s: %s", (what), km_err_name(e_));                       \
                (res) = e_;                                                                                  \
                break;                                                                                       \
            }                                                                                                \
            atomic_fetch_add(&g_retries, 1);                                                                 \
            sleep_ms(20);                                                                                    \
        }                                                                                                    \
    } while (0)

/* ---- phase 1: keygens ------------------------------------------------------------ */

static void *keygen_thread(void *p) {
    int k = (int)(intptr_t)p;
    km_client *c = NULL;
    km_client_response r = {0};
    if (km_gwtest_client(&g_t, &c) != KM_OK) return NULL;
    /* Attest and create all of this thread's keygens, then register
     * everyone, then wait: many keygens are in progress at each kill. */
    for (int i = k; i < N_KEYGENS; i += N_THREADS) {
        kg_state *s = &g_kg[i];
        km_err err = KM_ERR_IO;
        while (time_left()) {
            err = km_gwflow_attest(&s->f, c);
            if (err == KM_OK) break;
            atomic_fetch_add(&g_retries, 1);
            sleep_ms(20);
        }
        if (err) {
            snprintf(s->error, sizeof s->error, "attestation: %s", km_err_name(err));
            continue;
        }
        RETRY_UNTIL(err, km_gwflow_create_keygen(&s->f, c, 3600, 0, &r), r, 201, "create keygen", s->error);
        s->acked = err == KM_OK;
    }
    for (int i = k; i < N_KEYGENS; i += N_THREADS) {
        kg_state *s = &g_kg[i];
        km_err err = KM_OK;
        for (int u = 0; s->acked && !err && u < N_USERS; u++)
            RETRY_UNTIL(err, km_gwflow_register(&s->f, c, u, &r), r, 201, "register", s->error);
    }
    for (int i = k; i < N_KEYGENS; i += N_THREADS) {
        kg_state *s = &g_kg[i];
        if (!s->acked || s->error[0]) continue;
        km_err err = km_gwflow_wait_keygen(&s->f, c, seconds_left(), &r);
        if (err == KM_OK)
            s->completed = 1;
        else if (err == KM_ERR_STATE && r.status == 200)
            s->failed = 1;
        else
            snprintf(s->error, sizeof s->error, "wait keygen: %s (%s)", km_err_name(err),
                     s->f.detail ? s->f.detail : "-");
    }
    km_client_response_clear(&r);
    km_client_free(c);
    return NULL;
}

/* ---- phase 2: signing sessions ------------------------------------------------------ */

static void *signing_thread(void *p) {
    int k = (int)(intptr_t)p;
    km_client *c = NULL;
    km_client_response r = {0};
    if (km_gwtest_client(&g_t, &c) != KM_OK) return NULL;
    for (int i = k; i < N_SIGNINGS; i += N_THREADS) {
        sign_state *s = &g_sign[i];
        if (!s->body) continue;
        km_err err;
        RETRY_UNTIL(err, km_gwflow_sign_post(&g_kg[s->kg].f, c, s->body, &r), r, 201, "create signing",
                    s->reason);
        s->acked = err == KM_OK;
    }
    for (int i = k; i < N_SIGNINGS; i += N_THREADS) {
        sign_state *s = &g_sign[i];
        if (!s->acked) continue;
        kg_state *g = &g_kg[s->kg];
        km_err err = km_gwflow_wait_signing(&g->f, c, &s->sid, seconds_left(), &r, &s->pt);
        if (err == KM_OK) {
            s->completed = 1;
            err = km_gwflow_check_result(&g->f, &s->item, NULL, 1, &s->pt);
            s->verified = err == KM_OK;
            if (err)
                snprintf(s->reason, sizeof s->reason, "result check: %s (%s)", km_err_name(err),
                         g->f.detail ? g->f.detail : "-");
        } else if (err == KM_ERR_STATE && r.status == 200) {
            s->failed = 1;
            const char *why = km_gwflow_str(&r, "reason");
            snprintf(s->reason, sizeof s->reason, "%s", why ? why : "");
        } else {
            snprintf(s->reason, sizeof s->reason, "wait signing: %s", km_err_name(err));
        }
    }
    km_client_response_clear(&r);
    km_client_free(c);
    return NULL;
}

/* Kill the gateway n times at random moments while workers run, restarting
 * it on the same database (and port) each time. */
static void crash_loop(int n, const char *phase) {
    for (int i = 0; i < n; i++) {
        unsigned delay = (unsigned)(rng_next() % (MAX_DELAY + 1));
        sleep_ms(delay);
        km_gwtest_gateway_kill(&g_t);
        unsigned down = (unsigned)(rng_next() % 100);
        printf("  %s: kill %d after %u ms, down %u ms\n", phase, i + 1, delay, down);
        sleep_ms(down);
        km_err err = KM_ERR_IO;
        for (int tries = 0; tries < 5 && err; tries++) {
            err = km_gwtest_gateway_start(&g_t);
            if (err) sleep_ms(200);
        }
        if (err) fail_msg("gateway restart failed: %s", km_err_name(err));
    }
}

static int cmp32(const void *a, const void *b) {
    return memcmp(a, b, 32);
}

static void test_crash_recovery(void **state) {
    (void)state;
    const char *env = getenv("KM_CRASH_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (seed == 0) seed = 1;
    g_rng = seed;
    printf(
        "crash test seed: %llu (KM_CRASH_SEED=%llu replays the delays); scale: %d keygens x %d users on %d "
        "enclaves, %d signing sessions, %d client threads, %d+%d kills\n",
        (unsigned long long)seed, (unsigned long long)seed, N_KEYGENS, N_USERS, N_ENCLAVES, N_SIGNINGS,
        N_THREADS, KILLS_KG, KILLS_SIGN);

    /* Clients keep one base URL: pin the port the first start got. */
    char listen[64];
    snprintf(listen, sizeof listen, "{\"listen\": \"127.0.0.1:%u\"}", (unsigned)g_t.port);
    assert_int_equal(km_gwtest_write_config(&g_t, listen), KM_OK);

    for (int i = 0; i < N_KEYGENS; i++)
        assert_int_equal(km_gwflow_new(&g_kg[i].f, &g_t, N_USERS, N_ENCLAVES, NULL), KM_OK);

    /* Phase 1: keygens under fire. */
    pthread_t th[N_THREADS];
    uint64_t t0 = km_gwflow_now_ms();
    g_deadline = t0 + PHASE_S * 1000u;
    for (int k = 0; k < N_THREADS; k++)
        assert_int_equal(pthread_create(&th[k], NULL, keygen_thread, (void *)(intptr_t)k), 0);
    crash_loop(KILLS_KG, "keygens");
    for (int k = 0; k < N_THREADS; k++)
        pthread_join(th[k], NULL);
    int kg_acked = 0, kg_done = 0, kg_failed = 0;
    for (int i = 0; i < N_KEYGENS; i++) {
        kg_acked += g_kg[i].acked;
        kg_done += g_kg[i].completed;
        kg_failed += g_kg[i].failed;
        if (g_kg[i].error[0]) fprintf(stderr, "keygen %d: %s\n", i, g_kg[i].error);
    }
    printf("  keygens: %d acknowledged, %d completed, %d failed in %llu ms\n", kg_acked, kg_done, kg_failed,
           (unsigned long long)(km_gwflow_now_ms() - t0));
    assert_int_equal(kg_acked, N_KEYGENS);
    assert_int_equal(kg_done + kg_failed, N_KEYGENS);

    /* Phase 2: signing sessions under fire, 4 per completed keygen. */
    for (int i = 0; i < N_SIGNINGS; i++) {
        sign_state *s = &g_sign[i];
        s->kg = i / SIGN_PER_KG;
        km_buf_init(&s->pt);
        if (!g_kg[s->kg].completed) continue;
        assert_int_equal(km_gwflow_item(&s->item), KM_OK);
        assert_int_equal(km_uuid_v7(&s->sid, (uint64_t)time(NULL) * 1000u), KM_OK);
        assert_int_equal(km_gwflow_sign_body(&g_kg[s->kg].f, &s->sid, &s->item, 1, 3600, &s->body), KM_OK);
    }
    t0 = km_gwflow_now_ms();
    g_deadline = t0 + PHASE_S * 1000u;
    for (int k = 0; k < N_THREADS; k++)
        assert_int_equal(pthread_create(&th[k], NULL, signing_thread, (void *)(intptr_t)k), 0);
    crash_loop(KILLS_SIGN, "signing");
    for (int k = 0; k < N_THREADS; k++)
        pthread_join(th[k], NULL);

    int acked = 0, done = 0, failed = 0, verified = 0, lost = 0;
    for (int i = 0; i < N_SIGNINGS; i++) {
        sign_state *s = &g_sign[i];
        acked += s->acked;
        done += s->completed;
        verified += s->verified;
        if (s->failed) {
            failed++;
            fprintf(stderr, "signing %d failed: %s\n", i, s->reason[0] ? s->reason : "(no reason given)");
        } else if (s->body && !s->verified) {
            lost++;
            fprintf(stderr, "signing %d: %s\n", i, s->reason[0] ? s->reason : "not acknowledged");
        }
    }
    printf(
        "  signing: %d acknowledged, %d completed (%d verified), %d failed in %llu ms; %u requests retried, "
        "%u unexpected answers\n",
        acked, done, verified, failed, (unsigned long long)(km_gwflow_now_ms() - t0), atomic_load(&g_retries),
        atomic_load(&g_unexpected));

    /* Every acknowledged session still exists and is final (GET, not 404). */
    km_client *c;
    km_client_response r = {0};
    assert_int_equal(km_gwtest_client(&g_t, &c), KM_OK);
    g_deadline = km_gwflow_now_ms() + 20000u;
    for (int i = 0; i < N_SIGNINGS; i++) {
        sign_state *s = &g_sign[i];
        if (!s->acked) continue;
        km_buf pt;
        km_err err = km_gwflow_wait_signing(&g_kg[s->kg].f, c, &s->sid, 2, &r, &pt);
        km_buf_free(&pt);
        if (err != KM_OK && !(err == KM_ERR_STATE && r.status == 200)) {
            km_gwflow_print("final status", &r);
            fail_msg("signing %d: not final or lost: %s", i, km_err_name(err));
        }
    }
    km_client_response_clear(&r);
    km_client_free(c);

    assert_int_equal(acked, kg_done * SIGN_PER_KG);
    assert_int_equal(lost, 0);
    for (int i = 0; i < N_SIGNINGS; i++)
        if (g_sign[i].failed) assert_true(g_sign[i].reason[0] != '\0');
    assert_int_equal(done, verified);

    /* No x(R) twice across every signature of every keygen. */
    size_t total = 0;
    for (int i = 0; i < N_KEYGENS; i++)
        total += g_kg[i].f.w.n_seen_R;
    assert_int_equal(total, (size_t)verified);
    unsigned char(*all)[32] = calloc(total ? total : 1, 32);
    assert_non_null(all);
    size_t n = 0;
    for (int i = 0; i < N_KEYGENS; i++)
        for (size_t j = 0; j < g_kg[i].f.w.n_seen_R; j++)
            memcpy(all[n++], g_kg[i].f.w.seen_R[j], 32);
    qsort(all, n, 32, cmp32);
    for (size_t j = 1; j < n; j++)
        assert_true(memcmp(all[j - 1], all[j], 32) != 0);
    printf("  %zu distinct nonce points across all signatures\n", n);
    free(all);

    for (int i = 0; i < N_SIGNINGS; i++) {
        json_decref(g_sign[i].body);
        km_buf_free(&g_sign[i].pt);
    }
    for (int i = 0; i < N_KEYGENS; i++)
        km_gwflow_free(&g_kg[i].f);
}

static int setup(void **state) {
    (void)state;
    km_err err = km_gwtest_start(&g_t, N_ENCLAVES, NULL);
    if (err) fprintf(stderr, "harness start: %s\n", km_strerror(err));
    return err ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    km_gwtest_stop(&g_t);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_recovery),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
