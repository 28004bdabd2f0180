/* gateway/h_keygen.c — keygen sessions: create, status, slots, registration,
 * deletion. The gateway relays ECIES blobs it cannot open; what it checks is
 * structure, signatures by the session auth key, and state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/handlers.h"
#include "keymeld/protocol.h"

#define BLOB_MAX 65536u

static const km_json_field CREATE_FIELDS[] = {
    {"keygen_id", KM_JSON_UUID, 1, 0, 0},
    {"session_auth_key", KM_JSON_HEX, 1, 32, 32},
    {"timeout_secs", KM_JSON_UINT, 1, 1, 30 * 86400},
    {"max_signing_sessions", KM_JSON_UINT, 0, 0, 1000000},
    {"participants", KM_JSON_ARRAY, 1, 1, 1000},
    {"enclave_inits", KM_JSON_ARRAY, 1, 1, 64},
};
static const km_json_field PARTICIPANT_FIELDS[] = {
    {"user_id", KM_JSON_UUID, 1, 0, 0},
    {"enclave_id", KM_JSON_UINT, 1, 0, UINT32_MAX - 1},
};
static const km_json_field INIT_FIELDS[] = {
    {"enclave_id", KM_JSON_UINT, 1, 0, UINT32_MAX - 1},
    {"blob", KM_JSON_HEX, 1, 1, BLOB_MAX},
};

static int enclave_configured(const km_gateway *gw, uint64_t id) {
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++)
        if (gw->cfg.enclaves[i].id == id) return 1;
    return 0;
}

/* Read back a keygen and answer with its JSON view. */
static void answer_keygen(km_store *st, const unsigned char id[16], int status, km_http_response *resp) {
    km_store_keygen kg;
    km_err err = km_store_keygen_get(st, id, &kg);
    if (err) {
        km_gw_store_error(resp, err, "keygen");
        return;
    }
    json_t *o = km_gw_keygen_json(st, &kg);
    km_store_keygen_clear(&kg);
    if (!o)
        km_http_error(resp, 500, "internal", "out of memory");
    else
        km_http_json(resp, status, o);
}

/* Does the stored keygen equal the request (ignoring times)? */
static int same_keygen(km_store *st, const km_store_keygen *have, const km_store_keygen_new *want) {
    if (memcmp(have->session_auth_key, want->session_auth_key, 32) ||
        have->max_signings != want->max_signings)
        return 0;
    size_t n = 0;
    km_store_assignment *as = calloc(want->n_assignments, sizeof *as);
    int same = as && km_store_keygen_assignments(st, have->id, as, want->n_assignments, &n) == KM_OK &&
               n == want->n_assignments;
    for (size_t i = 0; same && i < n; i++) {
        size_t j;
        for (j = 0; j < want->n_assignments; j++)
            if (!memcmp(want->assignments[j].user_id, as[i].user_id, 16) &&
                want->assignments[j].enclave_id == as[i].enclave_id)
                break;
        same = j < want->n_assignments;
    }
    free(as);
    for (size_t i = 0; same && i < want->n_inits; i++) {
        km_buf b;
        km_buf_init(&b);
        same = km_store_keygen_init_get(st, have->id, want->inits[i].enclave_id, &b) == KM_OK &&
               b.len == want->inits[i].blob_len && !memcmp(b.data, want->inits[i].blob, b.len);
        km_buf_free(&b);
    }
    return same;
}

/* KEYGEN_INIT on every enclave at once. Returns 1 if all accepted, else 0
 * with resp answered (the first refusal, in order). */
static int init_enclaves(km_gateway *gw, const unsigned char keygen_id[16], const km_store_init_blob *inits,
                         size_t ni, km_http_response *resp) {
    km_buf *cmds = calloc(ni, sizeof *cmds), *replies = calloc(ni, sizeof *replies);
    km_pool_req *reqs = calloc(ni, sizeof *reqs);
    km_err e = cmds && replies && reqs ? KM_OK : KM_ERR_NOMEM;
    for (size_t i = 0; !e && i < ni; i++) {
        km_buf_init(&cmds[i]);
        km_buf_init(&replies[i]);
        e = km_buf_put(&cmds[i], keygen_id, 16);
        if (!e) e = km_gw_put_vbytes(&cmds[i], inits[i].blob, inits[i].blob_len);
        reqs[i] = (km_pool_req){
            inits[i].enclave_id, KM_CMD_KEYGEN_INIT, cmds[i].data, cmds[i].len, &replies[i], 0, KM_OK};
    }
    int ok = !e && km_gw_enclave_all(gw, reqs, ni, resp);
    if (e) km_http_error(resp, 500, "internal", "out of memory");
    for (size_t i = 0; cmds && replies && i < ni; i++) {
        km_buf_free(&cmds[i]);
        km_buf_free(&replies[i]);
    }
    free(cmds);
    free(replies);
    free(reqs);
    return ok;
}

void km_h_keygen_create(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    json_t *body;
    if (!km_gw_body(req, resp, CREATE_FIELDS, sizeof CREATE_FIELDS / sizeof CREATE_FIELDS[0], &body)) return;
    km_store_keygen_new kg;
    memset(&kg, 0, sizeof kg);
    json_t *parts = json_object_get(body, "participants"), *inits_j = json_object_get(body, "enclave_inits");
    size_t np = json_array_size(parts), ni = json_array_size(inits_j);
    km_store_assignment *as = calloc(np, sizeof *as);
    km_store_init_blob *inits = calloc(ni, sizeof *inits);
    km_buf *blobs = calloc(ni, sizeof *blobs);
    km_store *st = NULL;
    char msg[200];
    uint64_t timeout = 0, maxs = 0;
    int bad = 0;
    if (!as || !inits || !blobs) {
        km_http_error(resp, 500, "internal", "out of memory");
        goto out;
    }
    bad |= km_json_get_uuid(body, "keygen_id", kg.id);
    bad |= km_json_get_hex_fixed(body, "session_auth_key", kg.session_auth_key, 32);
    bad |= km_json_get_uint(body, "timeout_secs", &timeout);
    if (json_object_get(body, "max_signing_sessions"))
        bad |= km_json_get_uint(body, "max_signing_sessions", &maxs);
    if (bad) {
        km_http_error(resp, 400, "invalid_field", "a field could not be read");
        goto out;
    }
    if (timeout > gw->cfg.max_timeout_seconds) {
        km_http_error(resp, 400, "invalid_field", "field 'timeout_secs' must be at most %u",
                      gw->cfg.max_timeout_seconds);
        goto out;
    }
    if (np > gw->cfg.max_participants) {
        km_http_error(resp, 400, "invalid_field", "field 'participants' must have at most %u elements",
                      gw->cfg.max_participants);
        goto out;
    }
    for (size_t i = 0; i < ni; i++) {
        json_t *e = json_array_get(inits_j, i);
        uint64_t eid;
        km_buf_init(&blobs[i]);
        if (km_json_check(e, INIT_FIELDS, 2, msg, sizeof msg) != KM_OK) {
            km_http_error(resp, 400, "invalid_field", "enclave_inits[%zu]: %s", i, msg);
            goto out;
        }
        bad |= km_json_get_uint(e, "enclave_id", &eid);
        if (bad || !enclave_configured(gw, eid)) {
            km_http_error(resp, 400, "invalid_field", "enclave_inits[%zu]: enclave %llu is not configured", i,
                          (unsigned long long)eid);
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (inits[j].enclave_id == eid) {
                km_http_error(resp, 400, "invalid_field", "enclave_inits[%zu]: enclave %llu is listed twice",
                              i, (unsigned long long)eid);
                goto out;
            }
        if (km_json_get_hex(e, "blob", &blobs[i]) != KM_OK) {
            km_http_error(resp, 500, "internal", "out of memory");
            goto out;
        }
        inits[i].enclave_id = (uint32_t)eid;
        inits[i].blob = blobs[i].data;
        inits[i].blob_len = blobs[i].len;
    }
    for (size_t i = 0; i < np; i++) {
        json_t *e = json_array_get(parts, i);
        uint64_t eid;
        if (km_json_check(e, PARTICIPANT_FIELDS, 2, msg, sizeof msg) != KM_OK) {
            km_http_error(resp, 400, "invalid_field", "participants[%zu]: %s", i, msg);
            goto out;
        }
        bad |= km_json_get_uuid(e, "user_id", as[i].user_id);
        bad |= km_json_get_uint(e, "enclave_id", &eid);
        if (bad) {
            km_http_error(resp, 400, "invalid_field", "a field could not be read");
            goto out;
        }
        as[i].enclave_id = (uint32_t)eid;
        size_t j;
        for (j = 0; j < ni && inits[j].enclave_id != eid; j++) {
        }
        if (j == ni) {
            km_http_error(resp, 400, "invalid_field",
                          "participants[%zu]: enclave %llu has no entry in 'enclave_inits'", i,
                          (unsigned long long)eid);
            goto out;
        }
        for (j = 0; j < i; j++)
            if (!memcmp(as[j].user_id, as[i].user_id, 16)) {
                km_http_error(resp, 400, "invalid_field", "participants[%zu]: user listed twice", i);
                goto out;
            }
    }
    kg.max_signings = (uint32_t)maxs;
    kg.inits = inits;
    kg.n_inits = ni;
    kg.assignments = as;
    kg.n_assignments = np;
    kg.created_at = km_gw_now();
    kg.expires_at = kg.created_at + (int64_t)timeout;

    st = km_gw_store_take(gw);
    /* The creator proves it holds the session secret: it signs with the
     * session auth key it registers here. */
    const unsigned char(*allowed)[32] = (const unsigned char(*)[32])kg.session_auth_key;
    if (!km_gw_auth(gw, st, req, allowed, 1, NULL, resp)) goto out;

    km_store_keygen have;
    km_err err = km_store_keygen_get(st, kg.id, &have);
    if (err == KM_OK) { /* a repeat: same content answers the same, other content is a conflict */
        int same = same_keygen(st, &have, &kg);
        km_store_keygen_clear(&have);
        if (!same)
            km_http_error(resp, 409, "conflict", "keygen %s already exists with different content",
                          json_string_value(json_object_get(body, "keygen_id")));
        else
            answer_keygen(st, kg.id, 201, resp);
        goto out;
    }
    if (err != KM_ERR_NOT_FOUND) {
        km_gw_store_error(resp, err, "keygen");
        goto out;
    }
    /* Every enclave must accept its init before anything is stored; a refusal
     * (wrong enclave key, malformed blob) leaves no trace here. */
    if (!init_enclaves(gw, kg.id, inits, ni, resp)) goto out;
    err = km_store_keygen_create(st, &kg);
    if (err) {
        km_gw_store_error(resp, err, "keygen");
        goto out;
    }
    km_coord_kick(gw, KM_STORE_KEYGEN, kg.id);
    answer_keygen(st, kg.id, 201, resp);
out:
    if (st) km_gw_store_give(gw, st);
    for (size_t i = 0; blobs && i < ni; i++)
        km_buf_free(&blobs[i]);
    free(blobs);
    free(inits);
    free(as);
    json_decref(body);
}

/* Load a keygen named by path parameter 0 and check that the request is
 * signed by signer (NULL: the session auth key).
 * Returns 1 with *kg filled (caller clears), 0 with resp answered. */
static int keygen_authed_by(km_gateway *gw, km_store *st, const km_http_request *req, km_http_response *resp,
                            km_store_keygen *kg, const unsigned char *signer) {
    unsigned char id[16];
    if (!km_gw_param_uuid(req, 0, "keygen_id", id, resp)) return 0;
    km_err err = km_store_keygen_get(st, id, kg);
    if (err) {
        km_gw_store_error(resp, err, "keygen");
        return 0;
    }
    if (!signer) signer = kg->session_auth_key;
    if (!req->resumed && !km_gw_auth(gw, st, req, (const unsigned char(*)[32])signer, 1, NULL, resp)) {
        km_store_keygen_clear(kg);
        return 0;
    }
    return 1;
}

static int keygen_authed(km_gateway *gw, km_store *st, const km_http_request *req, km_http_response *resp,
                         km_store_keygen *kg) {
    return keygen_authed_by(gw, st, req, resp, kg, NULL);
}

void km_h_keygen_get(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    unsigned char id[16];
    if (!km_gw_param_uuid(req, 0, "keygen_id", id, resp) || !km_gw_wait_valid(gw, req, resp)) return;
    char key[48];
    km_gw_wait_key(key, KM_STORE_KEYGEN, id);
    uint64_t seq = km_http_wait_seq(gw->http, key);
    km_store *st = km_gw_store_take(gw);
    km_store_keygen kg;
    if (keygen_authed(gw, st, req, resp, &kg)) {
        int final = kg.state == KM_KEYGEN_COMPLETED || kg.state == KM_KEYGEN_FAILED;
        if (km_gw_maybe_wait(gw, req, resp, key, seq, final) == 0) {
            json_t *o = km_gw_keygen_json(st, &kg);
            if (o)
                km_http_json(resp, 200, o);
            else
                km_http_error(resp, 500, "internal", "out of memory");
        }
        km_store_keygen_clear(&kg);
    }
    km_gw_store_give(gw, st);
}

void km_h_keygen_slots(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    km_store *st = km_gw_store_take(gw);
    km_store_keygen kg;
    if (!keygen_authed(gw, st, req, resp, &kg)) goto out0;
    size_t n = 0;
    km_store_assignment *as = NULL;
    km_err err = km_gw_assignments(st, kg.id, &as, &n);
    if (err) {
        km_gw_store_error(resp, err, "keygen");
        goto out;
    }
    json_t *slots = json_array();
    for (size_t i = 0; i < n; i++) {
        km_pool_status ps;
        int have_pub = km_pool_status_get(gw->pool, as[i].enclave_id, &ps) == KM_OK;
        const unsigned char *pub = NULL;
        for (size_t e = 0; e < gw->cfg.n_enclaves; e++)
            if (gw->cfg.enclaves[e].id == as[i].enclave_id) pub = gw->cfg.enclaves[e].pubkey;
        (void)have_pub;
        json_t *o = json_pack("{s:o,s:I,s:o,s:b}", "user_id", km_json_uuid(as[i].user_id), "enclave_id",
                              (json_int_t)as[i].enclave_id, "enclave_public_key",
                              pub ? km_json_hex(pub, 33) : json_null(), "registered",
                              km_store_registration_get(st, kg.id, as[i].user_id, NULL, NULL) == KM_OK);
        json_array_append_new(slots, o);
    }
    km_http_json(resp, 200,
                 json_pack("{s:o,s:s,s:o}", "keygen_id", km_json_uuid(kg.id), "status",
                           km_gw_keygen_state_name(kg.state), "slots", slots));
out:
    free(as);
    km_store_keygen_clear(&kg);
out0:
    km_gw_store_give(gw, st);
}

static const km_json_field REGISTER_FIELDS[] = {
    {"user_id", KM_JSON_UUID, 1, 0, 0},
    {"blob", KM_JSON_HEX, 1, 1, 4096},
    {"auth_key", KM_JSON_HEX, 1, 32, 32},
    {"require_approval", KM_JSON_BOOL, 0, 0, 0},
};

static void answer_registration(km_store *st, const km_store_keygen *kg, const unsigned char user[16],
                                uint32_t enclave_id, const km_buf *record, int status,
                                km_http_response *resp) {
    km_store_keygen now;
    km_err err = km_store_keygen_get(st, kg->id, &now);
    if (err) {
        km_gw_store_error(resp, err == KM_ERR_NOT_FOUND ? KM_ERR_IO : err, "keygen");
        return;
    }
    json_t *o = km_gw_keygen_json(st, &now);
    km_store_keygen_clear(&now);
    if (!o) {
        km_http_error(resp, 500, "internal", "out of memory");
        return;
    }
    json_object_set_new(o, "user_id", km_json_uuid(user));
    json_object_set_new(o, "enclave_id", json_integer(enclave_id));
    json_object_set_new(o, "record", km_json_hex(record->data, record->len));
    km_http_json(resp, status, o);
}

void km_h_keygen_register(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    json_t *body;
    if (!km_gw_body(req, resp, REGISTER_FIELDS, sizeof REGISTER_FIELDS / sizeof REGISTER_FIELDS[0], &body))
        return;
    unsigned char user[16], auth_key[32];
    uint8_t flags = km_json_get_bool(body, "require_approval", 0) ? 1 : 0;
    km_buf blob, record, have_blob, cmd;
    km_buf_init(&blob);
    km_buf_init(&record);
    km_buf_init(&have_blob);
    km_buf_init(&cmd);
    int bad = km_json_get_uuid(body, "user_id", user) | km_json_get_hex_fixed(body, "auth_key", auth_key, 32);
    km_store *st = km_gw_store_take(gw);
    km_store_keygen kg;
    int have_kg = 0;
    if (bad) {
        km_http_error(resp, 400, "invalid_field", "a field could not be read");
        goto out;
    }

    if (km_json_get_hex(body, "blob", &blob) != KM_OK) {
        km_http_error(resp, 500, "internal", "out of memory");
        goto out;
    }
    /* The participant proves it holds the auth key it registers (it will sign
     * approvals with it); that it holds the session secret is checked by its
     * enclave, which refuses a blob with another secret. */
    if (!(have_kg = keygen_authed_by(gw, st, req, resp, &kg, auth_key))) goto out;
    /* The participant's enclave was fixed at creation. */
    uint32_t enclave_id;
    km_err err = km_gw_user_enclave(st, kg.id, user, &enclave_id);
    if (err == KM_ERR_NOT_FOUND) {
        km_http_error(resp, 404, "not_found", "user is not a participant of this keygen");
        goto out;
    }
    if (err) {
        km_gw_store_error(resp, err, "keygen");
        goto out;
    }
    /* A repeat of the same registration answers the same; another blob for a
     * registered user is a conflict (a key is never replaced). */
    err = km_store_registration_get(st, kg.id, user, &have_blob, &record);
    if (err == KM_OK) {
        unsigned char ak[32];
        uint8_t fl = 0;
        if (have_blob.len != blob.len || memcmp(have_blob.data, blob.data, blob.len) ||
            km_store_registration_info(st, kg.id, user, ak, &fl) != KM_OK || memcmp(ak, auth_key, 32) ||
            fl != flags)
            km_http_error(resp, 409, "conflict", "this participant is already registered with other data");
        else
            answer_registration(st, &kg, user, enclave_id, &record, 201, resp);
        goto out;
    }
    if (kg.state != KM_KEYGEN_COLLECTING) {
        km_http_error(resp, 409, "invalid_state", "keygen is %s, not collecting registrations",
                      km_gw_keygen_state_name(kg.state));
        goto out;
    }
    err = km_buf_put(&cmd, kg.id, 16);
    if (!err) err = km_buf_put(&cmd, user, 16);
    if (!err) err = km_gw_put_vbytes(&cmd, blob.data, blob.len);
    if (err) {
        km_http_error(resp, 500, "internal", "out of memory");
        goto out;
    }
    if (!km_gw_enclave(gw, enclave_id, KM_CMD_KEYGEN_REGISTER, &cmd, &record, NULL, resp)) goto out;
    err = km_store_registration_put(st, kg.id, user, blob.data, blob.len, record.data, record.len, auth_key,
                                    flags, km_gw_now());
    if (err) {
        km_gw_store_error(resp, err, "registration");
        goto out;
    }
    km_coord_kick(gw, KM_STORE_KEYGEN, kg.id);
    char key[48];
    km_gw_wait_key(key, KM_STORE_KEYGEN, kg.id);
    km_http_notify_change(gw->http, key, 0); /* a registration or approval: not final */
    answer_registration(st, &kg, user, enclave_id, &record, 201, resp);
out:
    if (have_kg) km_store_keygen_clear(&kg);
    km_gw_store_give(gw, st);
    km_buf_free(&blob);
    km_buf_free(&record);
    km_buf_free(&have_blob);
    km_buf_free(&cmd);
    json_decref(body);
}

void km_h_keygen_delete(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    km_store *st = km_gw_store_take(gw);
    km_store_keygen kg;
    if (!keygen_authed(gw, st, req, resp, &kg)) goto out0;
    /* Wipe it from every enclave that may hold it (best effort: an enclave
     * that is down lost its memory anyway, and nothing will restore it once
     * the store forgets it). */
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++) {
        km_buf cmd, reply;
        km_buf_init(&cmd);
        km_buf_init(&reply);
        uint16_t code;
        if (km_buf_put_u8(&cmd, 1) == KM_OK && km_buf_put(&cmd, kg.id, 16) == KM_OK &&
            km_pool_call(gw->pool, gw->cfg.enclaves[i].id, KM_CMD_SESSION_CLEAR, cmd.data, cmd.len, &code,
                         &reply) != KM_OK)
            fprintf(stderr, "keymeld-gateway: enclave %u unreachable while deleting a keygen\n",
                    gw->cfg.enclaves[i].id);
        km_buf_free(&cmd);
        km_buf_free(&reply);
    }
    km_err err = km_store_keygen_delete(st, kg.id);
    if (err)
        km_gw_store_error(resp, err, "keygen");
    else
        km_http_json(resp, 200, json_pack("{s:o,s:b}", "keygen_id", km_json_uuid(kg.id), "deleted", 1));
    km_store_keygen_clear(&kg);
out0:
    km_gw_store_give(gw, st);
}
