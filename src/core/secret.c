/* secret.c — km_secret handles over the locked pool (see context.c). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/context_internal.h"
#include "keymeld/secret.h"

struct km_secret {
    km_ctx *ctx;
    unsigned char *data;
    size_t len;
    km_pool_chunk *chunk; /* NULL for a dedicated mapping */
    unsigned slot;
    size_t map_len; /* dedicated mapping size */
};

void km_wipe(void *p, size_t len) {
    if (p && len) explicit_bzero(p, len);
}

int km_ct_equal(const void *a, const void *b, size_t len) {
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < len; i++)
        d |= (unsigned char)(x[i] ^ y[i]);
    return d == 0;
}

km_err km_secret_new(km_ctx *ctx, size_t len, km_secret **out) {
    *out = NULL;
    if (len == 0 || len > KM_SECRET_MAX) return KM_ERR_ARG;
    km_secret *s = calloc(1, sizeof *s);
    if (!s) return KM_ERR_NOMEM;
    s->ctx = ctx;
    s->len = len;
    if (len <= KM_POOL_SLOT_SIZE) {
        s->data = km_pool_take(ctx, &s->chunk, &s->slot);
    } else {
        long page = sysconf(_SC_PAGESIZE);
        size_t pg = page > 0 ? (size_t)page : 4096u;
        s->map_len = (len + pg - 1) / pg * pg;
        s->data = km_locked_map(s->map_len);
    }
    if (!s->data) {
        free(s);
        return KM_ERR_NOMEM;
    }
    *out = s;
    return KM_OK;
}

km_err km_secret_from(km_ctx *ctx, const void *src, size_t len, km_secret **out) {
    km_err err = km_secret_new(ctx, len, out);
    if (err) return err;
    memcpy((*out)->data, src, len);
    return KM_OK;
}

unsigned char *km_secret_data(km_secret *s) {
    return s->data;
}

const unsigned char *km_secret_cdata(const km_secret *s) {
    return s->data;
}

size_t km_secret_len(const km_secret *s) {
    return s->len;
}

void km_secret_free(km_secret *s) {
    if (!s) return;
    if (s->chunk)
        km_pool_give(s->ctx, s->chunk, s->slot);
    else
        km_locked_unmap(s->data, s->map_len);
    explicit_bzero(s, sizeof *s);
    free(s);
}
