/* test_gateway_malformed.c — malformed input over real HTTP against a real
 * keymeld-gateway (two real enclaves, tests/gateway/support_gateway.h).
 *
 * Every row sends one bad request and expects the status and error code that
 * docs/API.md documents for it, with the error body of section 2
 * ({"error":{"code","message"}}, nothing else) when the gateway answers
 * itself. Bodies go through the signed client (src/client/http.h), honestly
 * signed so that the only fault is the one under test; byte-level abuse
 * (paths, methods, headers, versions, chunking, pipelining, bodies that never
 * finish) goes through raw sockets (tests/gateway/test_gateway_util.h).
 *
 * After each group of rows:
 *   - the gateway still serves: GET /health and a signed GET of a keygen
 *     answer 200;
 *   - the store is unchanged: a logical dump of every table (read-only
 *     sqlite3 on the gateway's database, every row of every table in a fixed
 *     order, typed values) is byte-for-byte the same, except replay_cache;
 *   - replay_cache gained exactly the (key, nonce) pairs of the requests that
 *     passed authentication (docs/SECURITY.md: a nonce is recorded once the
 *     signature is valid and allowed, before the request is acted on, so a
 *     request refused afterwards (404 participant, 409, 422, 400
 *     invalid_approval) has spent it, which keeps it from being replayed
 *     once the refusal no longer holds), and not one pair more: every row
 *     refused before the signature check (400/404 syntax and lookups, 401,
 *     403, 413) must leave no trace at all.
 *
 * Three connections that never finish their request are opened first and
 * held while every other row runs (the gateway must keep serving); at the end
 * each must have been closed by the gateway's connection timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <sqlite3.h>

#include <secp256k1_extrakeys.h>

#include "keymeld/hex.h"
#include "keymeld/proto_keygen.h"
#include "keymeld/session_crypto.h"
#include "malformed_cases.h"
#include "support_flows.h"
#include "support_gateway.h"
#include "test_gateway_util.h"

/* max_wait_seconds 2 makes the gateway's idle connection timeout 32 s
 * (src/gateway/main.c: max_wait_seconds + 30), the shortest it can be with
 * long polls enabled; 256 KiB bodies keep the 413 rows cheap. */
#define GW_CONFIG      "{\"max_wait_seconds\": 2, \"max_body_bytes\": 262144}"
#define MAX_BODY       262144
#define CONN_TIMEOUT_S 32
#define WAIT_S         60

static km_gwtest T;
static km_client *C;
static km_gwflow FA; /* completed keygen, user 1 requires approval */
static km_gwflow FB; /* keygen created, nobody registered (collecting) */
static km_gwflow_key KEY;
static secp256k1_keypair KP_U0, KP_U1, KP_UB0, KP_KEY, KP_OTHER;
static unsigned char X_OTHER[32];
static char KG_A[37], KG_B[37], SG[37], U0[37], U1[37], UB0[37], KID[37], KUSER[37];
static const secp256k1_keypair *KP_SA, *KP_SB;

/* Stalled connections opened by the first test, checked by the last. */
#define N_STALLED 4
static int STALLED[N_STALLED] = {-1, -1, -1, -1};
static uint64_t STALLED_AT_MS;

/* ---- tallies ---------------------------------------------------------------- */

static int N_CASES, N_FAIL, N_NONCE;
static char CAT[48];
static int CAT_CASES;

typedef struct cat_count {
    char name[48];
    int n;
} cat_count;
static cat_count CATS[16];
static int N_CATS;

static void cat_begin(const char *name) {
    snprintf(CAT, sizeof CAT, "%s", name);
    CAT_CASES = 0;
}

static void cat_end(void) {
    if (N_CATS < 16) {
        snprintf(CATS[N_CATS].name, sizeof CATS[N_CATS].name, "%s", CAT);
        CATS[N_CATS++].n = CAT_CASES;
    }
}

static void failf(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "MISMATCH [%s] %s: ", CAT, name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    N_FAIL++;
}

/* ---- nonces that passed authentication ----------------------------------- */

typedef struct spent {
    unsigned char pk33[33];
    unsigned char nonce[16];
} spent;
static spent *SPENT;
static size_t N_SPENT, CAP_SPENT;

static void spend(const unsigned char x32[32], const unsigned char nonce[16]) {
    if (N_SPENT == CAP_SPENT) {
        CAP_SPENT = CAP_SPENT ? 2 * CAP_SPENT : 64;
        SPENT = realloc(SPENT, CAP_SPENT * sizeof *SPENT);
        assert_non_null(SPENT);
    }
    SPENT[N_SPENT].pk33[0] = 0x02;
    memcpy(SPENT[N_SPENT].pk33 + 1, x32, 32);
    memcpy(SPENT[N_SPENT].nonce, nonce, 16);
    N_SPENT++;
}

static void spend_last(void) {
    km_client_sent_auth a;
    km_client_last_auth(C, &a);
    assert_true(a.present);
    spend(a.xonly, a.nonce);
    N_NONCE++;
}

/* ---- the store, dumped ---------------------------------------------------------- */

static void put_bytes(km_buf *b, const void *p, size_t n) {
    assert_int_equal(km_buf_put_u32(b, (uint32_t)n), KM_OK);
    if (n) assert_int_equal(km_buf_put(b, p, n), KM_OK);
}

/* Every row of one query, typed: tag byte, then the value. */
static void dump_rows(sqlite3_stmt *st, km_buf *out) {
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int nc = sqlite3_column_count(st);
        assert_int_equal(km_buf_put_u8(out, 'R'), KM_OK);
        for (int i = 0; i < nc; i++) {
            int t = sqlite3_column_type(st, i);
            assert_int_equal(km_buf_put_u8(out, (uint8_t)t), KM_OK);
            if (t == SQLITE_INTEGER) {
                assert_int_equal(km_buf_put_u64(out, (uint64_t)sqlite3_column_int64(st, i)), KM_OK);
            } else if (t == SQLITE_FLOAT) {
                double d = sqlite3_column_double(st, i);
                put_bytes(out, &d, sizeof d);
            } else if (t == SQLITE_TEXT) {
                const unsigned char *p = sqlite3_column_text(st, i);
                put_bytes(out, p, (size_t)sqlite3_column_bytes(st, i));
            } else if (t == SQLITE_BLOB) {
                const void *p = sqlite3_column_blob(st, i);
                put_bytes(out, p, (size_t)sqlite3_column_bytes(st, i));
            }
        }
    }
    assert_int_equal(rc, SQLITE_DONE);
}

/* A logical dump of the gateway's database: the schema, then every table
 * (rowid tables by rowid, WITHOUT ROWID tables by all their columns) except
 * replay_cache, which goes to *replay as (pubkey, nonce) rows in key order. */
static char TBL_NAME[32][64];
static size_t TBL_END[2][32], N_TBL[2];

static void db_dump_into(km_buf *out, km_buf *replay, int slot) {
    km_buf_init(out);
    km_buf_init(replay);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(T.db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *names = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name",
                                        -1, &names, NULL),
                     SQLITE_OK);
    km_buf tables;
    km_buf_init(&tables);
    int rc;
    while ((rc = sqlite3_step(names)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(names, 0);
        const char *name = (const char *)sqlite3_column_text(names, 1);
        const char *sql = (const char *)sqlite3_column_text(names, 3);
        put_bytes(out, type, strlen(type));
        put_bytes(out, name, strlen(name));
        put_bytes(out, sql ? sql : "", sql ? strlen(sql) : 0);
        if (!strcmp(type, "table")) assert_int_equal(km_buf_put(&tables, name, strlen(name) + 1), KM_OK);
    }
    assert_int_equal(rc, SQLITE_DONE);
    sqlite3_finalize(names);
    int n_tables = 0;
    for (size_t off = 0; off < tables.len; off += strlen((const char *)tables.data + off) + 1) {
        const char *name = (const char *)tables.data + off;
        char q[512];
        sqlite3_stmt *st = NULL;
        n_tables++;
        if (!strcmp(name, "replay_cache")) {
            assert_int_equal(sqlite3_prepare_v2(db,
                                                "SELECT auth_pubkey, nonce FROM replay_cache ORDER BY "
                                                "auth_pubkey, nonce",
                                                -1, &st, NULL),
                             SQLITE_OK);
            dump_rows(st, replay);
            sqlite3_finalize(st);
            continue;
        }
        put_bytes(out, name, strlen(name));
        snprintf(q, sizeof q, "SELECT rowid, * FROM \"%s\" ORDER BY rowid", name);
        size_t k = N_TBL[slot]++;
        assert_true(k < 32);
        snprintf(TBL_NAME[k], sizeof TBL_NAME[k], "%s", name);
        if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
            /* WITHOUT ROWID: order by every column. */
            sqlite3_finalize(st);
            snprintf(q, sizeof q, "SELECT * FROM \"%s\"", name);
            assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
            int nc = sqlite3_column_count(st);
            sqlite3_finalize(st);
            int n = snprintf(q, sizeof q, "SELECT * FROM \"%s\" ORDER BY 1", name);
            for (int i = 2; i <= nc; i++)
                n += snprintf(q + n, sizeof q - (size_t)n, ",%d", i);
            assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
        }
        dump_rows(st, out);
        sqlite3_finalize(st);
        TBL_END[slot][k] = out->len;
    }
    assert_true(n_tables >= 10);
    km_buf_free(&tables);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void db_dump(km_buf *out, km_buf *replay) {
    N_TBL[0] = 0;
    db_dump_into(out, replay, 0);
}

/* Which table of two dumps differs first ("" if none). */
static const char *first_diff(const km_buf *a, const km_buf *b) {
    size_t n = a->len < b->len ? a->len : b->len, i = 0;
    while (i < n && a->data[i] == b->data[i])
        i++;
    if (i == a->len && i == b->len) return "";
    for (size_t k = 0; k < N_TBL[0]; k++)
        if (i < TBL_END[0][k]) return TBL_NAME[k];
    return "(schema)";
}

/* The replay rows of a dump: R | 4 | len | pk33 | 4 | len | nonce. */
#define REPLAY_ROW (1 + 1 + 4 + 33 + 1 + 4 + 16)

static int replay_has(const km_buf *r, const unsigned char pk33[33], const unsigned char nonce[16]) {
    for (size_t off = 0; off + REPLAY_ROW <= r->len; off += REPLAY_ROW)
        if (!memcmp(r->data + off + 6, pk33, 33) && !memcmp(r->data + off + 6 + 33 + 5, nonce, 16)) return 1;
    return 0;
}

static km_buf DUMP0, REPLAY0;
static size_t SPENT0;

static void store_mark(void) {
    db_dump(&DUMP0, &REPLAY0);
    SPENT0 = N_SPENT;
}

/* The store equals the mark, and replay_cache gained exactly the nonces
 * spent since. */
static void store_check(void) {
    km_buf d, r;
    db_dump(&d, &r);
    if (d.len != DUMP0.len || memcmp(d.data, DUMP0.data, d.len))
        failf("store", "table %s changed during the batch", first_diff(&DUMP0, &d));
    assert_int_equal(REPLAY0.len % REPLAY_ROW, 0);
    assert_int_equal(r.len % REPLAY_ROW, 0);
    size_t n0 = REPLAY0.len / REPLAY_ROW, n1 = r.len / REPLAY_ROW, want = N_SPENT - SPENT0;
    if (n1 != n0 + want)
        failf("store", "replay_cache has %zu rows, expected %zu + %zu nonces spent", n1, n0, want);
    for (size_t off = 0; off < REPLAY0.len; off += REPLAY_ROW)
        if (!replay_has(&r, REPLAY0.data + off + 6, REPLAY0.data + off + 6 + 33 + 5))
            failf("store", "a replay entry disappeared");
    for (size_t i = SPENT0; i < N_SPENT; i++)
        if (!replay_has(&r, SPENT[i].pk33, SPENT[i].nonce)) failf("store", "spent nonce %zu not recorded", i);
    km_buf_free(&d);
    km_buf_free(&r);
    km_buf_free(&DUMP0);
    km_buf_free(&REPLAY0);
}

/* ---- checking one answer ----------------------------------------------------- */

/* The error body of API.md section 2, exactly. */
static int error_shape_ok(const json_t *j, const char *want_code, const char **why) {
    json_t *e = j ? json_object_get(j, "error") : NULL;
    if (!json_is_object(j) || json_object_size(j) != 1 || !json_is_object(e) || json_object_size(e) != 2) {
        *why = "not {\"error\":{code,message}}";
        return 0;
    }
    const char *c = json_string_value(json_object_get(e, "code"));
    const char *m = json_string_value(json_object_get(e, "message"));
    if (!c || !m) {
        *why = "code or message not a string";
        return 0;
    }
    if (strlen(m) == 0 || strlen(m) > 511) {
        *why = "message empty or longer than 511 bytes";
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)m; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            *why = "control character in message";
            return 0;
        }
    if (want_code && strcmp(c, want_code)) {
        *why = "wrong code";
        return 0;
    }
    return 1;
}

/* ---- body rows through the signed client ---------------------------------- */

/* One request with these body bytes, signed by kp (NULL: unsigned). A
 * want_field, when set, must appear in the error message (the message names
 * the field at fault). spends: the request passes authentication (its nonce
 * is recorded). */
static void body_row(const char *name, const char *method, const char *target, const char *ctype,
                     const void *body, size_t len, const secp256k1_keypair *kp, int want_status,
                     const char *want_code, const char *want_field, int spends) {
    km_client_response r = {0};
    N_CASES++;
    CAT_CASES++;
    km_err err = km_client_call_raw(C, method, target, body, len, ctype, kp, NULL, &r);
    if (err) {
        failf(name, "no answer (%s: %s)", km_err_name(err), km_client_last_error(C));
        return;
    }
    const char *why = NULL;
    if (r.status != want_status)
        why = "status";
    else if (want_code && !error_shape_ok(r.json, want_code, &why)) {
    } else if (want_field &&
               !strstr(json_string_value(json_object_get(json_object_get(r.json, "error"), "message")),
                       want_field))
        why = "message does not name the field";
    if (why)
        failf(name, "%s: got %ld %.*s (wanted %d %s)", why, r.status,
              (int)(r.body.len > 300 ? 300 : r.body.len), r.body.data ? (const char *)r.body.data : "",
              want_status, want_code ? want_code : "");
    if (spends) spend_last();
    km_client_response_clear(&r);
}

/* A body template with one value replaced: path "a", "a.0.b"; raw NULL
 * removes the key; add_key adds an unknown key instead (raw is its value).
 * Returns a malloc'ed body. */
static char *mutate(const char *tmpl, const char *path, const char *raw, const char *add_key) {
    json_error_t je;
    json_t *root = json_loads(tmpl, 0, &je);
    assert_non_null(root);
    json_t *cur = root;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *last = buf, *dot;
    while ((dot = strchr(last, '.')) != NULL) {
        *dot = '\0';
        cur = json_is_array(cur) ? json_array_get(cur, (size_t)atoi(last)) : json_object_get(cur, last);
        assert_non_null(cur);
        last = dot + 1;
    }
    if (add_key) {
        cur = last[0] ? json_object_get(cur, last) : cur;
        assert_non_null(cur);
        json_object_set_new(cur, add_key, json_string("@@MUT@@"));
    } else if (raw == NULL) {
        assert_int_equal(json_object_del(cur, last), 0);
    } else {
        json_object_set_new(cur, last, json_string("@@MUT@@"));
    }
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    assert_non_null(s);
    char *hole = strstr(s, "\"@@MUT@@\"");
    if (!hole) return s;
    size_t pre = (size_t)(hole - s), rl = raw ? strlen(raw) : 0, post = strlen(hole + 9);
    char *o = malloc(pre + rl + post + 1);
    assert_non_null(o);
    memcpy(o, s, pre);
    if (rl) memcpy(o + pre, raw, rl);
    memcpy(o + pre + rl, hole + 9, post + 1);
    free(s);
    return o;
}

/* ---- endpoints with bodies -------------------------------------------------- */

typedef enum ftype { F_UUID, F_HEX, F_UINT, F_BOOL, F_ARRAY } ftype;

typedef struct field {
    const char *path;
    ftype type;
    int required;
    uint64_t min, max; /* HEX: bytes; UINT: value; ARRAY: elements */
} field;

typedef struct endpoint {
    const char *label;
    const char *method;
    char target[160];
    char *tmpl;
    const secp256k1_keypair *kp;
    field fields[10];
    size_t n_fields;
} endpoint;

static endpoint EP[9];
static size_t N_EP;

static char *hex_of(size_t bytes, char c) {
    char *s = malloc(2 * bytes + 3);
    assert_non_null(s);
    s[0] = '"';
    memset(s + 1, c, 2 * bytes);
    s[2 * bytes + 1] = '"';
    s[2 * bytes + 2] = '\0';
    return s;
}

static const char *hex64_of(const unsigned char *p, size_t n, char *out) {
    assert_int_equal(km_hex_encode(out, 2 * n + 1, p, n), KM_OK);
    return out;
}

static void add_ep(const char *label, const char *method, const char *target, const secp256k1_keypair *kp,
                   char *tmpl, const field *f, size_t nf) {
    endpoint *e = &EP[N_EP++];
    e->label = label;
    e->method = method;
    snprintf(e->target, sizeof e->target, "%s", target);
    e->tmpl = tmpl;
    e->kp = kp;
    memcpy(e->fields, f, nf * sizeof *f);
    e->n_fields = nf;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    assert_true(vasprintf(&s, f, ap) >= 0);
    va_end(ap);
    return s;
}

static void fresh_uuid(char out[37]) {
    km_uuid u;
    assert_int_equal(gwt_uuid(&u, out), KM_OK);
}

static void build_endpoints(void) {
    char n1[37], n2[37], n3[37], t[160], x[65], sig[129];
    unsigned char zero64[64];
    memset(zero64, 0x11, sizeof zero64);
    hex64_of(zero64, 64, sig);
    hex64_of(X_OTHER, 32, x);
    fresh_uuid(n1);
    fresh_uuid(n2);
    fresh_uuid(n3);
    N_EP = 0;
    {
        static const field f[] = {
            {"keygen_id", F_UUID, 1, 0, 0},
            {"session_auth_key", F_HEX, 1, 32, 32},
            {"timeout_secs", F_UINT, 1, 1, 2592000},
            {"max_signing_sessions", F_UINT, 0, 0, 1000000},
            {"participants", F_ARRAY, 1, 1, 1000},
            {"participants.0.user_id", F_UUID, 1, 0, 0},
            {"participants.0.enclave_id", F_UINT, 1, 0, 4294967294u},
            {"enclave_inits", F_ARRAY, 1, 1, 64},
            {"enclave_inits.0.enclave_id", F_UINT, 1, 0, 4294967294u},
            {"enclave_inits.0.blob", F_HEX, 1, 1, 65536},
        };
        add_ep("POST /keygen", "POST", "/api/v1/keygen", &KP_OTHER,
               fmt("{\"keygen_id\":\"%s\",\"session_auth_key\":\"%s\",\"timeout_secs\":600,"
                   "\"max_signing_sessions\":5,\"participants\":[{\"user_id\":\"%s\",\"enclave_id\":0}],"
                   "\"enclave_inits\":[{\"enclave_id\":0,\"blob\":\"00\"}]}",
                   n1, x, n2),
               f, 10);
    }
    {
        static const field f[] = {
            {"user_id", F_UUID, 1, 0, 0},
            {"blob", F_HEX, 1, 1, 4096},
            {"auth_key", F_HEX, 1, 32, 32},
            {"require_approval", F_BOOL, 0, 0, 0},
        };
        snprintf(t, sizeof t, "/api/v1/keygen/%s/participants", KG_B);
        add_ep("POST /keygen/{id}/participants", "POST", t, &KP_OTHER,
               fmt("{\"user_id\":\"%s\",\"blob\":\"00\",\"auth_key\":\"%s\",\"require_approval\":false}", UB0,
                   x),
               f, 4);
    }
    {
        static const field f[] = {
            {"signing_id", F_UUID, 1, 0, 0},
            {"keygen_id", F_UUID, 1, 0, 0},
            {"items", F_HEX, 1, 1, 16777216},
            {"timeout_secs", F_UINT, 1, 1, 2592000},
        };
        add_ep("POST /signing", "POST", "/api/v1/signing", KP_SA,
               fmt("{\"signing_id\":\"%s\",\"keygen_id\":\"%s\",\"items\":\"00\",\"timeout_secs\":60}", n3,
                   KG_A),
               f, 4);
    }
    {
        static const field f[] = {{"signature", F_HEX, 1, 64, 64}};
        snprintf(t, sizeof t, "/api/v1/signing/%s/approve/%s", SG, U1);
        add_ep("POST /signing/{id}/approve/{user}", "POST", t, &KP_U1, fmt("{\"signature\":\"%s\"}", sig), f,
               1);
    }
    {
        static const field f[] = {{"key_id", F_UUID, 1, 0, 0}, {"user_id", F_UUID, 1, 0, 0}};
        add_ep("POST /keys/reserve", "POST", "/api/v1/keys/reserve", NULL,
               fmt("{\"key_id\":\"%s\",\"user_id\":\"%s\"}", n1, n2), f, 2);
    }
    {
        static const field f[] = {
            {"key_id", F_UUID, 1, 0, 0},
            {"user_id", F_UUID, 1, 0, 0},
            {"enclave_id", F_UINT, 1, 0, 4294967294u},
            {"blob", F_HEX, 1, 1, 4096},
            {"auth_key", F_HEX, 1, 32, 32},
        };
        add_ep(
            "POST /keys/import", "POST", "/api/v1/keys/import", &KP_OTHER,
            fmt("{\"key_id\":\"%s\",\"user_id\":\"%s\",\"enclave_id\":0,\"blob\":\"00\",\"auth_key\":\"%s\"}",
                n1, n2, x),
            f, 5);
    }
    {
        static const field f[] = {{"key_id", F_UUID, 1, 0, 0}, {"blob", F_HEX, 1, 1, 4096}};
        snprintf(t, sizeof t, "/api/v1/keys/%s/keygen/%s", U0, KG_A);
        add_ep("POST /keys/{user}/keygen/{id}", "POST", t, &KP_U0,
               fmt("{\"key_id\":\"%s\",\"blob\":\"00\"}", n1), f, 2);
    }
    {
        static const field f[] = {{"timestamp", F_UINT, 1, 0, 0}, {"signature", F_HEX, 1, 64, 64}};
        snprintf(t, sizeof t, "/api/v1/keys/%s/%s", KUSER, KID);
        add_ep("DELETE /keys/{user}/{key}", "DELETE", t, &KP_KEY,
               fmt("{\"timestamp\":%lld,\"signature\":\"%s\"}", (long long)time(NULL), sig), f, 2);
    }
    {
        static const field f[] = {
            {"request_id", F_UUID, 1, 0, 0},
            {"key_id", F_UUID, 1, 0, 0},
            {"user_id", F_UUID, 1, 0, 0},
            {"blob", F_HEX, 1, 1, 4096},
            {"approval_signature", F_HEX, 0, 64, 64},
            {"timeout_secs", F_UINT, 0, 1, 86400},
        };
        add_ep("POST /sign/single", "POST", "/api/v1/sign/single", &KP_KEY,
               fmt("{\"request_id\":\"%s\",\"key_id\":\"%s\",\"user_id\":\"%s\",\"blob\":\"00\","
                   "\"approval_signature\":\"%s\",\"timeout_secs\":60}",
                   n1, KID, KUSER, sig),
               f, 6);
    }
}

/* The last path component: the name the error message must carry. */
static const char *leaf(const char *path) {
    const char *d = strrchr(path, '.');
    return d ? d + 1 : path;
}

static void value_row(const endpoint *e, const field *f, const char *label, const char *raw,
                      const char *code) {
    char name[256];
    snprintf(name, sizeof name, "%s %s = %s", e->label, f->path, label);
    char *b = mutate(e->tmpl, f->path, raw, NULL);
    /* Array elements are reported by their array's name. */
    const char *want = !strcmp(code, MAL_F) ? (strchr(f->path, '.') ? f->path : leaf(f->path)) : NULL;
    char arr[64];
    if (want && strchr(want, '.')) {
        snprintf(arr, sizeof arr, "%.*s", (int)(strchr(want, '.') - want), want);
        want = arr;
    }
    body_row(name, e->method, e->target, "application/json", b, strlen(b), e->kp, 400, code, want, 0);
    free(b);
}

static void field_rows(const endpoint *e, const field *f) {
    char label[64];
    if (f->required) {
        char name[256];
        snprintf(name, sizeof name, "%s missing %s", e->label, f->path);
        char *b = mutate(e->tmpl, f->path, NULL, NULL);
        body_row(name, e->method, e->target, "application/json", b, strlen(b), e->kp, 400, MAL_F,
                 leaf(f->path), 0);
        free(b);
    }
    switch (f->type) {
    case F_UUID:
        for (size_t i = 0; i < sizeof MAL_BAD_UUID / sizeof MAL_BAD_UUID[0]; i++)
            value_row(e, f, MAL_BAD_UUID[i].label, MAL_BAD_UUID[i].raw, MAL_BAD_UUID[i].code);
        break;
    case F_HEX: {
        for (size_t i = 0; i < sizeof MAL_BAD_HEX / sizeof MAL_BAD_HEX[0]; i++)
            value_row(e, f, MAL_BAD_HEX[i].label, MAL_BAD_HEX[i].raw, MAL_BAD_HEX[i].code);
        if (f->max <= 65536) {
            char *v = hex_of(f->max + 1, 'a');
            snprintf(label, sizeof label, "%llu bytes", (unsigned long long)(f->max + 1));
            value_row(e, f, label, v, MAL_F);
            free(v);
        }
        if (f->min > 1) {
            char *v = hex_of(f->min - 1, 'a');
            snprintf(label, sizeof label, "%llu bytes", (unsigned long long)(f->min - 1));
            value_row(e, f, label, v, MAL_F);
            free(v);
            v = hex_of(f->min, 'A');
            value_row(e, f, "right length, uppercase", v, MAL_F);
            free(v);
        }
        break;
    }
    case F_UINT: {
        for (size_t i = 0; i < sizeof MAL_BAD_UINT / sizeof MAL_BAD_UINT[0]; i++)
            value_row(e, f, MAL_BAD_UINT[i].label, MAL_BAD_UINT[i].raw, MAL_BAD_UINT[i].code);
        if (f->min >= 1) {
            value_row(e, f, "zero", "0", MAL_F);
            value_row(e, f, "minus zero", "-0", MAL_F);
        }
        if (f->max) {
            char v[32];
            snprintf(v, sizeof v, "%llu", (unsigned long long)f->max + 1);
            value_row(e, f, "max + 1", v, MAL_F);
        }
        break;
    }
    case F_BOOL:
        for (size_t i = 0; i < sizeof MAL_BAD_BOOL / sizeof MAL_BAD_BOOL[0]; i++)
            value_row(e, f, MAL_BAD_BOOL[i].label, MAL_BAD_BOOL[i].raw, MAL_BAD_BOOL[i].code);
        break;
    case F_ARRAY:
        for (size_t i = 0; i < sizeof MAL_BAD_ARRAY / sizeof MAL_BAD_ARRAY[0]; i++)
            value_row(e, f, MAL_BAD_ARRAY[i].label, MAL_BAD_ARRAY[i].raw, MAL_BAD_ARRAY[i].code);
        break;
    }
}

/* ---- fixtures ------------------------------------------------------------------ */

static void keypair_from(secp256k1_keypair *kp, const unsigned char sec[32]) {
    assert_true(secp256k1_keypair_create(km_ctx_secp(T.ctx), kp, sec));
}

static const char HEALTH_REQ[] =
    "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

static int wait_healthy(void) {
    for (int i = 0; i < 400; i++) {
        gwt_resp r;
        int ok = gwt_raw_bytes(T.port, HEALTH_REQ, strlen(HEALTH_REQ), &r) == 0 && r.status == 200;
        gwt_resp_clear(&r);
        if (ok) return 0;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* Every enclave connected and restored (GET /enclaves: "ready"). */
static int wait_ready(void) {
    static const char req[] = "GET /api/v1/enclaves HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < 400; i++) {
        gwt_resp r;
        int ready = 0;
        if (gwt_raw_bytes(T.port, req, strlen(req), &r) == 0 && r.status == 200) {
            json_t *arr = json_object_get(r.json, "enclaves");
            ready = json_array_size(arr) == 2;
            for (size_t k = 0; k < json_array_size(arr); k++)
                ready &= json_is_true(json_object_get(json_array_get(arr, k), "ready"));
        }
        gwt_resp_clear(&r);
        if (ready) return 0;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static int group_setup(void **state) {
    (void)state;
    memset(&T, 0, sizeof T);
    km_err err = km_gwtest_start(&T, 2, NULL);
    if (err || wait_healthy()) {
        fprintf(stderr, "harness start failed: %s\n", km_err_name(err));
        return -1;
    }
    return km_gwtest_client(&T, &C) == KM_OK ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    for (int i = 0; i < N_STALLED; i++)
        if (STALLED[i] >= 0) close(STALLED[i]);
    km_client_free(C);
    km_gwflow_free(&FA);
    km_gwflow_free(&FB);
    km_gwflow_key_wipe(&KEY);
    km_gwtest_stop(&T);
    free(SPENT);
    return 0;
}

/* A signed GET of keygen A answers 200 and GET /health 200: the gateway
 * still serves after a batch. The control's nonce is expected in the cache. */
static void still_serving(void) {
    km_client_response r = {0};
    char t[96];
    snprintf(t, sizeof t, "/api/v1/keygen/%s", KG_A);
    assert_int_equal(km_client_call(C, "GET", t, NULL, KP_SA, &r), KM_OK);
    if (r.status != 200) failf("control", "signed GET keygen answered %ld", r.status);
    spend_last();
    N_NONCE--; /* a control, not a row */
    km_client_response_clear(&r);
    gwt_resp g;
    if (gwt_raw_bytes(T.port, HEALTH_REQ, strlen(HEALTH_REQ), &g) != 0 || g.status != 200)
        failf("control", "GET /health answered %d", g.status);
    gwt_resp_clear(&g);
}

/* Open a connection and send a request that never completes. */
static int stall(const char *bytes) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(T.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(send(fd, bytes, strlen(bytes), MSG_NOSIGNAL), (ssize_t)strlen(bytes));
    return fd;
}

static void test_fixtures(void **state) {
    (void)state;
    uint8_t flags[2] = {0, KM_FLAG_REQUIRE_APPROVAL};
    km_client_response r = {0};
    assert_int_equal(km_gwflow_new(&FA, &T, 2, 2, flags), KM_OK);
    assert_int_equal(km_gwflow_keygen(&FA, WAIT_S), KM_OK);
    km_sign_item it;
    km_uuid sid;
    assert_int_equal(km_gwflow_item(&it), KM_OK);
    assert_int_equal(km_uuid_v7(&sid, (uint64_t)time(NULL) * 1000u), KM_OK);
    assert_int_equal(km_gwflow_sign_create(&FA, NULL, &sid, &it, 1, 600, &r), KM_OK);
    assert_int_equal(r.status, 201);
    assert_string_equal(km_gwflow_str(&r, "status"), "collecting_approvals");
    km_client_response_clear(&r);
    km_uuid_format(SG, &sid);
    km_uuid_format(KG_A, &FA.w.keygen_id);
    km_uuid_format(U0, &FA.w.users[0]);
    km_uuid_format(U1, &FA.w.users[1]);
    KP_SA = km_session_auth_keypair(FA.w.session);
    keypair_from(&KP_U0, FA.w.auth_sec[0]);
    keypair_from(&KP_U1, FA.w.auth_sec[1]);

    assert_int_equal(km_gwflow_new(&FB, &T, 2, 2, NULL), KM_OK);
    assert_int_equal(km_gwflow_attest(&FB, NULL), KM_OK);
    assert_int_equal(km_gwflow_create_keygen(&FB, NULL, 600, 0, &r), KM_OK);
    assert_int_equal(r.status, 201);
    km_client_response_clear(&r);
    km_uuid_format(KG_B, &FB.w.keygen_id);
    km_uuid_format(UB0, &FB.w.users[0]);
    KP_SB = km_session_auth_keypair(FB.w.session);
    keypair_from(&KP_UB0, FB.w.auth_sec[0]);

    assert_int_equal(km_gwflow_key_new(T.ctx, &KEY), KM_OK);
    assert_int_equal(km_gwflow_key_import(&T, C, &KEY, &r), KM_OK);
    assert_int_equal(r.status, 201);
    km_client_response_clear(&r);
    km_uuid_format(KID, &KEY.key_id);
    km_uuid_format(KUSER, &KEY.user_id);
    keypair_from(&KP_KEY, KEY.auth_sec);
    assert_int_equal(gwt_keypair(T.ctx, &KP_OTHER, X_OTHER), KM_OK);

    /* The fixtures long-poll with ?wait=30; the rows run under GW_CONFIG
     * (short connection timeout), on the same database. */
    assert_int_equal(km_gwtest_write_config(&T, GW_CONFIG), KM_OK);
    assert_int_equal(km_gwtest_gateway_stop(&T), 0);
    assert_int_equal(km_gwtest_gateway_start(&T), KM_OK);
    assert_int_equal(wait_ready(), 0);
    km_client_free(C);
    assert_int_equal(km_gwtest_client(&T, &C), KM_OK);
    build_endpoints();

    /* After a restart the gateway may still touch its sessions (leases of the
     * recovery scan): start the rows once two dumps 300 ms apart agree. */
    for (int i = 0; i < 30; i++) {
        km_buf d1, r1, d2, r2;
        db_dump(&d1, &r1);
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
        db_dump(&d2, &r2);
        int same = d1.len == d2.len && !memcmp(d1.data, d2.data, d1.len);
        if (!same) fprintf(stderr, "settling: table %s changed\n", first_diff(&d1, &d2));
        km_buf_free(&d1);
        km_buf_free(&r1);
        km_buf_free(&d2);
        km_buf_free(&r2);
        if (same) break;
    }

    /* Requests that never finish, held open while every other row runs. */
    char req[512];
    snprintf(req, sizeof req,
             "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: 100\r\n\r\n{\"key_id\":");
    STALLED[0] = stall(req);
    STALLED[1] = stall("GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    STALLED[2] =
        stall("POST /api/v1/keys/reserve HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
              "\r\n2\r\n{}\r\n");
    /* Never a complete request line; a body of undeclared length. */
    STALLED[3] = stall("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03");
    STALLED_AT_MS = km_gwflow_now_ms();
}

/* ---- 1. broken JSON -------------------------------------------------------------- */

static void test_broken_json(void **state) {
    (void)state;
    cat_begin("broken JSON");
    store_mark();
    for (size_t i = 0; i < MAL_N_BROKEN; i++) {
        const mal_body *b = &MAL_BROKEN[i];
        char name[160];
        snprintf(name, sizeof name, "%s: %s", EP[0].label, b->label);
        body_row(name, "POST", EP[0].target, "application/json", b->bytes, b->len ? b->len : strlen(b->bytes),
                 EP[0].kp, 400, b->code, NULL, 0);
    }
    for (size_t e = 1; e < N_EP; e++)
        for (size_t k = 0; k < MAL_N_BROKEN_EVERYWHERE; k++) {
            const mal_body *b = &MAL_BROKEN[MAL_BROKEN_EVERYWHERE[k]];
            char name[160];
            snprintf(name, sizeof name, "%s: %s", EP[e].label, b->label);
            body_row(name, EP[e].method, EP[e].target, "application/json", b->bytes,
                     b->len ? b->len : strlen(b->bytes), EP[e].kp, 400, b->code, NULL, 0);
        }
    /* Nesting far beyond any parser's comfort. */
    size_t depth = 10000;
    char *deep = malloc(2 * depth + 16);
    assert_non_null(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    body_row("10k nested arrays", "POST", "/api/v1/keys/reserve", "application/json", deep, 2 * depth, NULL,
             400, MAL_J, NULL, 0);
    size_t n = 0;
    for (size_t i = 0; i < depth; i++) {
        memcpy(deep + n, "{\"a\":", 5);
        n += 5;
        if (n + 5 > 2 * depth) break;
    }
    body_row("deeply nested objects", "POST", "/api/v1/keys/reserve", "application/json", deep, n, NULL, 400,
             MAL_J, NULL, 0);
    memset(deep, '[', depth);
    body_row("10k unclosed arrays", "POST", "/api/v1/keys/reserve", "application/json", deep, depth, NULL,
             400, MAL_J, NULL, 0);
    free(deep);
    still_serving();
    store_check();
    cat_end();
}

/* ---- 2. wrong types, missing and unknown fields ------------------------------ */

static void test_field_types(void **state) {
    (void)state;
    cat_begin("wrong types / missing fields");
    store_mark();
    for (size_t e = 0; e < N_EP; e++)
        for (size_t f = 0; f < EP[e].n_fields; f++)
            field_rows(&EP[e], &EP[e].fields[f]);
    still_serving();
    store_check();
    cat_end();
}

static void test_unknown_fields(void **state) {
    (void)state;
    cat_begin("unknown fields");
    store_mark();
    static const struct {
        const char *key, *label;
    } keys[] = {
        {"extra", "plain"},
        {"", "empty name"},
        {"Keygen_id", "case variant of a field"},
        {"\xe2\x80\xae"
         "di_negyek",
         "right-to-left override"},
        {"\xf0\x9f\x94\x91", "emoji"},
        {"\x1b[31m", "escape sequence"},
    };
    for (size_t e = 0; e < N_EP; e++)
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            char name[160];
            snprintf(name, sizeof name, "%s unknown field (%s)", EP[e].label, keys[k].label);
            char *b = mutate(EP[e].tmpl, "", "1", keys[k].key);
            body_row(name, EP[e].method, EP[e].target, "application/json", b, strlen(b), EP[e].kp, 400, MAL_F,
                     "unknown field", 0);
            free(b);
        }
    /* Unknown members of array elements, and a very long name (quoted cut). */
    char *b = mutate(EP[0].tmpl, "participants.0.", "1", "extra");
    body_row("POST /keygen participants[0] unknown field", "POST", EP[0].target, "application/json", b,
             strlen(b), EP[0].kp, 400, MAL_F, "unknown field", 0);
    free(b);
    b = mutate(EP[0].tmpl, "enclave_inits.0.", "1", "extra");
    body_row("POST /keygen enclave_inits[0] unknown field", "POST", EP[0].target, "application/json", b,
             strlen(b), EP[0].kp, 400, MAL_F, "unknown field", 0);
    free(b);
    char longkey[2001];
    memset(longkey, 'k', 2000);
    longkey[2000] = '\0';
    b = mutate(EP[4].tmpl, "", "1", longkey);
    body_row("POST /keys/reserve 2000-byte unknown field", "POST", EP[4].target, "application/json", b,
             strlen(b), NULL, 400, MAL_F, "...", 0);
    free(b);
    still_serving();
    store_check();
    cat_end();
}

/* ---- 3. values that parse but are refused (ranges, duplicates, keys) ------ */

/* x-only keys that are no key: x = 0 (what "the point at infinity" would
 * encode to), x = p, x = 2^256-1 (>= p), and the smallest x >= 5 with no
 * point on the curve (checked here with libsecp256k1, not assumed). */
static void bad_xonly(unsigned char out[4][32]) {
    memset(out, 0, 4 * 32);
    static const unsigned char P[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xfc, 0x2f};
    memcpy(out[1], P, 32);
    memset(out[2], 0xff, 32);
    secp256k1_xonly_pubkey xp;
    for (unsigned v = 5; v < 1000; v++) {
        memset(out[3], 0, 32);
        out[3][31] = (unsigned char)(v & 0xff);
        out[3][30] = (unsigned char)(v >> 8);
        if (!secp256k1_xonly_pubkey_parse(km_ctx_secp(T.ctx), &xp, out[3])) break;
    }
    for (int i = 0; i < 4; i++)
        assert_false(secp256k1_xonly_pubkey_parse(km_ctx_secp(T.ctx), &xp, out[i]));
}

/* A request signed with forged headers: X-KeyMeld-Key = x (no valid key),
 * signature by kp (so it cannot verify). Expected 401 auth_invalid. */
static void forged_key_row(const char *name, const char *method, const char *target, const char *body,
                           const unsigned char x[32]) {
    km_client_auth_override ov;
    memset(&ov, 0, sizeof ov);
    ov.use = 1;
    ov.claim_other_key = 1;
    memcpy(ov.claimed_xonly, x, 32);
    km_client_response r = {0};
    N_CASES++;
    CAT_CASES++;
    km_err err = km_client_call_raw(C, method, target, (const unsigned char *)body, strlen(body),
                                    "application/json", &KP_OTHER, &ov, &r);
    const char *why = NULL;
    if (err)
        failf(name, "no answer");
    else if (r.status != 401 || !error_shape_ok(r.json, "auth_invalid", &why))
        failf(name, "got %ld %s", r.status, r.body.data ? (const char *)r.body.data : "");
    km_client_response_clear(&r);
}

static void test_semantic(void **state) {
    (void)state;
    cat_begin("ranges, duplicates, curve points");
    store_mark();
    const endpoint *kg = &EP[0];
    char *b;
    char nu[37], name[160], x[65], t[160], *body;
#define ROW(nm, ep, mutated, st, code, fld, sp)                                                              \
    do {                                                                                                     \
        b = (mutated);                                                                                       \
        body_row(nm, (ep)->method, (ep)->target, "application/json", b, strlen(b), (ep)->kp, st, code, fld,  \
                 sp);                                                                                        \
        free(b);                                                                                             \
    } while (0)
    ROW("timeout_secs above max_timeout_seconds", kg, mutate(kg->tmpl, "timeout_secs", "86401", NULL), 400,
        MAL_F, "timeout_secs", 0);
    ROW("signing timeout_secs above max_timeout_seconds", &EP[2],
        mutate(EP[2].tmpl, "timeout_secs", "86401", NULL), 400, MAL_F, "timeout_secs", 0);
    ROW("init for an unconfigured enclave", kg, mutate(kg->tmpl, "enclave_inits.0.enclave_id", "7", NULL),
        400, MAL_F, "enclave_inits", 0);
    ROW("participant on an enclave without init", kg,
        mutate(kg->tmpl, "participants.0.enclave_id", "1", NULL), 400, MAL_F, "participants", 0);
    ROW("import to an unconfigured enclave", &EP[5], mutate(EP[5].tmpl, "enclave_id", "7", NULL), 400, MAL_F,
        "enclave_id", 0);
    fresh_uuid(nu);
    snprintf(name, sizeof name,
             "[{\"user_id\":\"%s\",\"enclave_id\":0},{\"user_id\":\"%s\",\"enclave_id\":0}]", nu, nu);
    ROW("duplicate participant", kg, mutate(kg->tmpl, "participants", name, NULL), 400, MAL_F, "participants",
        0);
    ROW("duplicate enclave init", kg,
        mutate(kg->tmpl, "enclave_inits",
               "[{\"enclave_id\":0,\"blob\":\"00\"},{\"enclave_id\":0,\"blob\":\"01\"}]", NULL),
        400, MAL_F, "enclave_inits", 0);
    /* 1001 participants (API.md 4.1: 1..1000) and 65 inits (1..64). */
    km_buf big;
    km_buf_init(&big);
    assert_int_equal(km_buf_put(&big, "[", 1), KM_OK);
    for (int i = 0; i < 1001; i++) {
        fresh_uuid(nu);
        char one[96];
        int n = snprintf(one, sizeof one, "%s{\"user_id\":\"%s\",\"enclave_id\":0}", i ? "," : "", nu);
        assert_int_equal(km_buf_put(&big, one, (size_t)n), KM_OK);
    }
    assert_int_equal(km_buf_put(&big, "]", 2), KM_OK);
    ROW("1001 participants", kg, mutate(kg->tmpl, "participants", (const char *)big.data, NULL), 400, MAL_F,
        "participants", 0);
    big.len = 0;
    assert_int_equal(km_buf_put(&big, "[", 1), KM_OK);
    for (int i = 0; i < 65; i++) {
        char one[64];
        int n = snprintf(one, sizeof one, "%s{\"enclave_id\":%d,\"blob\":\"00\"}", i ? "," : "", i);
        assert_int_equal(km_buf_put(&big, one, (size_t)n), KM_OK);
    }
    assert_int_equal(km_buf_put(&big, "]", 2), KM_OK);
    ROW("65 enclave inits", kg, mutate(kg->tmpl, "enclave_inits", (const char *)big.data, NULL), 400, MAL_F,
        "enclave_inits", 0);
    km_buf_free(&big);

    /* Keys that are not curve points, in every field and header that holds one. */
    unsigned char bad[4][32];
    bad_xonly(bad);
    static const char *const bad_names[4] = {"x = 0 (infinity)", "x = p", "x = 2^256-1",
                                             "x not on the curve"};
    for (int i = 0; i < 4; i++) {
        hex64_of(bad[i], 32, x);
        char q[80];
        snprintf(q, sizeof q, "\"%s\"", x);
        b = mutate(kg->tmpl, "session_auth_key", q, NULL);
        snprintf(name, sizeof name, "session_auth_key %s", bad_names[i]);
        forged_key_row(name, "POST", kg->target, b, bad[i]);
        free(b);
        b = mutate(EP[1].tmpl, "auth_key", q, NULL);
        snprintf(name, sizeof name, "registration auth_key %s", bad_names[i]);
        forged_key_row(name, "POST", EP[1].target, b, bad[i]);
        free(b);
        b = mutate(EP[5].tmpl, "auth_key", q, NULL);
        snprintf(name, sizeof name, "import auth_key %s", bad_names[i]);
        forged_key_row(name, "POST", EP[5].target, b, bad[i]);
        free(b);
        snprintf(t, sizeof t, "/api/v1/keys/%s", KUSER);
        snprintf(name, sizeof name, "X-KeyMeld-Key %s on a key list", bad_names[i]);
        forged_key_row(name, "GET", t, "", bad[i]);
        /* The same key in the body, signed by a valid other key: 403. */
        b = mutate(kg->tmpl, "session_auth_key", q, NULL);
        snprintf(name, sizeof name, "session_auth_key %s signed by another key", bad_names[i]);
        body_row(name, "POST", kg->target, "application/json", b, strlen(b), &KP_OTHER, 403, "auth_forbidden",
                 NULL, 0);
        free(b);
    }

    /* Refused by lookups before the signature: 404, no nonce spent. */
    fresh_uuid(nu);
    ROW("signing for an unknown keygen", &EP[2], mutate(EP[2].tmpl, "keygen_id", "\"" MAL_U "\"", NULL), 404,
        "not_found", NULL, 0);
    snprintf(t, sizeof t, "/api/v1/signing/%s/approve/%s", SG, nu);
    body_row("approval by a user of no keygen", "POST", t, "application/json", EP[3].tmpl, strlen(EP[3].tmpl),
             &KP_U1, 404, "not_found", NULL, 0);
    snprintf(t, sizeof t, "/api/v1/signing/%s/approve/%s", nu, U1);
    body_row("approval of an unknown session", "POST", t, "application/json", EP[3].tmpl, strlen(EP[3].tmpl),
             &KP_U1, 404, "not_found", NULL, 0);
    snprintf(t, sizeof t, "/api/v1/keygen/%s/participants", nu);
    body_row("registration into an unknown keygen", "POST", t, "application/json", EP[1].tmpl,
             strlen(EP[1].tmpl), &KP_OTHER, 404, "not_found", NULL, 0);
    snprintf(t, sizeof t, "/api/v1/keys/%s/keygen/%s", UB0, KG_B);
    body_row("keygen key of an unregistered user", "POST", t, "application/json", EP[6].tmpl,
             strlen(EP[6].tmpl), &KP_UB0, 404, "not_found", NULL, 0);
    snprintf(t, sizeof t, "/api/v1/keys/%s/keygen/%s", U0, nu);
    body_row("keygen key of an unknown keygen", "POST", t, "application/json", EP[6].tmpl, strlen(EP[6].tmpl),
             &KP_U0, 404, "not_found", NULL, 0);
    snprintf(t, sizeof t, "/api/v1/keys/%s/%s", nu, KID);
    body_row("delete a key under another user", "DELETE", t, "application/json", EP[7].tmpl,
             strlen(EP[7].tmpl), &KP_KEY, 404, "not_found", NULL, 0);
    snprintf(t, sizeof t, "/api/v1/keys/%s/%s", KUSER, nu);
    body_row("delete an unknown key", "DELETE", t, "application/json", EP[7].tmpl, strlen(EP[7].tmpl),
             &KP_KEY, 404, "not_found", NULL, 0);
    snprintf(name, sizeof name, "\"%s\"", nu);
    ROW("sign with an unknown key", &EP[8], mutate(EP[8].tmpl, "key_id", name, NULL), 404, "not_found", NULL,
        0);
    ROW("sign with a key of another user", &EP[8], mutate(EP[8].tmpl, "user_id", name, NULL), 404,
        "not_found", NULL, 0);

    /* Valid signatures by keys that may not make the call: 403, no nonce. */
    body_row("registration signed by another key", "POST", EP[1].target, "application/json", EP[1].tmpl,
             strlen(EP[1].tmpl), &KP_UB0, 403, "auth_forbidden", NULL, 0);
    body_row("signing created by a participant", "POST", EP[2].target, "application/json", EP[2].tmpl,
             strlen(EP[2].tmpl), &KP_U0, 403, "auth_forbidden", NULL, 0);
    body_row("approval signed by the session key", "POST", EP[3].target, "application/json", EP[3].tmpl,
             strlen(EP[3].tmpl), KP_SA, 403, "auth_forbidden", NULL, 0);
    body_row("approval signed by another participant", "POST", EP[3].target, "application/json", EP[3].tmpl,
             strlen(EP[3].tmpl), &KP_U0, 403, "auth_forbidden", NULL, 0);
    body_row("key deletion signed by another key", "DELETE", EP[7].target, "application/json", EP[7].tmpl,
             strlen(EP[7].tmpl), &KP_OTHER, 403, "auth_forbidden", NULL, 0);
    snprintf(t, sizeof t, "/api/v1/keygen/%s", KG_A);
    body_row("keygen status signed by a participant", "GET", t, NULL, NULL, 0, &KP_U0, 403, "auth_forbidden",
             NULL, 0);

    /* Refused after the signature: the nonce is spent (SECURITY.md), nothing else. */
    fresh_uuid(nu);
    snprintf(name, sizeof name, "\"%s\"", nu);
    {
        char xo[67];
        snprintf(xo, sizeof xo, "\"%s\"", hex64_of(X_OTHER, 32, x));
        b = mutate(EP[1].tmpl, "user_id", name, NULL);
        body_row("registration of a non-participant", "POST", EP[1].target, "application/json", b, strlen(b),
                 &KP_OTHER, 404, "not_found", NULL, 1);
        free(b);
        body_row("registration with a garbage blob", "POST", EP[1].target, "application/json", EP[1].tmpl,
                 strlen(EP[1].tmpl), &KP_OTHER, 422, "enclave_rejected", NULL, 1);
        snprintf(t, sizeof t, "/api/v1/keygen/%s/participants", KG_A);
        body = fmt("{\"user_id\":\"%s\",\"blob\":\"00\",\"auth_key\":%s}", U0, xo);
        body_row("registration over an existing one", "POST", t, "application/json", body, strlen(body),
                 &KP_OTHER, 409, "conflict", NULL, 1);
        free(body);
        snprintf(name, sizeof name, "\"%s\"", KG_A);
        ROW("keygen create over an existing id", kg, mutate(kg->tmpl, "keygen_id", name, NULL), 409,
            "conflict", NULL, 1);
        ROW("keygen create with a garbage init blob", kg, strdup(kg->tmpl), 422, "enclave_rejected", NULL, 1);
        snprintf(name, sizeof name, "\"%s\"", KG_B);
        body = mutate(EP[2].tmpl, "keygen_id", name, NULL);
        body_row("signing on a collecting keygen", "POST", EP[2].target, "application/json", body,
                 strlen(body), KP_SB, 409, "invalid_state", NULL, 1);
        free(body);
        snprintf(name, sizeof name, "\"%s\"", SG);
        ROW("signing over an existing id with other items", &EP[2],
            mutate(EP[2].tmpl, "signing_id", name, NULL), 409, "conflict", NULL, 1);
        ROW("approval with a garbage signature", &EP[3], strdup(EP[3].tmpl), 400, "invalid_approval", NULL,
            1);
        char sigq[140];
        unsigned char rs[64];
        memset(rs, 0, sizeof rs);
        snprintf(sigq, sizeof sigq, "\"%s\"", hex64_of(rs, 64, (char[129]){0}));
        ROW("approval with an all-zero signature", &EP[3], mutate(EP[3].tmpl, "signature", sigq, NULL), 400,
            "invalid_approval", NULL, 1);
        memcpy(rs, bad[1], 32); /* r = p */
        snprintf(sigq, sizeof sigq, "\"%s\"", hex64_of(rs, 64, (char[129]){0}));
        ROW("approval with r = p", &EP[3], mutate(EP[3].tmpl, "signature", sigq, NULL), 400,
            "invalid_approval", NULL, 1);
        ROW("import with a garbage blob", &EP[5], strdup(EP[5].tmpl), 422, "enclave_rejected", NULL, 1);
        snprintf(name, sizeof name, "\"%s\"", KID);
        body = mutate(EP[5].tmpl, "key_id", name, NULL);
        body_row("import over an existing key", "POST", EP[5].target, "application/json", body, strlen(body),
                 &KP_OTHER, 409, "conflict", NULL, 1);
        free(body);
        ROW("keygen key with a garbage blob", &EP[6], strdup(EP[6].tmpl), 422, "enclave_rejected", NULL, 1);
        ROW("key deletion with a bad deletion signature", &EP[7], strdup(EP[7].tmpl), 422, "enclave_rejected",
            NULL, 1);
        ROW("key deletion with a timestamp far from now", &EP[7], mutate(EP[7].tmpl, "timestamp", "1", NULL),
            422, "enclave_rejected", NULL, 1);
    }
#undef ROW
    still_serving();
    store_check();
    cat_end();
}

/* ---- raw rows ---------------------------------------------------------------------- */

/* want_code set: the gateway's own error (JSON body of section 2 and the
 * headers of section 1). want_code NULL: only the status (libmicrohttpd's own
 * answer, which has no JSON body, or a success). want_status 0: the
 * connection must be closed without any HTTP answer. */
static void raw_row(const char *name, const void *req, size_t len, int want_status, const char *want_code) {
    gwt_resp r;
    N_CASES++;
    CAT_CASES++;
    int rc = gwt_raw_bytes(T.port, req, len, &r);
    if (want_status == 0) {
        if (rc == 0) failf(name, "wanted no answer, got %d %.200s", r.status, r.body ? r.body : "");
        gwt_resp_clear(&r);
        return;
    }
    if (rc != 0) {
        failf(name, "no HTTP answer (wanted %d)", want_status);
        return;
    }
    const char *why = NULL;
    char h[256];
    if (r.status != want_status) {
        why = "status";
    } else if (want_code) {
        if (!error_shape_ok(r.json, want_code, &why)) {
        } else if (!gwt_header(&r, "Content-Type", h, sizeof h) || strncmp(h, "application/json", 16))
            why = "Content-Type";
        else if (!gwt_header(&r, "Cache-Control", h, sizeof h) || !strstr(h, "no-store"))
            why = "Cache-Control";
        else if (!gwt_header(&r, "X-Content-Type-Options", h, sizeof h) || strcmp(h, "nosniff"))
            why = "X-Content-Type-Options";
        else if (want_status == 405 && !gwt_header(&r, "Allow", h, sizeof h))
            why = "no Allow header";
    }
    if (why)
        failf(name, "%s: got %d %.200s (wanted %d %s)", why, r.status, r.body ? r.body : "", want_status,
              want_code ? want_code : "");
    gwt_resp_clear(&r);
}

/* "METHOD target VERSION\r\nHost\r\nConnection: close\r\n" + headers + body
 * (with Content-Length when body is not NULL). */
static char *req_text(const char *method, const char *target, const char *headers, const char *body,
                      size_t blen, size_t *len) {
    char *s = NULL;
    int n;
    if (body)
        n = asprintf(
            &s, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n",
            method, target, headers ? headers : "", blen);
    else
        n = asprintf(&s, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n", method, target,
                     headers ? headers : "");
    assert_true(n > 0);
    if (body && blen) {
        s = realloc(s, (size_t)n + blen + 1);
        assert_non_null(s);
        memcpy(s + n, body, blen);
        s[(size_t)n + blen] = '\0';
    }
    *len = (size_t)n + (body ? blen : 0);
    return s;
}

static void simple_row(const char *name, const char *method, const char *target, const char *headers,
                       const char *body, int want_status, const char *want_code) {
    size_t len;
    char *req = req_text(method, target, headers, body, body ? strlen(body) : 0, &len);
    raw_row(name, req, len, want_status, want_code);
    free(req);
}

/* pattern with "{}" holes filled by a, then b. */
static void subst(char *out, size_t cap, const char *pattern, const char *a, const char *b) {
    size_t n = 0;
    const char *vals[2] = {a, b};
    int k = 0;
    for (const char *p = pattern; *p; p++) {
        if (p[0] == '{' && p[1] == '}' && k < 2) {
            size_t l = strlen(vals[k]);
            assert_true(n + l < cap);
            memcpy(out + n, vals[k++], l);
            n += l;
            p++;
        } else {
            assert_true(n + 1 < cap);
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

static void pipe_row(const char *name, const char *req, int status1, const char *code1, const char *then);

/* ---- 4. paths ---------------------------------------------------------------------- */

static void test_paths(void **state) {
    (void)state;
    cat_begin("paths and ids");
    store_mark();
    char nu[37], t[512], name[600];
    fresh_uuid(nu);
    /* Every {id} of every route, each bad form: 400 invalid_path. The
     * registration reads its body first (API.md 4.4): send it a valid one. */
    static const struct {
        const char *method, *fmt;
        int n_ids;
        int reg_body;
    } routes[] = {
        {"GET", "/api/v1/keygen/{}", 1, 0},       {"DELETE", "/api/v1/keygen/{}", 1, 0},
        {"GET", "/api/v1/keygen/{}/slots", 1, 0}, {"POST", "/api/v1/keygen/{}/participants", 1, 1},
        {"GET", "/api/v1/signing/{}", 1, 0},      {"POST", "/api/v1/signing/{}/approve/{}", 2, 0},
        {"GET", "/api/v1/keys/{}", 1, 0},         {"GET", "/api/v1/keys/{}/{}", 2, 0},
        {"DELETE", "/api/v1/keys/{}/{}", 2, 0},   {"POST", "/api/v1/keys/{}/keygen/{}", 2, 0},
        {"GET", "/api/v1/sign/single/{}", 1, 0},
    };
    for (size_t r = 0; r < sizeof routes / sizeof routes[0]; r++)
        for (int which = 0; which < routes[r].n_ids; which++)
            for (size_t i = 0; i < MAL_N_BAD_PATH_UUID; i++) {
                const char *bad = MAL_BAD_PATH_UUID[i];
                subst(t, sizeof t, routes[r].fmt, which == 0 ? bad : nu, which == 1 ? bad : nu);
                snprintf(name, sizeof name, "%s %s", routes[r].method, t);
                simple_row(name, routes[r].method, t, "Content-Type: application/json\r\n",
                           routes[r].reg_body ? EP[1].tmpl : (strcmp(routes[r].method, "GET") ? "{}" : NULL),
                           400, "invalid_path");
            }
    for (size_t i = 0; i < sizeof MAL_BAD_ENCLAVE_ID / sizeof MAL_BAD_ENCLAVE_ID[0]; i++) {
        snprintf(t, sizeof t, "/api/v1/enclaves/%s", MAL_BAD_ENCLAVE_ID[i]);
        simple_row(t, "GET", t, NULL, NULL, 400, "invalid_path");
    }
    simple_row("enclave 4294967295 (not configured)", "GET", "/api/v1/enclaves/4294967295", NULL, NULL, 404,
               "not_found");
    simple_row("enclave 7 (not configured)", "GET", "/api/v1/enclaves/7", NULL, NULL, 404, "not_found");
    /* Traversal and other refused spellings: 404 without reaching a handler. */
    static const char *const refused[] = {
        "/api/v1/../api/v1/health",
        "/api/v1/health/..",
        "/api/v1//health",
        "/api/v1/%2e%2e/health",
        "/api/v1/%2E%2E/health",
        "/api/v1/keys%2freserve",
        "/api/v1/health%00",
        "/api/v1/health\\",
        "/api/v1/%5chealth",
        "/api/v1/./health",
        "/api/v1/health/",
        "/API/V1/HEALTH",
        "/api/v1/k\xc3\xa9ygen",
        "/api/v1/health\xff",
        "/api/v2/health",
        "/",
        "/api",
        "/api/v1",
        "/api/v1/keygen/" MAL_U "/slots/x",
        "/api/v1/keygen/" MAL_U "/participants/",
        "/api/v1/%68ealth",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        simple_row(refused[i], "GET", refused[i], NULL, NULL, 404, "not_found");
    /* A long but acceptable request line: an unknown route. */
    char *longp = malloc(20001);
    assert_non_null(longp);
    memcpy(longp, "/api/v1/", 8);
    memset(longp + 8, 'a', 19992);
    longp[20000] = '\0';
    simple_row("20 KB path", "GET", longp, NULL, NULL, 404, "not_found");
    free(longp);
    still_serving();
    store_check();
    cat_end();
}

/* ---- 5. methods and versions --------------------------------------------------- */

static void test_methods(void **state) {
    (void)state;
    cat_begin("methods and HTTP versions");
    store_mark();
    static const struct {
        const char *method, *target;
        int status;
        const char *code;
    } rows[] = {
        {"PUT", "/api/v1/keygen", 405, "method_not_allowed"},
        {"PATCH", "/api/v1/health", 405, "method_not_allowed"},
        {"DELETE", "/api/v1/health", 405, "method_not_allowed"},
        {"POST", "/api/v1/health", 405, "method_not_allowed"},
        {"GET", "/api/v1/keygen", 405, "method_not_allowed"},
        {"GET", "/api/v1/keys/reserve", 400, "invalid_path"}, /* GET /keys/{user_id} */
        {"FOO", "/api/v1/health", 405, "method_not_allowed"},
        {"get", "/api/v1/health", 405, "method_not_allowed"},
        {"OPTIONS", "/api/v1/health", 405, "method_not_allowed"},
        {"TRACE", "/api/v1/health", 405, "method_not_allowed"},
        {"PROPFIND", "/api/v1/keygen/" MAL_U, 405, "method_not_allowed"},
        {"PUT", "/api/v1/nothing", 404, "not_found"},
        {"OPTIONS", "*", 404, "not_found"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char name[160];
        snprintf(name, sizeof name, "%s %s", rows[i].method, rows[i].target);
        simple_row(name, rows[i].method, rows[i].target, NULL, NULL, rows[i].status, rows[i].code);
    }
    /* HEAD: the status and Allow of a 405, no body. */
    simple_row("HEAD /api/v1/health", "HEAD", "/api/v1/health", NULL, NULL, 405, NULL);
    char m[300];
    memset(m, 'X', 256);
    m[256] = '\0';
    simple_row("256-letter method", m, "/api/v1/health", NULL, NULL, 405, "method_not_allowed");

    /* Request lines libmicrohttpd itself refuses (no JSON body). */
    static const struct {
        const char *label, *bytes;
        int status;
    } lines[] = {
        {"HTTP/1.1 without Host", "GET /api/v1/health HTTP/1.1\r\nConnection: close\r\n\r\n", 400},
        {"two Host headers", "GET /api/v1/health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
         -400},
        {"HTTP/2.0", "GET /api/v1/health HTTP/2.0\r\nHost: a\r\nConnection: close\r\n\r\n", 505},
        {"HTTP/3.0", "GET /api/v1/health HTTP/3.0\r\nHost: a\r\nConnection: close\r\n\r\n", 505},
        {"lowercase version", "GET /api/v1/health http/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 400},
        {"garbage version", "GET /api/v1/health FOO/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 400},
        {"no version (HTTP/0.9)", "GET /api/v1/health\r\n\r\n", 400},
        /* Accepted: RFC 9112 3 lets a server parse whitespace leniently. */
        {"double space", "GET  /api/v1/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 200},
        {"header without colon",
         "GET /api/v1/health HTTP/1.1\r\nHost: a\r\nNoColon\r\nConnection: close\r\n\r\n", 400},
        {"space before colon",
         "GET /api/v1/health HTTP/1.1\r\nHost: a\r\nX-A : 1\r\nConnection: close\r\n\r\n", -400},
        {"space before colon in an auth header",
         "GET /api/v1/health HTTP/1.1\r\nHost: a\r\nX-KeyMeld-Key : 1\r\n"
         "Connection: close\r\n\r\n",
         -400},
        /* Accepted: RFC 9112 5.2 lets a server replace obs-fold with a space. */
        {"obs-fold continuation",
         "GET /api/v1/health HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\nConnection: close\r\n\r\n", 200},
        {"bad Content-Length",
         "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n"
         "Connection: close\r\n\r\n",
         400},
        {"negative Content-Length",
         "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n"
         "Connection: close\r\n\r\n",
         400},
        {"two different Content-Lengths",
         "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
         "Content-Length: 3\r\nConnection: close\r\n\r\n{}x",
         400},
        {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
    };
    /* A negative status: the gateway's own JSON answer (invalid_request). */
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        raw_row(lines[i].label, lines[i].bytes, strlen(lines[i].bytes), abs(lines[i].status),
                lines[i].status < 0 ? "invalid_request" : NULL);
    /* HTTP/1.0 without Host is allowed and answered. */
    static const char h10[] = "GET /api/v1/health HTTP/1.0\r\n\r\n";
    raw_row("HTTP/1.0 without Host", h10, strlen(h10), 200, NULL);
    still_serving();
    store_check();
    cat_end();
}

/* ---- 6. query strings ----------------------------------------------------------- */

static void test_queries(void **state) {
    (void)state;
    cat_begin("query strings");
    store_mark();
    char t[256], rid[37];
    fresh_uuid(rid);
    const char *bases[3] = {KG_A, SG, rid};
    static const char *const fmts[3] = {"/api/v1/keygen/{}?{}", "/api/v1/signing/{}?{}",
                                        "/api/v1/sign/single/{}?{}"};
    const secp256k1_keypair *kps[3] = {KP_SA, KP_SA, &KP_KEY};
    for (int b = 0; b < 3; b++)
        for (size_t i = 0; i < sizeof MAL_BAD_WAIT / sizeof MAL_BAD_WAIT[0]; i++) {
            subst(t, sizeof t, fmts[b], bases[b], MAL_BAD_WAIT[i]);
            /* Signed, yet refused before the signature: no nonce spent. */
            body_row(t, "GET", t, NULL, NULL, 0, kps[b], 400, "invalid_query", "wait", 0);
        }
    for (size_t i = 0; i < sizeof MAL_BAD_NONCE / sizeof MAL_BAD_NONCE[0]; i++) {
        snprintf(t, sizeof t, "/api/v1/enclaves/0?%s", MAL_BAD_NONCE[i]);
        simple_row(t, "GET", t, NULL, NULL, 400, "invalid_query");
    }
    char *lnonce = malloc(200);
    assert_non_null(lnonce);
    memcpy(lnonce, "/api/v1/enclaves/0?nonce=", 25);
    memset(lnonce + 25, 'a', 130);
    lnonce[155] = '\0';
    simple_row("nonce of 65 bytes", "GET", lnonce, NULL, NULL, 400, "invalid_query");
    memset(lnonce + 25, 'A', 64);
    lnonce[25 + 64] = '\0';
    simple_row("uppercase nonce", "GET", lnonce, NULL, NULL, 400, "invalid_query");
    free(lnonce);
    simple_row("bad nonce on an unknown enclave", "GET", "/api/v1/enclaves/9?nonce=zz", NULL, NULL, 404,
               "not_found");
    still_serving();
    store_check();
    cat_end();
}

/* ---- 7. authentication headers ------------------------------------------------ */

/* A signed GET of keygen A with the four headers given as text (NULL: not
 * sent) plus extra header lines. */
static void auth_row(const char *name, const char *key, const char *ts, const char *nonce, const char *sig,
                     const char *extra, int want_status, const char *want_code) {
    char h[4096];
    int n = 0;
    h[0] = '\0';
    if (key) n += snprintf(h + n, sizeof h - (size_t)n, "X-KeyMeld-Key: %s\r\n", key);
    if (ts) n += snprintf(h + n, sizeof h - (size_t)n, "X-KeyMeld-Timestamp: %s\r\n", ts);
    if (nonce) n += snprintf(h + n, sizeof h - (size_t)n, "X-KeyMeld-Nonce: %s\r\n", nonce);
    if (sig) n += snprintf(h + n, sizeof h - (size_t)n, "X-KeyMeld-Signature: %s\r\n", sig);
    if (extra) snprintf(h + n, sizeof h - (size_t)n, "%s", extra);
    char t[96];
    snprintf(t, sizeof t, "/api/v1/keygen/%s", KG_A);
    simple_row(name, "GET", t, h, NULL, want_status, want_code);
}

static void test_auth_headers(void **state) {
    (void)state;
    cat_begin("authentication headers");
    store_mark();
    char t[96];
    snprintf(t, sizeof t, "/api/v1/keygen/%s", KG_A);
    gwt_auth a;
    uint64_t now = (uint64_t)time(NULL);
    assert_int_equal(gwt_sign(T.ctx, KP_SA, "GET", t, NULL, 0, now, &a), KM_OK);
    const char *K = a.key, *S = a.ts, *N = a.nonce, *G = a.sig;
    char buf[8][300];
    /* Missing. */
    auth_row("no key", NULL, S, N, G, NULL, 401, "auth_missing");
    auth_row("no timestamp", K, NULL, N, G, NULL, 401, "auth_missing");
    auth_row("no nonce", K, S, NULL, G, NULL, 401, "auth_missing");
    auth_row("no signature", K, S, N, NULL, NULL, 401, "auth_missing");
    auth_row("no headers", NULL, NULL, NULL, NULL, NULL, 401, "auth_missing");
    /* Malformed. */
    snprintf(buf[0], 300, "%.63s", K);
    auth_row("key of 63 digits", buf[0], S, N, G, NULL, 401, "auth_malformed");
    snprintf(buf[0], 300, "%s0", K);
    auth_row("key of 65 digits", buf[0], S, N, G, NULL, 401, "auth_malformed");
    snprintf(buf[0], 300, "%s", K);
    for (char *p = buf[0]; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
    auth_row("uppercase key", buf[0], S, N, G, NULL, 401, "auth_malformed");
    snprintf(buf[0], 300, "g%.63s", K + 1);
    auth_row("non-hex key", buf[0], S, N, G, NULL, 401, "auth_malformed");
    auth_row("empty key", "", S, N, G, NULL, 401, "auth_malformed");
    snprintf(buf[0], 300, "%.31s", N);
    auth_row("nonce of 31 digits", K, S, buf[0], G, NULL, 401, "auth_malformed");
    snprintf(buf[0], 300, "%s00", N);
    auth_row("nonce of 34 digits", K, S, buf[0], G, NULL, 401, "auth_malformed");
    snprintf(buf[0], 300, "X%.31s", N + 1);
    auth_row("non-hex nonce", K, S, buf[0], G, NULL, 401, "auth_malformed");
    snprintf(buf[0], 300, "%.127s", G);
    auth_row("signature of 127 digits", K, S, N, buf[0], NULL, 401, "auth_malformed");
    snprintf(buf[0], 300, "%s00", G);
    auth_row("signature of 130 digits", K, S, N, buf[0], NULL, 401, "auth_malformed");
    snprintf(buf[0], 300, "%.64s", G);
    auth_row("signature of 64 digits", K, S, N, buf[0], NULL, 401, "auth_malformed");
    snprintf(buf[0], 300, "%s", G);
    for (char *p = buf[0]; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
    auth_row("uppercase signature", K, S, N, buf[0], NULL, 401, "auth_malformed");
    auth_row("empty signature", K, S, N, "", NULL, 401, "auth_malformed");
    static const char *const bad_ts[] = {"+1700000000",
                                         "-1",
                                         "1.0",
                                         "01700000000",
                                         "1e9",
                                         "0x65",
                                         "abc",
                                         "",
                                         "18446744073709551616",
                                         "99999999999999999999",
                                         "123456789012345678901"};
    for (size_t i = 0; i < sizeof bad_ts / sizeof bad_ts[0]; i++) {
        snprintf(buf[1], 300, "timestamp '%s'", bad_ts[i]);
        auth_row(buf[1], K, bad_ts[i], N, G, NULL, 401, "auth_malformed");
    }
    /* Well-formed but outside the window. */
    snprintf(buf[0], 300, "%llu", (unsigned long long)(now - 1000));
    auth_row("timestamp 1000 s old", K, buf[0], N, G, NULL, 401, "auth_expired");
    snprintf(buf[0], 300, "%llu", (unsigned long long)(now + 1000));
    auth_row("timestamp 1000 s ahead", K, buf[0], N, G, NULL, 401, "auth_expired");
    auth_row("timestamp 0", K, "0", N, G, NULL, 401, "auth_expired");
    auth_row("timestamp 2^64-1", K, "18446744073709551615", N, G, NULL, 401, "auth_expired");
    /* Well-formed, does not verify. */
    memset(buf[0], '0', 128);
    buf[0][128] = '\0';
    auth_row("all-zero signature", K, S, N, buf[0], NULL, 401, "auth_invalid");
    snprintf(buf[0], 300, "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f%.64s", G + 64);
    auth_row("signature with r = p", K, S, N, buf[0], NULL, 401, "auth_invalid");
    snprintf(buf[0], 300, "%.64sfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", G);
    auth_row("signature with s = n", K, S, N, buf[0], NULL, 401, "auth_invalid");
    snprintf(buf[0], 300, "%s", N);
    buf[0][0] = buf[0][0] == '0' ? '1' : '0';
    auth_row("other nonce than signed", K, S, buf[0], G, NULL, 401, "auth_invalid");
    snprintf(buf[0], 300, "%llu", (unsigned long long)(now - 1));
    auth_row("other timestamp than signed", K, buf[0], N, G, NULL, 401, "auth_invalid");
    unsigned char bad[4][32];
    bad_xonly(bad);
    for (int i = 0; i < 4; i++) {
        hex64_of(bad[i], 32, buf[0]);
        snprintf(buf[1], 300, "key that is no curve point #%d", i);
        auth_row(buf[1], buf[0], S, N, G, NULL, 401, "auth_invalid");
    }
    hex64_of(X_OTHER, 32, buf[0]);
    auth_row("another valid key", buf[0], S, N, G, NULL, 401, "auth_invalid");
    /* Duplicated headers: one request, two candidate values. Refused whatever
     * their order, so that no proxy can pick another one than the gateway. */
    snprintf(buf[2], 300, "X-KeyMeld-Key: %.64s\r\n", buf[0]);
    auth_row("second X-KeyMeld-Key (valid first)", K, S, N, G, buf[2], 401, "auth_malformed");
    snprintf(buf[3], 300, "X-KeyMeld-Key: %s\r\n", K);
    auth_row("second X-KeyMeld-Key (valid second)", buf[0], S, N, G, buf[3], 401, "auth_malformed");
    auth_row("X-KeyMeld-Key twice, same value", K, S, N, G, buf[3], 401, "auth_malformed");
    snprintf(buf[2], 300, "X-KeyMeld-Nonce: %032d\r\n", 0);
    auth_row("second X-KeyMeld-Nonce", K, S, N, G, buf[2], 401, "auth_malformed");
    snprintf(buf[2], 300, "X-KeyMeld-Timestamp: %llu\r\n", (unsigned long long)now + 1);
    auth_row("second X-KeyMeld-Timestamp", K, S, N, G, buf[2], 401, "auth_malformed");
    snprintf(buf[2], 300, "x-keymeld-signature: %s\r\n", G);
    auth_row("second X-KeyMeld-Signature (lowercase name)", K, S, N, G, buf[2], 401, "auth_malformed");
    /* A valid signature by a key that may not read this keygen. */
    assert_int_equal(gwt_sign(T.ctx, &KP_U0, "GET", t, NULL, 0, now, &a), KM_OK);
    auth_row("participant key on a keygen status", a.key, a.ts, a.nonce, a.sig, NULL, 403, "auth_forbidden");

    /* Headers too big for libmicrohttpd's 64 KiB per connection: it answers
     * 431 itself (no JSON body). */
    char *huge = malloc(80000);
    assert_non_null(huge);
    int n = snprintf(huge, 80000, "X-Big: ");
    memset(huge + n, 'a', 70000);
    memcpy(huge + n + 70000, "\r\n", 3);
    size_t len;
    char *req = req_text("GET", "/api/v1/health", huge, NULL, 0, &len);
    raw_row("one 70 KB header", req, len, 431, NULL);
    free(req);
    n = 0;
    for (int i = 0; i < 4000; i++)
        n += snprintf(huge + n, 80000 - (size_t)n, "X-H%d: v\r\n", i);
    req = req_text("GET", "/api/v1/health", huge, NULL, 0, &len);
    raw_row("4000 headers", req, len, 431, NULL);
    free(req);
    char *longt = malloc(100001);
    assert_non_null(longt);
    memcpy(longt, "/api/v1/health?", 15);
    memset(longt + 15, 'q', 99985);
    longt[100000] = '\0';
    req = req_text("GET", longt, NULL, NULL, 0, &len);
    raw_row("100 KB request target", req, len, 414, NULL);
    free(req);
    free(longt);
    free(huge);
    still_serving();
    store_check();
    cat_end();
}

/* ---- 8. bodies on the wire: size, chunking, content type, pipelining ----- */

static void test_wire_bodies(void **state) {
    (void)state;
    cat_begin("body transport");
    store_mark();
    char hdr[256];
    /* Announced above the limit: 413 before any byte of the body. */
    static const char over[] = "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                               "Content-Type: application/json\r\nContent-Length: 262145\r\n\r\n";
    raw_row("Content-Length max_body + 1 (no body sent)", over, strlen(over), 413, "body_too_large");
    static const char huge_cl[] = "POST /api/v1/keygen HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                                  "Content-Length: 18446744073709551615\r\n\r\n";
    raw_row("Content-Length 2^64-1", huge_cl, strlen(huge_cl), 413, "body_too_large");
    /* Sent above the limit, announced and chunked. */
    size_t blen = MAX_BODY + 10;
    char *big = malloc(blen + 1);
    assert_non_null(big);
    memset(big, ' ', blen);
    big[0] = '{';
    big[blen - 1] = '}';
    big[blen] = '\0';
    size_t len;
    char *req =
        req_text("POST", "/api/v1/keys/reserve", "Content-Type: application/json\r\n", big, blen, &len);
    raw_row("body max_body + 10 bytes", req, len, 413, "body_too_large");
    free(req);
    km_buf ch;
    km_buf_init(&ch);
    const char *head = "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(km_buf_put(&ch, head, strlen(head)), KM_OK);
    for (size_t off = 0; off < blen; off += 65536) {
        size_t n = blen - off < 65536 ? blen - off : 65536;
        int k = snprintf(hdr, sizeof hdr, "%zx\r\n", n);
        assert_int_equal(km_buf_put(&ch, hdr, (size_t)k), KM_OK);
        assert_int_equal(km_buf_put(&ch, big + off, n), KM_OK);
        assert_int_equal(km_buf_put(&ch, "\r\n", 2), KM_OK);
    }
    assert_int_equal(km_buf_put(&ch, "0\r\n\r\n", 5), KM_OK);
    raw_row("chunked body over max_body", ch.data, ch.len, 413, "body_too_large");
    km_buf_free(&ch);
    free(big);
    /* Chunked, otherwise well-formed: parsed like any body. */
    static const char cb[] = "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n3\r\n\"a\"\r\n0\r\n\r\n";
    raw_row("chunked broken JSON", cb, strlen(cb), 400, "invalid_json");
    static const char cbad[] = "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                               "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n";
    raw_row("chunk size not hex", cbad, strlen(cbad), 400, NULL);
    static const char cov[] = "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                              "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n{}\r\n0\r\n\r\n";
    raw_row("chunk size overflowing 64 bits", cov, strlen(cov), 413, NULL);
    static const char smug[] = "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                               "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    raw_row("Content-Length and chunked together", smug, strlen(smug), 400, NULL);
    /* Another transfer coding: its body has no length the gateway can find,
     * so it is refused at once, not held until the idle timeout. */
    static const char gz[] = "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                             "Transfer-Encoding: gzip\r\n\r\n{}";
    raw_row("Transfer-Encoding gzip", gz, strlen(gz), 400, "invalid_request");
    static const char gzc[] = "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                              "Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    raw_row("Transfer-Encoding gzip, chunked", gzc, strlen(gzc), 400, "invalid_request");
    static const char te2[] = "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                              "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    raw_row("Transfer-Encoding twice", te2, strlen(te2), 400, "invalid_request");

    /* Content types: the gateway reads every body as JSON whatever the type
     * (API.md section 1), so a bad body is invalid_json under any of them. */
    static const char *const types[] = {"text/plain", "application/x-www-form-urlencoded",
                                        "multipart/form-data; boundary=x", "application/json; charset=latin1",
                                        "application/xml"};
    static const char *const tbodies[] = {
        "key_id=1&user_id=2", "key_id=1&user_id=2",
        "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--", "{\"key_id\":\"\xe9\"}",
        "<a/>"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "Content-Type %s", types[i]);
        body_row(name, "POST", "/api/v1/keys/reserve", types[i], tbodies[i], strlen(tbodies[i]), NULL, 400,
                 MAL_J, NULL, 0);
    }
    body_row("no Content-Type, broken body", "POST", "/api/v1/keys/reserve", NULL, "{", 1, NULL, 400, MAL_J,
             NULL, 0);

    /* Pipelined: a good request then garbage on one connection. The first is
     * answered, the garbage refused, and the server keeps serving. */
    static const char pipe1[] = "GET /api/v1/health HTTP/1.1\r\nHost: a\r\n\r\nGARBAGE\r\n\r\n";
    pipe_row("pipelined garbage after a request", pipe1, 200, NULL, NULL);
    static const char pipe2[] = "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"
                                "\x01\x02\x03\r\n\r\n";
    pipe_row("bytes after the announced body", pipe2, 400, "\"invalid_field\"", NULL);
    static const char pipe3[] = "POST /api/v1/keys/reserve HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n{"
                                "GET /api/v1/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    pipe_row("good request after a broken body", pipe3, 400, "\"invalid_json\"", "HTTP/1.1 200");
    still_serving();
    store_check();
    cat_end();
}

/* Pipelined requests on one connection: the first answer has status1 (and
 * its body contains code1); a later answer starts with then, or, then NULL,
 * no later answer is a success (the garbage is refused or the connection
 * closed). */
static void pipe_row(const char *name, const char *req, int status1, const char *code1, const char *then) {
    gwt_resp r;
    N_CASES++;
    CAT_CASES++;
    if (gwt_raw_bytes(T.port, req, strlen(req), &r) != 0) {
        failf(name, "no HTTP answer");
        return;
    }
    if (r.status != status1 || (code1 && !strstr(r.body, code1)) || (then && !strstr(r.body, then)) ||
        (!then && strstr(r.body, "HTTP/1.1 2")))
        failf(name, "got %d %.300s", r.status, r.body);
    gwt_resp_clear(&r);
}

/* ---- 9. connections that never finish ---------------------------------------- */

static void test_stalled(void **state) {
    (void)state;
    cat_begin("bodies that never finish");
    store_mark();
    /* Every other row was answered while these three sat open. Now each must
     * be closed by the gateway within its idle timeout (+ slack). */
    uint64_t deadline = STALLED_AT_MS + (CONN_TIMEOUT_S + 15) * 1000u;
    static const char *const names[N_STALLED] = {"Content-Length 100, 10 bytes sent", "headers never ended",
                                                 "chunked body never ended", "TLS ClientHello"};
    for (int i = 0; i < N_STALLED; i++) {
        N_CASES++;
        CAT_CASES++;
        int closed = 0;
        char buf[4096];
        while (!closed) {
            uint64_t now = km_gwflow_now_ms();
            struct pollfd p = {STALLED[i], POLLIN, 0};
            int pr = poll(&p, 1, now >= deadline ? 0 : (int)(deadline - now));
            if (pr <= 0) break;
            ssize_t r = recv(STALLED[i], buf, sizeof buf, 0);
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
                closed = 1;
            else if (r > 0 && (!strncmp(buf, "HTTP/1.1 2", 10) || !strncmp(buf, "HTTP/1.0 2", 10)))
                failf(names[i], "answered with success: %.40s", buf);
        }
        uint64_t held = km_gwflow_now_ms() - STALLED_AT_MS;
        if (!closed)
            failf(names[i], "still open after %llu ms", (unsigned long long)held);
        else if (held < (CONN_TIMEOUT_S - 2) * 1000u)
            failf(names[i], "closed after only %llu ms", (unsigned long long)held);
        close(STALLED[i]);
        STALLED[i] = -1;
    }
    still_serving();
    store_check();
    cat_end();

    printf("malformed: categories:");
    for (int i = 0; i < N_CATS; i++)
        printf(" %s=%d%s", CATS[i].name, CATS[i].n, i + 1 < N_CATS ? "," : "\n");
    printf("malformed: %d cases, %d answered otherwise than documented; %d refused after authentication "
           "(nonce recorded as expected)\n",
           N_CASES, N_FAIL, N_NONCE);
    if (N_FAIL == 0) printf("malformed: %d cases, all answered as documented\n", N_CASES);
    assert_int_equal(N_FAIL, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),     cmocka_unit_test(test_broken_json),
        cmocka_unit_test(test_field_types),  cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_semantic),     cmocka_unit_test(test_paths),
        cmocka_unit_test(test_methods),      cmocka_unit_test(test_queries),
        cmocka_unit_test(test_auth_headers), cmocka_unit_test(test_wire_bodies),
        cmocka_unit_test(test_stalled),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
