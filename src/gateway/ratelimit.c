/* gateway/ratelimit.c — see ratelimit.h.
 *
 * Layout: a fixed array of buckets, a power-of-two array of hash chain heads
 * (indices, NIL for none) and one LRU list through the buckets (most recent
 * at the head). Tokens are counted in thousandths so that the refill of
 * rate_per_s tokens per second is exactly rate_per_s thousandths per
 * millisecond: integer arithmetic, no rounding drift. */
#include "gateway/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"

#define NIL        UINT32_MAX
#define MILLI      1000u
#define MAX_KEYS   (1u << 24)
#define SECRET_LEN 32

typedef struct bucket {
    uint64_t id;      /* keyed hash of the key; 0 = unused */
    uint64_t tokens;  /* thousandths of a token */
    uint64_t last_ms; /* when tokens was last brought up to date */
    uint32_t hnext;   /* hash chain */
    uint32_t lprev, lnext;
} bucket;

struct km_ratelimit {
    pthread_mutex_t mu;
    unsigned char secret[SECRET_LEN];
    uint64_t rate; /* thousandths of a token per millisecond = tokens per second */
    uint64_t cap;  /* burst in thousandths */
    bucket *b;
    uint32_t *heads;
    uint32_t n_max, n_used, mask;
    uint32_t lru_head, lru_tail;
};

km_err km_ratelimit_new(km_ratelimit **out, unsigned rate_per_s, unsigned burst, size_t max_keys) {
    *out = NULL;
    if (rate_per_s > 0 && (burst < 1 || max_keys < 1 || max_keys > MAX_KEYS)) return KM_ERR_ARG;
    km_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl) return KM_ERR_NOMEM;
    if (km_random_bytes(rl->secret, sizeof rl->secret) != KM_OK) {
        free(rl);
        return KM_ERR_RANDOM;
    }
    rl->rate = rate_per_s;
    rl->cap = (uint64_t)burst * MILLI;
    rl->lru_head = rl->lru_tail = NIL;
    if (rate_per_s > 0) {
        uint32_t slots = 1;
        while (slots < max_keys)
            slots <<= 1;
        rl->n_max = (uint32_t)max_keys;
        rl->mask = slots - 1;
        /* calloc of a large block maps zero pages: memory is only used as
         * buckets are. */
        rl->b = calloc(max_keys, sizeof *rl->b);
        rl->heads = malloc((size_t)slots * sizeof *rl->heads);
        if (!rl->b || !rl->heads) {
            km_ratelimit_free(rl);
            return KM_ERR_NOMEM;
        }
        memset(rl->heads, 0xff, (size_t)slots * sizeof *rl->heads);
    }
    if (pthread_mutex_init(&rl->mu, NULL) != 0) {
        free(rl->b);
        free(rl->heads);
        km_wipe(rl->secret, sizeof rl->secret);
        free(rl);
        return KM_ERR_NOMEM;
    }
    *out = rl;
    return KM_OK;
}

void km_ratelimit_free(km_ratelimit *rl) {
    if (!rl) return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->b);
    free(rl->heads);
    km_wipe(rl->secret, sizeof rl->secret);
    free(rl);
}

uint64_t km_ratelimit_owner(const km_ratelimit *rl, const unsigned char key[32]) {
    const void *parts[2] = {rl->secret, key};
    const size_t lens[2] = {sizeof rl->secret, 32};
    unsigned char h[32];
    km_sha256_parts(h, parts, lens, 2);
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id = (id << 8) | h[i];
    return id ? id : 1; /* 0 marks an unused bucket */
}

static void lru_unlink(km_ratelimit *rl, uint32_t i) {
    bucket *e = &rl->b[i];
    if (e->lprev != NIL)
        rl->b[e->lprev].lnext = e->lnext;
    else
        rl->lru_head = e->lnext;
    if (e->lnext != NIL)
        rl->b[e->lnext].lprev = e->lprev;
    else
        rl->lru_tail = e->lprev;
    e->lprev = e->lnext = NIL;
}

static void lru_push_front(km_ratelimit *rl, uint32_t i) {
    bucket *e = &rl->b[i];
    e->lprev = NIL;
    e->lnext = rl->lru_head;
    if (rl->lru_head != NIL) rl->b[rl->lru_head].lprev = i;
    rl->lru_head = i;
    if (rl->lru_tail == NIL) rl->lru_tail = i;
}

static void chain_remove(km_ratelimit *rl, uint32_t i) {
    uint32_t *p = &rl->heads[rl->b[i].id & rl->mask];
    while (*p != NIL && *p != i)
        p = &rl->b[*p].hnext;
    if (*p == i) *p = rl->b[i].hnext;
}

/* The bucket of id, made (or taken from the least recently used key) if
 * needed; it becomes the most recently used. */
static bucket *find_or_make(km_ratelimit *rl, uint64_t id, uint64_t now_ms) {
    uint32_t slot = (uint32_t)(id & rl->mask);
    for (uint32_t i = rl->heads[slot]; i != NIL; i = rl->b[i].hnext)
        if (rl->b[i].id == id) {
            lru_unlink(rl, i);
            lru_push_front(rl, i);
            return &rl->b[i];
        }
    uint32_t i;
    if (rl->n_used < rl->n_max) {
        i = rl->n_used++;
    } else {
        i = rl->lru_tail;
        lru_unlink(rl, i);
        chain_remove(rl, i);
    }
    bucket *e = &rl->b[i];
    e->id = id;
    e->tokens = rl->cap;
    e->last_ms = now_ms;
    e->hnext = rl->heads[slot];
    rl->heads[slot] = i;
    lru_push_front(rl, i);
    return e;
}

int km_ratelimit_take(km_ratelimit *rl, const unsigned char key[32], uint64_t now_ms,
                      unsigned *retry_after_s) {
    if (retry_after_s) *retry_after_s = 0;
    if (rl->rate == 0) return 1;
    uint64_t id = km_ratelimit_owner(rl, key);
    pthread_mutex_lock(&rl->mu);
    bucket *e = find_or_make(rl, id, now_ms);
    if (now_ms > e->last_ms) {
        uint64_t elapsed = now_ms - e->last_ms;
        /* Past a full refill the exact figure does not matter (and the
         * product could overflow after a very long idle time). */
        uint64_t add = elapsed >= rl->cap / rl->rate + 1 ? rl->cap : elapsed * rl->rate;
        e->tokens = rl->cap - e->tokens <= add ? rl->cap : e->tokens + add;
        e->last_ms = now_ms;
    }
    int ok = e->tokens >= MILLI;
    if (ok) {
        e->tokens -= MILLI;
    } else if (retry_after_s) {
        uint64_t ms = (MILLI - e->tokens + rl->rate - 1) / rl->rate;
        *retry_after_s = (unsigned)((ms + 999) / 1000);
        if (*retry_after_s == 0) *retry_after_s = 1;
    }
    pthread_mutex_unlock(&rl->mu);
    return ok;
}

size_t km_ratelimit_size(km_ratelimit *rl) {
    pthread_mutex_lock(&rl->mu);
    size_t n = rl->n_used;
    pthread_mutex_unlock(&rl->mu);
    return n;
}
