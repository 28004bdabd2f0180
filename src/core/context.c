/* context.c — km_ctx: the secp256k1 context and the locked secret pool.
 *
 * The secret pool hands out fixed 256-byte slots from 64 KiB chunks that are
 * mmap'ed, mlock'ed and marked MADV_DONTDUMP; larger secrets get a dedicated
 * locked mapping. Pooling keeps the number of locked pages (bounded by
 * RLIMIT_MEMLOCK) proportional to the bytes in use rather than to the number
 * of secrets.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/context_internal.h"
#include "keymeld/aead.h"
#include "keymeld/secret.h"

struct km_ctx {
    secp256k1_context *secp;
    pthread_mutex_t pool_lock;
    km_pool_chunk *chunks;
};

km_err km_ctx_create(km_ctx **out) {
    *out = NULL;
    km_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return KM_ERR_NOMEM;
    ctx->secp = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (!ctx->secp) {
        free(ctx);
        return KM_ERR_NOMEM;
    }
    /* Randomize the context: blinds the generator multiplication against
     * timing and power side channels. */
    unsigned char seed[32];
    if (km_random_bytes(seed, sizeof seed) != KM_OK || !secp256k1_context_randomize(ctx->secp, seed)) {
        km_wipe(seed, sizeof seed);
        secp256k1_context_destroy(ctx->secp);
        free(ctx);
        return KM_ERR_RANDOM;
    }
    km_wipe(seed, sizeof seed);
    if (pthread_mutex_init(&ctx->pool_lock, NULL) != 0) {
        secp256k1_context_destroy(ctx->secp);
        free(ctx);
        return KM_ERR_NOMEM;
    }
    *out = ctx;
    return KM_OK;
}

void km_ctx_destroy(km_ctx *ctx) {
    if (!ctx) return;
    km_pool_chunk *c = ctx->chunks;
    while (c) {
        km_pool_chunk *next = c->next;
        km_wipe(c->mem, KM_POOL_CHUNK_SIZE);
        munlock(c->mem, KM_POOL_CHUNK_SIZE);
        munmap(c->mem, KM_POOL_CHUNK_SIZE);
        free(c);
        c = next;
    }
    pthread_mutex_destroy(&ctx->pool_lock);
    secp256k1_context_destroy(ctx->secp);
    free(ctx);
}

const secp256k1_context *km_ctx_secp(const km_ctx *ctx) {
    return ctx->secp;
}

/* Maps len bytes (page multiple), locked and excluded from core dumps.
 * Returns NULL if the pages cannot be locked: a secret never lives in
 * swappable memory. */
void *km_locked_map(size_t len) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    if (mlock(p, len) != 0) {
        munmap(p, len);
        return NULL;
    }
    (void)madvise(p, len, MADV_DONTDUMP);
    return p;
}

void km_locked_unmap(void *p, size_t len) {
    km_wipe(p, len);
    munlock(p, len);
    munmap(p, len);
}

unsigned char *km_pool_take(km_ctx *ctx, km_pool_chunk **chunk_out, unsigned *slot_out) {
    unsigned char *res = NULL;
    pthread_mutex_lock(&ctx->pool_lock);
    for (km_pool_chunk *c = ctx->chunks; c && !res; c = c->next) {
        if (c->used == KM_POOL_SLOTS) continue;
        for (unsigned i = 0; i < KM_POOL_SLOTS; i++) {
            if (!(c->bitmap[i / 64] & (1ull << (i % 64)))) {
                c->bitmap[i / 64] |= 1ull << (i % 64);
                c->used++;
                *chunk_out = c;
                *slot_out = i;
                res = c->mem + (size_t)i * KM_POOL_SLOT_SIZE;
                break;
            }
        }
    }
    if (!res) {
        km_pool_chunk *c = calloc(1, sizeof *c);
        unsigned char *mem = c ? km_locked_map(KM_POOL_CHUNK_SIZE) : NULL;
        if (mem) {
            c->mem = mem;
            c->next = ctx->chunks;
            ctx->chunks = c;
            c->bitmap[0] = 1;
            c->used = 1;
            *chunk_out = c;
            *slot_out = 0;
            res = mem;
        } else {
            free(c);
        }
    }
    pthread_mutex_unlock(&ctx->pool_lock);
    return res;
}

void km_pool_give(km_ctx *ctx, km_pool_chunk *c, unsigned slot) {
    km_wipe(c->mem + (size_t)slot * KM_POOL_SLOT_SIZE, KM_POOL_SLOT_SIZE);
    pthread_mutex_lock(&ctx->pool_lock);
    c->bitmap[slot / 64] &= ~(1ull << (slot % 64));
    c->used--;
    pthread_mutex_unlock(&ctx->pool_lock);
}
