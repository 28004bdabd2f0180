/* gateway/coordinator.c — carries sessions through their steps.
 *
 * Event-driven: a session is queued (km_coord_kick) when something it waits
 * for happens — creation, a registration, an approval, an enclave coming
 * back — and a worker then drives it as far as it can go at once: through
 * every step that needs no outside input, each step's enclave calls made
 * back to back. Nothing polls. The only timers are retries with capped
 * exponential backoff (an enclave is down) and the expiry sweep.
 *
 * Safety rules:
 *  - one session is driven by at most one worker of this process (the task
 *    list) and one process (km_store_claim leases in the database);
 *  - every step's result is in the store before the next step starts, so a
 *    crash at any point resumes from the last stored step; enclave commands
 *    are idempotent per (session, step), so re-sending the interrupted step
 *    is safe;
 *  - an enclave that lost a signing round (restart) is never given a
 *    partial signature request over other nonces: the round restarts on all
 *    enclaves with fresh nonces (SESSION_CLEAR then SIGN_INIT);
 *  - after any (re)connection the enclave's stored blobs are re-sent
 *    (restore) before requests that need them are allowed through. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/handlers.h"
#include "keymeld/aead.h"
#include "keymeld/hex.h"
#include "keymeld/protocol.h"

enum {
    T_KEYGEN = KM_STORE_KEYGEN,
    T_SIGNING = KM_STORE_SIGNING,
    T_KEYSIGN = KM_STORE_KEYSIGN,
    T_RESTORE = 10,
    T_SWEEP = 11
};
enum { QUEUED = 0, RUNNING = 1 };
/* What a step run reports. */
enum { R_DONE = 0, R_RETRY = 1 };

#define LEASE_S        15
#define SWEEP_MS       1000
#define MAX_RESTARTS   3
#define REPLAY_PURGE_S 60

typedef struct task {
    int kind;
    unsigned char id[16]; /* session id; for T_RESTORE the enclave id in the first 4 bytes */
    int state;
    int rerun; /* kicked while running: run again right after */
    unsigned attempts;
    unsigned restarts; /* signing rounds restarted */
    uint64_t due_ms;
    char last_error[160];
} task;

struct km_coord {
    km_gateway *gw;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    task *tasks;
    size_t n, cap;
    pthread_t *workers;
    size_t n_workers;
    int stopping;
    /* enclave restore state, parallel to gw->cfg.enclaves */
    uint64_t *restored_gen;
    int64_t last_purge;
};

/* ---- helpers -------------------------------------------------------------- */

static uint32_t task_enclave(const task *t) {
    uint32_t v;
    memcpy(&v, t->id, 4);
    return v;
}

static size_t enclave_index(const km_gateway *gw, uint32_t id) {
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++)
        if (gw->cfg.enclaves[i].id == id) return i;
    return SIZE_MAX;
}

int km_coord_enclave_ready(km_gateway *gw, uint32_t enclave_id) {
    km_coord *c = gw->coord;
    size_t i = enclave_index(gw, enclave_id);
    if (!c || i == SIZE_MAX) return 0;
    uint64_t gen = km_pool_generation(gw->pool, enclave_id);
    pthread_mutex_lock(&c->lock);
    int ready = gen != 0 && c->restored_gen[i] == gen;
    pthread_mutex_unlock(&c->lock);
    return ready;
}

/* Back to durable commits after relaxed ones (km_store_set_durable(st, 0)):
 * returns err, or the restore's own error if err is KM_OK. A handle whose
 * durability cannot be restored refuses every later write. */
static km_err durable_again(km_store *st, km_err err) {
    km_err restore = km_store_set_durable(st, 1);
    return err ? err : restore;
}

/* final: the session is now completed or failed (waiters for the final
 * state only are resumed by these alone). */
static void notify(km_gateway *gw, km_store_kind kind, const unsigned char id[16], int final) {
    char key[48];
    km_gw_wait_key(key, kind, id);
    if (gw->http) km_http_notify_change(gw->http, key, final);
}

/* An enclave call for the coordinator. Returns KM_OK when the enclave
 * answered (status in *code, detail text of a refusal in t->last_error), or
 * the transport error. */
/* Describe an enclave's answer in t->last_error (transport error or refusal). */
static void note_outcome(task *t, uint32_t enclave_id, uint16_t cmd, km_err err, uint16_t status,
                         const km_buf *reply) {
    if (err) {
        snprintf(t->last_error, sizeof t->last_error, "enclave %u: %s: %s", enclave_id, km_cmd_name(cmd),
                 km_err_name(err));
        return;
    }
    if (status == KM_OK) return;
    char detail[KM_MSG_DETAIL_MAX + 1] = "";
    km_msg m = {KM_MSG_RESPONSE, 0, status, reply->data, reply->len};
    if (km_msg_error_detail(&m, detail, sizeof detail) != KM_OK) detail[0] = '\0';
    /* The enclave's detail first: the stored reason holds 127 bytes, and the
     * detail is what names e.g. the participant whose partial signature was
     * invalid. */
    if (detail[0])
        snprintf(t->last_error, sizeof t->last_error, "%.88s [%s, enclave %u]", detail,
                 km_err_name((km_err)status), enclave_id);
    else
        snprintf(t->last_error, sizeof t->last_error, "enclave %u refused %s: %s", enclave_id,
                 km_cmd_name(cmd), km_err_name((km_err)status));
}

/* An enclave call for the coordinator. Returns KM_OK when the enclave
 * answered (status in *code, a refusal described in t->last_error), or the
 * transport error. */
static km_err call(km_gateway *gw, task *t, uint32_t enclave_id, uint16_t cmd, const km_buf *body,
                   km_buf *reply, km_err *code) {
    uint16_t status = 0;
    *code = KM_ERR__COUNT;
    km_err err = km_pool_call(gw->pool, enclave_id, cmd, body->data, body->len, &status, reply);
    note_outcome(t, enclave_id, cmd, err, status, reply);
    if (!err) *code = (km_err)status;
    return err;
}

/* The same command with the same body to m enclaves at once (they work in
 * parallel: a step costs the slowest enclave, not the sum); during(arg), if
 * not NULL, runs while they do (see km_pool_call_all_during). Returns KM_OK
 * when all answered; codes[i] their statuses (the first refusal described
 * in t->last_error); else the first transport error. */
static km_err call_all(km_gateway *gw, task *t, const uint32_t *encs, size_t m, uint16_t cmd,
                       const km_buf *body, km_buf *replies, km_err *codes, void (*during)(void *),
                       void *arg) {
    km_pool_req reqs[KM_GW_MAX_ENCLAVES];
    for (size_t i = 0; i < m; i++) {
        reqs[i] = (km_pool_req){encs[i], cmd, body->data, body->len, &replies[i], 0, KM_OK};
        codes[i] = KM_ERR__COUNT;
    }
    km_err err = km_pool_call_all_during(gw->pool, reqs, m, during, arg);
    if (err) return err;
    km_err first_transport = KM_OK;
    int refusal_noted = 0;
    for (size_t i = 0; i < m; i++) {
        if (reqs[i].err) {
            if (!first_transport) {
                first_transport = reqs[i].err;
                note_outcome(t, encs[i], cmd, reqs[i].err, 0, &replies[i]);
            }
            continue;
        }
        codes[i] = (km_err)reqs[i].code;
        if (codes[i] != KM_OK && !refusal_noted && !first_transport) {
            note_outcome(t, encs[i], cmd, KM_OK, reqs[i].code, &replies[i]);
            refusal_noted = 1;
        }
    }
    return first_transport;
}

/* The pool generation (process) of each enclave, taken BEFORE the readiness
 * check: a step's calls can reach a process that started after the check. */
static void gens_of(km_gateway *gw, const uint32_t *encs, size_t m, uint64_t *gens) {
    for (size_t i = 0; i < m; i++)
        gens[i] = km_pool_generation(gw->pool, encs[i]);
}

/* Did an enclave restart since gens_of? Its refusal (e.g. "keygen unknown"
 * from a process not restored yet) then says nothing about the session: the
 * step is retried once the enclave is restored, not failed (found by
 * keymeld-chaos). */
static int restarted_since(km_gateway *gw, const uint32_t *encs, size_t m, const uint64_t *gens) {
    for (size_t i = 0; i < m; i++)
        if (km_pool_generation(gw->pool, encs[i]) != gens[i]) return 1;
    return 0;
}

/* Replies of a parallel call: one buffer per enclave. */
typedef struct replies {
    km_buf r[KM_GW_MAX_ENCLAVES];
    km_err code[KM_GW_MAX_ENCLAVES];
} replies;

static void replies_init(replies *rs) {
    for (size_t i = 0; i < KM_GW_MAX_ENCLAVES; i++)
        km_buf_init(&rs->r[i]);
}

static void replies_free(replies *rs) {
    for (size_t i = 0; i < KM_GW_MAX_ENCLAVES; i++)
        km_buf_free(&rs->r[i]);
}

/* Distinct enclaves of an assignment, ascending. Returns count. */
static size_t enclaves_of(const km_store_assignment *as, size_t n, uint32_t *out) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < m && out[j] != as[i].enclave_id; j++) {
        }
        if (j == m) out[m++] = as[i].enclave_id;
    }
    for (size_t i = 1; i < m; i++) /* insertion sort: tiny lists */
        for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
            uint32_t x = out[j];
            out[j] = out[j - 1];
            out[j - 1] = x;
        }
    return m;
}

/* "u16 n | vbytes record*n" of the registrations' participant records. */
static km_err registration_records(km_store *st, const unsigned char keygen_id[16],
                                   const km_store_assignment *as, size_t n, km_buf *out) {
    km_err err = km_buf_put_u16(out, (uint16_t)n);
    for (size_t i = 0; !err && i < n; i++) {
        km_buf rec;
        km_buf_init(&rec);
        err = km_store_registration_get(st, keygen_id, as[i].user_id, NULL, &rec);
        if (!err && rec.len == 0) err = KM_ERR_STATE;
        if (!err) err = km_gw_put_vbytes(out, rec.data, rec.len);
        km_buf_free(&rec);
    }
    return err;
}

static void fail_session(km_gateway *gw, km_store *st, int kind, const unsigned char id[16],
                         const char *reason) {
    km_err err;
    int64_t now = km_gw_now();
    if (kind == T_KEYGEN)
        err = km_store_keygen_set_state(st, id, KM_KEYGEN_FAILED, reason, now);
    else if (kind == T_SIGNING)
        err = km_store_signing_set_state(st, id, KM_SIGNING_FAILED, reason, now);
    else
        err = km_store_keysign_finish(st, id, NULL, 0, reason, now);
    if (!err) atomic_fetch_add(&gw->metrics.sessions_failed[kind], 1);
    char hex[33];
    if (km_hex_encode(hex, sizeof hex, id, 16) == KM_OK)
        fprintf(stderr, "keymeld-gateway: session %s failed: %s\n", hex, reason);
    notify(gw, (km_store_kind)kind, id, 1);
}

/* ---- keygen --------------------------------------------------------------- */

static int run_keygen(km_gateway *gw, km_store *st, task *t) {
    km_store_keygen kg;
    km_store_assignment *as = NULL;
    size_t n = 0;
    int rc = R_DONE;
    km_buf body, reply;
    km_buf_init(&body);
    km_buf_init(&reply);
    if (km_store_keygen_get(st, t->id, &kg) != KM_OK) return R_DONE; /* deleted */
    if (kg.state == KM_KEYGEN_COMPLETED || kg.state == KM_KEYGEN_FAILED) goto out;
    km_err err = km_gw_assignments(st, t->id, &as, &n);
    if (err) {
        rc = R_RETRY;
        goto out;
    }
    if (kg.state == KM_KEYGEN_COLLECTING) {
        size_t reg = 0;
        unsigned char one[1][16];
        err = km_store_registration_list(st, t->id, one, 0, &reg);
        if (err && err != KM_ERR_BUFFER_SMALL) {
            rc = R_RETRY;
            goto out;
        }
        if (reg < n) goto out; /* waiting for registrations */
        /* No sync of its own: lost with the machine, the keygen is back to
         * collecting with every registration stored and moves on again. */
        err = km_store_set_durable(st, 0);
        if (!err) err = km_store_keygen_set_state(st, t->id, KM_KEYGEN_FINALIZING, NULL, km_gw_now());
        if (durable_again(st, err) != KM_OK) {
            rc = R_RETRY;
            goto out;
        }
        notify(gw, KM_STORE_KEYGEN, t->id, 0);
    }
    /* finalizing: every enclave of the keygen aggregates the same records */
    uint32_t encs[KM_GW_MAX_ENCLAVES];
    size_t m = enclaves_of(as, n, encs);
    err = km_buf_put(&body, t->id, 16);
    if (!err) err = registration_records(st, t->id, as, n, &body);
    if (err) {
        rc = R_RETRY;
        goto out;
    }
    uint64_t gens[KM_GW_MAX_ENCLAVES];
    gens_of(gw, encs, m, gens);
    for (size_t i = 0; i < m; i++)
        if (!km_coord_enclave_ready(gw, encs[i])) {
            snprintf(t->last_error, sizeof t->last_error, "enclave %u not ready", encs[i]);
            rc = R_RETRY;
            goto out;
        }
    /* Every enclave aggregates at once; the first enclave's sealed result is
     * the one stored (each is sealed with its own random nonce). */
    replies rs;
    replies_init(&rs);
    size_t i;
    if (call_all(gw, t, encs, m, KM_CMD_KEYGEN_FINALIZE, &body, rs.r, rs.code, NULL, NULL) != KM_OK) {
        rc = R_RETRY;
    } else {
        for (i = 0; i < m && rs.code[i] == KM_OK; i++) {
        }
        if (i < m && restarted_since(gw, encs, m, gens)) {
            rc = R_RETRY;
        } else if (i < m) {
            fail_session(gw, st, T_KEYGEN, t->id, t->last_error);
        } else if (km_store_keygen_complete(st, t->id, rs.r[0].data, rs.r[0].len, km_gw_now()) != KM_OK) {
            rc = R_RETRY;
        } else {
            atomic_fetch_add(&gw->metrics.sessions_completed[0], 1);
            notify(gw, KM_STORE_KEYGEN, t->id, 1);
        }
    }
    replies_free(&rs);
out:
    free(as);
    km_store_keygen_clear(&kg);
    km_buf_free(&body);
    km_buf_free(&reply);
    return rc;
}

/* ---- signing -------------------------------------------------------------- */

/* Count of participants that must approve, and whether all have. */
static km_err approvals_complete(km_store *st, const km_store_signing *s, const km_store_assignment *as,
                                 size_t n, int *complete) {
    *complete = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ak[32];
        uint8_t flags = 0;
        km_err err = km_store_registration_info(st, s->keygen_id, as[i].user_id, ak, &flags);
        if (err) return err;
        if ((flags & 1) && km_store_approval_get(st, s->id, as[i].user_id, NULL) != KM_OK) *complete = 0;
    }
    return KM_OK;
}

/* Records collected from every enclave in one round, in user-id order once
 * sort_records has run (the order the store returns them in). */
typedef struct round_records {
    km_store_record *r;
    size_t n, cap;
} round_records;

static void round_records_free(round_records *rr) {
    if (rr->r) km_store_records_clear(rr->r, rr->n);
    free(rr->r);
    memset(rr, 0, sizeof *rr);
}

/* The stored records of one kind (replacing rr's content). */
static km_err load_records(km_store *st, const unsigned char id[16], km_store_record_kind kind,
                           round_records *rr) {
    round_records_free(rr);
    size_t n = 0;
    km_store_record one;
    km_err err = km_store_signing_records(st, id, kind, &one, 0, &n);
    if (err == KM_OK) {
        km_store_records_clear(&one, 0);
        return KM_OK;
    }
    if (err != KM_ERR_BUFFER_SMALL) return err;
    rr->r = calloc(n, sizeof *rr->r);
    if (!rr->r) return KM_ERR_NOMEM;
    err = km_store_signing_records(st, id, kind, rr->r, n, &n);
    if (err) {
        free(rr->r);
        rr->r = NULL;
        return err;
    }
    rr->n = rr->cap = n;
    return KM_OK;
}

/* "u16 n | vbytes record*n" of rr, as an enclave reads it (PROTOCOL.md 5.3). */
static km_err put_records(km_buf *out, const round_records *rr) {
    if (rr->n > UINT16_MAX) return KM_ERR_RANGE;
    km_err err = km_buf_put_u16(out, (uint16_t)rr->n);
    for (size_t i = 0; !err && i < rr->n; i++)
        err = km_gw_put_vbytes(out, rr->r[i].blob.data, rr->r[i].blob.len);
    return err;
}

/* Append each record of a reply "u16 n | vbytes record*n"; a record starts
 * with its user id (PROTOCOL.md 5.3). */
static km_err add_records(round_records *rr, const km_buf *reply) {
    km_cursor c;
    uint16_t n;
    km_cursor_init(&c, reply->data, reply->len);
    km_err err = km_cursor_get_u16(&c, &n);
    for (uint16_t i = 0; !err && i < n; i++) {
        uint32_t len;
        const unsigned char *rec;
        err = km_cursor_get_u32(&c, &len);
        if (!err) err = km_cursor_get_view(&c, &rec, len);
        if (!err && len < 16) err = KM_ERR_PARSE;
        if (!err && rr->n == rr->cap) {
            size_t cap = rr->cap ? 2 * rr->cap : 8;
            km_store_record *nr = realloc(rr->r, cap * sizeof *nr);
            if (!nr) return KM_ERR_NOMEM;
            rr->r = nr;
            rr->cap = cap;
        }
        if (!err) {
            km_store_record *r = &rr->r[rr->n];
            memcpy(r->user_id, rec, 16);
            km_buf_init(&r->blob);
            rr->n++;
            err = km_buf_put(&r->blob, rec, len);
        }
    }
    if (!err) err = km_cursor_finish(&c);
    return err;
}

/* Into user-id order, so that a body built from memory is the one a resumed
 * run builds from the store (insertion sort: a record per participant). */
static void sort_records(round_records *rr) {
    for (size_t i = 1; i < rr->n; i++)
        for (size_t j = i; j > 0 && memcmp(rr->r[j - 1].user_id, rr->r[j].user_id, 16) > 0; j--) {
            km_store_record x = rr->r[j];
            rr->r[j] = rr->r[j - 1];
            rr->r[j - 1] = x;
        }
}

/* Writes whose loss can only make a step run again skip the disk sync
 * (km_store_set_durable): a round's records (lost: the enclaves return the
 * same nonces and partials for the same round, or the round restarts with
 * fresh nonces) and leases (lost only with the machine, and with it every
 * process that held them). What a client is told about (creates,
 * registrations, approvals, results) is always written durably, and a later
 * durable commit puts the relaxed ones on disk first (the log is ordered). */
static km_err put_round(km_store *st, const unsigned char id[16], km_store_record_kind kind,
                        const round_records *rr) {
    km_err err = km_store_set_durable(st, 0);
    if (!err) err = km_store_signing_put_records(st, id, kind, rr->r, rr->n, km_gw_now());
    return durable_again(st, err);
}

/* An enclave lost the round (restarted, or the store holds nonces of an
 * earlier process): clear the session on every enclave and start again with
 * fresh nonces. A partial signature is never requested over other nonces. */
static int restart_round(km_gateway *gw, km_store *st, task *t, const uint32_t *encs, size_t m) {
    if (++t->restarts > MAX_RESTARTS) {
        char reason[KM_STORE_REASON_MAX + 160];
        snprintf(reason, sizeof reason, "signing round lost %u times (%s)", MAX_RESTARTS, t->last_error);
        reason[KM_STORE_REASON_MAX - 1] = '\0';
        fail_session(gw, st, T_SIGNING, t->id, reason);
        return R_DONE;
    }
    km_buf body, reply;
    km_buf_init(&body);
    km_buf_init(&reply);
    int rc = R_DONE;
    if (km_buf_put_u8(&body, 2) || km_buf_put(&body, t->id, 16)) rc = R_RETRY;
    for (size_t i = 0; rc == R_DONE && i < m; i++) {
        km_err code;
        if (!km_coord_enclave_ready(gw, encs[i]) ||
            call(gw, t, encs[i], KM_CMD_SESSION_CLEAR, &body, &reply, &code))
            rc = R_RETRY; /* must reach every enclave before new nonces exist */
    }
    if (rc == R_DONE && km_store_signing_restart_round(st, t->id, km_gw_now()) != KM_OK) rc = R_RETRY;
    if (rc == R_DONE) atomic_fetch_add(&gw->metrics.round_restarts, 1);
    km_buf_free(&body);
    km_buf_free(&reply);
    if (rc == R_RETRY) t->restarts--;
    return rc;
}

/* What one step of a signing session did. */
enum { S_NEXT, S_WAIT, S_RETRY, S_END };

/* Everything a signing step needs.
 *
 * A round's records are committed while the enclaves compute the next round
 * from the same records in memory (the store's commit and the enclaves' work
 * overlap instead of adding up). This keeps the rules in the header: what the
 * enclaves are given is exactly what is then stored, in the store's order; a
 * commit that fails leaves the store at the earlier step, which a later run
 * repeats with the enclaves answering from their caches (same nonces, same
 * partials); a commit that finds other records (KM_ERR_DUPLICATE) restarts
 * the round with fresh nonces, and the enclaves refuse to sign other
 * aggregate nonces with nonces they have used (KM_ERR_NONCE_REUSE), so the
 * answers of the overlapped call are then discarded unused. */
typedef struct signing_ctx {
    km_gateway *gw;
    km_store *st;
    task *t;
    km_store_signing s;
    km_store_assignment *as;
    size_t n;
    uint32_t encs[KM_GW_MAX_ENCLAVES];
    uint64_t gens[KM_GW_MAX_ENCLAVES]; /* their generations when the step began */
    size_t m;
    km_buf body, reply;
    round_records nonces, partials; /* this run's records of each round */
    /* 0, or the kind of the records that are in memory and not yet stored;
     * the session is then in `ahead` as far as this run is concerned. */
    int pending;
    km_store_signing_state ahead;
    int changed; /* the step committed something a waiter can see */
} signing_ctx;

/* An enclave refused: the session fails with the enclave's words (e.g.
 * "... invalid partial signature from participant <uuid>"). */
static int refused(signing_ctx *x) {
    if (restarted_since(x->gw, x->encs, x->m, x->gens)) return S_RETRY;
    fail_session(x->gw, x->st, T_SIGNING, x->t->id, x->t->last_error);
    return S_END;
}

/* The round was lost: start again with fresh nonces (the step after is the
 * nonce round). */
static int lost_round(signing_ctx *x) {
    if (restart_round(x->gw, x->st, x->t, x->encs, x->m) != R_DONE) return S_RETRY;
    x->changed = 1;
    return S_NEXT;
}

/* Keep a round's records (taken over from rr) as this run's, to be committed
 * during the next round's call; the session is then `ahead` for this run. */
static void hold_pending(signing_ctx *x, round_records *held, round_records *rr, km_store_record_kind kind,
                         km_store_signing_state ahead) {
    sort_records(rr);
    round_records_free(held);
    *held = *rr;
    memset(rr, 0, sizeof *rr);
    x->pending = kind;
    x->ahead = ahead;
}

/* The pending records, committed during an overlapped enclave call. */
typedef struct overlap {
    signing_ctx *x;
    const round_records *rr;
    km_store_record_kind kind;
    km_err err;
    int ran;
} overlap;

static void commit_pending(void *arg) {
    overlap *o = arg;
    o->err = put_round(o->x->st, o->x->t->id, o->kind, o->rr);
    o->ran = 1;
}

/* call_all with x->pending's records committed while the enclaves work;
 * *put_err is that commit's outcome (KM_OK when nothing was pending). */
static km_err call_all_committing(signing_ctx *x, uint16_t cmd, size_t m, replies *rs, km_err *put_err) {
    overlap o = {x, x->pending == KM_RECORD_NONCE ? &x->nonces : &x->partials,
                 (km_store_record_kind)x->pending, KM_OK, 0};
    km_err err = call_all(x->gw, x->t, x->encs, m, cmd, &x->body, rs->r, rs->code,
                          x->pending ? commit_pending : NULL, &o);
    if (x->pending) {
        x->pending = 0;
        /* Not run (the call was refused before sending): commit now. */
        if (!o.ran) commit_pending(&o);
        if (!o.err) x->changed = 1;
    }
    *put_err = o.err;
    return err;
}

static int step_approvals(signing_ctx *x) {
    int complete;
    if (approvals_complete(x->st, &x->s, x->as, x->n, &complete) != KM_OK) return S_RETRY;
    if (!complete) return S_WAIT;
    /* No sync of its own: lost with the machine, the approvals are still all
     * stored and the session moves on again. */
    km_err err = km_store_set_durable(x->st, 0);
    if (!err) err = km_store_signing_set_state(x->st, x->t->id, KM_SIGNING_NONCES, NULL, km_gw_now());
    if (durable_again(x->st, err)) return S_RETRY;
    x->changed = 1;
    return S_NEXT;
}

/* Relay the stored approvals (read at once: most sessions have none) to
 * the enclaves of the users who gave them. */
static int relay_approvals(signing_ctx *x) {
    size_t na = 0;
    unsigned char(*users)[16] = calloc(x->n ? x->n : 1, 16);
    unsigned char(*sigs)[KM_STORE_APPROVAL_LEN] = calloc(x->n ? x->n : 1, KM_STORE_APPROVAL_LEN);
    int rc = users && sigs && km_store_approval_list(x->st, x->t->id, users, sigs, x->n, &na) == KM_OK
                 ? S_NEXT
                 : S_RETRY;
    for (size_t a = 0; rc == S_NEXT && a < na; a++) {
        size_t i;
        for (i = 0; i < x->n && memcmp(x->as[i].user_id, users[a], 16) != 0; i++) {
        }
        if (i == x->n) continue; /* not a participant: the store never holds such an approval */
        km_err code;
        x->body.len = 0;
        if (km_buf_put(&x->body, x->t->id, 16) || km_buf_put(&x->body, users[a], 16) ||
            km_buf_put(&x->body, sigs[a], 64) ||
            call(x->gw, x->t, x->as[i].enclave_id, KM_CMD_SIGN_APPROVE, &x->body, &x->reply, &code))
            rc = S_RETRY;
        else if (code != KM_OK)
            rc = refused(x);
    }
    free(users);
    free(sigs);
    return rc;
}

/* Round 1 on every enclave (each returns its participants' signed, sealed
 * nonce records), then relay the stored approvals to the users' enclaves.
 * The records are stored during the next round's call. */
static int step_nonces(signing_ctx *x) {
    round_records rr = {0};
    int rc = S_NEXT;
    km_err err = km_buf_put(&x->body, x->s.keygen_id, 16);
    if (!err) err = km_buf_put(&x->body, x->t->id, 16);
    if (!err) err = km_gw_put_vbytes(&x->body, x->s.items.data, x->s.items.len);
    replies rs;
    replies_init(&rs);
    if (!err && call_all(x->gw, x->t, x->encs, x->m, KM_CMD_SIGN_INIT, &x->body, rs.r, rs.code, NULL, NULL))
        rc = S_RETRY;
    for (size_t i = 0; !err && rc == S_NEXT && i < x->m; i++) {
        if (rs.code[i] != KM_OK)
            rc = refused(x);
        else
            err = add_records(&rr, &rs.r[i]);
    }
    replies_free(&rs);
    if (err) rc = S_RETRY;
    if (rc == S_NEXT) rc = relay_approvals(x);
    if (rc == S_NEXT) hold_pending(x, &x->nonces, &rr, KM_RECORD_NONCE, KM_SIGNING_PARTIALS);
    round_records_free(&rr);
    return rc;
}

/* Round 2: every enclave gets every nonce record and signs its units (the
 * nonce records are committed meanwhile, if this run made them). */
static int step_partials(signing_ctx *x) {
    round_records rr = {0};
    int rc = S_NEXT, lost = 0;
    km_err put_err, err = KM_OK;
    if (!x->pending) err = load_records(x->st, x->t->id, KM_RECORD_NONCE, &x->nonces);
    if (!err) err = km_buf_put(&x->body, x->t->id, 16);
    if (!err) err = put_records(&x->body, &x->nonces);
    if (err) {
        x->pending = 0;
        return S_RETRY;
    }
    replies rs;
    replies_init(&rs);
    if (call_all_committing(x, KM_CMD_SIGN_PARTIAL, x->m, &rs, &put_err)) rc = S_RETRY;
    /* Other nonces than the stored ones: an enclave lost the round. */
    if (put_err == KM_ERR_DUPLICATE) {
        replies_free(&rs);
        return lost_round(x);
    }
    if (put_err) rc = S_RETRY;
    for (size_t i = 0; rc == S_NEXT && i < x->m; i++)
        if (rs.code[i] == KM_ERR_NOT_FOUND || rs.code[i] == KM_ERR_NONCE_REUSE)
            lost = 1; /* the enclave no longer knows the round (restart) or holds other nonces */
    for (size_t i = 0; !err && !lost && rc == S_NEXT && i < x->m; i++) {
        if (rs.code[i] != KM_OK)
            rc = refused(x);
        else
            err = add_records(&rr, &rs.r[i]);
    }
    replies_free(&rs);
    if (err) rc = S_RETRY;
    if (rc == S_NEXT && lost)
        rc = lost_round(x); /* start over with fresh nonces everywhere */
    else if (rc == S_NEXT)
        hold_pending(x, &x->partials, &rr, KM_RECORD_PARTIAL, KM_SIGNING_FINALIZING);
    round_records_free(&rr);
    return rc;
}

/* One enclave verifies the partial signatures, aggregates, verifies the
 * result and seals it for the client (the partial records are committed
 * meanwhile, if this run made them). */
static int step_finalize(signing_ctx *x) {
    km_err put_err, err = KM_OK;
    if (!x->pending) {
        err = load_records(x->st, x->t->id, KM_RECORD_NONCE, &x->nonces);
        if (!err) err = load_records(x->st, x->t->id, KM_RECORD_PARTIAL, &x->partials);
    }
    if (!err) err = km_buf_put(&x->body, x->t->id, 16);
    if (!err) err = put_records(&x->body, &x->nonces);
    if (!err) err = put_records(&x->body, &x->partials);
    if (err) {
        x->pending = 0;
        return S_RETRY;
    }
    replies rs;
    replies_init(&rs);
    err = call_all_committing(x, KM_CMD_SIGN_FINALIZE, 1, &rs, &put_err);
    km_err code = rs.code[0];
    int rc = S_END;
    if (put_err == KM_ERR_DUPLICATE)
        rc = lost_round(x);
    else if (put_err || err)
        rc = S_RETRY;
    else if (code == KM_ERR_NOT_FOUND)
        rc = lost_round(x);
    else if (code != KM_OK)
        rc = refused(x);
    else if (km_store_signing_complete(x->st, x->t->id, rs.r[0].data, rs.r[0].len, km_gw_now()))
        rc = S_RETRY;
    else
        atomic_fetch_add(&x->gw->metrics.sessions_completed[1], 1);
    replies_free(&rs);
    return rc;
}

static int run_signing(km_gateway *gw, km_store *st, task *t) {
    signing_ctx x;
    memset(&x, 0, sizeof x);
    x.gw = gw;
    x.st = st;
    x.t = t;
    km_buf_init(&x.body);
    km_buf_init(&x.reply);
    int rc = S_RETRY;
    km_err err = km_store_signing_get(st, t->id, &x.s);
    if (err) {
        rc = err == KM_ERR_NOT_FOUND ? S_END : S_RETRY;
        goto out;
    }
    err = km_gw_assignments(st, x.s.keygen_id, &x.as, &x.n);
    if (err) {
        rc = err == KM_ERR_NOT_FOUND ? S_END : S_RETRY;
        goto out;
    }
    x.m = enclaves_of(x.as, x.n, x.encs);
    /* Go as far as possible now; restarts are bounded, so is this loop. */
    for (int steps = 0; steps < 64; steps++) {
        rc = S_RETRY;
        km_store_signing_state state = x.ahead;
        if (!x.pending) {
            km_store_signing_clear(&x.s);
            if (km_store_signing_get(st, t->id, &x.s) != KM_OK) break;
            if (x.s.state == KM_SIGNING_COMPLETED || x.s.state == KM_SIGNING_FAILED) {
                rc = S_END;
                break;
            }
            state = x.s.state;
        }
        size_t i;
        gens_of(gw, x.encs, x.m, x.gens);
        for (i = 0; i < x.m && km_coord_enclave_ready(gw, x.encs[i]); i++) {
        }
        if (i < x.m) {
            snprintf(t->last_error, sizeof t->last_error, "enclave %u not ready", x.encs[i]);
            break;
        }
        x.body.len = 0;
        x.changed = 0;
        switch (state) {
        case KM_SIGNING_COLLECTING_APPROVALS:
            rc = step_approvals(&x);
            break;
        case KM_SIGNING_NONCES:
            rc = step_nonces(&x);
            break;
        case KM_SIGNING_PARTIALS:
            rc = step_partials(&x);
            break;
        default:
            rc = step_finalize(&x);
            break;
        }
        if (rc == S_END || x.changed) notify(gw, KM_STORE_SIGNING, t->id, rc == S_END);
        if (rc != S_NEXT) break;
    }
out:
    km_store_signing_clear(&x.s);
    free(x.as);
    round_records_free(&x.nonces);
    round_records_free(&x.partials);
    km_buf_free(&x.body);
    km_buf_free(&x.reply);
    return rc == S_RETRY || rc == S_NEXT ? R_RETRY : R_DONE;
}

/* ---- single-signer requests ----------------------------------------------- */

static int run_keysign(km_gateway *gw, km_store *st, task *t) {
    km_store_keysign_state state;
    unsigned char key_id[16];
    km_buf req, reply;
    km_buf_init(&req);
    km_buf_init(&reply);
    int64_t created, expires;
    int rc = R_DONE;
    km_store_key k;
    memset(&k, 0, sizeof k);
    if (km_store_keysign_get(st, t->id, &state, NULL, NULL) != KM_OK || state != KM_KEYSIGN_PENDING) goto out;
    if (km_store_keysign_get_request(st, t->id, key_id, &req, &created, &expires) != KM_OK) {
        rc = R_RETRY;
        goto out;
    }
    km_err err = km_store_key_get(st, key_id, &k);
    if (err == KM_ERR_NOT_FOUND) {
        fail_session(gw, st, T_KEYSIGN, t->id, "the key was deleted");
        goto out;
    }
    if (err || !km_coord_enclave_ready(gw, k.enclave_id)) {
        rc = R_RETRY;
        goto out;
    }
    km_err code;
    if (call(gw, t, k.enclave_id, KM_CMD_KEY_SIGN, &req, &reply, &code) != KM_OK) {
        rc = R_RETRY;
        goto out;
    }
    if (code != KM_OK) {
        fail_session(gw, st, T_KEYSIGN, t->id, t->last_error);
        goto out;
    }
    if (km_store_keysign_finish(st, t->id, reply.data, reply.len, NULL, km_gw_now()) != KM_OK) {
        rc = R_RETRY;
        goto out;
    }
    atomic_fetch_add(&gw->metrics.sessions_completed[2], 1);
    notify(gw, KM_STORE_KEYSIGN, t->id, 1);
out:
    km_buf_free(&k.import_blob);
    km_buf_free(&req);
    km_buf_free(&reply);
    return rc;
}

/* Queue every session that is not finished (gateway start, enclave ready). */
static void kick_unfinished(km_gateway *gw, km_store *st) {
    size_t nref = 0;
    km_store_session_ref oneref, *refs = NULL;
    if (km_store_list_nonterminal(st, &oneref, 0, &nref) == KM_ERR_BUFFER_SMALL &&
        (refs = calloc(nref, sizeof *refs)) && km_store_list_nonterminal(st, refs, nref, &nref) == KM_OK)
        for (size_t i = 0; i < nref; i++)
            km_coord_kick(gw, refs[i].kind, refs[i].id);
    free(refs);
}

/* ---- enclave restore ------------------------------------------------------ */

/* Re-send what an enclave process needs to serve the stored sessions: every
 * keygen it takes part in (init, its participants' registrations, and the
 * finalisation of completed ones) and every key imported into it. All of
 * these are idempotent on the enclave, so a reconnect to a process that did
 * not restart costs time but changes nothing. */
static int run_restore(km_gateway *gw, km_store *st, task *t) {
    km_coord *c = gw->coord;
    uint32_t eid = task_enclave(t);
    size_t ei = enclave_index(gw, eid);
    uint64_t gen = km_pool_generation(gw->pool, eid);
    if (ei == SIZE_MAX) return R_DONE;
    if (gen == 0) return R_RETRY; /* not connected yet */
    size_t nk = 0;
    unsigned char(*ids)[16] = NULL, one[1][16];
    unsigned mask = (1u << KM_KEYGEN_COLLECTING) | (1u << KM_KEYGEN_FINALIZING) | (1u << KM_KEYGEN_COMPLETED);
    km_err err = km_store_keygen_list(st, eid, mask, one, 0, &nk);
    if (err == KM_ERR_BUFFER_SMALL) {
        ids = calloc(nk, 16);
        err = ids ? km_store_keygen_list(st, eid, mask, ids, nk, &nk) : KM_ERR_NOMEM;
    }
    if (err) {
        free(ids);
        return R_RETRY;
    }
    int rc = R_DONE;
    km_buf body, reply, blob;
    km_buf_init(&body);
    km_buf_init(&reply);
    km_buf_init(&blob);
    for (size_t k = 0; rc == R_DONE && k < nk; k++) {
        km_store_keygen kg;
        km_store_assignment *as = NULL;
        size_t n = 0;
        km_err code;
        if (km_store_keygen_get(st, ids[k], &kg) != KM_OK) continue;
        body.len = 0;
        err = km_store_keygen_init_get(st, ids[k], eid, &blob);
        if (!err) err = km_buf_put(&body, ids[k], 16);
        if (!err) err = km_gw_put_vbytes(&body, blob.data, blob.len);
        if (!err) err = km_gw_assignments(st, ids[k], &as, &n);
        if (err || call(gw, t, eid, KM_CMD_KEYGEN_INIT, &body, &reply, &code)) rc = R_RETRY;
        for (size_t i = 0; rc == R_DONE && i < n; i++) {
            if (as[i].enclave_id != eid) continue;
            if (km_store_registration_get(st, ids[k], as[i].user_id, &blob, NULL) != KM_OK) continue;
            body.len = 0;
            if (km_buf_put(&body, ids[k], 16) || km_buf_put(&body, as[i].user_id, 16) ||
                km_gw_put_vbytes(&body, blob.data, blob.len) ||
                call(gw, t, eid, KM_CMD_KEYGEN_REGISTER, &body, &reply, &code))
                rc = R_RETRY;
        }
        if (rc == R_DONE && kg.state == KM_KEYGEN_COMPLETED) {
            body.len = 0;
            if (km_buf_put(&body, ids[k], 16) || registration_records(st, ids[k], as, n, &body) ||
                call(gw, t, eid, KM_CMD_KEYGEN_FINALIZE, &body, &reply, &code))
                rc = R_RETRY;
        }
        free(as);
        km_store_keygen_clear(&kg);
    }
    free(ids);
    /* single-signer keys */
    size_t nkeys = 0;
    unsigned char(*kids)[16] = NULL;
    if (rc == R_DONE) {
        err = km_store_key_list_by_enclave(st, eid, one, 0, &nkeys);
        if (err == KM_ERR_BUFFER_SMALL) {
            kids = calloc(nkeys, 16);
            err = kids ? km_store_key_list_by_enclave(st, eid, kids, nkeys, &nkeys) : KM_ERR_NOMEM;
        }
        if (err) rc = R_RETRY;
    }
    for (size_t k = 0; rc == R_DONE && k < nkeys; k++) {
        km_store_key key;
        km_err code;
        if (km_store_key_get(st, kids[k], &key) != KM_OK) continue;
        body.len = 0;
        if (km_buf_put(&body, key.key_id, 16) || km_buf_put(&body, key.user_id, 16) ||
            km_gw_put_vbytes(&body, key.import_blob.data, key.import_blob.len) ||
            call(gw, t, eid, KM_CMD_KEY_IMPORT, &body, &reply, &code))
            rc = R_RETRY;
        km_buf_free(&key.import_blob);
    }
    free(kids);
    km_buf_free(&body);
    km_buf_free(&reply);
    km_buf_free(&blob);
    if (rc != R_DONE) return rc;
    pthread_mutex_lock(&c->lock);
    /* Only if the enclave did not restart again meanwhile. */
    int done = km_pool_generation(gw->pool, eid) == gen;
    if (done) c->restored_gen[ei] = gen;
    pthread_mutex_unlock(&c->lock);
    if (!done) return R_RETRY;
    atomic_fetch_add(&gw->metrics.enclave_restores, 1);
    fprintf(stderr, "keymeld-gateway: enclave %u ready (generation %llu, %zu keygens, %zu keys restored)\n",
            eid, (unsigned long long)gen, nk, nkeys);
    /* Sessions that waited for this enclave go on now. */
    kick_unfinished(gw, st);
    return R_DONE;
}

/* ---- expiry sweep ----------------------------------------------------------- */

static void run_sweep(km_gateway *gw, km_store *st) {
    int64_t now = km_gw_now();
    size_t nref = 0, failed = 0;
    km_store_session_ref oneref, *refs = NULL;
    if (km_store_list_nonterminal(st, &oneref, 0, &nref) == KM_ERR_BUFFER_SMALL) {
        refs = calloc(nref, sizeof *refs);
        if (!refs || km_store_list_nonterminal(st, refs, nref, &nref) != KM_OK) nref = 0;
    }
    if (km_store_expire(st, now, &failed) == KM_OK && failed && refs) {
        /* Wake whoever waits on a session that may just have expired. */
        for (size_t i = 0; i < nref; i++)
            notify(gw, refs[i].kind, refs[i].id, 1);
    }
    free(refs);
    if (now - gw->coord->last_purge >= REPLAY_PURGE_S) {
        gw->coord->last_purge = now;
        if (km_store_replay_purge(st, now, NULL) != KM_OK)
            fprintf(stderr, "keymeld-gateway: replay cache purge failed (retried in %d s)\n", REPLAY_PURGE_S);
    }
}

/* ---- task list and workers -------------------------------------------------- */

static task *find_task(km_coord *c, int kind, const unsigned char id[16]) {
    for (size_t i = 0; i < c->n; i++)
        if (c->tasks[i].kind == kind && !memcmp(c->tasks[i].id, id, 16)) return &c->tasks[i];
    return NULL;
}

static void enqueue_locked(km_coord *c, int kind, const unsigned char id[16], uint64_t due) {
    task *t = find_task(c, kind, id);
    if (t) {
        if (t->state == RUNNING)
            t->rerun = 1;
        else if (t->due_ms > due)
            t->due_ms = due;
        pthread_cond_broadcast(&c->cond);
        return;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        task *nt = realloc(c->tasks, cap * sizeof *nt);
        if (!nt) return; /* the expiry sweep and restarts bring it back */
        c->tasks = nt;
        c->cap = cap;
    }
    t = &c->tasks[c->n++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    memcpy(t->id, id, 16);
    t->due_ms = due;
    pthread_cond_broadcast(&c->cond);
}

void km_coord_kick(km_gateway *gw, km_store_kind kind, const unsigned char id[16]) {
    km_coord *c = gw->coord;
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    if (!c->stopping) enqueue_locked(c, (int)kind, id, km_gw_mono_ms());
    pthread_mutex_unlock(&c->lock);
}

static void kick_restore(km_gateway *gw, uint32_t enclave_id) {
    km_coord *c = gw->coord;
    unsigned char id[16] = {0};
    memcpy(id, &enclave_id, 4);
    pthread_mutex_lock(&c->lock);
    if (!c->stopping) enqueue_locked(c, T_RESTORE, id, km_gw_mono_ms());
    pthread_mutex_unlock(&c->lock);
}

static void pool_listener(void *arg, uint32_t enclave_id, int up, uint64_t generation) {
    km_gateway *gw = arg;
    (void)generation;
    fprintf(stderr, "keymeld-gateway: enclave %u %s\n", enclave_id, up ? "connected" : "unreachable");
    if (up) kick_restore(gw, enclave_id);
}

static uint64_t backoff_ms(const km_gateway *gw, unsigned attempts) {
    uint64_t d = 25;
    for (unsigned i = 0; i < attempts && d < gw->cfg.retry_max_ms; i++)
        d *= 2;
    if (d > gw->cfg.retry_max_ms) d = gw->cfg.retry_max_ms;
    unsigned char r = 0;
    if (km_random_bytes(&r, 1) != KM_OK) r = 128;
    return d / 2 + (d / 2) * r / 255; /* jitter: independent sessions do not retry in lockstep */
}

/* 1 if the session is completed or failed (or gone). A read: no disk sync. */
static int session_terminal(km_store *st, int kind, const unsigned char id[16]) {
    int terminal = 1;
    if (kind == T_KEYGEN) {
        km_store_keygen kg;
        if (km_store_keygen_get(st, id, &kg) == KM_OK) {
            terminal = kg.state == KM_KEYGEN_COMPLETED || kg.state == KM_KEYGEN_FAILED;
            km_store_keygen_clear(&kg);
        }
    } else if (kind == T_SIGNING) {
        km_store_signing s;
        if (km_store_signing_get(st, id, &s) == KM_OK) {
            terminal = s.state == KM_SIGNING_COMPLETED || s.state == KM_SIGNING_FAILED;
            km_store_signing_clear(&s);
        }
    } else {
        km_store_keysign_state ks;
        if (km_store_keysign_get(st, id, &ks, NULL, NULL) == KM_OK) terminal = ks != KM_KEYSIGN_PENDING;
    }
    return terminal;
}

static km_err relaxed_claim(km_gateway *gw, km_store *st, const task *t, int64_t now) {
    km_err err = km_store_set_durable(st, 0);
    if (!err) err = km_store_claim(st, (km_store_kind)t->kind, t->id, gw->owner, now, now + LEASE_S);
    return durable_again(st, err);
}

/* Like the claim, the release needs no sync of its own: lost with the
 * machine, it only makes another gateway wait for the lease to end (this
 * one, restarted under the same owner name, takes it back at once). A keygen
 * collecting registrations is claimed and released once per registration,
 * so a synced release cost a disk sync per participant. */
static km_err relaxed_release(km_gateway *gw, km_store *st, const task *t) {
    km_err err = km_store_set_durable(st, 0);
    if (!err) err = km_store_release(st, (km_store_kind)t->kind, t->id, gw->owner);
    return durable_again(st, err);
}

static int run_task(km_gateway *gw, task *t) {
    km_store *st = km_gw_store_take(gw);
    int rc = R_DONE;
    if (t->kind == T_SWEEP) {
        run_sweep(gw, st);
    } else if (t->kind == T_RESTORE) {
        rc = run_restore(gw, st, t);
    } else {
        int64_t now = km_gw_now();
        km_err err = relaxed_claim(gw, st, t, now);
        if (err == KM_OK) {
            rc = t->kind == T_KEYGEN    ? run_keygen(gw, st, t)
                 : t->kind == T_SIGNING ? run_signing(gw, st, t)
                                        : run_keysign(gw, st, t);
            /* A finished session needs no release (nobody can claim it; that
             * saves a disk sync per session). A failed release only delays
             * another gateway until the lease ends. */
            if (!session_terminal(st, t->kind, t->id) && relaxed_release(gw, st, t) != KM_OK)
                fprintf(stderr, "keymeld-gateway: could not release a session lease\n");
        } else if (err == KM_ERR_STATE) {
            /* terminal, or another gateway drives it: look again after its lease */
            rc = session_terminal(st, t->kind, t->id) ? R_DONE : R_RETRY;
        } else if (err != KM_ERR_NOT_FOUND) {
            rc = R_RETRY;
        }
    }
    km_gw_store_give(gw, st);
    return rc;
}

static void *worker_main(void *arg) {
    km_gateway *gw = arg;
    km_coord *c = gw->coord;
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        uint64_t now = km_gw_mono_ms(), next = UINT64_MAX;
        task *pick = NULL;
        for (size_t i = 0; i < c->n; i++) {
            task *t = &c->tasks[i];
            if (t->state != QUEUED) continue;
            if (t->due_ms <= now && (!pick || t->due_ms < pick->due_ms)) pick = t;
            if (t->due_ms < next) next = t->due_ms;
        }
        if (!pick) {
            if (next == UINT64_MAX) {
                pthread_cond_wait(&c->cond, &c->lock);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                uint64_t wait = next - now;
                ts.tv_sec += (time_t)(wait / 1000);
                ts.tv_nsec += (long)(wait % 1000) * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&c->cond, &c->lock, &ts);
            }
            continue;
        }
        pick->state = RUNNING;
        task copy = *pick;
        pthread_mutex_unlock(&c->lock);
        int rc = run_task(gw, &copy);
        pthread_mutex_lock(&c->lock);
        task *t = find_task(c, copy.kind, copy.id); /* the array may have moved */
        if (!t) continue;
        t->restarts = copy.restarts;
        memcpy(t->last_error, copy.last_error, sizeof t->last_error);
        t->state = QUEUED;
        if (copy.kind == T_SWEEP) {
            t->due_ms = km_gw_mono_ms() + SWEEP_MS;
        } else if (t->rerun) {
            t->rerun = 0;
            t->attempts = 0;
            t->due_ms = km_gw_mono_ms();
        } else if (rc == R_RETRY) {
            t->due_ms = km_gw_mono_ms() + backoff_ms(gw, t->attempts++);
        } else {
            *t = c->tasks[--c->n]; /* done: remove */
        }
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

km_err km_coord_start(km_gateway *gw) {
    km_coord *c = calloc(1, sizeof *c);
    if (!c) return KM_ERR_NOMEM;
    c->gw = gw;
    c->restored_gen = calloc(gw->cfg.n_enclaves, sizeof *c->restored_gen);
    c->n_workers = gw->cfg.coordinator_workers;
    c->workers = calloc(c->n_workers, sizeof *c->workers);
    if (!c->restored_gen || !c->workers) {
        free(c->restored_gen);
        free(c->workers);
        free(c);
        return KM_ERR_NOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    gw->coord = c;
    /* The sweep, a restore of every enclave (a restarted gateway does not
     * know what they hold), and every session left unfinished. */
    unsigned char zero[16] = {0};
    pthread_mutex_lock(&c->lock);
    enqueue_locked(c, T_SWEEP, zero, km_gw_mono_ms());
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++)
        kick_restore(gw, gw->cfg.enclaves[i].id);
    km_store *st = km_gw_store_take(gw);
    kick_unfinished(gw, st);
    km_gw_store_give(gw, st);
    km_pool_set_listener(gw->pool, pool_listener, gw);
    for (size_t i = 0; i < c->n_workers; i++)
        if (pthread_create(&c->workers[i], NULL, worker_main, gw) != 0) {
            c->n_workers = i;
            km_coord_free(gw);
            return KM_ERR_IO;
        }
    return KM_OK;
}

void km_coord_stop(km_gateway *gw) {
    km_coord *c = gw->coord;
    if (!c) return;
    km_pool_set_listener(gw->pool, NULL, NULL);
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < c->n_workers; i++)
        pthread_join(c->workers[i], NULL);
    c->n_workers = 0;
}

void km_coord_free(km_gateway *gw) {
    km_coord *c = gw->coord;
    if (!c) return;
    km_coord_stop(gw);
    gw->coord = NULL;
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c->tasks);
    free(c->workers);
    free(c->restored_gen);
    free(c);
}
