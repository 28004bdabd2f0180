/* test_store.c — the gateway store against real SQLite files: migrations,
 * durability across reopen, idempotent and conflicting creates, refused
 * transitions that leave the file byte-identical, replay cache, expiry that
 * keeps wallets, exclusive leases between two handles, a newer schema refused,
 * and an interrupted transaction leaving nothing behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <sqlite3.h>

#include "gateway/store.h"
#include "gateway/store_internal.h"

static char g_dir[64];
static unsigned char g_ak[KM_STORE_XONLY_LEN]; /* a participant auth key, set in setup */
static int g_seq;

/* A fresh database path for each test. */
static void db_path(char *out, size_t len) {
    snprintf(out, len, "%s/db%d.sqlite", g_dir, ++g_seq);
}

static void make_id(unsigned char id[KM_STORE_ID_LEN], unsigned tag) {
    memset(id, 0, KM_STORE_ID_LEN);
    id[0] = 0x01;
    id[14] = (unsigned char)(tag >> 8);
    id[15] = (unsigned char)tag;
}

/* A valid BIP-340 x-only key for a small tag: the x coordinate of tag*G,
 * computed by libsecp256k1 (the store refuses anything that does not parse). */
static void make_xonly(unsigned char out[KM_STORE_XONLY_LEN], unsigned tag) {
    static secp256k1_context *ctx;
    if (ctx == NULL) ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    assert_non_null(ctx);
    unsigned char sk[32] = {0};
    sk[30] = (unsigned char)(tag >> 8);
    sk[31] = (unsigned char)tag;
    secp256k1_pubkey pk;
    secp256k1_xonly_pubkey x;
    assert_int_equal(secp256k1_ec_pubkey_create(ctx, &pk, sk), 1);
    assert_int_equal(secp256k1_xonly_pubkey_from_pubkey(ctx, &x, NULL, &pk), 1);
    assert_int_equal(secp256k1_xonly_pubkey_serialize(ctx, out, &x), 1);
}

/* A 64-byte approval signature stand-in (the store does not verify it). */
static void make_sig(unsigned char sig[KM_STORE_APPROVAL_LEN], unsigned tag) {
    memset(sig, (int)(tag & 0xff), KM_STORE_APPROVAL_LEN);
    sig[0] = 0x5a;
}

static km_store *open_ok(const char *path) {
    km_store *st = NULL;
    char msg[160];
    km_err err = km_store_open(&st, path, msg, sizeof msg);
    if (err) printf("open %s: %s (%s)\n", path, km_strerror(err), msg);
    assert_int_equal(err, KM_OK);
    assert_non_null(st);
    return st;
}

static void add_enclave(km_store *st, uint32_t id) {
    km_store_enclave e;
    memset(&e, 0, sizeof e);
    e.id = id;
    snprintf(e.address, sizeof e.address, "vsock:%u:5000", (unsigned)id + 16);
    e.pubkey[0] = 0x02;
    memset(e.pubkey + 1, (int)(0x40 + id), KM_STORE_PUBKEY_LEN - 1);
    memset(e.fingerprint, (int)(0x80 + id), KM_STORE_FINGERPRINT_LEN);
    assert_int_equal(km_store_enclave_put(st, &e), KM_OK);
}

/* A keygen over enclaves 0 and 1 with users 1..3 (user 3 on enclave 1). */
typedef struct fixture_kg {
    unsigned char blob0[40], blob1[40];
    km_store_init_blob inits[2];
    km_store_assignment assign[3];
    km_store_keygen_new kg;
} fixture_kg;

static void make_keygen(fixture_kg *f, unsigned tag, int64_t created, int64_t expires) {
    memset(f, 0, sizeof *f);
    memset(f->blob0, 0xa0, sizeof f->blob0);
    memset(f->blob1, 0xa1, sizeof f->blob1);
    f->inits[0] = (km_store_init_blob){0, f->blob0, sizeof f->blob0};
    f->inits[1] = (km_store_init_blob){1, f->blob1, sizeof f->blob1};
    for (unsigned i = 0; i < 3; i++) {
        make_id(f->assign[i].user_id, 100 + i);
        f->assign[i].enclave_id = i == 2 ? 1 : 0;
    }
    make_id(f->kg.id, tag);
    f->kg.created_at = created;
    f->kg.expires_at = expires;
    f->kg.inits = f->inits;
    f->kg.n_inits = 2;
    f->kg.assignments = f->assign;
    f->kg.n_assignments = 3;
    make_xonly(f->kg.session_auth_key, 1000 + tag);
    f->kg.max_signings = 0;
}

static km_store *fresh_store(char *path, size_t len) {
    db_path(path, len);
    km_store *st = open_ok(path);
    add_enclave(st, 0);
    add_enclave(st, 1);
    return st;
}

static km_store_keygen_state keygen_state(km_store *st, const unsigned char id[KM_STORE_ID_LEN]) {
    km_store_keygen kg;
    assert_int_equal(km_store_keygen_get(st, id, &kg), KM_OK);
    km_store_keygen_state s = kg.state;
    km_store_keygen_clear(&kg);
    return s;
}

static km_store_signing_state signing_state(km_store *st, const unsigned char id[KM_STORE_ID_LEN]) {
    km_store_signing sg;
    assert_int_equal(km_store_signing_get(st, id, &sg), KM_OK);
    km_store_signing_state s = sg.state;
    km_store_signing_clear(&sg);
    return s;
}

/* The whole logical database image through an independent connection. */
static unsigned char *snapshot(const char *path, sqlite3_int64 *len) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    unsigned char *img = sqlite3_serialize(db, "main", len, 0);
    assert_non_null(img);
    sqlite3_close(db);
    return img;
}

static void assert_same_image(const char *path, const unsigned char *before, sqlite3_int64 before_len) {
    sqlite3_int64 len;
    unsigned char *after = snapshot(path, &len);
    assert_int_equal(len, before_len);
    assert_memory_equal(after, before, (size_t)len);
    sqlite3_free(after);
}

/* ---- tests -------------------------------------------------------------------- */

static void test_migrations_from_empty(void **state) {
    (void)state;
    char path[128];
    db_path(path, sizeof path);
    km_store *st = open_ok(path);
    int v = -1;
    assert_int_equal(km_store_schema_version(st, &v), KM_OK);
    assert_int_equal(v, KM_STORE_SCHEMA_VERSION);
    assert_int_equal(km_store_integrity_check(st), KM_OK);
    km_store_close(st);

    /* The journal mode is persistent in the file: WAL. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    /* Exactly one migration row per version, applied once even after reopening. */
    sqlite3_close(db);
    st = open_ok(path);
    km_store_close(st);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*), max(version) FROM schema_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), KM_STORE_SCHEMA_VERSION);
    assert_int_equal(sqlite3_column_int(s, 1), KM_STORE_SCHEMA_VERSION);
    sqlite3_finalize(s);
    sqlite3_close(db);
}

static void test_reopen_keeps_data(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    fixture_kg f;
    make_keygen(&f, 1, 1000, 2000);
    assert_int_equal(km_store_keygen_create(st, &f.kg), KM_OK);
    const unsigned char reg[] = {1, 2, 3, 4, 5};
    assert_int_equal(
        km_store_registration_put(st, f.kg.id, f.assign[2].user_id, reg, sizeof reg, NULL, 0, g_ak, 0, 1001),
        KM_OK);
    km_store_close(st);

    st = open_ok(path);
    km_store_keygen kg;
    assert_int_equal(km_store_keygen_get(st, f.kg.id, &kg), KM_OK);
    assert_int_equal(kg.state, KM_KEYGEN_COLLECTING);
    assert_int_equal(kg.created_at, 1000);
    assert_int_equal(kg.expires_at, 2000);
    assert_int_equal(kg.result.len, 0);
    km_store_keygen_clear(&kg);

    km_store_assignment as[3];
    size_t n = 0;
    assert_int_equal(km_store_keygen_assignments(st, f.kg.id, as, 2, &n), KM_ERR_BUFFER_SMALL);
    assert_int_equal(n, 3);
    assert_int_equal(km_store_keygen_assignments(st, f.kg.id, as, 3, &n), KM_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_memory_equal(as[i].user_id, f.assign[i].user_id, KM_STORE_ID_LEN);
        assert_int_equal(as[i].enclave_id, f.assign[i].enclave_id);
    }
    km_buf b, r;
    km_buf_init(&b);
    km_buf_init(&r);
    assert_int_equal(km_store_keygen_init_get(st, f.kg.id, 1, &b), KM_OK);
    assert_int_equal(b.len, sizeof f.blob1);
    assert_memory_equal(b.data, f.blob1, sizeof f.blob1);
    assert_int_equal(km_store_keygen_init_get(st, f.kg.id, 7, &b), KM_ERR_NOT_FOUND);
    assert_int_equal(b.len, 0);

    assert_int_equal(km_store_registration_get(st, f.kg.id, f.assign[2].user_id, &b, &r), KM_OK);
    assert_int_equal(b.len, sizeof reg);
    assert_memory_equal(b.data, reg, sizeof reg);
    assert_int_equal(r.len, 0); /* record not yet returned by the enclave */
    const unsigned char rec[] = {9, 9, 9};
    assert_int_equal(km_store_registration_set_record(st, f.kg.id, f.assign[2].user_id, rec, sizeof rec),
                     KM_OK);
    assert_int_equal(km_store_registration_set_record(st, f.kg.id, f.assign[2].user_id, rec, sizeof rec),
                     KM_OK);
    const unsigned char rec2[] = {9, 9, 8};
    assert_int_equal(km_store_registration_set_record(st, f.kg.id, f.assign[2].user_id, rec2, sizeof rec2),
                     KM_ERR_DUPLICATE);
    km_store_close(st);

    st = open_ok(path);
    assert_int_equal(km_store_registration_get(st, f.kg.id, f.assign[2].user_id, NULL, &r), KM_OK);
    assert_int_equal(r.len, sizeof rec);
    assert_memory_equal(r.data, rec, sizeof rec);
    unsigned char users[3][KM_STORE_ID_LEN];
    assert_int_equal(km_store_registration_list(st, f.kg.id, users, 3, &n), KM_OK);
    assert_int_equal(n, 1);
    assert_memory_equal(users[0], f.assign[2].user_id, KM_STORE_ID_LEN);
    km_store_enclave e;
    assert_int_equal(km_store_enclave_get(st, 1, &e), KM_OK);
    assert_string_equal(e.address, "vsock:17:5000");
    assert_int_equal(km_store_enclave_get(st, 9, &e), KM_ERR_NOT_FOUND);
    km_buf_free(&b);
    km_buf_free(&r);
    assert_int_equal(km_store_integrity_check(st), KM_OK);
    km_store_close(st);
}

static void test_idempotent_and_conflicting_create(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    fixture_kg f;
    make_keygen(&f, 2, 1000, 2000);
    assert_int_equal(km_store_keygen_create(st, &f.kg), KM_OK);
    assert_int_equal(km_store_keygen_create(st, &f.kg), KM_OK); /* retry */

    sqlite3_int64 len;
    unsigned char *img = snapshot(path, &len);

    fixture_kg g = f;
    g.inits[0].blob = g.blob0;
    g.inits[1].blob = g.blob1;
    g.kg.inits = g.inits;
    g.kg.assignments = g.assign;
    g.blob1[5] ^= 1; /* different ciphertext, same id */
    assert_int_equal(km_store_keygen_create(st, &g.kg), KM_ERR_DUPLICATE);
    g.blob1[5] ^= 1;
    g.assign[0].enclave_id = 1; /* different assignment */
    assert_int_equal(km_store_keygen_create(st, &g.kg), KM_ERR_DUPLICATE);
    g.assign[0].enclave_id = 0;
    g.kg.expires_at = 2001;
    assert_int_equal(km_store_keygen_create(st, &g.kg), KM_ERR_DUPLICATE);
    assert_same_image(path, img, len);

    /* Malformed creates touch nothing. */
    fixture_kg h;
    make_keygen(&h, 3, 1000, 2000);
    h.assign[1].enclave_id = 5; /* no init blob for enclave 5 */
    assert_int_equal(km_store_keygen_create(st, &h.kg), KM_ERR_ARG);
    make_keygen(&h, 3, 1000, 2000);
    memcpy(h.assign[1].user_id, h.assign[0].user_id, KM_STORE_ID_LEN);
    assert_int_equal(km_store_keygen_create(st, &h.kg), KM_ERR_ARG);
    make_keygen(&h, 3, 1000, 1000);
    assert_int_equal(km_store_keygen_create(st, &h.kg), KM_ERR_ARG);
    /* An unknown enclave: the session row is inserted first, then the FK fails;
     * the transaction must take the session row back with it. */
    make_keygen(&h, 3, 1000, 2000);
    h.inits[1].enclave_id = 9;
    h.assign[2].enclave_id = 9;
    assert_int_equal(km_store_keygen_create(st, &h.kg), KM_ERR_NOT_FOUND);
    km_store_keygen kg;
    assert_int_equal(km_store_keygen_get(st, h.kg.id, &kg), KM_ERR_NOT_FOUND);
    assert_same_image(path, img, len);

    /* Pinned enclave key: same key again fine, another key refused. */
    add_enclave(st, 0);
    km_store_enclave e;
    assert_int_equal(km_store_enclave_get(st, 0, &e), KM_OK);
    e.pubkey[10] ^= 1;
    assert_int_equal(km_store_enclave_put(st, &e), KM_ERR_DUPLICATE);
    sqlite3_free(img);
    km_store_close(st);
}

static void test_illegal_transitions(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    fixture_kg f;
    make_keygen(&f, 4, 1000, 2000);
    assert_int_equal(km_store_keygen_create(st, &f.kg), KM_OK);
    const unsigned char res[] = {0x5e, 0xa1, 0xed};

    sqlite3_int64 len;
    unsigned char *img = snapshot(path, &len);
    assert_int_equal(km_store_keygen_set_state(st, f.kg.id, KM_KEYGEN_COMPLETED, NULL, 1100), KM_ERR_STATE);
    assert_int_equal(km_store_keygen_complete(st, f.kg.id, res, sizeof res, 1100), KM_ERR_STATE);
    assert_int_equal(km_store_keygen_set_state(st, f.kg.id, KM_KEYGEN_FAILED, "", 1100), KM_ERR_ARG);
    assert_int_equal(km_store_keygen_set_state(st, f.kg.id, KM_KEYGEN_FAILED, NULL, 1100), KM_ERR_ARG);
    assert_int_equal(km_store_keygen_set_state(st, f.kg.id, (km_store_keygen_state)9, NULL, 1100),
                     KM_ERR_ARG);
    unsigned char missing[KM_STORE_ID_LEN];
    make_id(missing, 999);
    assert_int_equal(km_store_keygen_set_state(st, missing, KM_KEYGEN_FINALIZING, NULL, 1100),
                     KM_ERR_NOT_FOUND);
    assert_same_image(path, img, len);
    sqlite3_free(img);
    assert_int_equal(keygen_state(st, f.kg.id), KM_KEYGEN_COLLECTING);

    /* A signing session needs a completed keygen. */
    km_store_signing_new sn;
    memset(&sn, 0, sizeof sn);
    make_id(sn.id, 40);
    memcpy(sn.keygen_id, f.kg.id, KM_STORE_ID_LEN);
    const unsigned char items[] = {0x17, 0x17};
    sn.items = items;
    sn.items_len = sizeof items;
    sn.created_at = 1200;
    sn.expires_at = 1500;
    sn.needs_approvals = 1;
    assert_int_equal(km_store_signing_create(st, &sn), KM_ERR_STATE);

    assert_int_equal(km_store_keygen_set_state(st, f.kg.id, KM_KEYGEN_FINALIZING, NULL, 1100), KM_OK);
    assert_int_equal(km_store_keygen_set_state(st, f.kg.id, KM_KEYGEN_FINALIZING, NULL, 1100),
                     KM_OK); /* retry */
    /* Registration is closed once finalizing. */
    const unsigned char reg[] = {1};
    assert_int_equal(
        km_store_registration_put(st, f.kg.id, f.assign[0].user_id, reg, 1, NULL, 0, g_ak, 0, 1101),
        KM_ERR_STATE);
    assert_int_equal(km_store_keygen_set_state(st, f.kg.id, KM_KEYGEN_COLLECTING, NULL, 1100), KM_ERR_STATE);
    assert_int_equal(km_store_keygen_complete(st, f.kg.id, res, sizeof res, 1150), KM_OK);
    assert_int_equal(km_store_keygen_complete(st, f.kg.id, res, sizeof res, 1150), KM_OK); /* retry */
    const unsigned char res2[] = {0x5e, 0xa1, 0xee};
    assert_int_equal(km_store_keygen_complete(st, f.kg.id, res2, sizeof res2, 1150), KM_ERR_DUPLICATE);
    assert_int_equal(km_store_keygen_set_state(st, f.kg.id, KM_KEYGEN_FAILED, "late", 1160), KM_ERR_STATE);
    km_store_keygen kg;
    assert_int_equal(km_store_keygen_get(st, f.kg.id, &kg), KM_OK);
    assert_int_equal(kg.state, KM_KEYGEN_COMPLETED);
    assert_int_equal(kg.expires_at, 0);
    assert_string_equal(kg.reason, "");
    assert_int_equal(kg.result.len, sizeof res);
    assert_memory_equal(kg.result.data, res, sizeof res);
    km_store_keygen_clear(&kg);

    /* Signing: approvals, nonces, partials, restart of the nonce round. */
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    const unsigned char nonce_a[] = {0x11, 0x11}, nonce_b[] = {0x12, 0x12}, part_a[] = {0x22};
    const unsigned char *ua = f.assign[0].user_id, *ub = f.assign[1].user_id;
    assert_int_equal(signing_state(st, sn.id), KM_SIGNING_COLLECTING_APPROVALS);
    assert_int_equal(km_store_signing_put_record(st, sn.id, KM_RECORD_NONCE, ua, nonce_a, 2), KM_ERR_STATE);
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_PARTIALS, NULL, 1201), KM_ERR_STATE);
    unsigned char sig[KM_STORE_APPROVAL_LEN], sig2[KM_STORE_APPROVAL_LEN];
    make_sig(sig, 0x67);
    make_sig(sig2, 0x68);
    assert_int_equal(km_store_approval_put(st, sn.id, ua, sig, sizeof sig, 1201), KM_OK);
    assert_int_equal(km_store_approval_put(st, sn.id, ua, sig, sizeof sig, 1202), KM_OK);
    assert_int_equal(km_store_approval_put(st, sn.id, ua, sig2, sizeof sig2, 1202), KM_ERR_DUPLICATE);
    assert_int_equal(km_store_approval_put(st, sn.id, ub, sig, 63, 1202), KM_ERR_ARG); /* not BIP-340 sized */
    size_t n = 0;
    assert_int_equal(km_store_approval_count(st, sn.id, &n), KM_OK);
    assert_int_equal(n, 1);
    assert_int_equal(km_store_approval_get(st, sn.id, ub, NULL), KM_ERR_NOT_FOUND);

    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_NONCES, NULL, 1203), KM_OK);
    assert_int_equal(km_store_approval_put(st, sn.id, ub, sig, sizeof sig, 1203), KM_ERR_STATE);
    assert_int_equal(km_store_signing_put_record(st, sn.id, KM_RECORD_NONCE, ua, nonce_a, 2), KM_OK);
    assert_int_equal(km_store_signing_put_record(st, sn.id, KM_RECORD_NONCE, ua, nonce_a, 2), KM_OK);
    assert_int_equal(km_store_signing_put_record(st, sn.id, KM_RECORD_NONCE, ua, nonce_b, 2),
                     KM_ERR_DUPLICATE);
    assert_int_equal(km_store_signing_put_record(st, sn.id, KM_RECORD_NONCE, ub, nonce_b, 2), KM_OK);
    assert_int_equal(km_store_signing_put_record(st, sn.id, KM_RECORD_PARTIAL, ua, part_a, 1), KM_ERR_STATE);
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_FINALIZING, NULL, 1204), KM_ERR_STATE);
    assert_int_equal(km_store_signing_complete(st, sn.id, res, sizeof res, 1204), KM_ERR_STATE);
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_PARTIALS, NULL, 1204), KM_OK);
    assert_int_equal(km_store_signing_put_record(st, sn.id, KM_RECORD_NONCE, f.assign[2].user_id, nonce_a, 2),
                     KM_ERR_STATE);
    assert_int_equal(km_store_signing_put_record(st, sn.id, KM_RECORD_PARTIAL, ua, part_a, 1), KM_OK);
    km_store_record recs[3];
    assert_int_equal(km_store_signing_records(st, sn.id, KM_RECORD_NONCE, recs, 1, &n), KM_ERR_BUFFER_SMALL);
    assert_int_equal(n, 2);
    assert_int_equal(km_store_signing_records(st, sn.id, KM_RECORD_NONCE, recs, 3, &n), KM_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(recs[0].user_id, ua, KM_STORE_ID_LEN);
    assert_memory_equal(recs[0].blob.data, nonce_a, 2);
    assert_memory_equal(recs[1].user_id, ub, KM_STORE_ID_LEN);
    assert_memory_equal(recs[1].blob.data, nonce_b, 2);
    km_store_records_clear(recs, n);

    /* An enclave restarted: back to nonces; the old round's records are gone. */
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_NONCES, NULL, 1205), KM_OK);
    assert_int_equal(km_store_signing_records(st, sn.id, KM_RECORD_NONCE, recs, 3, &n), KM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(km_store_signing_records(st, sn.id, KM_RECORD_PARTIAL, recs, 3, &n), KM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_COLLECTING_APPROVALS, NULL, 1205),
                     KM_ERR_STATE);
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_PARTIALS, NULL, 1206), KM_OK);
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_FINALIZING, NULL, 1207), KM_OK);
    assert_int_equal(km_store_signing_complete(st, sn.id, res, sizeof res, 1208), KM_OK);
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_FAILED, "late", 1209), KM_ERR_STATE);
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_NONCES, NULL, 1209), KM_ERR_STATE);
    km_store_signing sg;
    assert_int_equal(km_store_signing_get(st, sn.id, &sg), KM_OK);
    assert_int_equal(sg.state, KM_SIGNING_COMPLETED);
    assert_int_equal(sg.expires_at, 0);
    assert_memory_equal(sg.keygen_id, f.kg.id, KM_STORE_ID_LEN);
    assert_int_equal(sg.items.len, sizeof items);
    assert_memory_equal(sg.result.data, res, sizeof res);
    km_store_signing_clear(&sg);

    /* A failed session stays failed, with its reason. */
    make_id(sn.id, 41);
    sn.needs_approvals = 0;
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    assert_int_equal(signing_state(st, sn.id), KM_SIGNING_NONCES);
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_FAILED, "enclave 1 refused", 1210),
                     KM_OK);
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_NONCES, NULL, 1211), KM_ERR_STATE);
    assert_int_equal(km_store_signing_get(st, sn.id, &sg), KM_OK);
    assert_int_equal(sg.state, KM_SIGNING_FAILED);
    assert_string_equal(sg.reason, "enclave 1 refused");
    km_store_signing_clear(&sg);
    assert_int_equal(km_store_integrity_check(st), KM_OK);
    km_store_close(st);
}

static void test_replay_cache(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    unsigned char pk[KM_STORE_PUBKEY_LEN], pk2[KM_STORE_PUBKEY_LEN];
    memset(pk, 0x02, sizeof pk);
    memset(pk2, 0x03, sizeof pk2);
    const unsigned char n1[16] = {1}, n2[16] = {2};
    assert_int_equal(km_store_replay_insert(st, pk, n1, sizeof n1, 100, 400), KM_OK);
    assert_int_equal(km_store_replay_insert(st, pk, n1, sizeof n1, 101, 401), KM_ERR_DUPLICATE);
    assert_int_equal(km_store_replay_insert(st, pk2, n1, sizeof n1, 101, 401), KM_OK); /* other key */
    assert_int_equal(km_store_replay_insert(st, pk, n2, sizeof n2, 300, 600), KM_OK);
    unsigned char big[65] = {0};
    assert_int_equal(km_store_replay_insert(st, pk, big, sizeof big, 100, 400), KM_ERR_ARG);
    assert_int_equal(km_store_replay_insert(st, pk, n1, 0, 100, 400), KM_ERR_ARG);

    size_t removed = 99;
    assert_int_equal(km_store_replay_purge(st, 399, &removed), KM_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(km_store_replay_purge(st, 401, &removed), KM_OK);
    assert_int_equal(removed, 2);
    /* The unexpired one is still a replay; purged ones are forgotten. */
    assert_int_equal(km_store_replay_insert(st, pk, n2, sizeof n2, 402, 700), KM_ERR_DUPLICATE);
    assert_int_equal(km_store_replay_insert(st, pk, n1, sizeof n1, 402, 700), KM_OK);
    km_store_close(st);
}

static void test_expire_keeps_wallets(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    fixture_kg done, stale, fresh, fin;
    make_keygen(&done, 10, 1000, 1100);
    make_keygen(&stale, 11, 1000, 1100);
    make_keygen(&fresh, 12, 1000, 5000);
    make_keygen(&fin, 13, 1000, 1100);
    assert_int_equal(km_store_keygen_create(st, &done.kg), KM_OK);
    assert_int_equal(km_store_keygen_create(st, &stale.kg), KM_OK);
    assert_int_equal(km_store_keygen_create(st, &fresh.kg), KM_OK);
    assert_int_equal(km_store_keygen_create(st, &fin.kg), KM_OK);
    assert_int_equal(km_store_keygen_set_state(st, done.kg.id, KM_KEYGEN_FINALIZING, NULL, 1010), KM_OK);
    const unsigned char res[] = {0xaa};
    assert_int_equal(km_store_keygen_complete(st, done.kg.id, res, 1, 1020), KM_OK);
    assert_int_equal(km_store_keygen_set_state(st, fin.kg.id, KM_KEYGEN_FINALIZING, NULL, 1010), KM_OK);

    km_store_signing_new sn;
    memset(&sn, 0, sizeof sn);
    make_id(sn.id, 50);
    memcpy(sn.keygen_id, done.kg.id, KM_STORE_ID_LEN);
    sn.items = res;
    sn.items_len = 1;
    sn.created_at = 1030;
    sn.expires_at = 1090;
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);

    km_store_session_ref refs[8];
    size_t n = 0;
    assert_int_equal(km_store_list_nonterminal(st, refs, 8, &n), KM_OK);
    assert_int_equal(n, 4); /* stale, fresh, fin, and the signing */
    assert_int_equal(km_store_list_nonterminal(st, refs, 2, &n), KM_ERR_BUFFER_SMALL);
    assert_int_equal(n, 4);

    size_t failed = 0;
    assert_int_equal(km_store_expire(st, 1099, &failed), KM_OK);
    assert_int_equal(failed, 1); /* only the signing (expires 1090) */
    assert_int_equal(km_store_expire(st, 10000000, &failed), KM_OK);
    assert_int_equal(failed, 3); /* stale, fresh, fin; never the completed wallet */
    assert_int_equal(km_store_expire(st, 10000000, &failed), KM_OK);
    assert_int_equal(failed, 0);

    km_store_keygen kg;
    assert_int_equal(km_store_keygen_get(st, done.kg.id, &kg), KM_OK);
    assert_int_equal(kg.state, KM_KEYGEN_COMPLETED);
    assert_memory_equal(kg.result.data, res, 1);
    km_store_keygen_clear(&kg);
    const unsigned char *ids[] = {stale.kg.id, fresh.kg.id, fin.kg.id};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(km_store_keygen_get(st, ids[i], &kg), KM_OK);
        assert_int_equal(kg.state, KM_KEYGEN_FAILED);
        assert_string_equal(kg.reason, "expired");
        km_store_keygen_clear(&kg);
    }
    km_store_signing sg;
    assert_int_equal(km_store_signing_get(st, sn.id, &sg), KM_OK);
    assert_int_equal(sg.state, KM_SIGNING_FAILED);
    assert_string_equal(sg.reason, "expired");
    km_store_signing_clear(&sg);
    assert_int_equal(km_store_list_nonterminal(st, refs, 8, &n), KM_OK);
    assert_int_equal(n, 0);

    /* The wallet survives a restart and still accepts a signing session. */
    km_store_close(st);
    st = open_ok(path);
    make_id(sn.id, 51);
    sn.created_at = 20000000;
    sn.expires_at = 20000100;
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    assert_int_equal(km_store_list_nonterminal(st, refs, 8, &n), KM_OK);
    assert_int_equal(n, 1);
    assert_int_equal(refs[0].kind, KM_STORE_SIGNING);
    assert_memory_equal(refs[0].id, sn.id, KM_STORE_ID_LEN);
    assert_int_equal(refs[0].state, KM_SIGNING_NONCES);
    km_store_close(st);
}

static void test_claim_exclusive(void **state) {
    (void)state;
    char path[128];
    km_store *a = fresh_store(path, sizeof path);
    km_store *b = open_ok(path); /* a second gateway on the same file */
    fixture_kg f;
    make_keygen(&f, 20, 1000, 9000);
    assert_int_equal(km_store_keygen_create(a, &f.kg), KM_OK);

    assert_int_equal(km_store_claim(a, KM_STORE_KEYGEN, f.kg.id, "gw-a", 1000, 1030), KM_OK);
    assert_int_equal(km_store_claim(b, KM_STORE_KEYGEN, f.kg.id, "gw-b", 1001, 1031), KM_ERR_STATE);
    assert_int_equal(km_store_claim(a, KM_STORE_KEYGEN, f.kg.id, "gw-a", 1020, 1050), KM_OK); /* renew */
    assert_int_equal(km_store_claim(b, KM_STORE_KEYGEN, f.kg.id, "gw-b", 1049, 1079), KM_ERR_STATE);
    /* gw-a stalls; its lease ends; gw-b takes over and gw-a is locked out. */
    assert_int_equal(km_store_claim(b, KM_STORE_KEYGEN, f.kg.id, "gw-b", 1050, 1080), KM_OK);
    assert_int_equal(km_store_claim(a, KM_STORE_KEYGEN, f.kg.id, "gw-a", 1051, 1081), KM_ERR_STATE);
    /* Release by a non-owner does nothing; by the owner frees it. */
    assert_int_equal(km_store_release(a, KM_STORE_KEYGEN, f.kg.id, "gw-a"), KM_OK);
    assert_int_equal(km_store_claim(a, KM_STORE_KEYGEN, f.kg.id, "gw-a", 1052, 1082), KM_ERR_STATE);
    assert_int_equal(km_store_release(b, KM_STORE_KEYGEN, f.kg.id, "gw-b"), KM_OK);
    assert_int_equal(km_store_claim(a, KM_STORE_KEYGEN, f.kg.id, "gw-a", 1053, 1083), KM_OK);

    assert_int_equal(km_store_claim(a, KM_STORE_KEYGEN, f.kg.id, "gw-a", 1053, 1053), KM_ERR_ARG);
    assert_int_equal(km_store_claim(a, KM_STORE_KEYGEN, f.kg.id, "", 1053, 1083), KM_ERR_ARG);
    unsigned char missing[KM_STORE_ID_LEN];
    make_id(missing, 777);
    assert_int_equal(km_store_claim(a, KM_STORE_KEYGEN, missing, "gw-a", 1053, 1083), KM_ERR_NOT_FOUND);
    assert_int_equal(km_store_claim(a, KM_STORE_SIGNING, f.kg.id, "gw-a", 1053, 1083), KM_ERR_NOT_FOUND);
    /* Terminal sessions are never driven again. */
    assert_int_equal(km_store_keygen_set_state(b, f.kg.id, KM_KEYGEN_FAILED, "operator abort", 1060), KM_OK);
    assert_int_equal(km_store_claim(b, KM_STORE_KEYGEN, f.kg.id, "gw-b", 5000, 5030), KM_ERR_STATE);
    km_store_close(a);
    km_store_close(b);
}

static void test_future_schema_refused(void **state) {
    (void)state;
    char path[128];
    db_path(path, sizeof path);
    km_store_close(open_ok(path));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "INSERT INTO schema_version(version, applied_at) VALUES (99, 0)", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    sqlite3_int64 len;
    unsigned char *img = snapshot(path, &len);
    km_store *st = (km_store *)1;
    char msg[160];
    assert_int_equal(km_store_open(&st, path, msg, sizeof msg), KM_ERR_UNSUPPORTED);
    assert_null(st);
    assert_non_null(strstr(msg, "99"));
    assert_non_null(strstr(msg, "newer"));
    assert_same_image(path, img, len);
    sqlite3_free(img);

    /* Not a database at all. */
    char junk[128];
    db_path(junk, sizeof junk);
    FILE *fp = fopen(junk, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 4096; i++)
        fputc(0x5a, fp);
    fclose(fp);
    assert_int_equal(km_store_open(&st, junk, msg, sizeof msg), KM_ERR_IO);
    assert_null(st);
    assert_int_equal(km_store_open(&st, NULL, msg, sizeof msg), KM_ERR_ARG);
    assert_int_equal(km_store_open(NULL, path, NULL, 0), KM_ERR_ARG);
}

static void test_rejected_writes_leave_file_identical(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    fixture_kg f;
    make_keygen(&f, 30, 1000, 9000);
    assert_int_equal(km_store_keygen_create(st, &f.kg), KM_OK);
    const unsigned char reg[] = {7, 7};
    assert_int_equal(
        km_store_registration_put(st, f.kg.id, f.assign[0].user_id, reg, 2, NULL, 0, g_ak, 0, 1001), KM_OK);
    unsigned char pk[KM_STORE_PUBKEY_LEN] = {2};
    const unsigned char nonce[] = {1, 2, 3};
    assert_int_equal(km_store_replay_insert(st, pk, nonce, 3, 1000, 2000), KM_OK);

    sqlite3_int64 len;
    unsigned char *img = snapshot(path, &len);
    unsigned char stranger[KM_STORE_ID_LEN];
    make_id(stranger, 555);
    const unsigned char other[] = {7, 8};
    assert_int_equal(km_store_registration_put(st, f.kg.id, stranger, reg, 2, NULL, 0, g_ak, 0, 1002),
                     KM_ERR_NOT_FOUND);
    assert_int_equal(
        km_store_registration_put(st, f.kg.id, f.assign[0].user_id, other, 2, NULL, 0, g_ak, 0, 1002),
        KM_ERR_DUPLICATE);
    assert_int_equal(
        km_store_registration_put(st, f.kg.id, f.assign[0].user_id, reg, 2, NULL, 0, g_ak, 0, 1003), KM_OK);
    assert_int_equal(km_store_replay_insert(st, pk, nonce, 3, 1001, 2001), KM_ERR_DUPLICATE);
    assert_int_equal(km_store_keygen_complete(st, f.kg.id, reg, 2, 1004), KM_ERR_STATE);
    km_store_key k;
    memset(&k, 0, sizeof k);
    make_id(k.key_id, 60);
    make_id(k.user_id, 61);
    make_xonly(k.auth_key, 61);
    k.enclave_id = 9; /* unknown enclave */
    assert_int_equal(km_store_key_put(st, &k, reg, 2), KM_ERR_NOT_FOUND);
    assert_same_image(path, img, len);

    /* Control: the snapshot does see committed writes (through the WAL). */
    k.enclave_id = 1;
    assert_int_equal(km_store_key_put(st, &k, reg, 2), KM_OK);
    sqlite3_int64 len2;
    unsigned char *img2 = snapshot(path, &len2);
    assert_true(len2 != len || memcmp(img2, img, (size_t)len) != 0);
    sqlite3_free(img2);
    sqlite3_free(img);
    km_store_close(st);
}

static void test_keys_and_keysign(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    km_store_key k;
    memset(&k, 0, sizeof k);
    make_id(k.key_id, 70);
    make_id(k.user_id, 71);
    make_xonly(k.auth_key, 71);
    k.enclave_id = 1;
    k.created_at = 500;
    const unsigned char blob[] = {0xec, 0x1e, 0x5};
    assert_int_equal(km_store_key_put(st, &k, blob, sizeof blob), KM_OK);
    assert_int_equal(km_store_key_put(st, &k, blob, sizeof blob), KM_OK);
    k.enclave_id = 0;
    assert_int_equal(km_store_key_put(st, &k, blob, sizeof blob), KM_ERR_DUPLICATE);
    km_store_key out;
    assert_int_equal(km_store_key_get(st, k.key_id, &out), KM_OK);
    assert_int_equal(out.enclave_id, 1);
    assert_memory_equal(out.user_id, k.user_id, KM_STORE_ID_LEN);
    assert_memory_equal(out.import_blob.data, blob, sizeof blob);
    km_buf_free(&out.import_blob);

    unsigned char rq[KM_STORE_ID_LEN], rq2[KM_STORE_ID_LEN];
    make_id(rq, 72);
    make_id(rq2, 73);
    const unsigned char req[] = {0x33};
    assert_int_equal(km_store_keysign_create(st, rq, k.key_id, req, 1, 600, 900), KM_OK);
    assert_int_equal(km_store_keysign_create(st, rq, k.key_id, req, 1, 600, 900), KM_OK);
    assert_int_equal(km_store_keysign_create(st, rq, k.key_id, req, 1, 600, 901), KM_ERR_DUPLICATE);
    assert_int_equal(km_store_keysign_create(st, rq2, k.key_id, req, 1, 600, 900), KM_OK);
    assert_int_equal(km_store_claim(st, KM_STORE_KEYSIGN, rq, "gw", 600, 630), KM_OK);
    const unsigned char sig[] = {0x44, 0x45};
    assert_int_equal(km_store_keysign_finish(st, rq, sig, sizeof sig, NULL, 610), KM_OK);
    assert_int_equal(km_store_keysign_finish(st, rq, NULL, 0, "too late", 611), KM_ERR_STATE);
    km_store_keysign_state ks;
    char reason[KM_STORE_REASON_MAX];
    km_buf r;
    km_buf_init(&r);
    assert_int_equal(km_store_keysign_get(st, rq, &ks, reason, &r), KM_OK);
    assert_int_equal(ks, KM_KEYSIGN_COMPLETED);
    assert_int_equal(r.len, sizeof sig);
    assert_int_equal(km_store_keysign_finish(st, rq2, NULL, 0, "enclave refused", 612), KM_OK);
    assert_int_equal(km_store_keysign_get(st, rq2, &ks, reason, &r), KM_OK);
    assert_int_equal(ks, KM_KEYSIGN_FAILED);
    assert_string_equal(reason, "enclave refused");
    assert_int_equal(r.len, 0);
    km_buf_free(&r);

    assert_int_equal(km_store_key_delete(st, k.key_id), KM_OK);
    assert_int_equal(km_store_key_delete(st, k.key_id), KM_ERR_NOT_FOUND);
    assert_int_equal(km_store_keysign_get(st, rq, &ks, NULL, NULL), KM_ERR_NOT_FOUND); /* cascaded */
    assert_int_equal(km_store_integrity_check(st), KM_OK);
    km_store_close(st);
}

/* A process dies in the middle of a transaction (no COMMIT, no close): on the
 * next open nothing of it is visible and the file is intact. Then the same
 * with an orderly close of a connection holding an open transaction. */
static void test_interrupted_transaction_leaves_nothing(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    km_store_close(st);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *db;
        if (sqlite3_open(path, &db) != SQLITE_OK) _exit(2);
        if (sqlite3_exec(db,
                         "BEGIN IMMEDIATE;"
                         "INSERT INTO enclaves(id, address, pubkey, fingerprint)"
                         " VALUES (7, 'x', zeroblob(33), zeroblob(32));",
                         NULL, NULL, NULL) != SQLITE_OK)
            _exit(3);
        /* Force the uncommitted pages out of the cache into the WAL/db so the
         * crash really leaves bytes behind. */
        (void)sqlite3_db_cacheflush(db);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    st = open_ok(path);
    km_store_enclave e;
    assert_int_equal(km_store_enclave_get(st, 7, &e), KM_ERR_NOT_FOUND);
    assert_int_equal(km_store_enclave_get(st, 1, &e), KM_OK);
    assert_int_equal(km_store_integrity_check(st), KM_OK);
    km_store_close(st);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "BEGIN IMMEDIATE;"
                                  "INSERT INTO enclaves(id, address, pubkey, fingerprint)"
                                  " VALUES (8, 'y', zeroblob(33), zeroblob(32));",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    st = open_ok(path);
    assert_int_equal(km_store_enclave_get(st, 8, &e), KM_ERR_NOT_FOUND);
    assert_int_equal(km_store_integrity_check(st), KM_OK);
    km_store_close(st);
}

static int setup_dir(void **state) {
    (void)state;
    make_xonly(g_ak, 7);
    snprintf(g_dir, sizeof g_dir, "/tmp/km_store_test.XXXXXX");
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations_from_empty),
        cmocka_unit_test(test_reopen_keeps_data),
        cmocka_unit_test(test_idempotent_and_conflicting_create),
        cmocka_unit_test(test_illegal_transitions),
        cmocka_unit_test(test_replay_cache),
        cmocka_unit_test(test_expire_keeps_wallets),
        cmocka_unit_test(test_claim_exclusive),
        cmocka_unit_test(test_future_schema_refused),
        cmocka_unit_test(test_rejected_writes_leave_file_identical),
        cmocka_unit_test(test_keys_and_keysign),
        cmocka_unit_test(test_interrupted_transaction_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
