/* gateway/h_signing.c — signing sessions: create, status (long poll),
 * approvals. The items are sealed under the session data key: the gateway
 * stores and forwards them without knowing the messages. */
#include <stdlib.h>
#include <string.h>

#include "gateway/handlers.h"
#include "keymeld/protocol.h"

static const km_json_field CREATE_FIELDS[] = {
    {"signing_id", KM_JSON_UUID, 1, 0, 0},
    {"keygen_id", KM_JSON_UUID, 1, 0, 0},
    {"items", KM_JSON_HEX, 1, 1, 16u << 20},
    {"timeout_secs", KM_JSON_UINT, 1, 1, 30 * 86400},
};

/* Registered users of a keygen with their public auth keys and flags.
 * Returns the count (0 on failure); *users, *keys, *flags malloc'ed. */
static size_t registrations(km_store *st, const unsigned char keygen_id[16], unsigned char (**users)[16],
                            unsigned char (**keys)[32], uint8_t **flags) {
    size_t n = 0;
    unsigned char one[1][16];
    *users = NULL;
    *keys = NULL;
    *flags = NULL;
    if (km_store_registration_list(st, keygen_id, one, 0, &n) != KM_ERR_BUFFER_SMALL || n == 0) return 0;
    *users = calloc(n, 16);
    *keys = calloc(n, 32);
    *flags = calloc(n, 1);
    if (!*users || !*keys || !*flags || km_store_registration_list(st, keygen_id, *users, n, &n) != KM_OK)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (km_store_registration_info(st, keygen_id, (*users)[i], (*keys)[i], &(*flags)[i]) != KM_OK)
            goto fail;
    return n;
fail:
    free(*users);
    free(*keys);
    free(*flags);
    *users = NULL;
    *keys = NULL;
    *flags = NULL;
    return 0;
}

static void answer_signing(km_store *st, const unsigned char id[16], int status, km_http_response *resp) {
    km_store_signing s;
    km_err err = km_store_signing_get(st, id, &s);
    if (err) {
        km_gw_store_error(resp, err, "signing session");
        return;
    }
    json_t *o = km_gw_signing_json(st, &s);
    km_store_signing_clear(&s);
    if (o)
        km_http_json(resp, status, o);
    else
        km_http_error(resp, 500, "internal", "out of memory");
}

/* The answer to a create, at once or (with ?wait) after the session changed.
 * A create with ?wait is committed without a disk sync of its own: the final
 * state is committed durably and puts it on disk first; any earlier answer
 * syncs before it is sent. Either way a 2xx means on disk. seq: the wait
 * sequence read before the state is loaded here. */
static void answer_created(km_gateway *gw, km_store *st, const km_http_request *req,
                           const unsigned char id[16], uint64_t seq, km_http_response *resp) {
    char key[48];
    km_gw_wait_key(key, KM_STORE_SIGNING, id);
    km_store_signing s;
    km_err err = km_store_signing_get(st, id, &s);
    if (err) {
        km_gw_store_error(resp, err, "signing session");
        return;
    }
    int final = s.state == KM_SIGNING_COMPLETED || s.state == KM_SIGNING_FAILED;
    if (km_gw_maybe_wait(gw, req, resp, key, seq, final) == 0) {
        err = final ? KM_OK : km_store_sync(st);
        json_t *o = err ? NULL : km_gw_signing_json(st, &s);
        if (err)
            km_gw_store_error(resp, err, "signing session");
        else if (o)
            km_http_json(resp, 201, o);
        else
            km_http_error(resp, 500, "internal", "out of memory");
    }
    km_store_signing_clear(&s);
}

/* A create that waited (?wait): authenticated and stored on its first pass;
 * now only the answer is left. The session id is the one of the key it
 * waited on (reading it from the body again would parse a whole batch). */
static void resume_create(km_gateway *gw, const km_http_request *req, km_http_response *resp) {
    unsigned char id[16];
    if (!km_gw_wait_key_id(req->wait_key, KM_STORE_SIGNING, id)) {
        km_http_error(resp, 500, "internal", "resumed without its wait key");
        return;
    }
    char key[48];
    km_gw_wait_key(key, KM_STORE_SIGNING, id);
    uint64_t seq = km_http_wait_seq(gw->http, key);
    km_store *st = km_gw_store_take(gw);
    answer_created(gw, st, req, id, seq, resp);
    km_gw_store_give(gw, st);
}

void km_h_signing_create(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    if (!km_gw_wait_valid(gw, req, resp)) return;
    if (req->resumed) {
        resume_create(gw, req, resp);
        return;
    }
    json_t *body;
    if (!km_gw_body(req, resp, CREATE_FIELDS, sizeof CREATE_FIELDS / sizeof CREATE_FIELDS[0], &body)) return;
    km_store_signing_new sn;
    memset(&sn, 0, sizeof sn);
    km_buf items;
    km_buf_init(&items);
    uint64_t timeout = 0;
    unsigned char(*users)[16] = NULL;
    unsigned char(*keys)[32] = NULL;
    uint8_t *flags = NULL;
    int bad = km_json_get_uuid(body, "signing_id", sn.id) |
              km_json_get_uuid(body, "keygen_id", sn.keygen_id) |
              km_json_get_uint(body, "timeout_secs", &timeout);
    if (bad) {
        km_http_error(resp, 400, "invalid_field", "a field could not be read");
        json_decref(body);
        return;
    }
    /* Read before anything is stored: a change after this is never missed. */
    char key[48];
    km_gw_wait_key(key, KM_STORE_SIGNING, sn.id);
    uint64_t seq = km_http_wait_seq(gw->http, key);
    unsigned long wait_s = 0;
    (void)km_gw_wait_seconds(gw, req, resp, &wait_s); /* checked above: cannot fail */
    int waits = wait_s > 0;
    km_store *st = km_gw_store_take(gw);
    km_store_keygen kg;
    int have_kg = 0;
    if (timeout > gw->cfg.max_timeout_seconds) {
        km_http_error(resp, 400, "invalid_field", "field 'timeout_secs' must be at most %u",
                      gw->cfg.max_timeout_seconds);
        goto out;
    }
    if (km_json_get_hex(body, "items", &items) != KM_OK) {
        km_http_error(resp, 500, "internal", "out of memory");
        goto out;
    }
    km_err err = km_store_keygen_get(st, sn.keygen_id, &kg);
    if (err) {
        km_gw_store_error(resp, err, "keygen");
        goto out;
    }
    have_kg = 1;
    if (!km_gw_auth(gw, st, req, (const unsigned char(*)[32])kg.session_auth_key, 1, NULL, resp)) goto out;
    km_store_signing have;
    err = km_store_signing_get(st, sn.id, &have);
    if (err == KM_OK) {
        int same = !memcmp(have.keygen_id, sn.keygen_id, 16) && have.items.len == items.len &&
                   !memcmp(have.items.data, items.data, items.len);
        km_store_signing_clear(&have);
        if (same)
            answer_created(gw, st, req, sn.id, seq, resp);
        else
            km_http_error(resp, 409, "conflict", "signing session already exists with different content");
        goto out;
    }
    if (kg.state != KM_KEYGEN_COMPLETED) {
        km_http_error(resp, 409, "invalid_state", "keygen is %s; signing needs a completed keygen",
                      km_gw_keygen_state_name(kg.state));
        goto out;
    }
    size_t n = registrations(st, kg.id, &users, &keys, &flags);
    for (size_t i = 0; i < n; i++)
        if (flags[i] & 1) sn.needs_approvals = 1;
    sn.created_at = km_gw_now();
    sn.expires_at = sn.created_at + (int64_t)timeout;
    sn.items = items.data;
    sn.items_len = items.len;
    /* A cap on sessions in progress per keygen bounds the work and rows one
     * wallet's key can queue; the store checks it in the creating
     * transaction, like the quota. */
    unsigned cap = gw->cfg.max_active_sessions_per_keygen;
    sn.max_active = cap;
    /* Waiting for the result: the final state's durable commit (or the sync
     * in answer_created) puts this one on disk before any 2xx. */
    err = waits ? km_store_set_durable(st, 0) : KM_OK;
    if (!err) err = km_store_signing_create(st, &sn);
    if (waits) {
        km_err restore = km_store_set_durable(st, 1);
        if (!err) err = restore;
    }
    size_t active = 0;
    if (err == KM_ERR_RANGE && cap && km_store_signing_active_count(st, kg.id, cap, &active) == KM_OK &&
        active >= cap) {
        km_http_error(resp, 429, "too_many_active_sessions",
                      "this keygen already has %u signing sessions in progress; retry when one finishes",
                      cap);
        resp->extra_header_name = "Retry-After";
        resp->extra_header_value = "1";
        goto out;
    }
    if (err == KM_ERR_RANGE) {
        km_http_error(resp, 409, "quota_exceeded", "this keygen allows %u signing sessions", kg.max_signings);
        goto out;
    }
    if (err) {
        km_gw_store_error(resp, err, "signing session");
        goto out;
    }
    km_coord_kick(gw, KM_STORE_SIGNING, sn.id);
    answer_created(gw, st, req, sn.id, seq, resp);
out:
    if (have_kg) km_store_keygen_clear(&kg);
    km_gw_store_give(gw, st);
    km_buf_free(&items);
    free(users);
    free(keys);
    free(flags);
    json_decref(body);
}

void km_h_signing_get(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    unsigned char id[16];
    if (!km_gw_param_uuid(req, 0, "signing_id", id, resp) || !km_gw_wait_valid(gw, req, resp)) return;
    char key[48];
    km_gw_wait_key(key, KM_STORE_SIGNING, id);
    uint64_t seq = km_http_wait_seq(gw->http, key);
    km_store *st = km_gw_store_take(gw);
    km_store_signing s;
    km_err err = km_store_signing_get(st, id, &s);
    if (err) {
        km_gw_store_error(resp, err, "signing session");
        km_gw_store_give(gw, st);
        return;
    }
    if (!req->resumed) {
        /* The session key or any participant's auth key may read the status. */
        km_store_keygen kg;
        unsigned char(*users)[16] = NULL, (*keys)[32] = NULL, (*allowed)[32] = NULL;
        uint8_t *flags = NULL;
        int ok = 0;
        if (km_store_keygen_get(st, s.keygen_id, &kg) == KM_OK) {
            size_t n = registrations(st, s.keygen_id, &users, &keys, &flags);
            allowed = calloc(n + 1, 32);
            if (allowed) {
                memcpy(allowed[0], kg.session_auth_key, 32);
                if (n) memcpy(allowed[1], keys, 32 * n);
                ok = km_gw_auth(gw, st, req, (const unsigned char(*)[32])allowed, n + 1, NULL, resp);
            } else {
                km_http_error(resp, 500, "internal", "out of memory");
            }
            km_store_keygen_clear(&kg);
        } else {
            km_http_error(resp, 404, "not_found", "keygen of this signing session not found");
        }
        free(users);
        free(keys);
        free(flags);
        free(allowed);
        if (!ok) {
            km_store_signing_clear(&s);
            km_gw_store_give(gw, st);
            return;
        }
    }
    int final = s.state == KM_SIGNING_COMPLETED || s.state == KM_SIGNING_FAILED;
    if (km_gw_maybe_wait(gw, req, resp, key, seq, final) == 0) {
        json_t *o = km_gw_signing_json(st, &s);
        if (o)
            km_http_json(resp, 200, o);
        else
            km_http_error(resp, 500, "internal", "out of memory");
    }
    km_store_signing_clear(&s);
    km_gw_store_give(gw, st);
}

static const km_json_field APPROVE_FIELDS[] = {
    {"signature", KM_JSON_HEX, 1, 64, 64},
};

void km_h_signing_approve(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    unsigned char sid[16], user[16], sig[64], auth_key[32];
    if (!km_gw_param_uuid(req, 0, "signing_id", sid, resp) ||
        !km_gw_param_uuid(req, 1, "user_id", user, resp))
        return;
    json_t *body;
    if (!km_gw_body(req, resp, APPROVE_FIELDS, 1, &body)) return;
    int bad = km_json_get_hex_fixed(body, "signature", sig, 64);
    json_decref(body);
    if (bad) {
        km_http_error(resp, 400, "invalid_field", "a field could not be read");
        return;
    }
    km_store *st = km_gw_store_take(gw);
    km_store_signing s;
    km_buf cmd, reply, have;
    km_buf_init(&cmd);
    km_buf_init(&reply);
    km_buf_init(&have);
    km_err err = km_store_signing_get(st, sid, &s);
    if (err) {
        km_gw_store_error(resp, err, "signing session");
        km_gw_store_give(gw, st);
        return;
    }
    uint8_t flags = 0;
    err = km_store_registration_info(st, s.keygen_id, user, auth_key, &flags);
    if (err) {
        km_http_error(resp, 404, "not_found",
                      "user is not a registered participant of this session's keygen");
        goto out;
    }
    if (!km_gw_auth(gw, st, req, (const unsigned char(*)[32])auth_key, 1, NULL, resp)) goto out;
    if (km_store_approval_get(st, sid, user, &have) == KM_OK) {
        if (have.len == 64 && !memcmp(have.data, sig, 64))
            answer_signing(st, sid, 200, resp);
        else
            km_http_error(resp, 409, "conflict", "this participant already approved with another signature");
        goto out;
    }
    if (s.state != KM_SIGNING_COLLECTING_APPROVALS) {
        km_http_error(resp, 409, "invalid_state", "signing session is %s, not collecting approvals",
                      km_gw_signing_state_name(s.state));
        goto out;
    }
    /* The user's enclave judges the approval now, so that a wrong one is
     * refused to its sender instead of failing the session later. It needs
     * the session initialised (SIGN_INIT is idempotent: the coordinator's own
     * SIGN_INIT later returns these same nonces). */
    uint32_t enclave_id;
    err = km_gw_user_enclave(st, s.keygen_id, user, &enclave_id);
    if (err) {
        km_gw_store_error(resp, err, "participant assignment");
        goto out;
    }
    err = km_buf_put(&cmd, s.keygen_id, 16);
    if (!err) err = km_buf_put(&cmd, sid, 16);
    if (!err) err = km_gw_put_vbytes(&cmd, s.items.data, s.items.len);
    if (err) {
        km_http_error(resp, 500, "internal", "out of memory");
        goto out;
    }
    if (!km_gw_enclave(gw, enclave_id, KM_CMD_SIGN_INIT, &cmd, &reply, NULL, resp)) goto out;
    cmd.len = 0;
    err = km_buf_put(&cmd, sid, 16);
    if (!err) err = km_buf_put(&cmd, user, 16);
    if (!err) err = km_buf_put(&cmd, sig, 64);
    if (err) {
        km_http_error(resp, 500, "internal", "out of memory");
        goto out;
    }
    km_err code;
    if (!km_gw_enclave(gw, enclave_id, KM_CMD_SIGN_APPROVE, &cmd, &reply, &code, resp)) {
        if (code == KM_ERR_VERIFY)
            km_http_error(resp, 400, "invalid_approval",
                          "the approval signature does not verify for this user's auth key and these items");
        goto out;
    }
    err = km_store_approval_put(st, sid, user, sig, 64, km_gw_now());
    if (err) {
        km_gw_store_error(resp, err, "approval");
        goto out;
    }
    km_coord_kick(gw, KM_STORE_SIGNING, sid);
    char key[48];
    km_gw_wait_key(key, KM_STORE_SIGNING, sid);
    km_http_notify_change(gw->http, key, 0); /* a registration or approval: not final */
    answer_signing(st, sid, 200, resp);
out:
    km_store_signing_clear(&s);
    km_gw_store_give(gw, st);
    km_buf_free(&cmd);
    km_buf_free(&reply);
    km_buf_free(&have);
}
