/* pool.c — see pool.h.
 *
 * Shape: per enclave one mutex (e->mu) guarding its connections, their
 * waiting callers and its INFO-derived status. Per connection one thread that
 * connects (with backoff), runs INFO, then reads responses until the stream
 * breaks, and tears down. Callers send on the connection themselves, one at a
 * time (the `sending` flag, not a mutex, so a caller can give up waiting at
 * its deadline), and sleep on the connection's condition variable until the
 * reader hands them their response or fails them. One notifier thread calls
 * the listener; one health thread pings.
 *
 * The channel is split in two copies after the handshake: callers seal with
 * c->ec.ch and the reader opens with c->rch. km_channel_open wipes the whole
 * channel when a record fails; with one shared struct that wipe would race a
 * caller's seal and could let it encrypt a request under a zeroed key. Each
 * copy is only ever used in one direction.
 */
#include "gateway/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <secp256k1.h>

#include "keymeld/aead.h"
#include "keymeld/channel.h"
#include "keymeld/hash.h"
#include "keymeld/protocol.h"
#include "keymeld/secret.h"
#include "net/enclave_client.h"
#include "net/net.h"

/* The handshake is a few milliseconds of work; a peer slower than this is
 * not worth waiting for (and destroy waits for a handshake in progress). */
#define HANDSHAKE_TIMEOUT_MAX_MS 5000u

typedef struct penclave penclave;

/* A caller waiting for its response; lives on the caller's stack and is
 * linked into its connection's pending list while the reader may answer it. */
typedef struct waiter {
    struct waiter *next;
    uint32_t id;
    int done;
    km_err err;
    uint16_t code;
    km_buf *resp;
} waiter;

typedef struct pconn {
    penclave *e;
    pthread_t thread;
    int thread_started;
    pthread_cond_t cv; /* any change: response, send half released, connection down */
    /* Under e->mu: */
    int up;      /* established and accepting calls; ec.fd is open */
    int sending; /* a caller owns the send half (ec.ch, ec.out) */
    int ever_up;
    uint32_t next_id;
    uint64_t gen; /* generation of the process this connection reaches */
    unsigned inflight;
    waiter *pending;
    /* Owned by the connection thread, or by the caller holding `sending`: */
    km_enclave_conn ec;
    km_channel rch; /* receive-direction copy, reader only */
    km_buf rin;
} pconn;

struct penclave {
    km_pool *p;
    uint32_t id;
    char address[KM_POOL_ADDRESS_MAX];
    unsigned char pubkey[33];
    pthread_mutex_t mu;
    pconn *conns;
    unsigned nconns;
    /* Under mu: */
    unsigned char fingerprint[32];
    uint64_t generation;
    int64_t boot_ms;           /* gateway monotonic ms at which the current process started */
    unsigned char boot_id[16]; /* the current process's random boot id (INFO) */
    uint64_t uptime_s;
    uint32_t keygens, signings, keys;
    uint64_t calls_ok, calls_failed, reconnects;
    int64_t last_ok_unix;
    char last_error[128];
    /* Under p->mu: the notifier thread must look at this enclave. */
    int dirty;
    /* Notifier thread only: what the listener was last told. */
    int reported_up;
    uint64_t reported_gen;
};

struct km_pool {
    km_ctx *ctx;
    km_pool_config cfg;
    km_secret *cred;
    penclave *enc;
    size_t n;
    pthread_mutex_t mu; /* stopping, active, listener */
    pthread_cond_t cv;  /* wakes sleeping threads on stop; destroy waits for active == 0 */
    int stopping;
    unsigned active; /* callers inside km_pool_call */
    void (*listener)(void *, uint32_t, int, uint64_t);
    void *listener_arg;
    pthread_cond_t notify_cv; /* an enclave became dirty, or stop */
    pthread_t health, notifier;
    int health_started, notifier_started;
};

typedef struct info {
    unsigned char pub[33], fp[32];
    uint32_t keygens, signings, keys;
    uint64_t uptime_s;
    unsigned char boot_id[16];
} info;

/* ---- time ----------------------------------------------------------------- */

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits on cv (CLOCK_MONOTONIC) until deadline_ms. Returns 0 when woken,
 * ETIMEDOUT once the deadline has passed. */
static int wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms) {
    if (mono_ms() >= deadline_ms) return ETIMEDOUT;
    struct timespec ts = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000L};
    int r = pthread_cond_timedwait(cv, mu, &ts);
    return r == ETIMEDOUT ? ETIMEDOUT : 0;
}

static int cond_init(pthread_cond_t *cv) {
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0) return -1;
    int r = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    if (r == 0) r = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return r;
}

static int is_stopping(km_pool *p) {
    pthread_mutex_lock(&p->mu);
    int s = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return s;
}

/* Sleeps ms, or less if the pool stops. Returns 1 if it is stopping. */
static int pool_sleep(km_pool *p, unsigned ms) {
    int64_t deadline = mono_ms() + ms;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping && wait_until(&p->cv, &p->mu, deadline) != ETIMEDOUT) {
    }
    int s = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return s;
}

/* Not for secrets: spreads reconnect attempts of many gateways over time. */
static uint32_t jitter_next(uint32_t *s) {
    uint32_t x = *s ? *s : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* ---- status helpers (caller holds e->mu) ---------------------------------- */

static void set_error_locked(penclave *e, const char *what, km_err err) {
    snprintf(e->last_error, sizeof e->last_error, "%s: %s", what, km_strerror(err));
}

static void set_error(penclave *e, const char *what, km_err err) {
    pthread_mutex_lock(&e->mu);
    set_error_locked(e, what, err);
    pthread_mutex_unlock(&e->mu);
}

static int connected_locked(const penclave *e) {
    for (unsigned i = 0; i < e->nconns; i++)
        if (e->conns[i].up) return 1;
    return 0;
}

static km_err parse_info(const unsigned char *b, size_t n, info *out) {
    km_cursor c;
    uint16_t version = 0;
    km_cursor_init(&c, b, n);
    (void)km_cursor_get_u16(&c, &version);
    (void)km_cursor_get_bytes(&c, out->pub, 33);
    (void)km_cursor_get_bytes(&c, out->fp, 32);
    (void)km_cursor_get_u32(&c, &out->keygens);
    (void)km_cursor_get_u32(&c, &out->signings);
    (void)km_cursor_get_u32(&c, &out->keys);
    (void)km_cursor_get_u64(&c, &out->uptime_s);
    (void)km_cursor_get_bytes(&c, out->boot_id, 16);
    if (km_cursor_finish(&c) != KM_OK) return KM_ERR_PARSE;
    if (version != 1) return KM_ERR_UNSUPPORTED;
    unsigned char fp[32];
    km_sha256(fp, out->pub, 33);
    if (memcmp(fp, out->fp, 32) != 0) return KM_ERR_VERIFY;
    return KM_OK;
}

/* Records an INFO answer taken at gateway time now (monotonic ms).
 *
 * fresh: the answer came over a connection opened just now. Only then can it
 * be a new process: a live connection always reaches the process it was
 * opened to, and a restart breaks it. So health pings on a live connection
 * only refresh the boot estimate (tracking slow clock drift), and a boot time
 * that jumps forward by more than the slack is looked for on reconnects. */
static void apply_info_locked(penclave *e, const info *in, int fresh, int64_t now) {
    /* Capped far above any real uptime so that the product cannot overflow. */
    uint64_t up_s = in->uptime_s < 1000000000000ull ? in->uptime_s : 1000000000000ull;
    int64_t boot = now - (int64_t)up_s * 1000;
    /* The boot id decides (exact, even for a restart within a second); the
     * boot time is only kept for display. */
    if (e->generation == 0) {
        e->generation = 1;
        e->boot_ms = boot;
        memcpy(e->boot_id, in->boot_id, 16);
    } else if (fresh && memcmp(in->boot_id, e->boot_id, 16) != 0) {
        e->generation++;
        e->boot_ms = boot;
        memcpy(e->boot_id, in->boot_id, 16);
    } else if (memcmp(in->boot_id, e->boot_id, 16) == 0) {
        e->boot_ms = boot;
    } else {
        /* A ping answer that does not fit the current process (an older
         * one still serving an old connection): not a status to show. */
        return;
    }
    memcpy(e->fingerprint, in->fp, 32);
    e->uptime_s = in->uptime_s;
    e->keygens = in->keygens;
    e->signings = in->signings;
    e->keys = in->keys;
    e->last_ok_unix = (int64_t)time(NULL);
}

/* Asks the notifier thread to compare e's state with what the listener was
 * last told. Connection threads never call the listener themselves: a
 * listener that calls km_pool_call could be routed to the very connection
 * whose thread is calling it, before that thread reads responses. */
static void mark_dirty(km_pool *p, penclave *e) {
    pthread_mutex_lock(&p->mu);
    e->dirty = 1;
    pthread_cond_broadcast(&p->notify_cv);
    pthread_mutex_unlock(&p->mu);
}

/* Level-triggered: the listener always ends up told the current (up,
 * generation) of every enclave, in order, from this one thread. */
static void *notifier_main(void *arg) {
    km_pool *p = arg;
    size_t next = 0; /* round robin: a flapping enclave cannot starve the others */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        penclave *e = NULL;
        while (!p->stopping) {
            for (size_t k = 0; k < p->n && !e; k++)
                if (p->enc[(next + k) % p->n].dirty) {
                    e = &p->enc[(next + k) % p->n];
                    next = (next + k + 1) % p->n;
                }
            if (e) break;
            pthread_cond_wait(&p->notify_cv, &p->mu);
        }
        if (p->stopping) break;
        e->dirty = 0;
        pthread_mutex_unlock(&p->mu);
        pthread_mutex_lock(&e->mu);
        int up = connected_locked(e);
        uint64_t gen = e->generation;
        pthread_mutex_unlock(&e->mu);
        pthread_mutex_lock(&p->mu);
        void (*fn)(void *, uint32_t, int, uint64_t) = p->listener;
        void *larg = p->listener_arg;
        pthread_mutex_unlock(&p->mu);
        if (up != e->reported_up || (up && gen != e->reported_gen)) {
            e->reported_up = up;
            if (up) e->reported_gen = gen;
            if (fn) fn(larg, e->id, up, gen);
        }
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- connection thread ---------------------------------------------------- */

/* Connects, authenticates and runs INFO; on success the connection is up
 * (and the generation already updated) before any caller can pick it. */
static km_err conn_establish(pconn *c) {
    penclave *e = c->e;
    km_pool *p = e->p;
    unsigned hs_ms =
        p->cfg.call_timeout_ms < HANDSHAKE_TIMEOUT_MAX_MS ? p->cfg.call_timeout_ms : HANDSHAKE_TIMEOUT_MAX_MS;
    km_err err =
        km_enclave_conn_open_timeout(&c->ec, p->ctx, e->address, e->pubkey, km_secret_cdata(p->cred), hs_ms);
    if (err) return err;
    (void)km_enclave_conn_set_timeouts(&c->ec, p->cfg.call_timeout_ms, p->cfg.call_timeout_ms);
    km_msg m;
    info in;
    err = km_enclave_conn_call(&c->ec, KM_CMD_INFO, NULL, 0, &m); /* closes on error */
    if (err) return err;
    int64_t now = mono_ms();
    if (m.code != 0) err = m.code < KM_ERR__COUNT ? (km_err)m.code : KM_ERR_PARSE;
    if (!err) err = parse_info(m.body, m.body_len, &in);
    /* The handshake pinned the key already; a different one in INFO is a
     * broken enclave, not one to route calls to. */
    if (!err && memcmp(in.pub, e->pubkey, 33) != 0) err = KM_ERR_VERIFY;
    /* From now on the reader blocks for ever (a quiet connection is fine);
     * sends get a bound per call. */
    if (!err) err = km_enclave_conn_set_timeouts(&c->ec, 0, p->cfg.call_timeout_ms);
    if (err) {
        km_enclave_conn_close(&c->ec);
        return err;
    }
    c->rch = c->ec.ch;
    km_buf_init(&c->rin);
    pthread_mutex_lock(&e->mu);
    /* Checked under e->mu: destroy sets `stopping` first and then breaks every
     * connection that is up under e->mu, so no connection comes up unseen. */
    pthread_mutex_lock(&p->mu);
    int stopping = p->stopping;
    pthread_mutex_unlock(&p->mu);
    if (stopping) {
        pthread_mutex_unlock(&e->mu);
        km_enclave_conn_close(&c->ec);
        km_channel_clear(&c->rch);
        return KM_ERR_IO;
    }
    apply_info_locked(e, &in, 1, now);
    c->gen = e->generation;
    c->next_id = c->ec.next_id;
    if (c->ever_up) e->reconnects++;
    c->ever_up = 1;
    c->up = 1;
    pthread_mutex_unlock(&e->mu);
    return KM_OK;
}

/* Hands responses to their callers until the stream fails. */
static km_err conn_read_loop(pconn *c) {
    penclave *e = c->e;
    for (;;) {
        size_t n;
        km_msg m;
        km_err err = km_net_read_frame(c->ec.fd, &c->rin, KM_FRAME_MAX);
        if (!err) err = km_channel_open(&c->rch, c->rin.data, c->rin.len, &n);
        if (!err) err = km_msg_decode(&m, c->rin.data, n);
        if (!err && m.kind != KM_MSG_RESPONSE) err = KM_ERR_PARSE;
        if (err) return err;
        pthread_mutex_lock(&e->mu);
        /* An unknown id is the late answer of a caller that gave up. */
        for (waiter **pp = &c->pending; *pp; pp = &(*pp)->next) {
            waiter *w = *pp;
            if (w->id != m.request_id) continue;
            *pp = w->next;
            w->code = m.code;
            w->resp->len = 0;
            w->err = m.body_len ? km_buf_put(w->resp, m.body, m.body_len) : KM_OK;
            w->done = 1;
            pthread_cond_broadcast(&c->cv);
            break;
        }
        e->last_ok_unix = (int64_t)time(NULL);
        pthread_mutex_unlock(&e->mu);
    }
}

/* The connection is dead: fail its callers now (not at their timeouts), wait
 * for a sender to let go of the send half, close. */
static void conn_teardown(pconn *c, km_err why) {
    penclave *e = c->e;
    pthread_mutex_lock(&e->mu);
    /* Wakes a caller blocked writing into a full socket. */
    if (c->up) shutdown(c->ec.fd, SHUT_RDWR);
    c->up = 0;
    for (waiter *w = c->pending; w; w = w->next) {
        w->err = KM_ERR_IO;
        w->done = 1;
    }
    c->pending = NULL;
    pthread_cond_broadcast(&c->cv);
    while (c->sending)
        pthread_cond_wait(&c->cv, &e->mu);
    set_error_locked(e, "connection lost", why);
    pthread_mutex_unlock(&e->mu);
    km_enclave_conn_close(&c->ec);
    km_channel_clear(&c->rch);
    km_buf_free(&c->rin);
}

static void *conn_main(void *arg) {
    pconn *c = arg;
    penclave *e = c->e;
    km_pool *p = e->p;
    uint32_t rng = 0;
    if (km_random_bytes(&rng, sizeof rng) != KM_OK) rng = (uint32_t)mono_ms() ^ (uint32_t)(uintptr_t)c;
    unsigned backoff = p->cfg.backoff_min_ms;
    while (!is_stopping(p)) {
        km_err err = conn_establish(c);
        if (err) {
            set_error(e, "connect", err);
            /* Equal jitter: between half and all of the current step. */
            unsigned wait = backoff / 2 + jitter_next(&rng) % (backoff - backoff / 2 + 1);
            backoff = backoff > p->cfg.backoff_max_ms / 2 ? p->cfg.backoff_max_ms : backoff * 2;
            if (pool_sleep(p, wait)) break;
            continue;
        }
        backoff = p->cfg.backoff_min_ms;
        mark_dirty(p, e);
        err = conn_read_loop(c);
        conn_teardown(c, err);
        mark_dirty(p, e);
        if (pool_sleep(p, backoff / 2 + jitter_next(&rng) % (backoff - backoff / 2 + 1))) break;
    }
    return NULL;
}

/* ---- calls ---------------------------------------------------------------- */

static penclave *find_enclave(const km_pool *p, uint32_t id) {
    for (size_t i = 0; i < p->n; i++)
        if (p->enc[i].id == id) return &p->enc[i];
    return NULL;
}

/* The up connection with the fewest requests in flight, or NULL. */
static pconn *pick_locked(penclave *e) {
    pconn *best = NULL;
    for (unsigned i = 0; i < e->nconns; i++) {
        pconn *c = &e->conns[i];
        if (c->up && (!best || c->inflight < best->inflight)) best = c;
    }
    return best;
}

static void unlink_waiter(pconn *c, waiter *w) {
    for (waiter **pp = &c->pending; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            return;
        }
}

/* One request in flight: registered as a waiter on a connection and sent,
 * then waited for. Split in two so that km_pool_call_all can send to several
 * enclaves before waiting for any of them. */
typedef struct flight {
    penclave *e;
    pconn *c; /* NULL: no connection was up */
    waiter w;
    int64_t deadline;
    unsigned timeout_ms;
    int timed_out;
    uint64_t gen;
} flight;

/* Register and send; the request plaintext req already holds a header whose
 * id is patched here. On return f->w.done may already be set (failure). */
static void flight_send(flight *f, penclave *e, km_buf *req, unsigned timeout_ms, km_buf *resp) {
    memset(f, 0, sizeof *f);
    f->e = e;
    f->timeout_ms = timeout_ms;
    f->deadline = mono_ms() + timeout_ms;
    f->w.resp = resp;
    pthread_mutex_lock(&e->mu);
    pconn *c = pick_locked(e);
    if (!c) {
        pthread_mutex_unlock(&e->mu);
        f->w.done = 1;
        f->w.err = KM_ERR_IO;
        return;
    }
    f->c = c;
    f->w.id = c->next_id++;
    if (c->next_id == 0) c->next_id = 1;
    f->w.next = c->pending;
    c->pending = &f->w;
    c->inflight++;
    f->gen = c->gen;
    while (c->sending && !f->w.done)
        if (wait_until(&c->cv, &e->mu, f->deadline) == ETIMEDOUT) {
            f->timed_out = 1;
            break;
        }
    if (!f->w.done && !f->timed_out) {
        c->sending = 1;
        pthread_mutex_unlock(&e->mu);
        uint32_t id = f->w.id;
        req->data[1] = (unsigned char)(id >> 24);
        req->data[2] = (unsigned char)(id >> 16);
        req->data[3] = (unsigned char)(id >> 8);
        req->data[4] = (unsigned char)id;
        /* Bound the write by what is left of this call's time. */
        int64_t left = f->deadline - mono_ms();
        if (left < 1) left = 1;
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
        km_err serr = setsockopt(c->ec.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0 ? KM_OK : KM_ERR_IO;
        if (!serr) serr = km_enclave_conn_send_raw(&c->ec, req->data, req->len);
        pthread_mutex_lock(&e->mu);
        c->sending = 0;
        pthread_cond_broadcast(&c->cv);
        if (serr && !f->w.done) {
            /* A sealed record that did not (wholly) go out leaves the stream
             * and the nonce counters out of step: the connection is done. */
            unlink_waiter(c, &f->w);
            f->w.done = 1;
            f->w.err = KM_ERR_IO;
            if (c->up) shutdown(c->ec.fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&e->mu);
}

/* Wait for the answer of a sent flight (until its deadline). */
static km_err flight_wait(flight *f, uint16_t *code, uint64_t *gen) {
    penclave *e = f->e;
    pconn *c = f->c;
    if (!c) return f->w.err;
    pthread_mutex_lock(&e->mu);
    while (!f->w.done && !f->timed_out)
        if (wait_until(&c->cv, &e->mu, f->deadline) == ETIMEDOUT) f->timed_out = 1;
    km_err err = f->w.err;
    if (!f->w.done) {
        unlink_waiter(c, &f->w);
        err = KM_ERR_IO;
        snprintf(e->last_error, sizeof e->last_error, "call timed out after %u ms", f->timeout_ms);
    }
    c->inflight--;
    pthread_mutex_unlock(&e->mu);
    if (!err) {
        *code = f->w.code;
        if (gen) *gen = f->gen;
    }
    return err;
}

/* Count a finished call in e's statistics. */
static void account(penclave *e, km_err err) {
    pthread_mutex_lock(&e->mu);
    if (err == KM_ERR_IO) {
        e->calls_failed++;
        if (!connected_locked(e) && !e->last_error[0])
            snprintf(e->last_error, sizeof e->last_error, "not connected");
    } else if (!err) {
        e->calls_ok++;
    }
    pthread_mutex_unlock(&e->mu);
}

static int pool_enter(km_pool *p) {
    pthread_mutex_lock(&p->mu);
    int ok = !p->stopping;
    if (ok) p->active++;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

static void pool_leave(km_pool *p) {
    pthread_mutex_lock(&p->mu);
    if (--p->active == 0 && p->stopping) pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

km_err km_pool_call_gen(km_pool *p, uint32_t enclave_id, uint16_t cmd, const unsigned char *body, size_t len,
                        uint16_t *code, km_buf *resp, uint64_t *generation) {
    if (code) *code = 0;
    if (resp) resp->len = 0;
    if (generation) *generation = 0;
    if (!p || !code || !resp || (!body && len)) return KM_ERR_ARG;
    if (len > KM_FRAME_MAX - KM_CHANNEL_OVERHEAD - KM_MSG_HEADER_LEN) return KM_ERR_ARG;
    penclave *e = find_enclave(p, enclave_id);
    if (!e) return KM_ERR_NOT_FOUND;
    if (!pool_enter(p)) return KM_ERR_IO;
    km_buf req;
    km_buf_init(&req);
    km_err err = km_msg_put_header(&req, KM_MSG_REQUEST, 0, cmd);
    if (!err && len) err = km_buf_put(&req, body, len);
    if (!err) {
        flight f;
        flight_send(&f, e, &req, p->cfg.call_timeout_ms, resp);
        err = flight_wait(&f, code, generation);
        account(e, err);
    }
    km_buf_free(&req);
    if (err) {
        *code = 0;
        resp->len = 0;
    }
    pool_leave(p);
    return err;
}

km_err km_pool_call_all(km_pool *p, km_pool_req *reqs, size_t n) {
    return km_pool_call_all_during(p, reqs, n, NULL, NULL);
}

km_err km_pool_call_all_during(km_pool *p, km_pool_req *reqs, size_t n, void (*during)(void *arg),
                               void *arg) {
    if (!p || (!reqs && n)) return KM_ERR_ARG;
    for (size_t i = 0; i < n; i++) {
        reqs[i].err = KM_ERR_ARG;
        reqs[i].code = 0;
        if (reqs[i].resp) reqs[i].resp->len = 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!reqs[i].resp || (!reqs[i].body && reqs[i].len) ||
            reqs[i].len > KM_FRAME_MAX - KM_CHANNEL_OVERHEAD - KM_MSG_HEADER_LEN)
            return KM_ERR_ARG;
    if (!pool_enter(p)) {
        for (size_t i = 0; i < n; i++)
            reqs[i].err = KM_ERR_IO;
        if (during) during(arg);
        return KM_OK;
    }
    flight *f = calloc(n ? n : 1, sizeof *f);
    km_buf *msg = calloc(n ? n : 1, sizeof *msg);
    if (!f || !msg) {
        free(f);
        free(msg);
        pool_leave(p);
        return KM_ERR_NOMEM;
    }
    /* Send everything first: the enclaves work in parallel. */
    for (size_t i = 0; i < n; i++) {
        penclave *e = find_enclave(p, reqs[i].enclave_id);
        km_buf_init(&msg[i]);
        km_err err = e ? km_msg_put_header(&msg[i], KM_MSG_REQUEST, 0, reqs[i].cmd) : KM_ERR_NOT_FOUND;
        if (!err && reqs[i].len) err = km_buf_put(&msg[i], reqs[i].body, reqs[i].len);
        if (err) {
            f[i].c = NULL;
            f[i].e = NULL;
            f[i].w.err = err;
            continue;
        }
        flight_send(&f[i], e, &msg[i], p->cfg.call_timeout_ms, reqs[i].resp);
    }
    /* The caller's own work while the enclaves compute. */
    if (during) during(arg);
    for (size_t i = 0; i < n; i++) {
        km_err err = f[i].e ? flight_wait(&f[i], &reqs[i].code, NULL) : f[i].w.err;
        if (f[i].e) account(f[i].e, err);
        reqs[i].err = err;
        if (err) {
            reqs[i].code = 0;
            reqs[i].resp->len = 0;
        }
        km_buf_free(&msg[i]);
    }
    free(f);
    free(msg);
    pool_leave(p);
    return KM_OK;
}

km_err km_pool_call(km_pool *p, uint32_t enclave_id, uint16_t cmd, const unsigned char *body, size_t len,
                    uint16_t *code, km_buf *resp) {
    return km_pool_call_gen(p, enclave_id, cmd, body, len, code, resp, NULL);
}

/* ---- health --------------------------------------------------------------- */

static void health_ping(km_pool *p, penclave *e) {
    km_buf req, resp;
    km_buf_init(&req);
    km_buf_init(&resp);
    uint16_t code = 0;
    info in;
    km_err err = km_msg_put_header(&req, KM_MSG_REQUEST, 0, KM_CMD_INFO);
    if (!err) {
        flight f;
        flight_send(&f, e, &req, p->cfg.call_timeout_ms, &resp);
        err = flight_wait(&f, &code, NULL);
    }
    int64_t now = mono_ms();
    if (!err && code != 0) err = code < KM_ERR__COUNT ? (km_err)code : KM_ERR_PARSE;
    if (!err) err = parse_info(resp.data, resp.len, &in);
    pthread_mutex_lock(&e->mu);
    if (err)
        set_error_locked(e, "health", err);
    else
        apply_info_locked(e, &in, 0, now);
    pthread_mutex_unlock(&e->mu);
    km_buf_free(&req);
    km_buf_free(&resp);
}

static void *health_main(void *arg) {
    km_pool *p = arg;
    while (!pool_sleep(p, p->cfg.health_interval_ms)) {
        for (size_t i = 0; i < p->n && !is_stopping(p); i++) {
            penclave *e = &p->enc[i];
            pthread_mutex_lock(&e->mu);
            int up = connected_locked(e);
            pthread_mutex_unlock(&e->mu);
            if (up) health_ping(p, e);
        }
    }
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------ */

static km_err check_config(km_pool_config *c) {
    if (!c->conns_per_enclave) c->conns_per_enclave = 2;
    if (!c->call_timeout_ms) c->call_timeout_ms = 10000;
    if (!c->health_interval_ms) c->health_interval_ms = 2000;
    if (!c->backoff_min_ms) c->backoff_min_ms = 100;
    if (!c->backoff_max_ms) c->backoff_max_ms = c->backoff_min_ms > 5000 ? c->backoff_min_ms : 5000;
    /* Upper bounds keep the millisecond arithmetic far from overflow. */
    if (c->conns_per_enclave > KM_POOL_MAX_CONNS || c->call_timeout_ms > 3600000u ||
        c->health_interval_ms > 3600000u || c->backoff_max_ms > 3600000u ||
        c->backoff_min_ms > c->backoff_max_ms)
        return KM_ERR_ARG;
    return KM_OK;
}

static void pool_free(km_pool *p) {
    for (size_t i = 0; i < p->n; i++) {
        penclave *e = &p->enc[i];
        if (!e->conns) continue;
        for (unsigned j = 0; j < e->nconns; j++)
            pthread_cond_destroy(&e->conns[j].cv);
        pthread_mutex_destroy(&e->mu);
        free(e->conns);
    }
    free(p->enc);
    km_secret_free(p->cred);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->notify_cv);
    free(p);
}

void km_pool_destroy(km_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_cond_broadcast(&p->notify_cv);
    pthread_mutex_unlock(&p->mu);
    /* Breaking the streams wakes the readers, which fail every waiting caller. */
    for (size_t i = 0; i < p->n; i++) {
        penclave *e = &p->enc[i];
        if (!e->conns) continue;
        pthread_mutex_lock(&e->mu);
        for (unsigned j = 0; j < e->nconns; j++)
            if (e->conns[j].up) shutdown(e->conns[j].ec.fd, SHUT_RDWR);
        pthread_mutex_unlock(&e->mu);
    }
    pthread_mutex_lock(&p->mu);
    while (p->active)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    if (p->health_started) pthread_join(p->health, NULL);
    if (p->notifier_started) pthread_join(p->notifier, NULL);
    for (size_t i = 0; i < p->n; i++) {
        penclave *e = &p->enc[i];
        for (unsigned j = 0; e->conns && j < e->nconns; j++)
            if (e->conns[j].thread_started) pthread_join(e->conns[j].thread, NULL);
    }
    pool_free(p);
}

km_err km_pool_create(km_pool **out, km_ctx *ctx, const km_pool_config *cfg,
                      const km_pool_enclave_cfg *enclaves, size_t n, const unsigned char gateway_seckey[32]) {
    if (out) *out = NULL;
    if (!out || !ctx || !enclaves || !gateway_seckey || n == 0 || n > 4096) return KM_ERR_ARG;
    km_pool_config c;
    if (cfg)
        c = *cfg;
    else
        memset(&c, 0, sizeof c);
    if (check_config(&c) != KM_OK) return KM_ERR_ARG;
    const secp256k1_context *secp = km_ctx_secp(ctx);
    for (size_t i = 0; i < n; i++) {
        const km_pool_enclave_cfg *ec = &enclaves[i];
        size_t al = strnlen(ec->address, sizeof ec->address);
        if (al == 0 || al == sizeof ec->address) return KM_ERR_ARG;
        secp256k1_pubkey pk;
        if ((ec->pubkey[0] != 2 && ec->pubkey[0] != 3) ||
            !secp256k1_ec_pubkey_parse(secp, &pk, ec->pubkey, 33))
            return KM_ERR_INVALID_POINT;
        for (size_t j = 0; j < i; j++)
            if (enclaves[j].id == ec->id) return KM_ERR_DUPLICATE;
    }
    if (!secp256k1_ec_seckey_verify(secp, gateway_seckey)) return KM_ERR_INVALID_KEY;

    km_pool *p = calloc(1, sizeof *p);
    if (!p) return KM_ERR_NOMEM;
    p->ctx = ctx;
    p->cfg = c;
    if (pthread_mutex_init(&p->mu, NULL) != 0 || cond_init(&p->cv) != 0 ||
        pthread_cond_init(&p->notify_cv, NULL) != 0) {
        free(p); /* glibc's init of these allocates nothing */
        return KM_ERR_NOMEM;
    }
    km_err err = km_secret_from(ctx, gateway_seckey, 32, &p->cred);
    if (!err && !(p->enc = calloc(n, sizeof *p->enc))) err = KM_ERR_NOMEM;
    if (err) {
        pool_free(p);
        return err;
    }
    p->n = n;
    for (size_t i = 0; i < n && !err; i++) {
        penclave *e = &p->enc[i];
        e->p = p;
        e->id = enclaves[i].id;
        memcpy(e->address, enclaves[i].address, sizeof e->address);
        memcpy(e->pubkey, enclaves[i].pubkey, 33);
        e->conns = calloc(c.conns_per_enclave, sizeof *e->conns);
        if (!e->conns || pthread_mutex_init(&e->mu, NULL) != 0) {
            free(e->conns);
            e->conns = NULL;
            err = KM_ERR_NOMEM;
            break;
        }
        e->nconns = c.conns_per_enclave;
        for (unsigned j = 0; j < e->nconns; j++) {
            pconn *pc = &e->conns[j];
            pc->e = e;
            pc->ec.fd = -1;
            pc->next_id = 1;
            if (cond_init(&pc->cv) != 0) err = KM_ERR_NOMEM; /* glibc: cannot fail */
        }
    }
    /* Threads last: every structure they touch exists. */
    for (size_t i = 0; i < n && !err; i++)
        for (unsigned j = 0; j < p->enc[i].nconns && !err; j++) {
            pconn *pc = &p->enc[i].conns[j];
            if (pthread_create(&pc->thread, NULL, conn_main, pc) != 0)
                err = KM_ERR_IO;
            else
                pc->thread_started = 1;
        }
    if (!err) {
        if (pthread_create(&p->notifier, NULL, notifier_main, p) != 0)
            err = KM_ERR_IO;
        else
            p->notifier_started = 1;
    }
    if (!err) {
        if (pthread_create(&p->health, NULL, health_main, p) != 0)
            err = KM_ERR_IO;
        else
            p->health_started = 1;
    }
    if (err) {
        km_pool_destroy(p);
        return err;
    }
    *out = p;
    return KM_OK;
}

/* ---- queries -------------------------------------------------------------- */

km_err km_pool_status_get(km_pool *p, uint32_t enclave_id, km_pool_status *out) {
    if (!out) return KM_ERR_ARG;
    memset(out, 0, sizeof *out);
    if (!p) return KM_ERR_ARG;
    penclave *e = find_enclave(p, enclave_id);
    if (!e) return KM_ERR_NOT_FOUND;
    out->id = e->id;
    memcpy(out->pubkey, e->pubkey, 33);
    pthread_mutex_lock(&e->mu);
    out->connected = connected_locked(e);
    memcpy(out->fingerprint, e->fingerprint, 32);
    out->generation = e->generation;
    out->uptime_s = e->uptime_s;
    out->keygens = e->keygens;
    out->signing_sessions = e->signings;
    out->keys = e->keys;
    out->calls_ok = e->calls_ok;
    out->calls_failed = e->calls_failed;
    out->reconnects = e->reconnects;
    out->last_ok_unix = e->last_ok_unix;
    memcpy(out->last_error, e->last_error, sizeof out->last_error);
    for (unsigned j = 0; j < e->nconns; j++)
        out->in_flight += e->conns[j].inflight;
    pthread_mutex_unlock(&e->mu);
    return KM_OK;
}

size_t km_pool_count(const km_pool *p) {
    return p ? p->n : 0;
}

km_err km_pool_id_at(const km_pool *p, size_t i, uint32_t *id) {
    if (id) *id = 0;
    if (!p || !id) return KM_ERR_ARG;
    if (i >= p->n) return KM_ERR_RANGE;
    *id = p->enc[i].id;
    return KM_OK;
}

uint64_t km_pool_generation(km_pool *p, uint32_t enclave_id) {
    penclave *e = p ? find_enclave(p, enclave_id) : NULL;
    if (!e) return 0;
    pthread_mutex_lock(&e->mu);
    uint64_t g = e->generation;
    pthread_mutex_unlock(&e->mu);
    return g;
}

void km_pool_set_listener(km_pool *p, void (*fn)(void *arg, uint32_t enclave_id, int up, uint64_t generation),
                          void *arg) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->listener = fn;
    p->listener_arg = fn ? arg : NULL;
    pthread_mutex_unlock(&p->mu);
}
