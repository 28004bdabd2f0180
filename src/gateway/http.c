/* http.c — the gateway's HTTP server on libmicrohttpd (see gateway/http.h).
 *
 * Request life cycle (one km_rq per request, created by the URI log callback
 * so that the raw request target is kept byte-exact, freed by the completion
 * callback so that no path can leak it):
 *
 *   RQ_NEW     first access-handler call (headers parsed): path checks,
 *              routing, Content-Length limit. 404/405/413 are answered here,
 *              before any body byte is read.
 *   RQ_BODY    upload calls append to the body; the final call runs the handler.
 *   RQ_DISCARD a chunked body went over the limit (or over the budget of
 *              all bodies): the rest is dropped and the final call answers
 *              413 (503 server_busy for the budget).
 *   RQ_PARKED  the handler asked to wait: the connection is suspended and the
 *              request sits in the wait table (a per-slot list for notify and a
 *              deadline heap for the timer). No thread is held.
 *   RQ_WOKEN   taken out of the wait table by notify, the timer or stop, which
 *              then resume the connection; the next access-handler call runs
 *              the handler again with resumed = 1.
 *   RQ_DONE    a response was queued.
 *
 * Locking: one mutex (s->mu) guards the sequence counters, the wait table and
 * the counters used by km_http_stop. A request is suspended while that mutex
 * is held and only after comparing wait_seq, so a notify either sees the
 * request in the table or has already bumped the sequence the request is
 * compared with: no lost wakeup. MHD_resume_connection is always called after
 * the mutex is released (libmicrohttpd takes its own locks there); this is
 * safe because a request taken out of the table is owned by whoever took it
 * until it resumes it, and a suspended connection cannot complete.
 */
#include "gateway/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define SEQ_SLOTS        4096u /* hashed sequence counters; a power of two */
#define QUERY_MAX_PAIRS  32
#define MEMORY_LIMIT     (64u * 1024u) /* per connection: request line, headers, read buffer */
#define STOP_DRAIN_MS    5000u
#define DISCARD_SLACK    (64u * 1024u)
#define ERROR_MSG_MAX    512
#define ALLOW_HEADER_MAX 256

enum rq_state { RQ_NEW, RQ_BODY, RQ_DISCARD, RQ_PARKED, RQ_WOKEN, RQ_DONE };

typedef struct km_rq km_rq;
struct km_rq {
    km_http_server *srv;
    struct MHD_Connection *conn;
    enum rq_state state;
    char *target;      /* raw request target as received */
    uintptr_t raw_uri; /* where libmicrohttpd had the target in its request-line buffer */
    char *path;        /* target up to '?' */
    char *params;      /* copy of path cut into the {param} values */
    const km_http_route *route;
    km_http_request req;

    unsigned char *body;
    size_t body_len, body_cap;
    uint64_t discarded;
    size_t reserved;   /* bytes of srv->body_bytes this request holds (its body buffer) */
    int over_budget;   /* discarding because the budget of all bodies ran out: answer 503 */
    uint64_t declared; /* Content-Length, or UINT64_MAX when the body is chunked or absent */

    /* Wait table membership (guarded by srv->mu). */
    char *wait_key;
    unsigned slot;
    uint64_t deadline;
    km_rq *wprev, *wnext; /* list of the slot's waiters */
    size_t heap_idx;
    km_rq *resume_next; /* private list of whoever took it out of the table */
    int was_parked;
    uint64_t wait_owner; /* counted in srv->owners while parked; 0 = not counted */
    int final_only;      /* parked for the final state only (resp.wait_final_only) */
    uint64_t last_owner; /* the owner of its first wait: a resumed handler that waits again
                            (it does not authenticate again) still counts against it */

    /* Decoded query, built on first km_http_query. */
    int query_parsed;
    char *qbuf;
    const char *qkey[QUERY_MAX_PAIRS];
    const char *qval[QUERY_MAX_PAIRS];
    size_t nq;
};

struct km_http_server {
    struct MHD_Daemon *daemon;
    km_http_config cfg;
    const km_http_route *routes;
    size_t n_routes;
    void *app;
    uint16_t port;

    pthread_mutex_t mu;
    pthread_cond_t timer_cv; /* CLOCK_MONOTONIC; the timer sleeps until the nearest deadline */
    pthread_cond_t drain_cv; /* stop waits here for resumed waiters to finish */
    pthread_t timer;
    int timer_started, timer_quit, stopping;

    uint64_t seq[SEQ_SLOTS];
    km_rq *waiters[SEQ_SLOTS];
    km_rq **heap; /* min-heap on deadline; room for every connection (a waiter is one) */
    size_t heap_len, heap_cap;
    size_t max_waiters; /* <= heap_cap */
    /* Parked requests per wait_owner: open addressing with linear probing,
     * at least twice as many slots as there can be waiters (load <= 1/2). */
    struct owner_slot {
        uint64_t owner; /* 0 = empty */
        uint32_t n;
    } * owners;
    size_t owners_mask;
    size_t live_parked;        /* parked at some point and not yet completed */
    size_t resuming;           /* taken out of the table, MHD_resume_connection not yet returned */
    atomic_ullong answered[6]; /* responses queued, by status class ([1] = 1xx ... [5] = 5xx) */
    atomic_uint open_conns;    /* connections libmicrohttpd holds (accepted, not yet closed) */
    atomic_size_t body_bytes;  /* body buffers held by all requests (see reserve_body) */
    atomic_ullong refused;     /* connections closed at accept because open_conns was at the cap */
};

static const char *const JSON_TYPE = "application/json";
static const char EMPTY_BODY[1] = {0};

uint64_t km_http_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- path rules and routing ------------------------------------------------ */

int km_http_path_safe(const char *path, size_t len) {
    if (path == NULL || len == 0 || path[0] != '/') return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = path[i];
        if (ch == '\0' || ch == '\\') return 0;
        if (i + 1 < len && ((ch == '.' && path[i + 1] == '.') || (ch == '/' && path[i + 1] == '/'))) return 0;
        if (ch == '%') {
            /* Encoded separators and dots would let a later decoding stage
             * see a different path than the one we matched. */
            if (i + 2 >= len) continue;
            char h = path[i + 1], l = (char)(path[i + 2] | 0x20);
            if ((h == '2' && (l == 'f' || l == 'e')) || (h == '5' && l == 'c') || (h == '0' && l == '0'))
                return 0;
        }
    }
    return 1;
}

/* Match path against pattern; on success fill the offsets and lengths of the
 * {param} segments (into path) and return 1. */
static int route_match(const char *pattern, const char *path, size_t off[KM_HTTP_MAX_PARAMS],
                       size_t len[KM_HTTP_MAX_PARAMS], size_t *n) {
    const char *p = pattern, *q = path;
    *n = 0;
    while (*p == '/' && *q == '/') {
        p++;
        q++;
        size_t pl = strcspn(p, "/"), ql = strcspn(q, "/");
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (ql == 0 || *n >= KM_HTTP_MAX_PARAMS) return 0;
            off[*n] = (size_t)(q - path);
            len[*n] = ql;
            (*n)++;
        } else if (pl != ql || memcmp(p, q, pl) != 0) {
            return 0;
        }
        p += pl;
        q += ql;
    }
    return *p == '\0' && *q == '\0';
}

static int pattern_valid(const char *pattern) {
    if (pattern == NULL || pattern[0] != '/') return 0;
    size_t params = 0;
    const char *p = pattern;
    while (*p == '/') {
        p++;
        size_t pl = strcspn(p, "/");
        if (pl == 0) return pattern[1] == '\0' && p == pattern + 1; /* only "/" may have an empty segment */
        const char *open = memchr(p, '{', pl), *close = memchr(p, '}', pl);
        if (open != NULL || close != NULL) {
            if (pl < 3 || p[0] != '{' || p[pl - 1] != '}' || memchr(p + 1, '{', pl - 1) != NULL ||
                memchr(p, '}', pl - 1) != NULL)
                return 0;
            if (++params > KM_HTTP_MAX_PARAMS) return 0;
        }
        p += pl;
    }
    return *p == '\0';
}

/* ---- the wait table (all under s->mu) ---------------------------------------- */

static unsigned key_slot(const char *key) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *k = (const unsigned char *)key; *k; k++) {
        h ^= *k;
        h *= 1099511628211ull;
    }
    return (unsigned)(h ^ (h >> 32)) & (SEQ_SLOTS - 1);
}

/* The slot of owner in the owner table: its own, or the empty one where it
 * would go. */
static size_t owner_find(const km_http_server *s, uint64_t owner) {
    size_t i = (size_t)(owner ^ (owner >> 29)) & s->owners_mask;
    while (s->owners[i].owner != 0 && s->owners[i].owner != owner)
        i = (i + 1) & s->owners_mask;
    return i;
}

static uint32_t owner_count(const km_http_server *s, uint64_t owner) {
    size_t i = owner_find(s, owner);
    return s->owners[i].owner == owner ? s->owners[i].n : 0;
}

static void owner_add(km_http_server *s, uint64_t owner) {
    size_t i = owner_find(s, owner);
    s->owners[i].owner = owner;
    s->owners[i].n++;
}

/* Remove one count; an owner at zero leaves the table (backward-shift
 * deletion keeps every probe sequence unbroken without tombstones). */
static void owner_remove(km_http_server *s, uint64_t owner) {
    size_t i = owner_find(s, owner);
    if (s->owners[i].owner != owner) return;
    if (--s->owners[i].n > 0) return;
    s->owners[i].owner = 0;
    for (size_t j = (i + 1) & s->owners_mask; s->owners[j].owner != 0; j = (j + 1) & s->owners_mask) {
        size_t home = (size_t)(s->owners[j].owner ^ (s->owners[j].owner >> 29)) & s->owners_mask;
        /* Move j back into the hole at i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        s->owners[i] = s->owners[j];
        s->owners[j].owner = 0;
        s->owners[j].n = 0;
        i = j;
    }
}

static void heap_swap(km_http_server *s, size_t a, size_t b) {
    km_rq *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->heap_idx = a;
    s->heap[b]->heap_idx = b;
}

static void heap_up(km_http_server *s, size_t i) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent]->deadline <= s->heap[i]->deadline) break;
        heap_swap(s, parent, i);
        i = parent;
    }
}

static void heap_down(km_http_server *s, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->heap_len && s->heap[l]->deadline < s->heap[m]->deadline) m = l;
        if (r < s->heap_len && s->heap[r]->deadline < s->heap[m]->deadline) m = r;
        if (m == i) return;
        heap_swap(s, i, m);
        i = m;
    }
}

static void heap_remove(km_http_server *s, km_rq *rq) {
    size_t i = rq->heap_idx;
    s->heap_len--;
    if (i != s->heap_len) {
        s->heap[i] = s->heap[s->heap_len];
        s->heap[i]->heap_idx = i;
        heap_down(s, i);
        heap_up(s, i);
    }
}

/* Take rq out of the table and onto the caller's resume list. */
static void take_waiter(km_http_server *s, km_rq *rq, km_rq **list) {
    if (rq->wprev)
        rq->wprev->wnext = rq->wnext;
    else
        s->waiters[rq->slot] = rq->wnext;
    if (rq->wnext) rq->wnext->wprev = rq->wprev;
    rq->wprev = rq->wnext = NULL;
    heap_remove(s, rq);
    if (rq->wait_owner) {
        owner_remove(s, rq->wait_owner);
        rq->wait_owner = 0;
    }
    rq->state = RQ_WOKEN;
    rq->resume_next = *list;
    *list = rq;
    s->resuming++;
}

/* Resume everything on list; called without s->mu. The next pointer and the
 * connection are read before resuming: afterwards the request belongs to
 * libmicrohttpd's thread again. */
static void resume_list(km_http_server *s, km_rq *list) {
    size_t n = 0;
    while (list) {
        km_rq *next = list->resume_next;
        MHD_resume_connection(list->conn);
        list = next;
        n++;
    }
    if (n) {
        pthread_mutex_lock(&s->mu);
        s->resuming -= n;
        pthread_cond_broadcast(&s->drain_cv);
        pthread_mutex_unlock(&s->mu);
    }
}

static void *timer_main(void *arg) {
    km_http_server *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->timer_quit) {
        if (s->heap_len == 0) {
            pthread_cond_wait(&s->timer_cv, &s->mu);
            continue;
        }
        uint64_t now = km_http_now_ms();
        if (s->heap[0]->deadline > now) {
            uint64_t d = s->heap[0]->deadline;
            struct timespec ts = {.tv_sec = (time_t)(d / 1000u), .tv_nsec = (long)(d % 1000u) * 1000000L};
            pthread_cond_timedwait(&s->timer_cv, &s->mu, &ts);
            continue;
        }
        km_rq *list = NULL;
        while (s->heap_len > 0 && s->heap[0]->deadline <= now)
            take_waiter(s, s->heap[0], &list);
        pthread_mutex_unlock(&s->mu);
        resume_list(s, list);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

uint64_t km_http_wait_seq(km_http_server *s, const char *key) {
    unsigned slot = key_slot(key);
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->seq[slot];
    pthread_mutex_unlock(&s->mu);
    return v;
}

void km_http_notify(km_http_server *s, const char *key) {
    km_http_notify_change(s, key, 1);
}

void km_http_notify_change(km_http_server *s, const char *key, int final) {
    unsigned slot = key_slot(key);
    km_rq *list = NULL;
    pthread_mutex_lock(&s->mu);
    s->seq[slot]++;
    km_rq *rq = s->waiters[slot];
    while (rq) {
        km_rq *next = rq->wnext;
        if ((final || !rq->final_only) && strcmp(rq->wait_key, key) == 0) take_waiter(s, rq, &list);
        rq = next;
    }
    pthread_mutex_unlock(&s->mu);
    /* The timer need not be told: a removed heap top only makes its next
     * wakeup spurious. */
    resume_list(s, list);
}

void km_http_counts(km_http_server *s, uint64_t out[6]) {
    for (int i = 0; i < 6; i++)
        out[i] = atomic_load(&s->answered[i]);
}

uint64_t km_http_refused(km_http_server *s) {
    return atomic_load(&s->refused);
}

size_t km_http_waiting(km_http_server *s) {
    pthread_mutex_lock(&s->mu);
    size_t n = s->heap_len;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- responses ------------------------------------------------------------------ */

static void resp_clear_body(km_http_response *resp) {
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

static char *dup_bytes(const char *p, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

static void set_internal(km_http_response *resp) {
    static const char msg[] = "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}";
    resp_clear_body(resp);
    resp->status = 500;
    resp->content_type = NULL;
    resp->body = dup_bytes(msg, sizeof msg - 1);
    resp->body_len = resp->body ? sizeof msg - 1 : 0;
}

/* Serialise obj into a malloc'ed buffer of our own: the body is later freed
 * with free(), which need not be jansson's allocator. */
static char *dump_json(const json_t *obj, size_t *len) {
    size_t need = json_dumpb(obj, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    if (need == 0) return NULL;
    char *buf = malloc(need + 1);
    if (buf == NULL) return NULL;
    if (json_dumpb(obj, buf, need, JSON_COMPACT | JSON_ENCODE_ANY) != need) {
        free(buf);
        return NULL;
    }
    buf[need] = '\0';
    *len = need;
    return buf;
}

void km_http_json(km_http_response *resp, int status, json_t *obj) {
    resp_clear_body(resp);
    if (obj == NULL) {
        set_internal(resp);
        return;
    }
    size_t len = 0;
    char *body = dump_json(obj, &len);
    json_decref(obj);
    if (body == NULL) {
        set_internal(resp);
        return;
    }
    resp->status = status;
    resp->content_type = NULL;
    resp->body = body;
    resp->body_len = len;
}

/* Replace every byte that is not part of a well-formed UTF-8 sequence with
 * '?', so that a message holding client input (or cut by truncation) still
 * becomes a JSON string. */
static void utf8_sanitize(char *s) {
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n;
        uint32_t cp;
        if (p[0] < 0x80) {
            p++;
            continue;
        } else if ((p[0] & 0xe0) == 0xc0) {
            n = 2;
            cp = p[0] & 0x1fu;
        } else if ((p[0] & 0xf0) == 0xe0) {
            n = 3;
            cp = p[0] & 0x0fu;
        } else if ((p[0] & 0xf8) == 0xf0) {
            n = 4;
            cp = p[0] & 0x07u;
        } else {
            *p++ = '?';
            continue;
        }
        size_t i = 1;
        for (; i < n && (p[i] & 0xc0) == 0x80; i++)
            cp = (cp << 6) | (p[i] & 0x3fu);
        int ok = i == n && !(n == 2 && cp < 0x80) && !(n == 3 && cp < 0x800) && !(n == 4 && cp < 0x10000) &&
                 cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

void km_http_error(km_http_response *resp, int status, const char *code, const char *fmt, ...) {
    char msg[ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r < 0) msg[0] = '\0';
    utf8_sanitize(msg);
    resp_clear_body(resp);
    resp->status = status;
    resp->content_type = NULL;
    json_t *obj = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    if (obj == NULL) return;
    size_t len = 0;
    char *body = dump_json(obj, &len);
    json_decref(obj);
    if (body == NULL) return;
    resp->body = body;
    resp->body_len = len;
}

static int add_header(struct MHD_Response *r, const char *name, const char *value) {
    return MHD_add_response_header(r, name, value) == MHD_YES;
}

/* Queue resp on the connection; takes resp->body in every case. */
static enum MHD_Result send_response(km_rq *rq, km_http_response *resp) {
    if (resp->status < 100 || resp->status > 599) set_internal(resp);
    struct MHD_Response *r;
    if (resp->body != NULL && resp->body_len > 0) {
        r = MHD_create_response_from_buffer(resp->body_len, resp->body, MHD_RESPMEM_MUST_FREE);
        if (r == NULL) free(resp->body);
    } else {
        free(resp->body);
        r = MHD_create_response_from_buffer(0, (void *)(uintptr_t)EMPTY_BODY, MHD_RESPMEM_PERSISTENT);
    }
    resp->body = NULL;
    rq->state = RQ_DONE;
    if (r == NULL) return MHD_NO;
    int ok =
        add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type ? resp->content_type : JSON_TYPE) &&
        add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") &&
        add_header(r, "X-Content-Type-Options", "nosniff");
    if (ok && resp->extra_header_name && resp->extra_header_value)
        ok = add_header(r, resp->extra_header_name, resp->extra_header_value);
    enum MHD_Result ret = ok ? MHD_queue_response(rq->conn, (unsigned)resp->status, r) : MHD_NO;
    MHD_destroy_response(r);
    if (ret == MHD_YES) atomic_fetch_add(&rq->srv->answered[resp->status / 100], 1);
    return ret;
}

static enum MHD_Result send_error(km_rq *rq, int status, const char *code, const char *msg, const char *hname,
                                  const char *hvalue) {
    km_http_response resp;
    memset(&resp, 0, sizeof resp);
    km_http_error(&resp, status, code, "%s", msg);
    resp.extra_header_name = hname;
    resp.extra_header_value = hvalue;
    return send_response(rq, &resp);
}

/* ---- running the handler and waiting ------------------------------------------- */

static enum MHD_Result run_handler(km_http_server *s, km_rq *rq, int resumed) {
    for (;;) {
        km_http_response resp;
        memset(&resp, 0, sizeof resp);
        rq->req.resumed = resumed;
        rq->req.wait_until_ms = resumed ? rq->deadline : 0;
        rq->req.wait_key = resumed ? rq->wait_key : NULL;
        rq->route->handler(s->app, &rq->req, &resp);
        if (resp.status != 0) return send_response(rq, &resp);
        resp_clear_body(&resp);
        /* A resumed handler may wait again (e.g. ?until=final: a change that
         * is not final), but only up to the first deadline: past it, it must
         * answer, so a key that keeps changing cannot hold a request forever. */
        if (resp.wait_key == NULL ||
            (resumed && (resp.wait_until_ms > rq->deadline || rq->deadline <= km_http_now_ms()))) {
            set_internal(&resp);
            return send_response(rq, &resp);
        }
        size_t klen = strnlen(resp.wait_key, KM_HTTP_WAIT_KEY_MAX + 1);
        char *key = klen <= KM_HTTP_WAIT_KEY_MAX ? dup_bytes(resp.wait_key, klen) : NULL;
        if (key == NULL) {
            set_internal(&resp);
            return send_response(rq, &resp);
        }
        free(rq->wait_key);
        rq->wait_key = key;
        rq->slot = key_slot(key);
        rq->deadline = resp.wait_until_ms;
        rq->final_only = resp.wait_final_only;
        if (resp.wait_owner) rq->last_owner = resp.wait_owner;
        uint64_t owner = rq->last_owner;

        pthread_mutex_lock(&s->mu);
        int park = !s->stopping && s->seq[rq->slot] == resp.wait_seq && rq->deadline > km_http_now_ms();
        /* Over a cap the client gets a refusal it can retry, not the current
         * state: answering the state would invite an immediate re-poll. */
        int busy = park && s->heap_len >= s->max_waiters;
        int owner_busy =
            park && !busy && owner && s->owners && owner_count(s, owner) >= s->cfg.max_waiters_per_owner;
        if (busy || owner_busy) park = 0;
        if (park) {
            /* Suspend before the request becomes visible in the table: nobody
             * may resume a connection that is not suspended yet. */
            MHD_suspend_connection(rq->conn);
            rq->state = RQ_PARKED;
            rq->wprev = NULL;
            rq->wnext = s->waiters[rq->slot];
            if (rq->wnext) rq->wnext->wprev = rq;
            s->waiters[rq->slot] = rq;
            rq->heap_idx = s->heap_len;
            s->heap[s->heap_len++] = rq;
            heap_up(s, rq->heap_idx);
            if (!rq->was_parked) {
                rq->was_parked = 1;
                s->live_parked++;
            }
            if (owner && s->owners) {
                rq->wait_owner = owner;
                owner_add(s, owner);
            }
            if (rq->heap_idx == 0) pthread_cond_signal(&s->timer_cv);
        }
        pthread_mutex_unlock(&s->mu);
        if (busy)
            return send_error(rq, 503, "server_busy",
                              "too many long polls are waiting on this gateway; retry later", "Retry-After",
                              "1");
        if (owner_busy)
            return send_error(rq, 429, "too_many_waiters",
                              "this key has too many long polls waiting; retry later", "Retry-After", "1");
        if (park) return MHD_YES; /* rq must not be touched any more: it may be resumed already */
        resumed = 1;              /* the state changed meanwhile (or we are stopping): answer now */
    }
}

/* ---- libmicrohttpd callbacks ------------------------------------------------------ */

/* Bodies are buffered whole before the handler runs, so without a budget
 * the memory they take is max_connections x max_body (16 GiB with the
 * defaults). Every body buffer is counted against cfg.max_body_total:
 * reserve the bytes of a buffer before allocating it, release them when the
 * request ends. Returns 1 if `bytes` more could be reserved for rq. */
static int reserve_body(km_http_server *s, km_rq *rq, size_t bytes) {
    if (s->cfg.max_body_total == 0) return 1;
    size_t cur = atomic_load(&s->body_bytes);
    do {
        if (bytes > s->cfg.max_body_total || cur > s->cfg.max_body_total - bytes) return 0;
    } while (!atomic_compare_exchange_weak(&s->body_bytes, &cur, cur + bytes));
    rq->reserved += bytes;
    return 1;
}

static void release_body(km_http_server *s, km_rq *rq) {
    if (rq->reserved) atomic_fetch_sub(&s->body_bytes, rq->reserved);
    rq->reserved = 0;
}

/* Connection cap. libmicrohttpd's own limit, once reached, stops polling the
 * listening socket: further clients then sit in the kernel's backlog with
 * their connect() done and no answer for as long as the flood lasts. We
 * rather count connections ourselves and close the ones above the cap right
 * after accept, so a refused client knows at once; libmicrohttpd's limit is
 * set a little higher only as a backstop (concurrent accepts on several
 * threads can each pass the check before their connection is counted). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    (void)addr;
    (void)addrlen;
    km_http_server *s = cls;
    if (atomic_load(&s->open_conns) < s->cfg.max_connections) return MHD_YES;
    atomic_fetch_add(&s->refused, 1);
    return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    (void)conn;
    (void)socket_context;
    km_http_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&s->open_conns, 1);
    else if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_fetch_sub(&s->open_conns, 1);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    km_rq *rq = calloc(1, sizeof *rq);
    if (rq == NULL) return NULL;
    rq->srv = cls;
    rq->conn = conn;
    rq->raw_uri = (uintptr_t)uri;
    size_t tl = strlen(uri), pl = strcspn(uri, "?");
    rq->target = dup_bytes(uri, tl);
    rq->path = dup_bytes(uri, pl);
    if (rq->target == NULL || rq->path == NULL) {
        free(rq->target);
        free(rq->path);
        free(rq);
        return NULL;
    }
    return rq;
}

static void rq_free(km_rq *rq) {
    free(rq->target);
    free(rq->path);
    free(rq->params);
    free(rq->body);
    free(rq->wait_key);
    free(rq->qbuf);
    free(rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    km_http_server *s = cls;
    km_rq *rq = *con_cls;
    if (rq == NULL) return;
    *con_cls = NULL;
    release_body(s, rq);
    if (rq->was_parked) {
        pthread_mutex_lock(&s->mu);
        s->live_parked--;
        pthread_cond_broadcast(&s->drain_cv);
        pthread_mutex_unlock(&s->mu);
    }
    rq_free(rq);
}

/* Parse a decimal Content-Length; returns 0 and sets *v, or -1 if malformed.
 * A value too large for 64 bits is UINT64_MAX: certainly above the limit (it
 * must be refused with 413 now, not waited for). */
static int parse_length(const char *v, uint64_t *out) {
    uint64_t n = 0;
    if (v == NULL || *v == '\0') return -1;
    for (; *v; v++) {
        if (*v < '0' || *v > '9') return -1;
        if (n > (UINT64_MAX - 9) / 10)
            n = UINT64_MAX;
        else
            n = n * 10 + (uint64_t)(*v - '0');
    }
    *out = n;
    return 0;
}

/* Header lines libmicrohttpd accepts but RFC 9112 says to refuse (400): a
 * field name with whitespace before the colon, or Host sent twice. Either can
 * make a proxy in front read the request otherwise than the gateway does. */
typedef struct header_scan {
    size_t hosts;
    int bad_name;
    size_t te;    /* Transfer-Encoding headers */
    int te_other; /* one says something other than "chunked" */
} header_scan;

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    (void)value;
    header_scan *h = cls;
    if (key == NULL) return MHD_YES;
    if (strcasecmp(key, "Host") == 0) h->hosts++;
    if (strcasecmp(key, "Transfer-Encoding") == 0) {
        h->te++;
        if (value == NULL || strcasecmp(value, "chunked") != 0) h->te_other = 1;
    }
    for (const char *k = key; *k; k++)
        if (*k == ' ' || *k == '\t') h->bad_name = 1;
    return MHD_YES;
}

static enum MHD_Result on_first_call(km_http_server *s, km_rq *rq, const char *method, const char *version) {
    /* A NUL byte inside the request target ends the C string libmicrohttpd
     * hands us, so "/a\0junk" would arrive as "/a". libmicrohttpd parses the
     * request line in place: the version then starts right after the target
     * and its space. Any other layout (a NUL, or a libmicrohttpd that copies)
     * fails closed with 404. */
    if ((uintptr_t)version != rq->raw_uri + strlen(rq->target) + 1 ||
        !km_http_path_safe(rq->path, strlen(rq->path)))
        return send_error(rq, 404, "not_found", "no such resource", NULL, NULL);
    header_scan hs = {0, 0, 0, 0};
    (void)MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, scan_header, &hs);
    if (hs.hosts > 1 || hs.bad_name)
        return send_error(rq, 400, "invalid_request",
                          "malformed request header (repeated Host, or whitespace "
                          "before a colon)",
                          NULL, NULL);
    /* A body in another transfer coding has a length nobody here can find
     * (libmicrohttpd would wait for the idle timeout): refuse at once. */
    if (hs.te > 1 || hs.te_other)
        return send_error(rq, 400, "invalid_request",
                          "Transfer-Encoding must be absent or exactly \"chunked\"", NULL, NULL);
    size_t off[KM_HTTP_MAX_PARAMS], len[KM_HTTP_MAX_PARAMS], n = 0;
    char allow[ALLOW_HEADER_MAX];
    size_t allow_len = 0;
    allow[0] = '\0';
    for (size_t i = 0; i < s->n_routes; i++) {
        const km_http_route *r = &s->routes[i];
        size_t o[KM_HTTP_MAX_PARAMS], l[KM_HTTP_MAX_PARAMS], k = 0;
        if (!route_match(r->pattern, rq->path, o, l, &k)) continue;
        if (strcmp(r->method, method) == 0) {
            rq->route = r;
            memcpy(off, o, sizeof off);
            memcpy(len, l, sizeof len);
            n = k;
            break;
        }
        /* Collect each other method once for the Allow header. */
        size_t ml = strlen(r->method);
        int seen = 0;
        for (const char *a = allow; *a;) {
            size_t al = strcspn(a, ",");
            if (al == ml && memcmp(a, r->method, ml) == 0) seen = 1;
            a += al;
            while (*a == ',' || *a == ' ')
                a++;
        }
        if (!seen && allow_len + ml + 3 < sizeof allow) {
            if (allow_len) {
                memcpy(allow + allow_len, ", ", 2);
                allow_len += 2;
            }
            memcpy(allow + allow_len, r->method, ml);
            allow_len += ml;
            allow[allow_len] = '\0';
        }
    }
    if (rq->route == NULL) {
        if (allow_len == 0) return send_error(rq, 404, "not_found", "no such resource", NULL, NULL);
        return send_error(rq, 405, "method_not_allowed", "method not allowed for this resource",
                          MHD_HTTP_HEADER_ALLOW, allow);
    }
    const char *cl = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t clen = 0;
    rq->declared = UINT64_MAX;
    if (cl != NULL && parse_length(cl, &clen) == 0) {
        if (clen > s->cfg.max_body)
            return send_error(rq, 413, "body_too_large", "request body too large", NULL, NULL);
        rq->declared = clen;
        /* The whole buffer is reserved before a byte is read: a client
         * announcing a body the gateway has no room for is told so at once. */
        if (clen > 0 && !reserve_body(s, rq, (size_t)clen))
            return send_error(rq, 503, "server_busy",
                              "too many request bodies are being received; retry later", "Retry-After", "1");
    }

    rq->params = dup_bytes(rq->path, strlen(rq->path));
    if (rq->params == NULL) return MHD_NO;
    for (size_t i = 0; i < n; i++) {
        rq->params[off[i] + len[i]] = '\0';
        rq->req.params[i] = rq->params + off[i];
    }
    rq->req.n_params = n;
    rq->req.method = method;
    rq->req.path = rq->path;
    rq->req.target = rq->target;
    rq->req.opaque = rq;
    rq->state = RQ_BODY;
    return MHD_YES;
}

/* Returns 1 appended, 0 over max_body, -1 out of memory, -2 over the budget of
 * all bodies. */
static int body_append(km_http_server *s, km_rq *rq, const char *data, size_t n) {
    if (n > s->cfg.max_body - rq->body_len) return 0;
    if (rq->body_len + n + 1 > rq->body_cap) {
        size_t cap = rq->body_cap ? rq->body_cap : 4096;
        /* A declared length is the whole body (libmicrohttpd enforces it):
         * one buffer of exactly that size, no doubling slack. */
        if (rq->body_cap == 0 && rq->declared <= s->cfg.max_body) cap = (size_t)rq->declared + 1;
        while (cap < rq->body_len + n + 1)
            cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
        if (cap > s->cfg.max_body + 1) cap = s->cfg.max_body + 1;
        /* The terminating NUL is not counted, so that a budget of max_body
         * fits one body of max_body bytes. */
        if (cap - 1 > rq->reserved && !reserve_body(s, rq, cap - 1 - rq->reserved)) return -2;
        unsigned char *b = realloc(rq->body, cap);
        if (b == NULL) return -1;
        rq->body = b;
        rq->body_cap = cap;
    }
    memcpy(rq->body + rq->body_len, data, n);
    rq->body_len += n;
    rq->body[rq->body_len] = '\0';
    return 1;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls) {
    (void)url;
    km_http_server *s = cls;
    km_rq *rq = *con_cls;
    if (rq == NULL) return MHD_NO; /* the URI callback could not allocate */
    rq->conn = conn;
    switch (rq->state) {
    case RQ_NEW:
        return on_first_call(s, rq, method, version);
    case RQ_BODY:
        if (*upload_data_size > 0) {
            int r = body_append(s, rq, upload_data, *upload_data_size);
            if (r == -1) return MHD_NO;
            if (r <= 0) {
                rq->over_budget = r == -2;
                /* A chunked body went over the limit (a declared one was
                 * refused up front). A response cannot be queued while the
                 * upload runs, so drop the rest and answer at the end. */
                rq->discarded = rq->body_len + *upload_data_size;
                free(rq->body);
                rq->body = NULL;
                rq->body_len = rq->body_cap = 0;
                release_body(s, rq);
                rq->state = RQ_DISCARD;
            }
            *upload_data_size = 0;
            return MHD_YES;
        }
        rq->req.body = rq->body ? rq->body : (const unsigned char *)EMPTY_BODY;
        rq->req.body_len = rq->body_len;
        return run_handler(s, rq, 0);
    case RQ_DISCARD:
        if (*upload_data_size > 0) {
            rq->discarded += *upload_data_size;
            *upload_data_size = 0;
            return rq->discarded > 2 * (uint64_t)s->cfg.max_body + DISCARD_SLACK ? MHD_NO : MHD_YES;
        }
        if (rq->over_budget)
            return send_error(rq, 503, "server_busy",
                              "too many request bodies are being received; retry later", "Retry-After", "1");
        return send_error(rq, 413, "body_too_large", "request body too large", NULL, NULL);
    case RQ_WOKEN:
        return run_handler(s, rq, 1);
    case RQ_PARKED:
    case RQ_DONE:
        break;
    }
    return MHD_YES;
}

/* ---- request accessors -------------------------------------------------------------- */

const char *km_http_header(const km_http_request *req, const char *name) {
    const km_rq *rq = req->opaque;
    if (rq == NULL) return NULL;
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

typedef struct header_count {
    const char *name;
    size_t n;
} header_count;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    (void)value;
    header_count *c = cls;
    if (key != NULL && strcasecmp(key, c->name) == 0) c->n++;
    return MHD_YES;
}

size_t km_http_header_count(const km_http_request *req, const char *name) {
    const km_rq *rq = req->opaque;
    if (rq == NULL) return 0;
    header_count c = {name, 0};
    (void)MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, count_header, &c);
    return c.n;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decode form-style percent encoding in place; returns 0 or -1 on a bad
 * escape or an encoded NUL. */
static int form_decode(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '+') {
            *w++ = ' ';
        } else if (*r == '%') {
            int h = r[1] ? hexval(r[1]) : -1, l = h >= 0 && r[2] ? hexval(r[2]) : -1;
            if (h < 0 || l < 0 || (h == 0 && l == 0)) return -1;
            *w++ = (char)(h * 16 + l);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return 0;
}

static void parse_query(km_rq *rq) {
    rq->query_parsed = 1;
    const char *q = strchr(rq->target, '?');
    if (q == NULL) return;
    rq->qbuf = dup_bytes(q + 1, strlen(q + 1));
    if (rq->qbuf == NULL) return;
    char *p = rq->qbuf;
    while (*p && rq->nq < QUERY_MAX_PAIRS) {
        char *amp = strchr(p, '&');
        char *next = amp ? amp + 1 : p + strlen(p);
        if (amp) *amp = '\0';
        char *eq = strchr(p, '=');
        char *val = eq ? eq + 1 : p + strlen(p);
        if (eq) *eq = '\0';
        if (*p != '\0' && form_decode(p) == 0 && form_decode(val) == 0) {
            rq->qkey[rq->nq] = p;
            rq->qval[rq->nq] = val;
            rq->nq++;
        }
        p = next;
    }
}

const char *km_http_query(const km_http_request *req, const char *name) {
    km_rq *rq = req->opaque;
    if (rq == NULL) return NULL;
    if (!rq->query_parsed) parse_query(rq);
    for (size_t i = 0; i < rq->nq; i++)
        if (strcmp(rq->qkey[i], name) == 0) return rq->qval[i];
    return NULL;
}

/* ---- start / stop -------------------------------------------------------------------- */

uint16_t km_http_port(const km_http_server *s) {
    return s->port;
}

static void server_free(km_http_server *s) {
    if (s->timer_started) {
        pthread_mutex_lock(&s->mu);
        s->timer_quit = 1;
        pthread_cond_signal(&s->timer_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->timer, NULL);
    }
    pthread_cond_destroy(&s->drain_cv);
    pthread_cond_destroy(&s->timer_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->heap);
    free(s->owners);
    free(s);
}

km_err km_http_start(km_http_server **out, const km_http_config *cfg, const km_http_route *routes,
                     size_t n_routes, void *app) {
    *out = NULL;
    if (cfg->listen_host == NULL || cfg->max_body == 0 || cfg->max_body > SIZE_MAX / 4 || cfg->threads == 0 ||
        cfg->threads > 256 || cfg->max_connections == 0 || cfg->max_connections > (1u << 20) ||
        (routes == NULL && n_routes > 0))
        return KM_ERR_ARG;
    for (size_t i = 0; i < n_routes; i++)
        if (routes[i].method == NULL || routes[i].method[0] == '\0' || routes[i].handler == NULL ||
            !pattern_valid(routes[i].pattern))
            return KM_ERR_ARG;

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cfg->listen_host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(cfg->port);
    } else if (inet_pton(AF_INET6, cfg->listen_host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        return KM_ERR_ARG;
    }

    km_http_server *s = calloc(1, sizeof *s);
    if (s == NULL) return KM_ERR_NOMEM;
    s->cfg = *cfg;
    s->cfg.listen_host = NULL; /* not kept: the caller's string may go away */
    s->routes = routes;
    s->n_routes = n_routes;
    s->app = app;
    /* A waiter is a connection; the accept check may let a few more than
     * max_connections in at once (see on_accept), never more than this. */
    s->heap_cap = (size_t)cfg->max_connections + cfg->threads + 16u;
    s->heap = calloc(s->heap_cap, sizeof *s->heap);
    s->max_waiters =
        cfg->max_waiters && cfg->max_waiters < cfg->max_connections ? cfg->max_waiters : cfg->max_connections;
    if (cfg->max_waiters_per_owner) {
        size_t slots = 2;
        while (slots < 2 * s->heap_cap)
            slots <<= 1;
        s->owners_mask = slots - 1;
        s->owners = calloc(slots, sizeof *s->owners);
    }
    pthread_condattr_t ca;
    int cv_ok = pthread_condattr_init(&ca) == 0;
    if (cv_ok) {
        cv_ok =
            pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&s->timer_cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!cv_ok) {
        free(s->heap);
        free(s->owners);
        free(s);
        return KM_ERR_NOMEM;
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0 || pthread_cond_init(&s->drain_cv, NULL) != 0) {
        /* Both inits only fail for lack of resources; destroying an
         * uninitialised one would be undefined, so leak-free exit is best effort. */
        pthread_cond_destroy(&s->timer_cv);
        free(s->heap);
        free(s->owners);
        free(s);
        return KM_ERR_NOMEM;
    }
    if (s->heap == NULL || (cfg->max_waiters_per_owner && s->owners == NULL)) {
        server_free(s);
        return KM_ERR_NOMEM;
    }
    if (pthread_create(&s->timer, NULL, timer_main, s) != 0) {
        server_free(s);
        return KM_ERR_NOMEM;
    }
    s->timer_started = 1;

    /* Published before libmicrohttpd accepts anything: a request can be
     * handled before MHD_start_daemon returns, and handlers reach the server
     * through *out (the gateway's long polls call km_http_wait_seq(gw->http)
     * first; a gateway restarted under retrying clients crashed on NULL). */
    *out = s;
    unsigned backstop = cfg->max_connections + cfg->threads + 16u;
    s->daemon = MHD_start_daemon(
        flags, cfg->port, on_accept, s, on_access, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT, backstop,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MEMORY_LIMIT,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
    if (s->daemon == NULL) {
        *out = NULL;
        server_free(s);
        return KM_ERR_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    if (s->port == 0) {
        MHD_stop_daemon(s->daemon);
        *out = NULL;
        server_free(s);
        return KM_ERR_IO;
    }
    return KM_OK;
}

void km_http_stop(km_http_server *s) {
    if (s == NULL) return;
    km_rq *list = NULL;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    while (s->heap_len > 0)
        take_waiter(s, s->heap[s->heap_len - 1], &list);
    pthread_mutex_unlock(&s->mu);
    resume_list(s, list);

    /* libmicrohttpd must not be stopped with a suspended connection, so wait
     * without limit until nobody is between taking a waiter and resuming it;
     * then give the resumed handlers a bounded time to send their answers. */
    uint64_t until = km_http_now_ms() + STOP_DRAIN_MS;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->resuming == 0 && (s->live_parked == 0 || km_http_now_ms() >= until)) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->drain_cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->daemon);
    server_free(s);
}
