/* cursor.c — bounded reader and growable writer (see keymeld/cursor.h). */
#include <stdlib.h>
#include <string.h>

#include "keymeld/cursor.h"
#include "keymeld/secret.h"

void km_cursor_init(km_cursor *c, const void *p, size_t len) {
    c->p = p;
    c->len = p ? len : 0;
    c->pos = 0;
    c->failed = 0;
}

size_t km_cursor_remaining(const km_cursor *c) {
    return c->failed ? 0 : c->len - c->pos;
}

km_err km_cursor_get_view(km_cursor *c, const unsigned char **out, size_t n) {
    if (c->failed || n > c->len - c->pos) {
        c->failed = 1;
        *out = NULL;
        return KM_ERR_PARSE;
    }
    *out = c->p + c->pos;
    c->pos += n;
    return KM_OK;
}

km_err km_cursor_get_bytes(km_cursor *c, void *out, size_t n) {
    const unsigned char *v;
    if (km_cursor_get_view(c, &v, n) != KM_OK) {
        if (out && n) memset(out, 0, n);
        return KM_ERR_PARSE;
    }
    if (n) memcpy(out, v, n);
    return KM_OK;
}

static km_err get_be(km_cursor *c, uint64_t *v, size_t n) {
    const unsigned char *p;
    *v = 0;
    if (km_cursor_get_view(c, &p, n) != KM_OK) return KM_ERR_PARSE;
    for (size_t i = 0; i < n; i++)
        *v = *v << 8 | p[i];
    return KM_OK;
}

km_err km_cursor_get_u8(km_cursor *c, uint8_t *v) {
    uint64_t x;
    km_err e = get_be(c, &x, 1);
    *v = (uint8_t)x;
    return e;
}

km_err km_cursor_get_u16(km_cursor *c, uint16_t *v) {
    uint64_t x;
    km_err e = get_be(c, &x, 2);
    *v = (uint16_t)x;
    return e;
}

km_err km_cursor_get_u32(km_cursor *c, uint32_t *v) {
    uint64_t x;
    km_err e = get_be(c, &x, 4);
    *v = (uint32_t)x;
    return e;
}

km_err km_cursor_get_u64(km_cursor *c, uint64_t *v) {
    return get_be(c, v, 8);
}

km_err km_cursor_finish(const km_cursor *c) {
    return (!c->failed && c->pos == c->len) ? KM_OK : KM_ERR_PARSE;
}

void km_buf_init(km_buf *b) {
    memset(b, 0, sizeof *b);
}

km_err km_buf_put(km_buf *b, const void *p, size_t n) {
    if (b->failed) return KM_ERR_NOMEM;
    if (n == 0) return KM_OK;
    if (n > SIZE_MAX / 2 - b->len) {
        b->failed = 1;
        return KM_ERR_NOMEM;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        /* Not realloc: the old block may hold secrets and must be wiped. */
        unsigned char *d = malloc(cap);
        if (!d) {
            b->failed = 1;
            return KM_ERR_NOMEM;
        }
        if (b->len) memcpy(d, b->data, b->len);
        km_wipe(b->data, b->cap);
        free(b->data);
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return KM_OK;
}

static km_err put_be(km_buf *b, uint64_t v, size_t n) {
    unsigned char t[8];
    for (size_t i = 0; i < n; i++)
        t[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
    return km_buf_put(b, t, n);
}

km_err km_buf_put_u8(km_buf *b, uint8_t v) {
    return put_be(b, v, 1);
}
km_err km_buf_put_u16(km_buf *b, uint16_t v) {
    return put_be(b, v, 2);
}
km_err km_buf_put_u32(km_buf *b, uint32_t v) {
    return put_be(b, v, 4);
}
km_err km_buf_put_u64(km_buf *b, uint64_t v) {
    return put_be(b, v, 8);
}

void km_buf_free(km_buf *b) {
    if (!b) return;
    km_wipe(b->data, b->cap);
    free(b->data);
    km_buf_init(b);
}
