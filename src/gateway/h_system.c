/* gateway/h_system.c — enclaves, health, version, metrics, the OpenAPI
 * document and the offline API page. None of these change state; none needs
 * a signature (they reveal nothing secret: enclave public keys and
 * attestation documents are public by design). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/embedded.h"
#include "gateway/handlers.h"
#include "keymeld/hex.h"
#include "keymeld/protocol.h"

/* detail: the operator view (address, call counters, last error) for
 * /health/detail; the public listing does not reveal internal addresses. */
static json_t *enclave_json(km_gateway *gw, const km_gw_enclave_cfg *e, int detail) {
    km_pool_status ps;
    memset(&ps, 0, sizeof ps);
    int have = km_pool_status_get(gw->pool, e->id, &ps) == KM_OK;
    json_t *o = json_pack("{s:I,s:o,s:b,s:b}", "enclave_id", (json_int_t)e->id, "public_key",
                          km_json_hex(e->pubkey, 33), "connected", have && ps.connected, "ready",
                          have && ps.connected && km_coord_enclave_ready(gw, e->id));
    if (!o) return NULL;
    if (detail) json_object_set_new(o, "address", json_string(e->address));
    if (have && ps.generation) {
        json_object_set_new(o, "fingerprint", km_json_hex(ps.fingerprint, 32));
        json_object_set_new(o, "generation", json_integer((json_int_t)ps.generation));
        json_object_set_new(o, "uptime_s", json_integer((json_int_t)ps.uptime_s));
        json_object_set_new(o, "keygens", json_integer(ps.keygens));
        json_object_set_new(o, "signing_sessions", json_integer(ps.signing_sessions));
        json_object_set_new(o, "keys", json_integer(ps.keys));
    }
    if (have && detail) {
        json_object_set_new(o, "calls_ok", json_integer((json_int_t)ps.calls_ok));
        json_object_set_new(o, "calls_failed", json_integer((json_int_t)ps.calls_failed));
        json_object_set_new(o, "reconnects", json_integer((json_int_t)ps.reconnects));
        json_object_set_new(o, "last_error", ps.last_error[0] ? json_string(ps.last_error) : json_null());
    }
    return o;
}

void km_h_enclaves_list(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    (void)req;
    json_t *arr = json_array();
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++)
        json_array_append_new(arr, enclave_json(gw, &gw->cfg.enclaves[i], 0));
    km_http_json(resp, 200, json_pack("{s:o}", "enclaves", arr));
}

/* One enclave; with ?nonce=HEX (1..64 bytes) also a fresh attestation
 * document binding the enclave key to the caller's nonce. The client verifies
 * it (km_attest_verify) before encrypting anything to this key: the gateway
 * is only a messenger here. */
void km_h_enclaves_get(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    char *end;
    const char *p = req->n_params ? req->params[0] : "";
    unsigned long id = strtoul(p, &end, 10);
    if (!*p || *end || p[0] == '-' || p[0] == '+' || (p[0] == '0' && p[1]) || id > UINT32_MAX) {
        km_http_error(resp, 400, "invalid_path", "path parameter 'enclave_id' must be a decimal integer");
        return;
    }
    const km_gw_enclave_cfg *e = NULL;
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++)
        if (gw->cfg.enclaves[i].id == id) e = &gw->cfg.enclaves[i];
    if (!e) {
        km_http_error(resp, 404, "not_found", "enclave %lu is not configured", id);
        return;
    }
    const char *nonce_hex = km_http_query(req, "nonce");
    if (!nonce_hex && km_gw_query_named(req, "nonce"))
        nonce_hex = ""; /* present but undecodable: 400 below */
    json_t *o = enclave_json(gw, e, 0);
    if (nonce_hex) {
        unsigned char nonce[64];
        size_t n = 0;
        size_t hl = strlen(nonce_hex);
        if (hl < 2 || hl > 128 || km_hex_decode_var(nonce, sizeof nonce, &n, nonce_hex, hl) != KM_OK) {
            json_decref(o);
            km_http_error(resp, 400, "invalid_query",
                          "query parameter 'nonce' must be 1..64 bytes of lowercase hex");
            return;
        }
        km_buf cmd, doc;
        km_buf_init(&cmd);
        km_buf_init(&doc);
        int ok = km_buf_put_u16(&cmd, (uint16_t)n) == KM_OK && km_buf_put(&cmd, nonce, n) == KM_OK;
        uint16_t code = 0;
        km_err err =
            ok ? km_pool_call(gw->pool, e->id, KM_CMD_ATTEST, cmd.data, cmd.len, &code, &doc) : KM_ERR_NOMEM;
        if (err || code != KM_OK) {
            json_decref(o);
            km_http_error(resp, 503, "enclave_unavailable",
                          "enclave %lu could not produce an attestation (%s)", id,
                          km_err_name(err ? err : (km_err)code));
            resp->extra_header_name = "Retry-After";
            resp->extra_header_value = "1";
        } else {
            json_object_set_new(o, "attestation_document", km_json_hex(doc.data, doc.len));
            km_http_json(resp, 200, o);
        }
        km_buf_free(&cmd);
        km_buf_free(&doc);
        return;
    }
    km_http_json(resp, 200, o);
}

static size_t enclaves_up(km_gateway *gw) {
    size_t up = 0;
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++) {
        km_pool_status ps;
        if (km_pool_status_get(gw->pool, gw->cfg.enclaves[i].id, &ps) == KM_OK && ps.connected) up++;
    }
    return up;
}

/* 200 when the database answers and every enclave is connected; 503 with
 * the same body otherwise (load balancers only look at the status). */
void km_h_health(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    (void)req;
    km_store *st = km_gw_store_take(gw);
    int version = 0;
    int db_ok = km_store_schema_version(st, &version) == KM_OK;
    km_gw_store_give(gw, st);
    size_t up = enclaves_up(gw);
    int ok = db_ok && up == gw->cfg.n_enclaves;
    km_http_json(resp, ok ? 200 : 503,
                 json_pack("{s:s,s:b,s:I,s:I}", "status", ok ? "ok" : "degraded", "database", db_ok,
                           "enclaves_up", (json_int_t)up, "enclaves_total", (json_int_t)gw->cfg.n_enclaves));
}

static json_t *counts(const size_t *c, const char *const *names, size_t n) {
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, names[i], json_integer((json_int_t)c[i]));
    return o;
}

static const char *const KEYGEN_NAMES[] = {"collecting", "finalizing", "completed", "failed"};
static const char *const SIGNING_NAMES[] = {"collecting_approvals", "nonces",    "partials",
                                            "finalizing",           "completed", "failed"};
static const char *const KEYSIGN_NAMES[] = {"pending", "completed", "failed"};

void km_h_health_detail(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    (void)req;
    km_store *st = km_gw_store_take(gw);
    km_store_stats s;
    int version = 0;
    int db_ok = km_store_stats_get(st, &s) == KM_OK && km_store_schema_version(st, &version) == KM_OK;
    km_gw_store_give(gw, st);
    json_t *enc = json_array();
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++)
        json_array_append_new(enc, enclave_json(gw, &gw->cfg.enclaves[i], 1));
    size_t up = enclaves_up(gw);
    int ok = db_ok && up == gw->cfg.n_enclaves;
    json_t *o = json_pack("{s:s,s:s,s:I,s:o}", "status", ok ? "ok" : "degraded", "version", KM_GW_VERSION,
                          "uptime_s", (json_int_t)(km_gw_now() - gw->started_at), "enclaves", enc);
    if (db_ok) {
        json_object_set_new(o, "database",
                            json_pack("{s:b,s:i,s:I,s:I,s:I}", "ok", 1, "schema_version", version,
                                      "size_bytes", (json_int_t)s.db_bytes, "keys", (json_int_t)s.keys,
                                      "replay_entries", (json_int_t)s.replay_entries));
        json_object_set_new(o, "sessions",
                            json_pack("{s:o,s:o,s:o}", "keygen", counts(s.keygens, KEYGEN_NAMES, 4),
                                      "signing", counts(s.signings, SIGNING_NAMES, 6), "single_sign",
                                      counts(s.keysigns, KEYSIGN_NAMES, 3)));
    } else {
        json_object_set_new(o, "database", json_pack("{s:b}", "ok", 0));
    }
    km_http_json(resp, ok ? 200 : 503, o);
}

void km_h_version(void *app, const km_http_request *req, km_http_response *resp) {
    (void)app;
    (void)req;
    km_http_json(resp, 200,
                 json_pack("{s:s,s:s,s:s,s:i,s:i}", "service", "keymeld-gateway", "version", KM_GW_VERSION,
                           "api_version", "v1", "enclave_protocol_version", 1, "store_schema_version",
                           KM_STORE_SCHEMA_VERSION));
}

/* Prometheus text exposition format 0.0.4. */
void km_h_metrics(void *app, const km_http_request *req, km_http_response *resp) {
    km_gateway *gw = app;
    (void)req;
    km_buf b;
    km_buf_init(&b);
    char line[256];
#define EMIT(...)                                                                                            \
    do {                                                                                                     \
        int len_ = snprintf(line, sizeof line, __VA_ARGS__);                                                 \
        if (len_ > 0)                                                                                        \
            (void)km_buf_put(&b, line, (size_t)len_ < sizeof line ? (size_t)len_ : sizeof line - 1);         \
    } while (0)
    km_gw_metrics *m = &gw->metrics;
    EMIT("# HELP keymeld_http_responses_total HTTP responses by status class.\n");
    EMIT("# TYPE keymeld_http_responses_total counter\n");
    uint64_t answered[6];
    km_http_counts(gw->http, answered);
    for (int c = 1; c <= 5; c++)
        EMIT("keymeld_http_responses_total{class=\"%dxx\"} %llu\n", c, (unsigned long long)answered[c]);
    EMIT("# HELP keymeld_auth_failures_total Requests refused by request authentication.\n");
    EMIT("# TYPE keymeld_auth_failures_total counter\n");
    EMIT("keymeld_auth_failures_total %llu\n", atomic_load(&m->auth_failures));
    static const char *const KINDS[] = {"keygen", "signing", "single_sign"};
    EMIT("# HELP keymeld_sessions_finished_total Sessions driven to an end by this process.\n");
    EMIT("# TYPE keymeld_sessions_finished_total counter\n");
    for (int k = 0; k < 3; k++) {
        EMIT("keymeld_sessions_finished_total{kind=\"%s\",result=\"completed\"} %llu\n", KINDS[k],
             atomic_load(&m->sessions_completed[k]));
        EMIT("keymeld_sessions_finished_total{kind=\"%s\",result=\"failed\"} %llu\n", KINDS[k],
             atomic_load(&m->sessions_failed[k]));
    }
    EMIT("# HELP keymeld_signing_seconds Time from signing session creation to completion.\n");
    EMIT("# TYPE keymeld_signing_seconds summary\n");
    EMIT("keymeld_signing_seconds_sum %.6f\n", (double)atomic_load(&m->signing_latency_us_sum) / 1e6);
    EMIT("keymeld_signing_seconds_count %llu\n", atomic_load(&m->signing_latency_count));
    EMIT("# HELP keymeld_round_restarts_total Signing rounds restarted with fresh nonces after an enclave "
         "restart.\n");
    EMIT("# TYPE keymeld_round_restarts_total counter\n");
    EMIT("keymeld_round_restarts_total %llu\n", atomic_load(&m->round_restarts));
    EMIT("# HELP keymeld_enclave_restores_total Enclave state restorations (stored blobs re-sent).\n");
    EMIT("# TYPE keymeld_enclave_restores_total counter\n");
    EMIT("keymeld_enclave_restores_total %llu\n", atomic_load(&m->enclave_restores));
    EMIT("# HELP keymeld_enclave_up 1 when the enclave's connection is up.\n");
    EMIT("# TYPE keymeld_enclave_up gauge\n");
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++) {
        km_pool_status ps;
        int up = km_pool_status_get(gw->pool, gw->cfg.enclaves[i].id, &ps) == KM_OK && ps.connected;
        EMIT("keymeld_enclave_up{enclave_id=\"%u\"} %d\n", gw->cfg.enclaves[i].id, up);
    }
    EMIT("# HELP keymeld_enclave_calls_total Enclave commands by result.\n");
    EMIT("# TYPE keymeld_enclave_calls_total counter\n");
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++) {
        km_pool_status ps;
        if (km_pool_status_get(gw->pool, gw->cfg.enclaves[i].id, &ps) != KM_OK) continue;
        EMIT("keymeld_enclave_calls_total{enclave_id=\"%u\",result=\"ok\"} %llu\n", ps.id,
             (unsigned long long)ps.calls_ok);
        EMIT("keymeld_enclave_calls_total{enclave_id=\"%u\",result=\"failed\"} %llu\n", ps.id,
             (unsigned long long)ps.calls_failed);
    }
    km_store *st = km_gw_store_take(gw);
    km_store_stats s;
    if (km_store_stats_get(st, &s) == KM_OK) {
        EMIT("# HELP keymeld_sessions Sessions in the store by kind and state.\n");
        EMIT("# TYPE keymeld_sessions gauge\n");
        for (int i = 0; i < 4; i++)
            EMIT("keymeld_sessions{kind=\"keygen\",state=\"%s\"} %zu\n", KEYGEN_NAMES[i], s.keygens[i]);
        for (int i = 0; i < 6; i++)
            EMIT("keymeld_sessions{kind=\"signing\",state=\"%s\"} %zu\n", SIGNING_NAMES[i], s.signings[i]);
        for (int i = 0; i < 3; i++)
            EMIT("keymeld_sessions{kind=\"single_sign\",state=\"%s\"} %zu\n", KEYSIGN_NAMES[i],
                 s.keysigns[i]);
        EMIT("# HELP keymeld_database_bytes Size of the SQLite database.\n");
        EMIT("# TYPE keymeld_database_bytes gauge\n");
        EMIT("keymeld_database_bytes %lld\n", (long long)s.db_bytes);
    }
    km_gw_store_give(gw, st);
#undef EMIT
    if (b.failed) {
        km_buf_free(&b);
        km_http_error(resp, 500, "internal", "out of memory");
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = malloc(b.len + 1);
    if (resp->body) {
        memcpy(resp->body, b.data, b.len);
        resp->body_len = b.len;
    } else {
        resp->status = 0;
        km_http_error(resp, 500, "internal", "out of memory");
    }
    km_buf_free(&b);
}

static void answer_static(km_http_response *resp, const char *type, const unsigned char *p, size_t n) {
    resp->body = malloc(n ? n : 1);
    if (!resp->body) {
        km_http_error(resp, 500, "internal", "out of memory");
        return;
    }
    memcpy(resp->body, p, n);
    resp->body_len = n;
    resp->status = 200;
    resp->content_type = type;
}

void km_h_openapi(void *app, const km_http_request *req, km_http_response *resp) {
    (void)app;
    (void)req;
    answer_static(resp, "application/json", km_gw_openapi_json, km_gw_openapi_json_len);
}

void km_h_docs(void *app, const km_http_request *req, km_http_response *resp) {
    (void)app;
    (void)req;
    answer_static(resp, "text/html; charset=utf-8", km_gw_docs_html, km_gw_docs_html_len);
    /* The page is self-contained: the browser may fetch nothing but this
     * gateway's own API. */
    resp->extra_header_name = "Content-Security-Policy";
    resp->extra_header_value =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";
}
