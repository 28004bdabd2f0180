/* fuzz/fuzz_envelope.c — the enclave command envelope and the body codecs
 * (src/core/protocol.c, proto_keygen.c, proto_sign.c, proto_key.c, cursor.c).
 *
 * Input: u8 selector | bytes. The selector picks the decoder; the bytes are
 * what an enclave or a gateway would receive. Decoders that have an encoder
 * must reproduce the input from what they decoded (one encoding per value). */
#include <stdlib.h>
#include <string.h>

#include "fz_util.h"
#include "keymeld/proto_key.h"
#include "keymeld/proto_keygen.h"
#include "keymeld/proto_sign.h"
#include "keymeld/protocol.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void envelope(const unsigned char *p, size_t n) {
    km_msg m;
    if (km_msg_decode(&m, p, n) != KM_OK) return;
    if (m.body_len != n - KM_MSG_HEADER_LEN || (n > KM_MSG_HEADER_LEN && m.body != p + KM_MSG_HEADER_LEN))
        abort();
    char detail[KM_MSG_DETAIL_MAX + 1];
    if (km_msg_error_detail(&m, detail, sizeof detail) == KM_OK && strlen(detail) > KM_MSG_DETAIL_MAX)
        abort();
    char small[8];
    (void)km_msg_error_detail(&m, small, sizeof small);
    (void)km_cmd_name(m.code);
}

static void keygen_init(const unsigned char *p, size_t n) {
    km_keygen_init in;
    if (km_keygen_init_decode(&in, p, n) != KM_OK) return;
    km_buf b;
    km_buf_init(&b);
    if (km_keygen_init_encode(&in, &b) != KM_OK || b.len != n || memcmp(b.data, p, n)) abort();
    km_buf_free(&b);
    for (uint16_t i = 0; i < in.n_participants; i++)
        if (km_keygen_init_find(&in, &in.user_ids[i]) != i) abort();
    km_keygen_init_free(&in);
}

static void registration(const unsigned char *p, size_t n) {
    km_registration r;
    if (km_registration_decode(&r, p, n) != KM_OK) return;
    unsigned char back[KM_REGISTRATION_LEN];
    km_registration_encode(&r, back);
    if (n != KM_REGISTRATION_LEN || memcmp(back, p, n)) abort();
}

static void sign_items(const unsigned char *p, size_t n) {
    km_sign_item *items = NULL;
    size_t k = 0;
    if (km_sign_items_decode(&items, &k, p, n) != KM_OK) return;
    km_buf b;
    km_buf_init(&b);
    if (km_sign_items_encode(items, k, &b) != KM_OK || b.len != n || memcmp(b.data, p, n)) abort();
    km_buf_free(&b);
    for (size_t i = 0; i < k; i++)
        (void)km_sign_item_units(&items[i]);
    free(items);
}

static void records(const unsigned char *p, size_t n) {
    km_participant_record pr;
    (void)km_participant_record_decode(&pr, p, n);
    km_sign_record sr;
    km_uuid id;
    memset(&id, 0x5a, sizeof id);
    (void)km_sign_record_decode(&sr, "KeyMeld/fuzz", &id, p, n);
}

static void key_cmds(const unsigned char *p, size_t n) {
    km_key_import imp;
    if (km_key_import_decode(&imp, p, n) == KM_OK) {
        unsigned char back[KM_KEY_IMPORT_LEN];
        if (km_key_import_encode(&imp, back) != KM_OK || n != KM_KEY_IMPORT_LEN || memcmp(back, p, n))
            abort();
    }
    km_key_sign_req req;
    if (km_key_sign_decode(&req, p, n) == KM_OK) {
        km_buf b;
        km_buf_init(&b);
        if (km_key_sign_encode(&req, &b) != KM_OK || b.len != n || memcmp(b.data, p, n)) abort();
        km_buf_free(&b);
    }
    km_key_import_cmd ic;
    (void)km_key_import_parse(&ic, p, n);
    km_key_sign_cmd sc;
    (void)km_key_sign_parse(&sc, p, n);
    km_key_delete_cmd dc;
    (void)km_key_delete_parse(&dc, p, n);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 1) return 0;
    const unsigned char *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 6) {
    case 0:
        envelope(p, n);
        break;
    case 1:
        keygen_init(p, n);
        break;
    case 2:
        registration(p, n);
        break;
    case 3:
        sign_items(p, n);
        break;
    case 4:
        records(p, n);
        break;
    default:
        key_cmds(p, n);
        break;
    }
    return 0;
}
