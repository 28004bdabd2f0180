/* proto_keygen.c — codec of the keygen messages (keymeld/proto_keygen.h). */
#include <stdlib.h>
#include <string.h>

#include "keymeld/hash.h"
#include "keymeld/proto_keygen.h"
#include "keymeld/secret.h"

void km_keygen_init_free(km_keygen_init *in) {
    if (!in) return;
    for (uint16_t i = 0; in->subsets && i < in->n_subsets; i++)
        free(in->subsets[i].members);
    free(in->subsets);
    free(in->enclave_pubs);
    free(in->user_ids);
    free(in->enclave_index);
    km_wipe(in, sizeof *in);
}

int km_keygen_init_find(const km_keygen_init *in, const km_uuid *user) {
    for (uint16_t i = 0; i < in->n_participants; i++)
        if (memcmp(in->user_ids[i].b, user->b, 16) == 0) return i;
    return -1;
}

/* Structural rules shared by encode and decode, so neither side can produce
 * what the other refuses. */
static km_err check_init(const km_keygen_init *in) {
    if (in->n_enclaves < 1 || in->n_enclaves > KM_MAX_ENCLAVES) return KM_ERR_RANGE;
    if (in->n_participants < 1 || in->n_participants > KM_MAX_PARTICIPANTS) return KM_ERR_RANGE;
    if (in->n_subsets > KM_MAX_SUBSETS) return KM_ERR_RANGE;
    if (km_tweak_check(&in->tweak) != KM_OK) return KM_ERR_UNSUPPORTED;
    for (uint16_t i = 0; i < in->n_participants; i++) {
        if (in->enclave_index[i] >= in->n_enclaves) return KM_ERR_RANGE;
        for (uint16_t j = 0; j < i; j++)
            if (memcmp(in->user_ids[i].b, in->user_ids[j].b, 16) == 0) return KM_ERR_DUPLICATE;
    }
    for (uint16_t i = 0; i < in->n_enclaves; i++)
        for (uint16_t j = 0; j < i; j++)
            if (memcmp(in->enclave_pubs[i], in->enclave_pubs[j], 33) == 0) return KM_ERR_DUPLICATE;
    for (uint16_t s = 0; s < in->n_subsets; s++) {
        const km_subset_def *d = &in->subsets[s];
        if (d->n < 1 || d->n > in->n_participants) return KM_ERR_RANGE;
        for (uint16_t t = 0; t < s; t++)
            if (memcmp(d->id.b, in->subsets[t].id.b, 16) == 0) return KM_ERR_DUPLICATE;
        for (uint16_t i = 0; i < d->n; i++) {
            if (d->members[i] >= in->n_participants) return KM_ERR_RANGE;
            for (uint16_t j = 0; j < i; j++)
                if (d->members[i] == d->members[j]) return KM_ERR_DUPLICATE;
        }
    }
    return KM_OK;
}

km_err km_keygen_init_encode(const km_keygen_init *in, km_buf *out) {
    km_err err = check_init(in);
    if (err) return err;
    (void)km_buf_put_u8(out, KM_PROTO_VERSION);
    (void)km_buf_put(out, in->session_secret, 32);
    (void)km_buf_put_u16(out, in->n_enclaves);
    (void)km_buf_put(out, in->enclave_pubs, (size_t)in->n_enclaves * 33);
    (void)km_buf_put_u16(out, in->n_participants);
    for (uint16_t i = 0; i < in->n_participants; i++) {
        (void)km_buf_put(out, in->user_ids[i].b, 16);
        (void)km_buf_put_u16(out, in->enclave_index[i]);
    }
    (void)km_buf_put_u16(out, in->n_subsets);
    for (uint16_t s = 0; s < in->n_subsets; s++) {
        (void)km_buf_put(out, in->subsets[s].id.b, 16);
        (void)km_buf_put_u16(out, in->subsets[s].n);
        for (uint16_t i = 0; i < in->subsets[s].n; i++)
            (void)km_buf_put_u16(out, in->subsets[s].members[i]);
    }
    (void)km_buf_put_u8(out, (uint8_t)in->tweak.mode);
    return km_buf_put(out, in->tweak.data, 32); /* km_buf errors are sticky */
}

km_err km_keygen_init_decode(km_keygen_init *out, const unsigned char *p, size_t len) {
    km_cursor c;
    uint8_t version = 0, mode = 0;
    memset(out, 0, sizeof *out);
    km_cursor_init(&c, p, len);
    (void)km_cursor_get_u8(&c, &version);
    (void)km_cursor_get_bytes(&c, out->session_secret, 32);
    (void)km_cursor_get_u16(&c, &out->n_enclaves);
    km_err err = KM_ERR_PARSE;
    if (c.failed) goto fail;
    if (version != KM_PROTO_VERSION) {
        err = KM_ERR_UNSUPPORTED;
        goto fail;
    }
    /* Bound every count before allocating: the sizes come from outside. */
    if (out->n_enclaves < 1 || out->n_enclaves > KM_MAX_ENCLAVES) {
        err = KM_ERR_RANGE;
        goto fail;
    }
    out->enclave_pubs = calloc(out->n_enclaves, 33);
    if (!out->enclave_pubs) goto nomem;
    (void)km_cursor_get_bytes(&c, out->enclave_pubs, (size_t)out->n_enclaves * 33);
    (void)km_cursor_get_u16(&c, &out->n_participants);
    if (c.failed) goto fail;
    if (out->n_participants < 1 || out->n_participants > KM_MAX_PARTICIPANTS) {
        err = KM_ERR_RANGE;
        goto fail;
    }
    out->user_ids = calloc(out->n_participants, sizeof *out->user_ids);
    out->enclave_index = calloc(out->n_participants, sizeof *out->enclave_index);
    if (!out->user_ids || !out->enclave_index) goto nomem;
    for (uint16_t i = 0; i < out->n_participants; i++) {
        (void)km_cursor_get_bytes(&c, out->user_ids[i].b, 16);
        (void)km_cursor_get_u16(&c, &out->enclave_index[i]);
    }
    uint16_t n_subsets = 0;
    (void)km_cursor_get_u16(&c, &n_subsets);
    if (c.failed) goto fail;
    if (n_subsets > KM_MAX_SUBSETS) {
        err = KM_ERR_RANGE;
        goto fail;
    }
    if (n_subsets) {
        out->subsets = calloc(n_subsets, sizeof *out->subsets);
        if (!out->subsets) goto nomem;
    }
    for (uint16_t s = 0; s < n_subsets; s++) {
        km_subset_def *d = &out->subsets[s];
        out->n_subsets = (uint16_t)(s + 1); /* so free() sees what was allocated */
        (void)km_cursor_get_bytes(&c, d->id.b, 16);
        (void)km_cursor_get_u16(&c, &d->n);
        if (c.failed) goto fail;
        if (d->n < 1 || d->n > out->n_participants) {
            err = KM_ERR_RANGE;
            goto fail;
        }
        d->members = calloc(d->n, sizeof *d->members);
        if (!d->members) goto nomem;
        for (uint16_t i = 0; i < d->n; i++)
            (void)km_cursor_get_u16(&c, &d->members[i]);
    }
    (void)km_cursor_get_u8(&c, &mode);
    (void)km_cursor_get_bytes(&c, out->tweak.data, 32);
    if (km_cursor_finish(&c) != KM_OK) goto fail;
    if (mode > KM_TWEAK_XONLY) {
        err = KM_ERR_UNSUPPORTED;
        goto fail;
    }
    out->tweak.mode = (km_tweak_mode)mode;
    err = check_init(out);
    if (err) goto fail;
    return KM_OK;
nomem:
    err = KM_ERR_NOMEM;
fail:
    km_keygen_init_free(out);
    return err;
}

void km_registration_encode(const km_registration *in, unsigned char out[KM_REGISTRATION_LEN]) {
    out[0] = KM_PROTO_VERSION;
    memcpy(out + 1, in->session_secret, 32);
    memcpy(out + 33, in->seckey, 32);
    memcpy(out + 65, in->auth_pub, 32);
    out[97] = in->flags;
}

km_err km_registration_decode(km_registration *out, const unsigned char *p, size_t len) {
    memset(out, 0, sizeof *out);
    if (!p || len != KM_REGISTRATION_LEN) return KM_ERR_PARSE;
    if (p[0] != KM_PROTO_VERSION || (p[97] & ~KM_FLAG_REQUIRE_APPROVAL)) return KM_ERR_UNSUPPORTED;
    memcpy(out->session_secret, p + 1, 32);
    memcpy(out->seckey, p + 33, 32);
    memcpy(out->auth_pub, p + 65, 32);
    out->flags = p[97];
    return KM_OK;
}

km_err km_participant_record_decode(km_participant_record *out, const unsigned char *p, size_t len) {
    km_cursor c;
    uint32_t n = 0;
    memset(out, 0, sizeof *out);
    km_cursor_init(&c, p, len);
    (void)km_cursor_get_bytes(&c, out->keygen_id.b, 16);
    (void)km_cursor_get_bytes(&c, out->user_id.b, 16);
    (void)km_cursor_get_u16(&c, &out->enclave_index);
    (void)km_cursor_get_u32(&c, &n);
    if (c.failed || n > 4096) goto fail; /* a sealed info is ~100 bytes */
    (void)km_cursor_get_view(&c, &out->sealed, n);
    size_t signed_len = c.pos;
    (void)km_cursor_get_view(&c, &out->sig, 64);
    if (km_cursor_finish(&c) != KM_OK) goto fail;
    out->sealed_len = n;
    km_tagged_hash(out->digest, KM_TAG_PARTICIPANT_RECORD, p, signed_len);
    return KM_OK;
fail:
    memset(out, 0, sizeof *out);
    return KM_ERR_PARSE;
}
