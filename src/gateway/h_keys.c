/* gateway/h_keys.c — single-signer keys: reserve (which enclave), import,
 * store from a keygen, list, status, delete; single signing requests. The key
 * travels only as an ECIES blob to its enclave; each call is signed by the
 * key owner's auth key, and deletion and approvals additionally carry a
 * signature that the enclave itself checks. */
#include <stdlib.h>
#include <string.h>

#include "gateway/handlers.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/protocol.h"

static const km_gw_enclave_cfg *find_enclave(const km_gateway *gw, uint64_t id) {
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++)
        if (gw->cfg.enclaves[i].id == id) return &gw->cfg.enclaves[i];
    return NULL;
}

static json_t *key_json(const km_store_key *k) {
    json_t *o =
        json_pack("{s:o,s:o,s:I,s:I,s:o,s:s}", "key_id", km_json_uuid(k->key_id), "user_id",
                  km_json_uuid(k->user_id), "enclave_id", (json_int_t)k->enclave_id, "created_at",
                  (json_int_t)k->created_at, "auth_key", km_json_hex(k->auth_key, 32), "status", "active");
    if (o)
        json_object_set_new(o, "origin_keygen_id",
                            k->has_origin ? km_json_uuid(k->origin_keygen) : json_null());
    return o;
}

static void answer_key(km_store *st, const unsigned char key_id[16], int status, km_http_response *resp) {
    km_store_key k;
    km_err err = km_store_key_get(st, key_id, &k);
    if (err) {
        km_gw_store_error(resp, err, "key");
        return;
    }
    json_t *o = key_json(&k);
    km_buf_free(&k.import_blob);
    if (o)
        km_http_json(resp, status, o);
    else
        km_http_error(resp, 500, "internal", "out of memory");
}

static const km_json_field RESERVE_FIELDS[] = {
    {"key_id", KM_JSON_UUID, 1, 0, 0},
    {"user_id", KM_JSON_UUID, 1, 0, 0},
};

/* Which enclave a new key goes to: a function of the key id alone, so the
 * answer is the same on every repeat and on every gateway, and keys spread
 * evenly. Nothing is stored. */
void km_h_keys_reserve(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    json_t *body;
    if (!km_gw_body(req, resp, RESERVE_FIELDS, 2, &body)) return;
    unsigned char key_id[16], user[16], h[32];
    int bad = km_json_get_uuid(body, "key_id", key_id) | km_json_get_uuid(body, "user_id", user);
    json_decref(body);
    if (bad) {
        km_http_error(resp, 400, "invalid_field", "a field could not be read");
        return;
    }
    km_sha256(h, key_id, 16);
    uint32_t x = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
    const km_gw_enclave_cfg *e = &gw->cfg.enclaves[x % gw->cfg.n_enclaves];
    km_http_json(resp, 200,
                 json_pack("{s:o,s:o,s:I,s:o}", "key_id", km_json_uuid(key_id), "user_id", km_json_uuid(user),
                           "enclave_id", (json_int_t)e->id, "enclave_public_key",
                           km_json_hex(e->pubkey, 33)));
}

/* Import (or store from a keygen): relay KEY_IMPORT, then store. k holds the
 * key's public data (created_at set here). */
static void import_key(km_gateway *gw, km_store *st, const km_http_request *req, km_store_key *k,
                       const km_buf *blob, km_http_response *resp) {
    km_store_key have;
    km_err err = km_store_key_get(st, k->key_id, &have);
    if (err == KM_OK) {
        int same = !memcmp(have.user_id, k->user_id, 16) && have.enclave_id == k->enclave_id &&
                   !memcmp(have.auth_key, k->auth_key, 32) && have.has_origin == k->has_origin &&
                   (!k->has_origin || !memcmp(have.origin_keygen, k->origin_keygen, 16)) &&
                   have.import_blob.len == blob->len && !memcmp(have.import_blob.data, blob->data, blob->len);
        km_buf_free(&have.import_blob);
        if (same)
            answer_key(st, k->key_id, 201, resp);
        else
            km_http_error(resp, 409, "conflict", "key already exists with different content");
        return;
    }
    if (err != KM_ERR_NOT_FOUND) {
        km_gw_store_error(resp, err, "key");
        return;
    }
    (void)req;
    km_buf cmd, reply;
    km_buf_init(&cmd);
    km_buf_init(&reply);
    err = km_buf_put(&cmd, k->key_id, 16);
    if (!err) err = km_buf_put(&cmd, k->user_id, 16);
    if (!err) err = km_gw_put_vbytes(&cmd, blob->data, blob->len);
    if (err)
        km_http_error(resp, 500, "internal", "out of memory");
    else if (km_gw_enclave(gw, k->enclave_id, KM_CMD_KEY_IMPORT, &cmd, &reply, NULL, resp)) {
        k->created_at = km_gw_now();
        err = km_store_key_put(st, k, blob->data, blob->len);
        if (err)
            km_gw_store_error(resp, err, "key");
        else
            answer_key(st, k->key_id, 201, resp);
    }
    km_buf_free(&cmd);
    km_buf_free(&reply);
}

static const km_json_field IMPORT_FIELDS[] = {
    {"key_id", KM_JSON_UUID, 1, 0, 0},
    {"user_id", KM_JSON_UUID, 1, 0, 0},
    {"enclave_id", KM_JSON_UINT, 1, 0, UINT32_MAX - 1},
    {"blob", KM_JSON_HEX, 1, 1, 4096},
    {"auth_key", KM_JSON_HEX, 1, 32, 32},
};

void km_h_keys_import(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    json_t *body;
    if (!km_gw_body(req, resp, IMPORT_FIELDS, sizeof IMPORT_FIELDS / sizeof IMPORT_FIELDS[0], &body)) return;
    km_store_key k;
    memset(&k, 0, sizeof k);
    uint64_t eid;
    km_buf blob;
    km_buf_init(&blob);
    int bad = km_json_get_uuid(body, "key_id", k.key_id) | km_json_get_uuid(body, "user_id", k.user_id) |
              km_json_get_uint(body, "enclave_id", &eid) |
              km_json_get_hex_fixed(body, "auth_key", k.auth_key, 32);
    int ok = !bad && km_json_get_hex(body, "blob", &blob) == KM_OK;
    json_decref(body);
    if (!ok) {
        km_http_error(resp, 500, "internal", "out of memory");
        return;
    }
    if (!find_enclave(gw, eid)) {
        km_http_error(resp, 400, "invalid_field", "field 'enclave_id': enclave %llu is not configured",
                      (unsigned long long)eid);
        km_buf_free(&blob);
        return;
    }
    k.enclave_id = (uint32_t)eid;
    km_store *st = km_gw_store_take(gw);
    /* The importer proves it holds the auth key that will control the key. */
    if (km_gw_auth(gw, st, req, (const unsigned char(*)[32])k.auth_key, 1, NULL, resp))
        import_key(gw, st, req, &k, &blob, resp);
    km_gw_store_give(gw, st);
    km_buf_free(&blob);
}

static const km_json_field FROM_KEYGEN_FIELDS[] = {
    {"key_id", KM_JSON_UUID, 1, 0, 0},
    {"blob", KM_JSON_HEX, 1, 1, 4096},
};

/* A participant keeps its keygen key as a single-signer key too: the import
 * blob goes to the enclave the participant was assigned to, and the call is
 * signed by the auth key it registered with. */
void km_h_keys_from_keygen(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    km_store_key k;
    memset(&k, 0, sizeof k);
    if (!km_gw_param_uuid(req, 0, "user_id", k.user_id, resp) ||
        !km_gw_param_uuid(req, 1, "keygen_id", k.origin_keygen, resp))
        return;
    json_t *body;
    if (!km_gw_body(req, resp, FROM_KEYGEN_FIELDS, 2, &body)) return;
    km_buf blob;
    km_buf_init(&blob);
    int ok =
        km_json_get_uuid(body, "key_id", k.key_id) == KM_OK && km_json_get_hex(body, "blob", &blob) == KM_OK;
    json_decref(body);
    if (!ok) {
        km_http_error(resp, 500, "internal", "out of memory");
        return;
    }
    k.has_origin = 1;
    km_store *st = km_gw_store_take(gw);
    km_store_keygen kg;
    uint8_t flags;
    km_err err = km_store_keygen_get(st, k.origin_keygen, &kg);
    if (err) {
        km_gw_store_error(resp, err, "keygen");
        goto out;
    }
    km_store_keygen_state state = kg.state;
    km_store_keygen_clear(&kg);
    if (km_store_registration_info(st, k.origin_keygen, k.user_id, k.auth_key, &flags) != KM_OK) {
        km_http_error(resp, 404, "not_found", "user is not a registered participant of this keygen");
        goto out;
    }
    if (!km_gw_auth(gw, st, req, (const unsigned char(*)[32])k.auth_key, 1, NULL, resp)) goto out;
    if (state != KM_KEYGEN_COMPLETED) {
        km_http_error(resp, 409, "invalid_state", "keygen is %s, not completed",
                      km_gw_keygen_state_name(state));
        goto out;
    }
    err = km_gw_user_enclave(st, k.origin_keygen, k.user_id, &k.enclave_id);
    if (err)
        km_gw_store_error(resp, err, "participant assignment");
    else
        import_key(gw, st, req, &k, &blob, resp);
out:
    km_gw_store_give(gw, st);
    km_buf_free(&blob);
}

/* Load key path[1] owned by user path[0] and check it is signed by the key's
 * auth key. Returns 1 with *k (caller frees import_blob) or 0 answered. */
static int key_authed(km_gateway *gw, km_store *st, const km_http_request *req, km_http_response *resp,
                      km_store_key *k) {
    unsigned char user[16], key_id[16];
    if (!km_gw_param_uuid(req, 0, "user_id", user, resp) || !km_gw_param_uuid(req, 1, "key_id", key_id, resp))
        return 0;
    km_err err = km_store_key_get(st, key_id, k);
    if (!err && memcmp(k->user_id, user, 16)) {
        km_buf_free(&k->import_blob);
        err = KM_ERR_NOT_FOUND;
    }
    if (err) {
        km_gw_store_error(resp, err, "key");
        return 0;
    }
    if (!km_gw_auth(gw, st, req, (const unsigned char(*)[32])k->auth_key, 1, NULL, resp)) {
        km_buf_free(&k->import_blob);
        return 0;
    }
    return 1;
}

void km_h_keys_get(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    km_store *st = km_gw_store_take(gw);
    km_store_key k;
    if (key_authed(gw, st, req, resp, &k)) {
        json_t *o = key_json(&k);
        km_buf_free(&k.import_blob);
        if (o)
            km_http_json(resp, 200, o);
        else
            km_http_error(resp, 500, "internal", "out of memory");
    }
    km_gw_store_give(gw, st);
}

void km_h_keys_list(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    unsigned char user[16], claimed[32] = {0};
    if (!km_gw_param_uuid(req, 0, "user_id", user, resp)) return;
    /* Any validly signed request gets 200 with the keys its signer controls
     * (possibly none): neither the status nor the body tells a caller whether
     * the user has keys it does not control. */
    const char *hk = km_http_header(req, KM_GW_HDR_KEY);
    if (hk && (strlen(hk) != 64 || km_hex_decode(claimed, 32, hk, 64) != KM_OK)) memset(claimed, 0, 32);
    km_store *st = km_gw_store_take(gw);
    if (!km_gw_auth(gw, st, req, (const unsigned char(*)[32])claimed, 1, NULL, resp)) {
        km_gw_store_give(gw, st);
        return;
    }
    size_t n = 0;
    km_store_key one;
    km_err err = km_store_key_list_by_user(st, user, &one, 0, &n);
    km_store_key *keys = n ? calloc(n, sizeof *keys) : NULL;
    if (err == KM_ERR_BUFFER_SMALL)
        err = keys ? km_store_key_list_by_user(st, user, keys, n, &n) : KM_ERR_NOMEM;
    if (err) {
        km_gw_store_error(resp, err, "keys");
    } else {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            if (!memcmp(keys[i].auth_key, claimed, 32)) json_array_append_new(arr, key_json(&keys[i]));
        km_http_json(resp, 200, json_pack("{s:o,s:o}", "user_id", km_json_uuid(user), "keys", arr));
    }
    free(keys);
    km_gw_store_give(gw, st);
}

static const km_json_field DELETE_FIELDS[] = {
    {"timestamp", KM_JSON_UINT, 1, 0, UINT64_MAX},
    {"signature", KM_JSON_HEX, 1, 64, 64},
};

void km_h_keys_delete(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    json_t *body;
    unsigned char ids[2][16];
    if (!km_gw_param_uuid(req, 0, "user_id", ids[0], resp) ||
        !km_gw_param_uuid(req, 1, "key_id", ids[1], resp))
        return; /* path before body, as everywhere */
    if (!km_gw_body(req, resp, DELETE_FIELDS, 2, &body)) return;
    uint64_t ts = 0;
    unsigned char sig[64];
    int bad = km_json_get_uint(body, "timestamp", &ts) | km_json_get_hex_fixed(body, "signature", sig, 64);
    json_decref(body);
    if (bad) {
        km_http_error(resp, 400, "invalid_field", "a field could not be read");
        return;
    }
    km_store *st = km_gw_store_take(gw);
    km_store_key k;
    if (!key_authed(gw, st, req, resp, &k)) {
        km_gw_store_give(gw, st);
        return;
    }
    km_buf cmd, reply;
    km_buf_init(&cmd);
    km_buf_init(&reply);
    km_err err = km_buf_put(&cmd, k.key_id, 16);
    if (!err) err = km_buf_put_u64(&cmd, ts);
    if (!err) err = km_buf_put(&cmd, sig, 64);
    km_err code = KM_OK;
    km_http_response scratch;
    memset(&scratch, 0, sizeof scratch);
    if (err) {
        km_http_error(resp, 500, "internal", "out of memory");
    } else if (!km_gw_enclave(gw, k.enclave_id, KM_CMD_KEY_DELETE, &cmd, &reply, &code, &scratch) &&
               code != KM_ERR_NOT_FOUND) {
        /* The enclave decides (it checks the deletion signature itself). */
        *resp = scratch;
        memset(&scratch, 0, sizeof scratch);
    } else if ((err = km_store_key_delete(st, k.key_id)) != KM_OK) {
        km_gw_store_error(resp, err, "key");
    } else {
        km_http_json(resp, 200,
                     json_pack("{s:o,s:o,s:b}", "key_id", km_json_uuid(k.key_id), "user_id",
                               km_json_uuid(k.user_id), "deleted", 1));
    }
    free(scratch.body);
    km_buf_free(&cmd);
    km_buf_free(&reply);
    km_buf_free(&k.import_blob);
    km_gw_store_give(gw, st);
}

static const km_json_field SIGN_FIELDS[] = {
    {"request_id", KM_JSON_UUID, 1, 0, 0},
    {"key_id", KM_JSON_UUID, 1, 0, 0},
    {"user_id", KM_JSON_UUID, 1, 0, 0},
    {"blob", KM_JSON_HEX, 1, 1, 4096},
    {"approval_signature", KM_JSON_HEX, 0, 64, 64},
    {"timeout_secs", KM_JSON_UINT, 0, 1, 86400},
};

static void answer_keysign(km_store *st, const unsigned char id[16], int status, km_http_response *resp) {
    km_store_keysign_state state;
    char reason[KM_STORE_REASON_MAX];
    km_buf result, request;
    km_buf_init(&result);
    km_buf_init(&request);
    unsigned char key_id[16];
    int64_t created = 0, expires = 0;
    km_err err = km_store_keysign_get(st, id, &state, reason, &result);
    if (!err) err = km_store_keysign_get_request(st, id, key_id, &request, &created, &expires);
    if (err) {
        km_gw_store_error(resp, err, "sign request");
    } else {
        static const char *NAMES[] = {"pending", "completed", "failed"};
        json_t *o = json_pack("{s:o,s:o,s:s,s:o,s:I,s:I,s:o}", "request_id", km_json_uuid(id), "key_id",
                              km_json_uuid(key_id), "status", (unsigned)state < 3 ? NAMES[state] : "unknown",
                              "reason", reason[0] ? json_string(reason) : json_null(), "created_at",
                              (json_int_t)created, "expires_at", (json_int_t)expires, "result",
                              result.len ? km_json_hex(result.data, result.len) : json_null());
        km_http_json(resp, status, o);
    }
    km_buf_free(&result);
    km_buf_free(&request);
}

void km_h_single_sign(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    json_t *body;
    if (!km_gw_body(req, resp, SIGN_FIELDS, sizeof SIGN_FIELDS / sizeof SIGN_FIELDS[0], &body)) return;
    unsigned char rid[16], key_id[16], user[16], sig[64];
    uint64_t timeout = 300;
    km_buf blob, request, have;
    km_buf_init(&blob);
    km_buf_init(&request);
    km_buf_init(&have);
    int bad = 0;
    bad |= km_json_get_uuid(body, "request_id", rid);
    bad |= km_json_get_uuid(body, "key_id", key_id);
    bad |= km_json_get_uuid(body, "user_id", user);
    int has_approval = json_object_get(body, "approval_signature") != NULL;
    if (has_approval) bad |= km_json_get_hex_fixed(body, "approval_signature", sig, 64);
    if (json_object_get(body, "timeout_secs")) bad |= km_json_get_uint(body, "timeout_secs", &timeout);
    int ok = !bad && km_json_get_hex(body, "blob", &blob) == KM_OK;
    json_decref(body);
    /* The enclave's KEY_SIGN body, stored as the request and relayed as is. */
    km_err err = ok ? km_buf_put(&request, key_id, 16) : KM_ERR_NOMEM;
    if (!err) err = km_buf_put(&request, rid, 16);
    if (!err) err = km_gw_put_vbytes(&request, blob.data, blob.len);
    if (!err) err = km_buf_put_u8(&request, has_approval ? 1 : 0);
    if (!err && has_approval) err = km_buf_put(&request, sig, 64);
    km_buf_free(&blob);
    if (err) {
        km_http_error(resp, 500, "internal", "out of memory");
        km_buf_free(&request);
        return;
    }
    km_store *st = km_gw_store_take(gw);
    km_store_key k;
    err = km_store_key_get(st, key_id, &k);
    if (!err && memcmp(k.user_id, user, 16)) {
        km_buf_free(&k.import_blob);
        err = KM_ERR_NOT_FOUND;
    }
    if (err) {
        km_gw_store_error(resp, err, "key");
        goto out;
    }
    km_buf_free(&k.import_blob);
    if (!km_gw_auth(gw, st, req, (const unsigned char(*)[32])k.auth_key, 1, NULL, resp)) goto out;
    unsigned char have_key[16];
    int64_t c0, e0;
    err = km_store_keysign_get_request(st, rid, have_key, &have, &c0, &e0);
    if (err == KM_OK) {
        if (have.len == request.len && !memcmp(have.data, request.data, have.len))
            answer_keysign(st, rid, 202, resp);
        else
            km_http_error(resp, 409, "conflict", "sign request already exists with different content");
        goto out;
    }
    int64_t now = km_gw_now();
    err = km_store_keysign_create(st, rid, key_id, request.data, request.len, now, now + (int64_t)timeout);
    if (err) {
        km_gw_store_error(resp, err, "sign request");
        goto out;
    }
    km_coord_kick(gw, KM_STORE_KEYSIGN, rid);
    answer_keysign(st, rid, 202, resp);
out:
    km_gw_store_give(gw, st);
    km_buf_free(&request);
    km_buf_free(&have);
}

void km_h_single_get(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    unsigned char rid[16], key_id[16];
    if (!km_gw_param_uuid(req, 0, "request_id", rid, resp) || !km_gw_wait_valid(gw, req, resp)) return;
    char key[48];
    km_gw_wait_key(key, KM_STORE_KEYSIGN, rid);
    uint64_t seq = km_http_wait_seq(gw->http, key);
    km_store *st = km_gw_store_take(gw);
    km_buf request;
    km_buf_init(&request);
    int64_t c0, e0;
    km_store_keysign_state state;
    km_err err = km_store_keysign_get_request(st, rid, key_id, &request, &c0, &e0);
    if (!err) err = km_store_keysign_get(st, rid, &state, NULL, NULL);
    if (err) {
        km_gw_store_error(resp, err, "sign request");
        goto out;
    }
    if (!req->resumed) {
        km_store_key k;
        err = km_store_key_get(st, key_id, &k);
        if (err) {
            km_gw_store_error(resp, err, "key");
            goto out;
        }
        km_buf_free(&k.import_blob);
        if (!km_gw_auth(gw, st, req, (const unsigned char(*)[32])k.auth_key, 1, NULL, resp)) goto out;
    }
    if (km_gw_maybe_wait(gw, req, resp, key, seq, state != KM_KEYSIGN_PENDING) == 0)
        answer_keysign(st, rid, 200, resp);
out:
    km_buf_free(&request);
    km_gw_store_give(gw, st);
}
