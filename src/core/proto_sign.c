/* proto_sign.c — codec of the signing messages (keymeld/proto_sign.h). */
#include <stdlib.h>
#include <string.h>

#include "keymeld/hash.h"
#include "keymeld/proto_keygen.h"
#include "keymeld/proto_sign.h"

#define ITEM_FIXED_LEN (16 + 32 + 1 + 1 + 32 + 1 + 16 + 1 + 2)

unsigned km_sign_item_units(const km_sign_item *it) {
    return it->adaptor == KM_ADAPTOR_OR ? it->n_points : 1u;
}

static const unsigned char zero32[32];

/* The rules both directions enforce. */
static km_err check_item(const km_sign_item *it) {
    if (it->own_tweak) {
        if (km_tweak_check(&it->tweak) != KM_OK) return KM_ERR_UNSUPPORTED;
    } else if (it->tweak.mode != KM_TWEAK_NONE || memcmp(it->tweak.data, zero32, 32) != 0) {
        return KM_ERR_RANGE; /* one encoding per meaning */
    }
    if (!it->has_subset && memcmp(it->subset_id.b, zero32, 16) != 0) return KM_ERR_RANGE;
    switch (it->adaptor) {
    case KM_ADAPTOR_NONE:
        return it->n_points == 0 ? KM_OK : KM_ERR_RANGE;
    case KM_ADAPTOR_SINGLE:
        return it->n_points == 1 ? KM_OK : KM_ERR_RANGE;
    case KM_ADAPTOR_AND:
    case KM_ADAPTOR_OR:
        return it->n_points >= 2 && it->n_points <= KM_MAX_ADAPTOR_POINTS ? KM_OK : KM_ERR_RANGE;
    default:
        return KM_ERR_UNSUPPORTED;
    }
}

km_err km_sign_items_encode(const km_sign_item *items, size_t n, km_buf *out) {
    if (n < 1 || n > KM_MAX_ITEMS) return KM_ERR_RANGE;
    for (size_t i = 0; i < n; i++) {
        km_err err = check_item(&items[i]);
        if (err) return err;
    }
    (void)km_buf_put_u8(out, KM_PROTO_VERSION);
    (void)km_buf_put_u32(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const km_sign_item *it = &items[i];
        (void)km_buf_put(out, it->id.b, 16);
        (void)km_buf_put(out, it->msg, 32);
        (void)km_buf_put_u8(out, it->own_tweak ? 1 : 0);
        (void)km_buf_put_u8(out, (uint8_t)it->tweak.mode);
        (void)km_buf_put(out, it->tweak.data, 32);
        (void)km_buf_put_u8(out, it->has_subset ? 1 : 0);
        (void)km_buf_put(out, it->subset_id.b, 16);
        (void)km_buf_put_u8(out, (uint8_t)it->adaptor);
        (void)km_buf_put_u16(out, it->n_points);
        (void)km_buf_put(out, it->points, (size_t)it->n_points * 33);
    }
    return out->failed ? KM_ERR_NOMEM : KM_OK;
}

static int cmp_ids(const void *a, const void *b) {
    return memcmp(((const km_sign_item *)a)->id.b, ((const km_sign_item *)b)->id.b, 16);
}

km_err km_sign_items_decode(km_sign_item **items_out, size_t *n_out, const unsigned char *p, size_t len) {
    km_cursor c;
    uint8_t version = 0;
    uint32_t n = 0;
    *items_out = NULL;
    *n_out = 0;
    km_cursor_init(&c, p, len);
    (void)km_cursor_get_u8(&c, &version);
    if (km_cursor_get_u32(&c, &n)) return KM_ERR_PARSE;
    if (version != KM_PROTO_VERSION) return KM_ERR_UNSUPPORTED;
    /* Bound n by the bytes present before allocating. */
    if (n < 1 || n > KM_MAX_ITEMS || km_cursor_remaining(&c) / ITEM_FIXED_LEN < n) return KM_ERR_RANGE;
    km_sign_item *items = calloc(n, sizeof *items);
    if (!items) return KM_ERR_NOMEM;
    km_err err = KM_OK;
    for (uint32_t i = 0; !err && i < n; i++) {
        km_sign_item *it = &items[i];
        uint8_t own = 0, mode = 0, has_subset = 0, adaptor = 0;
        (void)km_cursor_get_bytes(&c, it->id.b, 16);
        (void)km_cursor_get_bytes(&c, it->msg, 32);
        (void)km_cursor_get_u8(&c, &own);
        (void)km_cursor_get_u8(&c, &mode);
        (void)km_cursor_get_bytes(&c, it->tweak.data, 32);
        (void)km_cursor_get_u8(&c, &has_subset);
        (void)km_cursor_get_bytes(&c, it->subset_id.b, 16);
        (void)km_cursor_get_u8(&c, &adaptor);
        if (km_cursor_get_u16(&c, &it->n_points)) {
            err = KM_ERR_PARSE;
            break;
        }
        if (own > 1 || has_subset > 1 || mode > KM_TWEAK_XONLY || adaptor > KM_ADAPTOR_OR ||
            it->n_points > KM_MAX_ADAPTOR_POINTS) {
            err = own > 1 || has_subset > 1 ? KM_ERR_PARSE : KM_ERR_UNSUPPORTED;
            if (it->n_points > KM_MAX_ADAPTOR_POINTS) err = KM_ERR_RANGE;
            break;
        }
        it->own_tweak = own;
        it->tweak.mode = (km_tweak_mode)mode;
        it->has_subset = has_subset;
        it->adaptor = (km_adaptor_type)adaptor;
        if (km_cursor_get_bytes(&c, it->points, (size_t)it->n_points * 33)) err = KM_ERR_PARSE;
        if (!err) err = check_item(it);
    }
    if (!err && km_cursor_finish(&c)) err = KM_ERR_PARSE;
    if (!err) {
        /* Duplicate item ids would make results ambiguous: refuse them. */
        km_sign_item *sorted = malloc((size_t)n * sizeof *sorted);
        if (!sorted) {
            err = KM_ERR_NOMEM;
        } else {
            memcpy(sorted, items, (size_t)n * sizeof *sorted);
            qsort(sorted, n, sizeof *sorted, cmp_ids);
            for (uint32_t i = 1; i < n; i++)
                if (memcmp(sorted[i].id.b, sorted[i - 1].id.b, 16) == 0) err = KM_ERR_DUPLICATE;
            free(sorted);
        }
    }
    if (err) {
        free(items);
        return err;
    }
    *items_out = items;
    *n_out = n;
    return KM_OK;
}

void km_sign_approval_digest(unsigned char out32[32], const km_uuid *signing_id, const km_uuid *keygen_id,
                             const unsigned char *items_pt, size_t items_len) {
    unsigned char buf[64];
    memcpy(buf, signing_id->b, 16);
    memcpy(buf + 16, keygen_id->b, 16);
    km_sha256(buf + 32, items_pt, items_len);
    km_tagged_hash(out32, KM_TAG_APPROVAL, buf, sizeof buf);
}

/* TaggedHash(tag, signing_id || body). */
static void record_digest(unsigned char out32[32], const char *tag, const km_uuid *signing_id,
                          const unsigned char *body, size_t len) {
    unsigned char th[32];
    km_sha256(th, tag, strlen(tag));
    const void *parts[4] = {th, th, signing_id->b, body};
    size_t lens[4] = {32, 32, 16, len};
    km_sha256_parts(out32, parts, lens, 4);
}

km_err km_sign_record_decode(km_sign_record *out, const char *tag, const km_uuid *signing_id,
                             const unsigned char *p, size_t len) {
    km_cursor c;
    uint32_t n = 0;
    memset(out, 0, sizeof *out);
    km_cursor_init(&c, p, len);
    (void)km_cursor_get_bytes(&c, out->user_id.b, 16);
    (void)km_cursor_get_u16(&c, &out->enclave_index);
    if (km_cursor_get_u32(&c, &n) || n > km_cursor_remaining(&c)) goto fail;
    (void)km_cursor_get_view(&c, &out->sealed, n);
    size_t signed_len = c.pos;
    (void)km_cursor_get_view(&c, &out->sig, 64);
    if (km_cursor_finish(&c)) goto fail;
    out->sealed_len = n;
    record_digest(out->digest, tag, signing_id, p, signed_len);
    return KM_OK;
fail:
    memset(out, 0, sizeof *out);
    return KM_ERR_PARSE;
}

km_err km_sign_record_begin(km_buf *out, unsigned char digest32[32], const char *tag,
                            const km_uuid *signing_id, const km_uuid *user_id, uint16_t enclave_index,
                            const unsigned char *sealed, size_t sealed_len) {
    size_t start = out->len;
    (void)km_buf_put(out, user_id->b, 16);
    (void)km_buf_put_u16(out, enclave_index);
    (void)km_buf_put_u32(out, (uint32_t)sealed_len);
    if (km_buf_put(out, sealed, sealed_len)) return KM_ERR_NOMEM;
    record_digest(digest32, tag, signing_id, out->data + start, out->len - start);
    return KM_OK;
}
