/* gateway/handlers.c — helpers shared by the handlers (see handlers.h). */
#include "gateway/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymeld/hex.h"
#include "keymeld/protocol.h"
#include "keymeld/uuid.h"

int km_gw_body(const km_http_request *req, km_http_response *resp, const km_json_field *fields, size_t n,
               json_t **out) {
    char msg[256];
    json_t *obj = NULL;
    *out = NULL;
    if (km_json_parse_object(req->body, req->body_len, &obj, msg, sizeof msg) != KM_OK) {
        km_http_error(resp, 400, "invalid_json", "%s", msg);
        return 0;
    }
    if (km_json_check(obj, fields, n, msg, sizeof msg) != KM_OK) {
        json_decref(obj);
        km_http_error(resp, 400, "invalid_field", "%s", msg);
        return 0;
    }
    *out = obj;
    return 1;
}

int km_gw_param_uuid(const km_http_request *req, size_t i, const char *name, unsigned char out[16],
                     km_http_response *resp) {
    km_uuid u;
    if (i >= req->n_params || km_uuid_parse(&u, req->params[i], strlen(req->params[i])) != KM_OK) {
        km_http_error(resp, 400, "invalid_path", "path parameter '%s' must be a lowercase UUID", name);
        return 0;
    }
    memcpy(out, u.b, 16);
    return 1;
}

void km_gw_store_error(km_http_response *resp, km_err err, const char *what) {
    switch (err) {
    case KM_ERR_NOT_FOUND:
        km_http_error(resp, 404, "not_found", "%s not found", what);
        break;
    case KM_ERR_DUPLICATE:
        km_http_error(resp, 409, "conflict", "%s already exists with different content", what);
        break;
    case KM_ERR_STATE:
        km_http_error(resp, 409, "invalid_state", "%s is not in a state that allows this", what);
        break;
    case KM_ERR_ARG:
        km_http_error(resp, 400, "invalid_request", "%s: invalid request", what);
        break;
    default:
        km_http_error(resp, 503, "store_unavailable", "the database could not be used (%s)",
                      km_err_name(err));
        resp->extra_header_name = "Retry-After";
        resp->extra_header_value = "1";
    }
}

km_err km_gw_assignments(km_store *st, const unsigned char keygen_id[16], km_store_assignment **out,
                         size_t *n) {
    km_store_assignment one;
    *out = NULL;
    km_err err = km_store_keygen_assignments(st, keygen_id, &one, 0, n);
    if (err == KM_OK) return KM_OK;
    if (err != KM_ERR_BUFFER_SMALL) return err;
    *out = calloc(*n, sizeof **out);
    if (!*out) return KM_ERR_NOMEM;
    err = km_store_keygen_assignments(st, keygen_id, *out, *n, n);
    if (err) {
        free(*out);
        *out = NULL;
    }
    return err;
}

km_err km_gw_user_enclave(km_store *st, const unsigned char keygen_id[16], const unsigned char user_id[16],
                          uint32_t *enclave_id) {
    km_store_assignment *as;
    size_t n;
    km_err err = km_gw_assignments(st, keygen_id, &as, &n);
    *enclave_id = UINT32_MAX;
    for (size_t i = 0; !err && i < n; i++)
        if (!memcmp(as[i].user_id, user_id, 16)) *enclave_id = as[i].enclave_id;
    free(as);
    if (!err && *enclave_id == UINT32_MAX) err = KM_ERR_NOT_FOUND;
    return err;
}

km_err km_gw_put_vbytes(km_buf *b, const unsigned char *p, size_t n) {
    if (n > UINT32_MAX) return KM_ERR_RANGE;
    km_err err = km_buf_put_u32(b, (uint32_t)n);
    if (!err && n) err = km_buf_put(b, p, n);
    return err;
}

static int enclave_down(uint32_t enclave_id, km_http_response *resp) {
    km_http_error(resp, 503, "enclave_unavailable",
                  "enclave %u is not reachable or is being restored; retry later", enclave_id);
    resp->extra_header_name = "Retry-After";
    resp->extra_header_value = "1";
    return 0;
}

/* What one enclave call came to: 1 when the enclave answered KM_OK, else 0
 * with resp answered (503 no answer; 409 / 404 / 422 a refusal). */
static int enclave_outcome(uint32_t enclave_id, uint16_t cmd, km_err err, uint16_t status,
                           const km_buf *reply, km_http_response *resp) {
    if (err) {
        km_http_error(resp, 503, "enclave_unavailable", "enclave %u did not answer %s (%s)", enclave_id,
                      km_cmd_name(cmd), km_err_name(err));
        resp->extra_header_name = "Retry-After";
        resp->extra_header_value = "1";
        return 0;
    }
    if (status == KM_OK) return 1;
    char detail[KM_MSG_DETAIL_MAX + 1] = "";
    km_msg m = {KM_MSG_RESPONSE, 0, status, reply->data, reply->len};
    if (km_msg_error_detail(&m, detail, sizeof detail) != KM_OK) detail[0] = '\0';
    int http = status == KM_ERR_DUPLICATE ? 409 : status == KM_ERR_NOT_FOUND ? 404 : 422;
    const char *c = status == KM_ERR_DUPLICATE   ? "conflict"
                    : status == KM_ERR_NOT_FOUND ? "not_found"
                                                 : "enclave_rejected";
    km_http_error(resp, http, c, "enclave %u refused %s: %s%s%s", enclave_id, km_cmd_name(cmd),
                  km_err_name((km_err)status), detail[0] ? ": " : "", detail);
    return 0;
}

int km_gw_enclave(km_gateway *gw, uint32_t enclave_id, uint16_t cmd, const km_buf *body, km_buf *reply,
                  km_err *code, km_http_response *resp) {
    km_pool_req r = {enclave_id, cmd, body ? body->data : NULL, body ? body->len : 0, reply, 0, KM_ERR_IO};
    int ok = km_gw_enclave_all(gw, &r, 1, resp);
    if (code) *code = r.err == KM_OK ? (km_err)r.code : KM_ERR__COUNT;
    return ok;
}

int km_gw_enclave_all(km_gateway *gw, km_pool_req *reqs, size_t n, km_http_response *resp) {
    uint64_t gens[KM_GW_MAX_ENCLAVES];
    if (n > KM_GW_MAX_ENCLAVES) {
        km_http_error(resp, 500, "internal", "too many enclaves in one call");
        return 0;
    }
    /* The generations are taken before the readiness check: a call may reach
     * a process that started after it and has not been restored yet. */
    for (size_t i = 0; i < n; i++) {
        gens[i] = km_pool_generation(gw->pool, reqs[i].enclave_id);
        if (!km_coord_enclave_ready(gw, reqs[i].enclave_id)) return enclave_down(reqs[i].enclave_id, resp);
    }
    km_err err = km_pool_call_all(gw->pool, reqs, n);
    if (err == KM_ERR_NOMEM) {
        km_http_error(resp, 500, "internal", "out of memory");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (err) reqs[i].err = err;
        /* A refusal by a process newer than the one found ready (e.g. "keygen
         * unknown" before the restore reached it) is an outage, not an answer
         * (found by keymeld-chaos in the coordinator, which had the same race). */
        if (!reqs[i].err && reqs[i].code != KM_OK &&
            km_pool_generation(gw->pool, reqs[i].enclave_id) != gens[i])
            reqs[i].err = KM_ERR_IO;
    }
    for (size_t i = 0; i < n; i++)
        if (!enclave_outcome(reqs[i].enclave_id, reqs[i].cmd, reqs[i].err, reqs[i].code, reqs[i].resp, resp))
            return 0;
    return 1;
}

int km_gw_query_named(const km_http_request *req, const char *name) {
    const char *q = strchr(req->target, '?');
    size_t n = strlen(name);
    while (q) {
        q++;
        if (!strncmp(q, name, n) && (q[n] == '=' || q[n] == '&' || q[n] == '\0')) return 1;
        q = strchr(q, '&');
    }
    return 0;
}

/* The ?wait= value: 1 with *seconds (0 if absent), or 0 with resp answered 400. */
int km_gw_wait_seconds(const km_gateway *gw, const km_http_request *req, km_http_response *resp,
                       unsigned long *seconds) {
    const char *w = km_http_query(req, "wait");
    if (!w && km_gw_query_named(req, "wait")) w = ""; /* present but undecodable */
    *seconds = 0;
    if (!w) return 1;
    char *end;
    unsigned long v = strtoul(w, &end, 10);
    if (w[0] < '0' || w[0] > '9' || *end || strlen(w) > 6 || v > gw->cfg.max_wait_seconds) {
        km_http_error(resp, 400, "invalid_query",
                      "query parameter 'wait' must be an integer in 0..%u (seconds)",
                      gw->cfg.max_wait_seconds);
        return 0;
    }
    *seconds = v;
    return 1;
}

/* The ?until= value: 1 with *final set (0 = answer at any change, the
 * default; 1 = only when final), or 0 with resp answered 400. */
static int wait_until(const km_http_request *req, km_http_response *resp, int *final) {
    const char *u = km_http_query(req, "until");
    *final = 0;
    if (!u && !km_gw_query_named(req, "until")) return 1;
    if (u && !strcmp(u, "final")) {
        *final = 1;
        return 1;
    }
    if (u && !strcmp(u, "change")) return 1;
    km_http_error(resp, 400, "invalid_query", "query parameter 'until' must be 'change' or 'final'");
    return 0;
}

int km_gw_wait_valid(km_gateway *gw, const km_http_request *req, km_http_response *resp) {
    unsigned long v;
    int until_final;
    return km_gw_wait_seconds(gw, req, resp, &v) && wait_until(req, resp, &until_final);
}

int km_gw_maybe_wait(km_gateway *gw, const km_http_request *req, km_http_response *resp, const char *key,
                     uint64_t seq, int final) {
    unsigned long v;
    int until_final;
    if (!km_gw_wait_seconds(gw, req, resp, &v) || !wait_until(req, resp, &until_final)) return -1;
    if (final || v == 0) return 0;
    uint64_t now = km_gw_mono_ms(), deadline = now + (uint64_t)v * 1000u;
    if (req->resumed) {
        /* A change: answer it, unless the client asked for the final state
         * only and its deadline has not passed (then wait again, same deadline). */
        if (!until_final || req->wait_until_ms <= now) return 0;
        deadline = req->wait_until_ms;
    }
    resp->status = 0;
    /* The caller's key is usually a local of the handler: copy it into the
     * response, which outlives the handler. */
    if ((size_t)snprintf(resp->wait_key_buf, sizeof resp->wait_key_buf, "%s", key) >=
        sizeof resp->wait_key_buf) {
        km_http_error(resp, 500, "internal", "wait key too long");
        return -1;
    }
    resp->wait_key = resp->wait_key_buf;
    resp->wait_seq = seq;
    resp->wait_until_ms = deadline;
    resp->wait_final_only = until_final;
    return 1;
}

static const char *KEYGEN_STATES[] = {"collecting", "finalizing", "completed", "failed"};
static const char *SIGNING_STATES[] = {"collecting_approvals", "nonces",    "partials",
                                       "finalizing",           "completed", "failed"};

const char *km_gw_keygen_state_name(km_store_keygen_state s) {
    return (unsigned)s < 4 ? KEYGEN_STATES[s] : "unknown";
}
const char *km_gw_signing_state_name(km_store_signing_state s) {
    return (unsigned)s < 6 ? SIGNING_STATES[s] : "unknown";
}

static json_t *reason_json(const char *reason) {
    return reason[0] ? json_string(reason) : json_null();
}

json_t *km_gw_keygen_json(km_store *st, const km_store_keygen *kg) {
    size_t n_assigned = 0, n_registered = 0;
    km_store_assignment one_a;
    unsigned char one_u[1][16];
    km_err e1 = km_store_keygen_assignments(st, kg->id, &one_a, 0, &n_assigned);
    km_err e2 = km_store_registration_list(st, kg->id, one_u, 0, &n_registered);
    if (e1 != KM_OK && e1 != KM_ERR_BUFFER_SMALL) n_assigned = 0;
    if (e2 != KM_OK && e2 != KM_ERR_BUFFER_SMALL) n_registered = 0;
    json_t *o = json_pack("{s:o,s:s,s:o,s:I,s:I,s:I,s:I,s:I}", "keygen_id", km_json_uuid(kg->id), "status",
                          km_gw_keygen_state_name(kg->state), "reason", reason_json(kg->reason), "created_at",
                          (json_int_t)kg->created_at, "expires_at", (json_int_t)kg->expires_at,
                          "participants_expected", (json_int_t)n_assigned, "participants_registered",
                          (json_int_t)n_registered, "max_signing_sessions", (json_int_t)kg->max_signings);
    if (!o) return NULL;
    json_object_set_new(o, "result",
                        kg->result.len ? km_json_hex(kg->result.data, kg->result.len) : json_null());
    return o;
}

json_t *km_gw_signing_json(km_store *st, const km_store_signing *s) {
    json_t *o = json_pack("{s:o,s:o,s:s,s:o,s:I,s:I}", "signing_id", km_json_uuid(s->id), "keygen_id",
                          km_json_uuid(s->keygen_id), "status", km_gw_signing_state_name(s->state), "reason",
                          reason_json(s->reason), "created_at", (json_int_t)s->created_at, "expires_at",
                          (json_int_t)s->expires_at);
    if (!o) return NULL;
    /* Who must approve (from the registrations' public flags) and who has. */
    json_t *req = json_array(), *got = json_array();
    size_t n = 0;
    unsigned char(*users)[16] = NULL, one_u[1][16];
    if (km_store_registration_list(st, s->keygen_id, one_u, 0, &n) == KM_ERR_BUFFER_SMALL && n) {
        users = calloc(n, 16);
        if (users && km_store_registration_list(st, s->keygen_id, users, n, &n) == KM_OK) {
            for (size_t i = 0; i < n; i++) {
                unsigned char ak[32];
                uint8_t flags = 0;
                if (km_store_registration_info(st, s->keygen_id, users[i], ak, &flags) == KM_OK &&
                    (flags & 1)) {
                    json_array_append_new(req, km_json_uuid(users[i]));
                    if (km_store_approval_get(st, s->id, users[i], NULL) == KM_OK)
                        json_array_append_new(got, km_json_uuid(users[i]));
                }
            }
        }
        free(users);
    }
    json_object_set_new(o, "approvals_required", req);
    json_object_set_new(o, "approvals_received", got);
    json_object_set_new(o, "result",
                        s->result.len ? km_json_hex(s->result.data, s->result.len) : json_null());
    return o;
}
