/* test_pool.c — the enclave pool against real keymeld-enclave processes
 * (devnet, Unix sockets in /tmp): routing, pipelining with many concurrent
 * callers, dead and impostor enclaves, kill -9 with calls in flight, restart
 * detection (generation), and destroy with calls in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/devnet.h"
#include "gateway/pool.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/protocol.h"
#include "keymeld/secret.h"

static km_ctx *g_ctx;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static km_pool_status status_of(km_pool *p, uint32_t id) {
    km_pool_status st;
    assert_int_equal(km_pool_status_get(p, id, &st), KM_OK);
    return st;
}

/* Polls until the enclave is connected with at least generation gen (or the
 * time is up); returns whether it happened. */
static int wait_connected(km_pool *p, uint32_t id, uint64_t gen, unsigned timeout_ms) {
    int64_t end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        km_pool_status st = status_of(p, id);
        if (st.connected && st.generation >= gen) return 1;
        sleep_ms(20);
    }
    return 0;
}

static int wait_disconnected(km_pool *p, uint32_t id, unsigned timeout_ms) {
    int64_t end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        if (!status_of(p, id).connected) return 1;
        sleep_ms(20);
    }
    return 0;
}

/* SIGSTOP is asynchronous: kill() may return before every thread of the
 * target has stopped. Wait until /proc says the process is stopped ('T'), so
 * that no request sent afterwards can still be answered. */
static int wait_stopped(pid_t pid, unsigned timeout_ms) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (unsigned waited = 0; waited < timeout_ms; waited += 5) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = '\0';
        const char *rp = strrchr(buf, ')');
        if (rp && rp[1] == ' ' && rp[2] == 'T') return 1;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int wait_in_flight(km_pool *p, uint32_t id, uint32_t n, unsigned timeout_ms) {
    int64_t end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        if (status_of(p, id).in_flight >= n) return 1;
        sleep_ms(10);
    }
    return 0;
}

/* Starts n enclaves that all trust one fresh gateway credential. */
static void start_enclaves(km_devnet_enclave *t, size_t n, unsigned char gw_sec[32]) {
    assert_int_equal(km_devnet_keypair(g_ctx, gw_sec, NULL, NULL), KM_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(km_devnet_start_shared(g_ctx, &t[i], KM_ENCLAVE_BIN, NULL, NULL, gw_sec), KM_OK);
}

static void enclave_cfg(km_pool_enclave_cfg *c, uint32_t id, const km_devnet_enclave *t) {
    memset(c, 0, sizeof *c);
    c->id = id;
    size_t n = strlen(t->addr);
    assert_true(n < sizeof c->address);
    memcpy(c->address, t->addr, n + 1);
    memcpy(c->pubkey, t->pub, 33);
}

static km_pool_config fast_cfg(unsigned timeout_ms) {
    km_pool_config c;
    memset(&c, 0, sizeof c);
    c.conns_per_enclave = 2;
    c.call_timeout_ms = timeout_ms;
    c.health_interval_ms = 200;
    c.backoff_min_ms = 50;
    c.backoff_max_ms = 400;
    return c;
}

/* INFO body: u16 version | pub[33] | fingerprint[32] | 3 x u32 | u64 | boot_id[16] */
static void check_info(const km_buf *b, const unsigned char pub[33]) {
    assert_int_equal(b->len, 2 + 33 + 32 + 12 + 8 + 16);
    assert_memory_equal(b->data + 2, pub, 33);
}

static void session_clear_body(unsigned char body[17], uint8_t kind) {
    body[0] = kind;
    assert_int_equal(km_random_bytes(body + 1, 16), KM_OK);
}

/* ---- listener ------------------------------------------------------------- */

typedef struct event {
    uint32_t id;
    int up;
    uint64_t gen;
    km_err call_err;   /* the listener's own INFO call on an up event */
    uint64_t call_gen; /* which process answered it */
} event;

static pthread_mutex_t g_ev_mu = PTHREAD_MUTEX_INITIALIZER;
static event g_ev[64];
static size_t g_nev;

/* With a pool as arg, the listener calls the enclave on up events, as the
 * coordinator does to re-send its blobs: that must work from inside it. */
static void record_event(void *arg, uint32_t id, int up, uint64_t gen) {
    event ev = {id, up, gen, KM_OK, 0};
    if (arg && up) {
        km_buf resp;
        km_buf_init(&resp);
        uint16_t code;
        ev.call_err = km_pool_call_gen(arg, id, KM_CMD_INFO, NULL, 0, &code, &resp, &ev.call_gen);
        km_buf_free(&resp);
    }
    pthread_mutex_lock(&g_ev_mu);
    if (g_nev < 64) g_ev[g_nev++] = ev;
    pthread_mutex_unlock(&g_ev_mu);
}

static size_t events_copy(event *out) {
    pthread_mutex_lock(&g_ev_mu);
    size_t n = g_nev;
    memcpy(out, g_ev, n * sizeof *out);
    pthread_mutex_unlock(&g_ev_mu);
    return n;
}

static void events_reset(void) {
    pthread_mutex_lock(&g_ev_mu);
    g_nev = 0;
    pthread_mutex_unlock(&g_ev_mu);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_create_rejects_bad_config(void **state) {
    (void)state;
    km_pool *p = (km_pool *)1;
    unsigned char gw[32], pub[33];
    assert_int_equal(km_devnet_keypair(g_ctx, gw, pub, NULL), KM_OK);
    km_pool_enclave_cfg e[2];
    memset(e, 0, sizeof e);
    for (int i = 0; i < 2; i++) {
        e[i].id = (uint32_t)i + 1;
        snprintf(e[i].address, sizeof e[i].address, "unix:/tmp/km-pool-none-%d.sock", i);
        memcpy(e[i].pubkey, pub, 33);
    }
    assert_int_equal(km_pool_create(&p, g_ctx, NULL, e, 0, gw), KM_ERR_ARG);
    assert_null(p);
    assert_int_equal(km_pool_create(&p, g_ctx, NULL, NULL, 1, gw), KM_ERR_ARG);
    assert_int_equal(km_pool_create(&p, g_ctx, NULL, e, 1, NULL), KM_ERR_ARG);
    /* duplicate ids */
    e[1].id = e[0].id;
    assert_int_equal(km_pool_create(&p, g_ctx, NULL, e, 2, gw), KM_ERR_DUPLICATE);
    e[1].id = 2;
    /* not a point / uncompressed prefix */
    e[1].pubkey[0] = 0x04;
    assert_int_equal(km_pool_create(&p, g_ctx, NULL, e, 2, gw), KM_ERR_INVALID_POINT);
    memset(e[1].pubkey, 0xff, 33);
    e[1].pubkey[0] = 0x02;
    assert_int_equal(km_pool_create(&p, g_ctx, NULL, e, 2, gw), KM_ERR_INVALID_POINT);
    memcpy(e[1].pubkey, pub, 33);
    /* address empty / not terminated */
    e[1].address[0] = '\0';
    assert_int_equal(km_pool_create(&p, g_ctx, NULL, e, 2, gw), KM_ERR_ARG);
    memset(e[1].address, 'a', sizeof e[1].address);
    assert_int_equal(km_pool_create(&p, g_ctx, NULL, e, 2, gw), KM_ERR_ARG);
    snprintf(e[1].address, sizeof e[1].address, "unix:/tmp/km-pool-none-1.sock");
    /* invalid credential: zero and >= n */
    unsigned char bad[32];
    memset(bad, 0, 32);
    assert_int_equal(km_pool_create(&p, g_ctx, NULL, e, 2, bad), KM_ERR_INVALID_KEY);
    memset(bad, 0xff, 32);
    assert_int_equal(km_pool_create(&p, g_ctx, NULL, e, 2, bad), KM_ERR_INVALID_KEY);
    /* config out of range */
    km_pool_config c = fast_cfg(1000);
    c.backoff_min_ms = 500;
    c.backoff_max_ms = 100;
    assert_int_equal(km_pool_create(&p, g_ctx, &c, e, 2, gw), KM_ERR_ARG);
    c = fast_cfg(1000);
    c.conns_per_enclave = KM_POOL_MAX_CONNS + 1;
    assert_int_equal(km_pool_create(&p, g_ctx, &c, e, 2, gw), KM_ERR_ARG);
    assert_null(p);
    /* a valid pool over absent enclaves is created (they connect later) */
    assert_int_equal(km_pool_create(&p, g_ctx, NULL, e, 2, gw), KM_OK);
    assert_int_equal(km_pool_count(p), 2);
    uint32_t id = 99;
    assert_int_equal(km_pool_id_at(p, 1, &id), KM_OK);
    assert_int_equal(id, 2);
    assert_int_equal(km_pool_id_at(p, 2, &id), KM_ERR_RANGE);
    assert_int_equal(id, 0);
    km_pool_destroy(p);
    km_pool_destroy(NULL);
    km_wipe(gw, sizeof gw);
}

static void test_two_enclaves(void **state) {
    (void)state;
    km_devnet_enclave t[2];
    unsigned char gw[32];
    start_enclaves(t, 2, gw);
    km_pool_enclave_cfg ec[2];
    enclave_cfg(&ec[0], 7, &t[0]);
    enclave_cfg(&ec[1], 9, &t[1]);
    km_pool_config cfg = fast_cfg(10000);
    km_pool *p = NULL;
    assert_int_equal(km_pool_create(&p, g_ctx, &cfg, ec, 2, gw), KM_OK);
    km_wipe(gw, sizeof gw);
    assert_true(wait_connected(p, 7, 1, 10000));
    assert_true(wait_connected(p, 9, 1, 10000));

    km_buf resp;
    km_buf_init(&resp);
    uint16_t code = 77;

    /* Several requests at once, each with its own outcome: INFO to both
     * enclaves (each answers with its own key), a refused command, and an
     * unknown enclave id. */
    km_buf r[4];
    for (int i = 0; i < 4; i++)
        km_buf_init(&r[i]);
    unsigned char clear_body[17];
    session_clear_body(clear_body, 1);
    km_pool_req reqs[4] = {
        {9, KM_CMD_INFO, NULL, 0, &r[0], 77, KM_ERR_ARG},
        {7, KM_CMD_INFO, NULL, 0, &r[1], 77, KM_ERR_ARG},
        {7, KM_CMD_SESSION_CLEAR, clear_body, sizeof clear_body, &r[2], 77, KM_ERR_ARG},
        {12345, KM_CMD_INFO, NULL, 0, &r[3], 77, KM_OK},
    };
    assert_int_equal(km_pool_call_all(p, reqs, 4), KM_OK);
    assert_int_equal(reqs[0].err, KM_OK);
    assert_int_equal(reqs[0].code, 0);
    check_info(&r[0], t[1].pub);
    assert_int_equal(reqs[1].err, KM_OK);
    check_info(&r[1], t[0].pub);
    assert_int_equal(reqs[2].err, KM_OK);
    assert_int_equal(reqs[2].code, KM_ERR_NOT_FOUND);
    assert_int_equal(reqs[3].err, KM_ERR_NOT_FOUND);
    assert_int_equal(r[3].len, 0);
    reqs[0].resp = NULL; /* a NULL response buffer: nothing is sent */
    assert_int_equal(km_pool_call_all(p, reqs, 4), KM_ERR_ARG);
    assert_int_equal(km_pool_call_all(p, reqs, 0), KM_OK);
    for (int i = 0; i < 4; i++)
        km_buf_free(&r[i]);

    for (int i = 0; i < 2; i++) {
        uint32_t id = ec[i].id;
        assert_int_equal(km_pool_call(p, id, KM_CMD_INFO, NULL, 0, &code, &resp), KM_OK);
        assert_int_equal(code, 0);
        check_info(&resp, t[i].pub);
        unsigned char body[17];
        session_clear_body(body, 1);
        assert_int_equal(km_pool_call(p, id, KM_CMD_SESSION_CLEAR, body, sizeof body, &code, &resp), KM_OK);
        assert_int_equal(code, KM_ERR_NOT_FOUND);
        assert_true(resp.len >= 2); /* u16 len || detail */
        /* a malformed body gets an error status, the connection stays up */
        assert_int_equal(km_pool_call(p, id, KM_CMD_SESSION_CLEAR, body, 3, &code, &resp), KM_OK);
        assert_int_not_equal(code, 0);
        uint64_t gen = 0;
        assert_int_equal(km_pool_call_gen(p, id, KM_CMD_INFO, NULL, 0, &code, &resp, &gen), KM_OK);
        assert_int_equal(gen, 1);

        km_pool_status st = status_of(p, id);
        assert_int_equal(st.id, id);
        assert_true(st.connected);
        assert_int_equal(st.generation, 1);
        assert_int_equal(km_pool_generation(p, id), 1);
        assert_memory_equal(st.pubkey, t[i].pub, 33);
        unsigned char fp[32];
        km_sha256(fp, t[i].pub, 33);
        assert_memory_equal(st.fingerprint, fp, 32);
        assert_int_equal(st.calls_ok, 4 + (id == 7 ? 2 : 1)); /* + the km_pool_call_all requests above */
        assert_int_equal(st.calls_failed, 0);
        assert_int_equal(st.reconnects, 0);
        assert_int_equal(st.in_flight, 0);
        assert_true(st.last_ok_unix > 0);
    }
    /* unknown enclave, bad arguments */
    assert_int_equal(km_pool_call(p, 8, KM_CMD_INFO, NULL, 0, &code, &resp), KM_ERR_NOT_FOUND);
    assert_int_equal(km_pool_call(p, 7, KM_CMD_INFO, NULL, 0, NULL, &resp), KM_ERR_ARG);
    assert_int_equal(km_pool_call(p, 7, KM_CMD_INFO, NULL, 5, &code, &resp), KM_ERR_ARG);
    assert_int_equal(km_pool_call(p, 7, KM_CMD_INFO, NULL, 0, &code, NULL), KM_ERR_ARG);
    km_pool_status st;
    assert_int_equal(km_pool_status_get(p, 8, &st), KM_ERR_NOT_FOUND);
    assert_int_equal(km_pool_generation(p, 8), 0);
    km_buf_free(&resp);
    km_pool_destroy(p);
    km_devnet_destroy(&t[0]);
    km_devnet_destroy(&t[1]);
}

/* ---- many callers --------------------------------------------------------- */

#define N_CALLERS 64
#define N_ROUNDS  4

typedef struct caller {
    km_pool *p;
    const km_devnet_enclave *t; /* [2] */
    pthread_barrier_t *start;
    int index;
    int failures; /* assertions cannot run off the main thread */
} caller;

static void *caller_main(void *arg) {
    caller *c = arg;
    km_buf resp;
    km_buf_init(&resp);
    pthread_barrier_wait(c->start);
    for (int r = 0; r < N_ROUNDS; r++) {
        int which = (c->index + r) % 2;
        uint32_t id = which ? 9 : 7;
        uint16_t code = 0xffff;
        switch ((c->index + r) % 3) {
        case 0: { /* ATTEST with a nonce only this call uses: the document must carry it */
            unsigned char body[2 + 32];
            body[0] = 0;
            body[1] = 32;
            if (km_random_bytes(body + 2, 32) != KM_OK) c->failures++;
            if (km_pool_call(c->p, id, KM_CMD_ATTEST, body, sizeof body, &code, &resp) != KM_OK ||
                code != 0 || !memmem(resp.data, resp.len, body + 2, 32) ||
                !memmem(resp.data, resp.len, c->t[which].pub, 33))
                c->failures++;
            break;
        }
        case 1: { /* INFO: the pubkey says which enclave answered */
            if (km_pool_call(c->p, id, KM_CMD_INFO, NULL, 0, &code, &resp) != KM_OK || code != 0 ||
                resp.len != 87 + 16 || memcmp(resp.data + 2, c->t[which].pub, 33) != 0)
                c->failures++;
            break;
        }
        default: { /* SESSION_CLEAR of an unknown session: not_found; a bad kind: an error */
            unsigned char body[17];
            body[0] = (c->index & 1) ? 2 : 1;
            if (km_random_bytes(body + 1, 16) != KM_OK) c->failures++;
            if (km_pool_call(c->p, id, KM_CMD_SESSION_CLEAR, body, sizeof body, &code, &resp) != KM_OK ||
                code != KM_ERR_NOT_FOUND)
                c->failures++;
            body[0] = 9;
            if (km_pool_call(c->p, id, KM_CMD_SESSION_CLEAR, body, sizeof body, &code, &resp) != KM_OK ||
                code == 0 || code == KM_ERR_NOT_FOUND)
                c->failures++;
            break;
        }
        }
    }
    km_buf_free(&resp);
    return NULL;
}

static void test_many_concurrent_callers(void **state) {
    (void)state;
    km_devnet_enclave t[2];
    unsigned char gw[32];
    start_enclaves(t, 2, gw);
    km_pool_enclave_cfg ec[2];
    enclave_cfg(&ec[0], 7, &t[0]);
    enclave_cfg(&ec[1], 9, &t[1]);
    km_pool_config cfg = fast_cfg(20000);
    km_pool *p = NULL;
    assert_int_equal(km_pool_create(&p, g_ctx, &cfg, ec, 2, gw), KM_OK);
    km_wipe(gw, sizeof gw);
    assert_true(wait_connected(p, 7, 1, 10000));
    assert_true(wait_connected(p, 9, 1, 10000));

    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, N_CALLERS), 0);
    caller c[N_CALLERS];
    pthread_t th[N_CALLERS];
    for (int i = 0; i < N_CALLERS; i++) {
        c[i] = (caller){p, t, &start, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, caller_main, &c[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < N_CALLERS; i++) {
        pthread_join(th[i], NULL);
        failures += c[i].failures;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(failures, 0);
    uint64_t ok = 0;
    for (int i = 0; i < 2; i++) {
        km_pool_status st = status_of(p, ec[i].id);
        assert_int_equal(st.in_flight, 0);
        assert_int_equal(st.calls_failed, 0);
        assert_int_equal(st.reconnects, 0);
        ok += st.calls_ok;
    }
    /* one call per round, two for SESSION_CLEAR rounds */
    uint64_t expect = 0;
    for (int i = 0; i < N_CALLERS; i++)
        for (int r = 0; r < N_ROUNDS; r++)
            expect += (i + r) % 3 == 2 ? 2 : 1;
    assert_int_equal(ok, expect);
    km_pool_destroy(p);
    km_devnet_destroy(&t[0]);
    km_devnet_destroy(&t[1]);
}

/* ---- failures ------------------------------------------------------------- */

static void test_dead_address_fails_fast(void **state) {
    (void)state;
    unsigned char gw[32], pub[33];
    assert_int_equal(km_devnet_keypair(g_ctx, gw, pub, NULL), KM_OK);
    km_pool_enclave_cfg ec;
    memset(&ec, 0, sizeof ec);
    ec.id = 3;
    snprintf(ec.address, sizeof ec.address, "unix:/tmp/km-pool-absent-%ld/enclave.sock", (long)getpid());
    memcpy(ec.pubkey, pub, 33);
    km_pool_config cfg = fast_cfg(30000);
    km_pool *p = NULL;
    assert_int_equal(km_pool_create(&p, g_ctx, &cfg, &ec, 1, gw), KM_OK);
    km_wipe(gw, sizeof gw);
    km_buf resp;
    km_buf_init(&resp);
    uint16_t code = 5;
    int64_t t0 = now_ms();
    assert_int_equal(km_pool_call(p, 3, KM_CMD_INFO, NULL, 0, &code, &resp), KM_ERR_IO);
    assert_true(now_ms() - t0 < 5000); /* not the 30 s timeout */
    assert_int_equal(code, 0);
    assert_int_equal(resp.len, 0);
    sleep_ms(300); /* several connection attempts */
    km_pool_status st = status_of(p, 3);
    assert_false(st.connected);
    assert_int_equal(st.generation, 0);
    assert_int_equal(st.calls_failed, 1);
    assert_int_equal(st.calls_ok, 0);
    assert_non_null(strstr(st.last_error, "connect"));
    km_buf_free(&resp);
    km_pool_destroy(p);
}

static void test_impostor_never_connects(void **state) {
    (void)state;
    km_devnet_enclave t;
    unsigned char gw[32];
    start_enclaves(&t, 1, gw);
    /* The pool pins another key for this address: the real enclave at it is
     * an impostor as far as the pool knows, and must never get a call. */
    unsigned char other_sec[32], other_pub[33];
    assert_int_equal(km_devnet_keypair(g_ctx, other_sec, other_pub, NULL), KM_OK);
    km_wipe(other_sec, sizeof other_sec);
    km_pool_enclave_cfg ec;
    enclave_cfg(&ec, 1, &t);
    memcpy(ec.pubkey, other_pub, 33);
    km_pool_config cfg = fast_cfg(10000);
    km_pool *p = NULL;
    events_reset();
    assert_int_equal(km_pool_create(&p, g_ctx, &cfg, &ec, 1, gw), KM_OK);
    km_pool_set_listener(p, record_event, NULL);
    km_wipe(gw, sizeof gw);
    /* wait until at least one handshake was refused */
    int64_t end = now_ms() + 10000;
    km_pool_status st = status_of(p, 1);
    while (!st.last_error[0] && now_ms() < end) {
        sleep_ms(20);
        st = status_of(p, 1);
    }
    sleep_ms(300);
    st = status_of(p, 1);
    assert_false(st.connected);
    assert_int_equal(st.generation, 0);
    assert_non_null(strstr(st.last_error, km_strerror(KM_ERR_VERIFY)));
    km_buf resp;
    km_buf_init(&resp);
    uint16_t code;
    assert_int_equal(km_pool_call(p, 1, KM_CMD_INFO, NULL, 0, &code, &resp), KM_ERR_IO);
    event ev[64];
    assert_int_equal(events_copy(ev), 0);
    km_buf_free(&resp);
    km_pool_destroy(p);
    km_devnet_destroy(&t);
}

/* Callers that block on a stopped enclave, to have calls truly in flight. */
typedef struct blocked {
    km_pool *p;
    uint32_t id;
    km_err err;
    int64_t returned_ms;
} blocked;

static void *blocked_main(void *arg) {
    blocked *b = arg;
    km_buf resp;
    km_buf_init(&resp);
    uint16_t code;
    b->err = km_pool_call(b->p, b->id, KM_CMD_INFO, NULL, 0, &code, &resp);
    b->returned_ms = now_ms();
    km_buf_free(&resp);
    return NULL;
}

#define N_BLOCKED 8

static void test_kill_and_restart(void **state) {
    (void)state;
    km_devnet_enclave t;
    unsigned char gw[32];
    start_enclaves(&t, 1, gw);
    km_pool_enclave_cfg ec;
    enclave_cfg(&ec, 5, &t);
    km_pool_config cfg = fast_cfg(90000);
    km_pool *p = NULL;
    events_reset();
    assert_int_equal(km_pool_create(&p, g_ctx, &cfg, &ec, 1, gw), KM_OK);
    km_pool_set_listener(p, record_event, p);
    km_wipe(gw, sizeof gw);
    assert_true(wait_connected(p, 5, 1, 10000));
    assert_int_equal(km_pool_generation(p, 5), 1);

    /* Freeze the enclave so that the calls are really in flight, then kill it. */
    assert_int_equal(kill(t.pid, SIGSTOP), 0);
    assert_true(wait_stopped(t.pid, 5000));
    blocked b[N_BLOCKED];
    pthread_t th[N_BLOCKED];
    for (int i = 0; i < N_BLOCKED; i++) {
        b[i] = (blocked){p, 5, KM_OK, 0};
        assert_int_equal(pthread_create(&th[i], NULL, blocked_main, &b[i]), 0);
    }
    assert_true(wait_in_flight(p, 5, N_BLOCKED, 10000));
    int64_t killed = now_ms();
    km_devnet_kill(&t);
    for (int i = 0; i < N_BLOCKED; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(b[i].err, KM_ERR_IO);
        /* Failed by the broken connection, not by the (90 s) timeout. */
        assert_true(b[i].returned_ms - killed <
                    45000); /* well before the 90 s timeout, with room for a loaded machine */
    }
    assert_true(wait_disconnected(p, 5, 10000));
    km_pool_status st = status_of(p, 5);
    assert_int_equal(st.in_flight, 0);
    assert_true(st.calls_failed >= N_BLOCKED);
    km_buf resp;
    km_buf_init(&resp);
    uint16_t code;
    assert_int_equal(km_pool_call(p, 5, KM_CMD_INFO, NULL, 0, &code, &resp), KM_ERR_IO);

    /* Restarted at once: the boot id, not the uptime, tells the processes apart. */
    assert_int_equal(km_devnet_restart(&t), KM_OK);
    /* The first call that reaches the new process already sees generation 2. */
    uint64_t gen = 0;
    km_err err = KM_ERR_IO;
    int64_t end = now_ms() + 15000;
    while (err != KM_OK && now_ms() < end) {
        err = km_pool_call_gen(p, 5, KM_CMD_INFO, NULL, 0, &code, &resp, &gen);
        if (err) sleep_ms(20);
    }
    assert_int_equal(err, KM_OK);
    assert_int_equal(gen, 2);
    assert_int_equal(km_pool_generation(p, 5), 2);
    check_info(&resp, t.pub); /* same identity after the restart */
    assert_true(wait_connected(p, 5, 2, 10000));
    /* (A connection that was still in its handshake when the enclave froze
     * comes up for the first time now: poll until one that was up is back.) */
    end = now_ms() + 10000;
    st = status_of(p, 5);
    while (st.reconnects == 0 && now_ms() < end) {
        sleep_ms(20);
        st = status_of(p, 5);
    }
    assert_int_equal(st.generation, 2);
    assert_true(st.reconnects >= 1);

    /* The listener: [up(1),] down, up(2), in that order. Give the notifier a moment. */
    event ev[64];
    size_t n = 0;
    end = now_ms() + 5000;
    while (now_ms() < end) {
        n = events_copy(ev);
        if (n >= 3 && ev[n - 1].up && ev[n - 1].gen == 2) break;
        sleep_ms(20);
    }
    /* (The first up may have been before the listener was set.) */
    assert_true(n >= 2);
    int saw_down = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        assert_int_equal(ev[i].id, 5);
        if (!ev[i].up)
            saw_down = 1;
        else
            assert_int_equal(ev[i].gen, 1);
    }
    assert_true(saw_down);
    assert_int_equal(ev[n - 1].up, 1);
    assert_int_equal(ev[n - 1].gen, 2);
    /* The listener's own call to the new process worked. (An earlier one
     * may have met the frozen enclave.) */
    assert_int_equal(ev[n - 1].call_err, KM_OK);
    assert_int_equal(ev[n - 1].call_gen, 2);

    /* A calm period afterwards: health pings must not invent restarts. */
    sleep_ms(1000);
    assert_int_equal(km_pool_generation(p, 5), 2);
    km_buf_free(&resp);
    km_pool_destroy(p);
    km_devnet_destroy(&t);
}

/* A call that times out leaves the connection up; its late answer must not
 * be handed to the next caller on that connection. */
static void test_timeout_then_late_answer(void **state) {
    (void)state;
    km_devnet_enclave t;
    unsigned char gw[32];
    start_enclaves(&t, 1, gw);
    km_pool_enclave_cfg ec;
    enclave_cfg(&ec, 6, &t);
    km_pool_config cfg = fast_cfg(1500);
    cfg.conns_per_enclave = 1;
    cfg.health_interval_ms = 60000; /* only our calls on the connection */
    km_pool *p = NULL;
    assert_int_equal(km_pool_create(&p, g_ctx, &cfg, &ec, 1, gw), KM_OK);
    km_wipe(gw, sizeof gw);
    assert_true(wait_connected(p, 6, 1, 10000));
    km_buf resp;
    km_buf_init(&resp);
    uint16_t code = 3;
    assert_int_equal(kill(t.pid, SIGSTOP), 0);
    assert_true(wait_stopped(t.pid, 5000));
    int64_t t0 = now_ms();
    assert_int_equal(km_pool_call(p, 6, KM_CMD_INFO, NULL, 0, &code, &resp), KM_ERR_IO);
    int64_t took = now_ms() - t0;
    assert_true(took >= 1400); /* it waited for its timeout ... */
    assert_true(took < 10000); /* ... and no longer */
    assert_int_equal(code, 0);
    km_pool_status st = status_of(p, 6);
    assert_true(st.connected);
    assert_int_equal(st.calls_failed, 1);
    assert_int_equal(st.in_flight, 0);
    assert_non_null(strstr(st.last_error, "timed out"));
    assert_int_equal(kill(t.pid, SIGCONT), 0);
    /* The stale INFO answer arrives first; this ATTEST must get its own. On a
     * loaded machine it may time out too, and then its answer is stale as
     * well: try again with a fresh nonce. */
    unsigned char body[2 + 32] = {0, 32};
    km_err err = KM_ERR_IO;
    for (int i = 0; i < 10 && err == KM_ERR_IO; i++) {
        assert_int_equal(km_random_bytes(body + 2, 32), KM_OK);
        err = km_pool_call(p, 6, KM_CMD_ATTEST, body, sizeof body, &code, &resp);
    }
    assert_int_equal(err, KM_OK);
    assert_int_equal(code, 0);
    assert_non_null(memmem(resp.data, resp.len, body + 2, 32));
    err = KM_ERR_IO;
    for (int i = 0; i < 10 && err == KM_ERR_IO; i++)
        err = km_pool_call(p, 6, KM_CMD_INFO, NULL, 0, &code, &resp);
    assert_int_equal(err, KM_OK);
    check_info(&resp, t.pub);
    st = status_of(p, 6);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.generation, 1);
    km_buf_free(&resp);
    km_pool_destroy(p);
    km_devnet_destroy(&t);
}

static void test_destroy_with_calls_in_flight(void **state) {
    (void)state;
    km_devnet_enclave t;
    unsigned char gw[32];
    start_enclaves(&t, 1, gw);
    km_pool_enclave_cfg ec;
    enclave_cfg(&ec, 4, &t);
    km_pool_config cfg = fast_cfg(90000);
    km_pool *p = NULL;
    assert_int_equal(km_pool_create(&p, g_ctx, &cfg, &ec, 1, gw), KM_OK);
    km_wipe(gw, sizeof gw);
    assert_true(wait_connected(p, 4, 1, 10000));
    assert_int_equal(kill(t.pid, SIGSTOP), 0);
    assert_true(wait_stopped(t.pid, 5000));
    blocked b[N_BLOCKED];
    pthread_t th[N_BLOCKED];
    for (int i = 0; i < N_BLOCKED; i++) {
        b[i] = (blocked){p, 4, KM_OK, 0};
        assert_int_equal(pthread_create(&th[i], NULL, blocked_main, &b[i]), 0);
    }
    assert_true(wait_in_flight(p, 4, N_BLOCKED, 10000));
    int64_t t0 = now_ms();
    km_pool_destroy(p);                 /* waits for the callers to leave */
    assert_true(now_ms() - t0 < 45000); /* the callers were failed, not timed out (90 s) */
    for (int i = 0; i < N_BLOCKED; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(b[i].err, KM_ERR_IO);
    }
    assert_int_equal(kill(t.pid, SIGCONT), 0);
    km_devnet_destroy(&t);
}

static int setup(void **state) {
    (void)state;
    return km_ctx_create(&g_ctx) == KM_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    km_ctx_destroy(g_ctx);
    return 0;
}

int main(void) {
    /* A closed socket must be an error return, not the end of the test. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_config), cmocka_unit_test(test_two_enclaves),
        cmocka_unit_test(test_many_concurrent_callers),   cmocka_unit_test(test_dead_address_fails_fast),
        cmocka_unit_test(test_impostor_never_connects),   cmocka_unit_test(test_kill_and_restart),
        cmocka_unit_test(test_timeout_then_late_answer),  cmocka_unit_test(test_destroy_with_calls_in_flight),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
