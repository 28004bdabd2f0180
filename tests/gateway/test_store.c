/* test_store.c — the gateway store against real SQLite files: migrations,
 * durability across reopen, idempotent and conflicting creates, refused
 * transitions that leave the file byte-identical, replay cache, expiry that
 * keeps wallets, exclusive leases between two handles, a newer schema refused,
 * and an interrupted transaction leaving nothing behind. Schema v2: migration
 * of a real v1 file (and a failed migration leaving it intact), auth keys and
 * the signing quota, restart listings, keygen deletion cascades, statistics.
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

    /* Relaxed entries (signed reads) are replays for both kinds of insert,
     * are kept across a reopen, and leave the handle fully durable after. */
    const unsigned char n3[16] = {3};
    assert_int_equal(km_store_replay_insert_relaxed(st, pk, n3, sizeof n3, 403, 700), KM_OK);
    assert_int_equal(km_store_replay_insert_relaxed(st, pk, n3, sizeof n3, 404, 700), KM_ERR_DUPLICATE);
    assert_int_equal(km_store_replay_insert(st, pk, n3, sizeof n3, 404, 700), KM_ERR_DUPLICATE);
    assert_int_equal(km_store_replay_insert_relaxed(st, pk, n1, sizeof n1, 404, 700), KM_ERR_DUPLICATE);
    assert_int_equal(km_store_replay_insert_relaxed(st, pk, n3, 0, 404, 700), KM_ERR_ARG);
    km_store_close(st);
    char msg[128];
    assert_int_equal(km_store_open(&st, path, msg, sizeof msg), KM_OK);
    assert_int_equal(km_store_replay_insert(st, pk, n3, sizeof n3, 405, 700), KM_ERR_DUPLICATE);
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
    km_store_session_ref guard[8];
    memset(refs, 0xee, sizeof refs);
    memcpy(guard, refs, sizeof refs);
    assert_int_equal(km_store_list_nonterminal(st, refs, 2, &n), KM_ERR_BUFFER_SMALL);
    assert_int_equal(n, 4);
    assert_memory_equal(refs, guard, sizeof refs); /* out untouched when too small */

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

#define V1_ROWS                                                                                              \
    "INSERT INTO enclaves VALUES (0, 'vsock:16:5000', zeroblob(33), zeroblob(32));"                          \
    "INSERT INTO keygen_sessions(id, state, created_at, expires_at, updated_at, content_hash, result)"       \
    " VALUES (X'01000000000000000000000000000A01', 'completed', 100, NULL, 150, zeroblob(32), X'AA');"       \
    "INSERT INTO keygen_sessions(id, state, created_at, expires_at, updated_at, content_hash)"               \
    " VALUES (X'01000000000000000000000000000A02', 'collecting', 200, 900, 200, zeroblob(32));"              \
    "INSERT INTO keygen_inits VALUES (X'01000000000000000000000000000A01', 0, X'B0'), "                      \
    "(X'01000000000000000000000000000A02', 0, X'B1');"                                                       \
    "INSERT INTO keygen_assignments VALUES (X'01000000000000000000000000000A01', "                           \
    "X'01000000000000000000000000000B01', 0), (X'01000000000000000000000000000A01', "                        \
    "X'01000000000000000000000000000B02', 0), (X'01000000000000000000000000000A02', "                        \
    "X'01000000000000000000000000000B01', 0);"                                                               \
    "INSERT INTO registrations(keygen_id, user_id, blob, record, registered_at)"                             \
    " VALUES (X'01000000000000000000000000000A01', X'01000000000000000000000000000B01', X'C1', X'D1', "      \
    "110), (X'01000000000000000000000000000A01', X'01000000000000000000000000000B02', X'C2', NULL, 111);"    \
    "INSERT INTO signing_sessions(id, keygen_id, state, reason, items, created_at, expires_at, updated_at,"  \
    " content_hash) VALUES (X'01000000000000000000000000000C01', X'01000000000000000000000000000A01', "      \
    "'collecting_approvals', NULL, X'17', 300, 400, 300, zeroblob(32)),"                                     \
    " (X'01000000000000000000000000000C02', X'01000000000000000000000000000A01', 'failed', 'expired', "      \
    "X'18', 310, 320, 330, zeroblob(32));"                                                                   \
    "INSERT INTO approvals VALUES (X'01000000000000000000000000000C01', "                                    \
    "X'01000000000000000000000000000B02', "                                                                  \
    "X'"                                                                                                     \
    "5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A" \
    "5A5A5A5A5A5A5A5A5A5A5A5A5A', 301);"                                                                     \
    "INSERT INTO keys(key_id, user_id, enclave_id, import_blob, created_at) VALUES "                         \
    "(X'01000000000000000000000000000D01', X'01000000000000000000000000000B01', 0, X'E1', 500);"             \
    "INSERT INTO key_sign_requests(id, key_id, state, request, created_at, expires_at, updated_at, "         \
    "content_hash)"                                                                                          \
    " VALUES (X'01000000000000000000000000000E01', X'01000000000000000000000000000D01', 'pending', X'F1', "  \
    "600, 700, 600, zeroblob(32));"

/* ---- schema v2 ------------------------------------------------------------------ */

static void exec_raw(const char *path, const char *sql, int expect_rc) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL), SQLITE_OK);
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if ((rc & 0xff) != expect_rc) printf("exec_raw: %s -> %s\n", sql, sqlite3_errmsg(db));
    assert_int_equal(rc & 0xff, expect_rc);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static sqlite3_int64 raw_int(const char *path, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    sqlite3_int64 v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void complete_keygen(km_store *st, const unsigned char id[KM_STORE_ID_LEN]) {
    const unsigned char res[] = {0xaa, 0xbb};
    assert_int_equal(km_store_keygen_set_state(st, id, KM_KEYGEN_FINALIZING, NULL, 1500), KM_OK);
    assert_int_equal(km_store_keygen_complete(st, id, res, sizeof res, 1501), KM_OK);
}

static void make_signing(km_store_signing_new *sn, unsigned tag, const unsigned char keygen[KM_STORE_ID_LEN],
                         int needs_approvals) {
    static const unsigned char items[] = {0x17, 0x18};
    memset(sn, 0, sizeof *sn);
    make_id(sn->id, tag);
    memcpy(sn->keygen_id, keygen, KM_STORE_ID_LEN);
    sn->items = items;
    sn->items_len = sizeof items;
    sn->created_at = 1600;
    sn->expires_at = 1900;
    sn->needs_approvals = needs_approvals;
}

/* A database written by the v1 code only (its migration, rows as v1 wrote
 * them), then opened by this code: migration 2 must keep every row, give the
 * new columns their fail-closed defaults, and seed the signing counter. */
static void test_migration_v1_to_v2(void **state) {
    (void)state;
    char path[128];
    db_path(path, sizeof path);
    km_store *st = NULL;
    assert_int_equal(km_store_open_version(&st, path, 1, NULL, 0), KM_OK);
    int v = 0;
    assert_int_equal(km_store_schema_version(st, &v), KM_OK);
    assert_int_equal(v, 1);
    km_store_close(st);
    exec_raw(path, V1_ROWS, SQLITE_OK);

    st = open_ok(path);
    assert_int_equal(km_store_schema_version(st, &v), KM_OK);
    assert_int_equal(v, KM_STORE_SCHEMA_VERSION);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM schema_version WHERE version IN (1, 2, 3)"), 3);
    assert_int_equal(km_store_integrity_check(st), KM_OK);

    unsigned char k1[KM_STORE_ID_LEN], k2[KM_STORE_ID_LEN], u1[KM_STORE_ID_LEN], u2[KM_STORE_ID_LEN];
    unsigned char s1[KM_STORE_ID_LEN], key1[KM_STORE_ID_LEN], r1[KM_STORE_ID_LEN];
    make_id(k1, 0x0A01);
    make_id(k2, 0x0A02);
    make_id(u1, 0x0B01);
    make_id(u2, 0x0B02);
    make_id(s1, 0x0C01);
    make_id(key1, 0x0D01);
    make_id(r1, 0x0E01);
    const unsigned char zero[KM_STORE_XONLY_LEN] = {0};

    km_store_keygen kg;
    assert_int_equal(km_store_keygen_get(st, k1, &kg), KM_OK);
    assert_int_equal(kg.state, KM_KEYGEN_COMPLETED);
    assert_int_equal(kg.created_at, 100);
    assert_int_equal(kg.result.len, 1);
    assert_int_equal(kg.result.data[0], 0xaa);
    assert_memory_equal(kg.session_auth_key, zero, KM_STORE_XONLY_LEN);
    assert_int_equal(kg.max_signings, 0);
    km_store_keygen_clear(&kg);

    unsigned char ak[KM_STORE_XONLY_LEN];
    uint8_t flags = 0xff;
    assert_int_equal(km_store_registration_info(st, k1, u1, ak, &flags), KM_OK);
    assert_memory_equal(ak, zero, KM_STORE_XONLY_LEN);
    assert_int_equal(flags, 0);
    km_buf b, r;
    km_buf_init(&b);
    km_buf_init(&r);
    assert_int_equal(km_store_registration_get(st, k1, u1, &b, &r), KM_OK);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.data[0], 0xc1);
    assert_int_equal(r.len, 1);
    assert_int_equal(r.data[0], 0xd1);

    size_t n = 99;
    assert_int_equal(km_store_signing_count(st, k1, &n), KM_OK);
    assert_int_equal(n, 2); /* seeded from the two v1 sessions, failed one included */
    assert_int_equal(km_store_signing_count(st, k2, &n), KM_OK);
    assert_int_equal(n, 0);

    unsigned char users[2][KM_STORE_ID_LEN], sigs[2][KM_STORE_APPROVAL_LEN], want_sig[KM_STORE_APPROVAL_LEN];
    memset(want_sig, 0x5a, sizeof want_sig);
    assert_int_equal(km_store_approval_list(st, s1, users, sigs, 2, &n), KM_OK);
    assert_int_equal(n, 1);
    assert_memory_equal(users[0], u2, KM_STORE_ID_LEN);
    assert_memory_equal(sigs[0], want_sig, KM_STORE_APPROVAL_LEN);

    km_store_key key;
    assert_int_equal(km_store_key_get(st, key1, &key), KM_OK);
    assert_memory_equal(key.auth_key, zero, KM_STORE_XONLY_LEN);
    assert_int_equal(key.has_origin, 0);
    assert_int_equal(key.import_blob.len, 1);
    assert_int_equal(key.created_at, 500);
    km_buf_free(&key.import_blob);

    unsigned char kid[KM_STORE_ID_LEN];
    int64_t created = 0, expires = 0;
    assert_int_equal(km_store_keysign_get_request(st, r1, kid, &b, &created, &expires), KM_OK);
    assert_memory_equal(kid, key1, KM_STORE_ID_LEN);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.data[0], 0xf1);
    assert_int_equal(created, 600);
    assert_int_equal(expires, 700);

    unsigned char ids[4][KM_STORE_ID_LEN];
    assert_int_equal(km_store_keygen_list(st, 0, 0xf, ids, 4, &n), KM_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(ids[0], k1, KM_STORE_ID_LEN);
    assert_memory_equal(ids[1], k2, KM_STORE_ID_LEN);

    /* The migrated file takes v2 writes: the counter continues from 2. */
    km_store_signing_new sn;
    make_signing(&sn, 0x0C03, k1, 0);
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    assert_int_equal(km_store_signing_count(st, k1, &n), KM_OK);
    assert_int_equal(n, 3);
    const unsigned char blob[] = {0xc3};
    assert_int_equal(km_store_registration_put(st, k2, u1, blob, 1, NULL, 0, g_ak, 0, 1000), KM_OK);
    /* The fail-closed sentinel cannot be written as a real key. */
    assert_int_equal(km_store_registration_put(st, k2, u1, blob, 1, NULL, 0, zero, 0, 1000), KM_ERR_ARG);
    km_buf_free(&b);
    km_buf_free(&r);
    assert_int_equal(km_store_integrity_check(st), KM_OK);
    km_store_close(st);

    /* A migration that fails half-way (an object it creates already exists)
     * is rolled back whole: the file stays a v1 file, byte for byte. */
    char path2[128];
    db_path(path2, sizeof path2);
    assert_int_equal(km_store_open_version(&st, path2, 1, NULL, 0), KM_OK);
    km_store_close(st);
    exec_raw(path2, V1_ROWS, SQLITE_OK);
    exec_raw(path2, "CREATE INDEX keys_enclave ON keys(key_id)", SQLITE_OK);
    sqlite3_int64 len;
    unsigned char *img = snapshot(path2, &len);
    char msg[160];
    st = (km_store *)1;
    assert_int_not_equal(km_store_open(&st, path2, msg, sizeof msg), KM_OK);
    assert_null(st);
    assert_true(msg[0] != '\0');
    assert_same_image(path2, img, len);
    assert_int_equal(raw_int(path2, "SELECT max(version) FROM schema_version"), 1);
    sqlite3_free(img);

    assert_int_equal(km_store_open_version(&st, path2, 0, NULL, 0), KM_ERR_ARG);
    assert_int_equal(km_store_open_version(&st, path2, KM_STORE_SCHEMA_VERSION + 1, NULL, 0), KM_ERR_ARG);
}

/* A keygen copy whose pointers refer to its own arrays. */
static void copy_fixture(fixture_kg *dst, const fixture_kg *src) {
    *dst = *src;
    dst->inits[0].blob = dst->blob0;
    dst->inits[1].blob = dst->blob1;
    dst->kg.inits = dst->inits;
    dst->kg.assignments = dst->assign;
}

static void test_keygen_auth_and_quota(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    fixture_kg f, g;
    make_keygen(&f, 200, 1000, 2000);
    f.kg.max_signings = 2;
    assert_int_equal(km_store_keygen_create(st, &f.kg), KM_OK);
    km_store_keygen kg;
    assert_int_equal(km_store_keygen_get(st, f.kg.id, &kg), KM_OK);
    assert_memory_equal(kg.session_auth_key, f.kg.session_auth_key, KM_STORE_XONLY_LEN);
    assert_int_equal(kg.max_signings, 2);
    km_store_keygen_clear(&kg);

    sqlite3_int64 len;
    unsigned char *img = snapshot(path, &len);
    copy_fixture(&g, &f);
    assert_int_equal(km_store_keygen_create(st, &g.kg), KM_OK); /* identical retry */
    make_xonly(g.kg.session_auth_key, 999);
    assert_int_equal(km_store_keygen_create(st, &g.kg), KM_ERR_DUPLICATE);
    copy_fixture(&g, &f);
    g.kg.max_signings = 3;
    assert_int_equal(km_store_keygen_create(st, &g.kg), KM_ERR_DUPLICATE);
    make_keygen(&g, 201, 1000, 2000);
    memset(g.kg.session_auth_key, 0, KM_STORE_XONLY_LEN); /* the v1 sentinel */
    assert_int_equal(km_store_keygen_create(st, &g.kg), KM_ERR_ARG);
    memset(g.kg.session_auth_key, 0xff, KM_STORE_XONLY_LEN); /* x >= p */
    assert_int_equal(km_store_keygen_create(st, &g.kg), KM_ERR_ARG);
    assert_same_image(path, img, len);
    sqlite3_free(img);
    /* The schema itself refuses to swap the key or lift the quota. */
    exec_raw(path, "UPDATE keygen_sessions SET session_auth_key = zeroblob(32)", SQLITE_CONSTRAINT);
    exec_raw(path, "UPDATE keygen_sessions SET max_signings = 0", SQLITE_CONSTRAINT);

    km_store_signing_new sn;
    size_t n = 99;
    make_signing(&sn, 210, f.kg.id, 0);
    assert_int_equal(km_store_signing_create(st, &sn), KM_ERR_STATE); /* not yet a wallet */
    assert_int_equal(km_store_signing_count(st, f.kg.id, &n), KM_OK);
    assert_int_equal(n, 0);
    complete_keygen(st, f.kg.id);
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK); /* a retry is not a new session */
    assert_int_equal(km_store_signing_count(st, f.kg.id, &n), KM_OK);
    assert_int_equal(n, 1);
    make_signing(&sn, 211, f.kg.id, 1);
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    img = snapshot(path, &len);
    make_signing(&sn, 212, f.kg.id, 0);
    assert_int_equal(km_store_signing_create(st, &sn), KM_ERR_RANGE);
    assert_same_image(path, img, len);
    sqlite3_free(img);
    km_store_signing sg;
    assert_int_equal(km_store_signing_get(st, sn.id, &sg), KM_ERR_NOT_FOUND);
    make_signing(&sn, 210, f.kg.id, 0);
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK); /* retries still answer after the quota */
    assert_int_equal(km_store_signing_count(st, f.kg.id, &n), KM_OK);
    assert_int_equal(n, 2);
    exec_raw(path, "UPDATE keygen_sessions SET signings_created = 0", SQLITE_CONSTRAINT);

    /* 0 = unlimited. */
    fixture_kg u;
    make_keygen(&u, 220, 1000, 2000);
    assert_int_equal(km_store_keygen_create(st, &u.kg), KM_OK);
    complete_keygen(st, u.kg.id);
    for (unsigned i = 0; i < 5; i++) {
        make_signing(&sn, 230 + i, u.kg.id, 0);
        assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    }
    assert_int_equal(km_store_signing_count(st, u.kg.id, &n), KM_OK);
    assert_int_equal(n, 5);

    /* The cap on sessions in progress is checked in the creating
     * transaction too: 5 are in progress, so with max_active 5 a sixth is
     * refused and nothing is written; a repeat is still answered; once one
     * is final the sixth is taken. */
    img = snapshot(path, &len);
    make_signing(&sn, 240, u.kg.id, 0);
    sn.max_active = 5;
    assert_int_equal(km_store_signing_create(st, &sn), KM_ERR_RANGE);
    assert_same_image(path, img, len);
    sqlite3_free(img);
    size_t active = 0;
    assert_int_equal(km_store_signing_active_count(st, u.kg.id, 5, &active), KM_OK);
    assert_int_equal(active, 5);
    make_signing(&sn, 230, u.kg.id, 0);
    sn.max_active = 5;
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_FAILED, "done", 1300), KM_OK);
    make_signing(&sn, 240, u.kg.id, 0);
    sn.max_active = 5;
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    make_signing(&sn, 241, u.kg.id, 0); /* max_active 0: no cap */
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    unsigned char missing[KM_STORE_ID_LEN];
    make_id(missing, 4242);
    n = 7;
    assert_int_equal(km_store_signing_count(st, missing, &n), KM_ERR_NOT_FOUND);
    assert_int_equal(n, 0);
    assert_int_equal(km_store_signing_count(st, missing, NULL), KM_ERR_ARG);
    km_store_close(st);
}

static void test_keygen_list_and_delete(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    /* A completed (rich), B collecting, C finalizing (enclave 0 only),
     * D failed, E completed with its own signing session. */
    fixture_kg a, b, c, d, e;
    make_keygen(&a, 301, 3000, 9000);
    make_keygen(&b, 300, 3000, 9000); /* same created_at as A, smaller id: listed first */
    make_keygen(&c, 302, 2000, 9000);
    c.kg.n_inits = 1;
    for (size_t i = 0; i < 3; i++)
        c.assign[i].enclave_id = 0;
    make_keygen(&d, 303, 4000, 9000);
    make_keygen(&e, 304, 5000, 9000);
    fixture_kg *all[] = {&a, &b, &c, &d, &e};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(km_store_keygen_create(st, &all[i]->kg), KM_OK);
    const unsigned char reg[] = {0x42};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(
            km_store_registration_put(st, a.kg.id, a.assign[i].user_id, reg, 1, reg, 1, g_ak, 1, 3001),
            KM_OK);
    assert_int_equal(
        km_store_registration_put(st, b.kg.id, b.assign[0].user_id, reg, 1, NULL, 0, g_ak, 0, 3001), KM_OK);
    complete_keygen(st, a.kg.id);
    complete_keygen(st, e.kg.id);
    assert_int_equal(km_store_keygen_set_state(st, c.kg.id, KM_KEYGEN_FINALIZING, NULL, 3002), KM_OK);
    assert_int_equal(km_store_keygen_set_state(st, d.kg.id, KM_KEYGEN_FAILED, "enclave lost", 3002), KM_OK);

    unsigned char ids[6][KM_STORE_ID_LEN];
    size_t n = 0;
    assert_int_equal(km_store_keygen_list(st, KM_STORE_ANY_ENCLAVE, 0xf, ids, 6, &n), KM_OK);
    assert_int_equal(n, 5);
    const fixture_kg *order[] = {&c, &b, &a, &d, &e};
    for (size_t i = 0; i < 5; i++)
        assert_memory_equal(ids[i], order[i]->kg.id, KM_STORE_ID_LEN);
    const uint32_t live =
        (1u << KM_KEYGEN_COLLECTING) | (1u << KM_KEYGEN_FINALIZING) | (1u << KM_KEYGEN_COMPLETED);
    assert_int_equal(km_store_keygen_list(st, 1, live, ids, 6, &n), KM_OK);
    assert_int_equal(n, 3); /* C has no init for enclave 1; D is failed */
    assert_memory_equal(ids[0], b.kg.id, KM_STORE_ID_LEN);
    assert_memory_equal(ids[1], a.kg.id, KM_STORE_ID_LEN);
    assert_memory_equal(ids[2], e.kg.id, KM_STORE_ID_LEN);
    assert_int_equal(km_store_keygen_list(st, 0, 1u << KM_KEYGEN_FINALIZING, ids, 6, &n), KM_OK);
    assert_int_equal(n, 1);
    assert_memory_equal(ids[0], c.kg.id, KM_STORE_ID_LEN);
    assert_int_equal(km_store_keygen_list(st, 7, 0xf, ids, 6, &n), KM_OK);
    assert_int_equal(n, 0);
    /* Too small: the total, and the buffer untouched. */
    unsigned char guard[6][KM_STORE_ID_LEN];
    memset(ids, 0xee, sizeof ids);
    memcpy(guard, ids, sizeof ids);
    assert_int_equal(km_store_keygen_list(st, 1, live, ids, 2, &n), KM_ERR_BUFFER_SMALL);
    assert_int_equal(n, 3);
    assert_memory_equal(ids, guard, sizeof ids);
    assert_int_equal(km_store_keygen_list(st, 1, live, NULL, 0, &n), KM_ERR_BUFFER_SMALL);
    assert_int_equal(n, 3);
    assert_int_equal(km_store_keygen_list(st, 1, 0, ids, 6, &n), KM_ERR_ARG);
    assert_int_equal(km_store_keygen_list(st, 1, 1u << 4, ids, 6, &n), KM_ERR_ARG);
    assert_int_equal(km_store_keygen_list(st, 1, live, NULL, 6, &n), KM_ERR_ARG);

    /* Signing sessions with approvals and records on A and on E; a key whose origin is A. */
    km_store_signing_new s1, s2, se;
    make_signing(&s1, 310, a.kg.id, 1);
    make_signing(&s2, 311, a.kg.id, 0);
    make_signing(&se, 312, e.kg.id, 1);
    assert_int_equal(km_store_signing_create(st, &s1), KM_OK);
    assert_int_equal(km_store_signing_create(st, &s2), KM_OK);
    assert_int_equal(km_store_signing_create(st, &se), KM_OK);
    unsigned char sig[KM_STORE_APPROVAL_LEN];
    make_sig(sig, 1);
    assert_int_equal(km_store_approval_put(st, s1.id, a.assign[0].user_id, sig, sizeof sig, 1601), KM_OK);
    assert_int_equal(km_store_approval_put(st, se.id, e.assign[0].user_id, sig, sizeof sig, 1601), KM_OK);
    assert_int_equal(km_store_signing_put_record(st, s2.id, KM_RECORD_NONCE, a.assign[1].user_id, reg, 1),
                     KM_OK);
    km_store_key k;
    memset(&k, 0, sizeof k);
    make_id(k.key_id, 320);
    make_id(k.user_id, 321);
    make_xonly(k.auth_key, 321);
    k.has_origin = 1;
    memcpy(k.origin_keygen, a.kg.id, KM_STORE_ID_LEN);
    assert_int_equal(km_store_key_put(st, &k, reg, 1), KM_OK);

    assert_int_equal(km_store_keygen_delete(st, a.kg.id), KM_OK);
    km_store_keygen kg;
    assert_int_equal(km_store_keygen_get(st, a.kg.id, &kg), KM_ERR_NOT_FOUND);
    km_store_signing sg;
    assert_int_equal(km_store_signing_get(st, s1.id, &sg), KM_ERR_NOT_FOUND);
    assert_int_equal(km_store_signing_get(st, s2.id, &sg), KM_ERR_NOT_FOUND);
    /* Nothing that referenced A is left anywhere. */
    static const char *const orphans[] = {
        "SELECT count(*) FROM keygen_inits WHERE keygen_id NOT IN (SELECT id FROM keygen_sessions)",
        "SELECT count(*) FROM keygen_assignments WHERE keygen_id NOT IN (SELECT id FROM keygen_sessions)",
        "SELECT count(*) FROM registrations WHERE keygen_id NOT IN (SELECT id FROM keygen_sessions)",
        "SELECT count(*) FROM signing_records WHERE signing_id NOT IN (SELECT id FROM signing_sessions)",
        "SELECT count(*) FROM approvals WHERE signing_id NOT IN (SELECT id FROM signing_sessions)",
    };
    for (size_t i = 0; i < sizeof orphans / sizeof orphans[0]; i++)
        assert_int_equal(raw_int(path, orphans[i]), 0);
    /* Exact remaining counts: B, C, D, E intact (4 keygens: 2+1+2+2 inits, 12 assignments). */
    assert_int_equal(raw_int(path, "SELECT count(*) FROM keygen_sessions"), 4);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM keygen_inits"), 7);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM keygen_assignments"), 12);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM registrations"), 1);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM signing_sessions"), 1);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM approvals"), 1);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM signing_records"), 0);
    unsigned char users[1][KM_STORE_ID_LEN], sigs[1][KM_STORE_APPROVAL_LEN];
    assert_int_equal(km_store_approval_list(st, se.id, users, sigs, 1, &n), KM_OK);
    assert_int_equal(n, 1);
    assert_int_equal(km_store_registration_list(st, b.kg.id, users, 1, &n), KM_OK);
    assert_int_equal(n, 1);
    /* The key imported from A outlives it, origin kept as a record. */
    km_store_key out;
    assert_int_equal(km_store_key_get(st, k.key_id, &out), KM_OK);
    assert_int_equal(out.has_origin, 1);
    assert_memory_equal(out.origin_keygen, a.kg.id, KM_STORE_ID_LEN);
    km_buf_free(&out.import_blob);
    assert_int_equal(km_store_integrity_check(st), KM_OK);

    sqlite3_int64 len;
    unsigned char *img = snapshot(path, &len);
    assert_int_equal(km_store_keygen_delete(st, a.kg.id), KM_ERR_NOT_FOUND);
    assert_int_equal(km_store_keygen_delete(st, NULL), KM_ERR_ARG);
    assert_same_image(path, img, len);
    sqlite3_free(img);
    /* Any state can be deleted: a collecting keygen with a registration. */
    assert_int_equal(km_store_keygen_delete(st, b.kg.id), KM_OK);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM registrations"), 0);
    assert_int_equal(km_store_keygen_list(st, KM_STORE_ANY_ENCLAVE, 0xf, ids, 6, &n), KM_OK);
    assert_int_equal(n, 3);
    assert_int_equal(km_store_integrity_check(st), KM_OK);
    km_store_close(st);
}

static void test_registration_auth(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    fixture_kg f;
    make_keygen(&f, 400, 1000, 9000);
    assert_int_equal(km_store_keygen_create(st, &f.kg), KM_OK);
    unsigned char ak1[KM_STORE_XONLY_LEN], ak2[KM_STORE_XONLY_LEN], zero[KM_STORE_XONLY_LEN] = {0};
    make_xonly(ak1, 401);
    make_xonly(ak2, 402);
    const unsigned char *u0 = f.assign[0].user_id, *u1 = f.assign[1].user_id, *u2 = f.assign[2].user_id;
    const unsigned char blob[] = {0x10, 0x20};
    assert_int_equal(km_store_registration_put(st, f.kg.id, u0, blob, 2, NULL, 0, ak1,
                                               KM_STORE_REG_REQUIRES_APPROVAL, 1001),
                     KM_OK);
    assert_int_equal(km_store_registration_put(st, f.kg.id, u1, blob, 2, NULL, 0, ak2, 0, 1002), KM_OK);

    sqlite3_int64 len;
    unsigned char *img = snapshot(path, &len);
    assert_int_equal(km_store_registration_put(st, f.kg.id, u0, blob, 2, NULL, 0, ak1,
                                               KM_STORE_REG_REQUIRES_APPROVAL, 1003),
                     KM_OK); /* identical retry */
    assert_int_equal(km_store_registration_put(st, f.kg.id, u0, blob, 2, NULL, 0, ak1, 0, 1003),
                     KM_ERR_DUPLICATE);
    assert_int_equal(km_store_registration_put(st, f.kg.id, u0, blob, 2, NULL, 0, ak2,
                                               KM_STORE_REG_REQUIRES_APPROVAL, 1003),
                     KM_ERR_DUPLICATE);
    assert_int_equal(km_store_registration_put(st, f.kg.id, u2, blob, 2, NULL, 0, ak1, 0x02, 1003),
                     KM_ERR_ARG);
    assert_int_equal(km_store_registration_put(st, f.kg.id, u2, blob, 2, NULL, 0, zero, 0, 1003), KM_ERR_ARG);
    assert_int_equal(km_store_registration_put(st, f.kg.id, u2, blob, 2, NULL, 0, NULL, 0, 1003), KM_ERR_ARG);
    assert_same_image(path, img, len);
    sqlite3_free(img);
    exec_raw(path, "UPDATE registrations SET flags = 0", SQLITE_CONSTRAINT);
    exec_raw(path, "UPDATE registrations SET auth_key = zeroblob(32)", SQLITE_CONSTRAINT);
    km_store_close(st);

    st = open_ok(path);
    unsigned char ak[KM_STORE_XONLY_LEN];
    uint8_t flags = 0;
    assert_int_equal(km_store_registration_info(st, f.kg.id, u0, ak, &flags), KM_OK);
    assert_memory_equal(ak, ak1, KM_STORE_XONLY_LEN);
    assert_int_equal(flags, KM_STORE_REG_REQUIRES_APPROVAL);
    assert_int_equal(km_store_registration_info(st, f.kg.id, u1, ak, &flags), KM_OK);
    assert_memory_equal(ak, ak2, KM_STORE_XONLY_LEN);
    assert_int_equal(flags, 0);
    memset(ak, 0xee, sizeof ak);
    flags = 0xee;
    assert_int_equal(km_store_registration_info(st, f.kg.id, u2, ak, &flags),
                     KM_ERR_NOT_FOUND); /* assigned only */
    assert_memory_equal(ak, zero, KM_STORE_XONLY_LEN);
    assert_int_equal(flags, 0);
    unsigned char missing[KM_STORE_ID_LEN];
    make_id(missing, 4401);
    assert_int_equal(km_store_registration_info(st, missing, u0, ak, &flags), KM_ERR_NOT_FOUND);
    assert_int_equal(km_store_registration_info(st, f.kg.id, u0, ak, NULL), KM_ERR_ARG);
    assert_int_equal(km_store_registration_info(st, f.kg.id, u0, NULL, &flags), KM_ERR_ARG);
    km_store_close(st);
}

static void test_approval_list(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    fixture_kg f;
    make_keygen(&f, 500, 1000, 9000);
    assert_int_equal(km_store_keygen_create(st, &f.kg), KM_OK);
    complete_keygen(st, f.kg.id);
    km_store_signing_new sn, quiet;
    make_signing(&sn, 510, f.kg.id, 1);
    make_signing(&quiet, 511, f.kg.id, 1);
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    assert_int_equal(km_store_signing_create(st, &quiet), KM_OK);
    /* Approvals arrive out of user order. */
    static const size_t arrival[] = {2, 0, 1};
    unsigned char sig[3][KM_STORE_APPROVAL_LEN];
    for (size_t i = 0; i < 3; i++) {
        size_t u = arrival[i];
        make_sig(sig[u], (unsigned)(0x30 + u));
        assert_int_equal(km_store_approval_put(st, sn.id, f.assign[u].user_id, sig[u], KM_STORE_APPROVAL_LEN,
                                               1700 + (int64_t)i),
                         KM_OK);
    }
    unsigned char users[3][KM_STORE_ID_LEN], sigs[3][KM_STORE_APPROVAL_LEN];
    size_t n = 0;
    assert_int_equal(km_store_approval_list(st, sn.id, users, sigs, 3, &n), KM_OK);
    assert_int_equal(n, 3);
    for (size_t u = 0; u < 3; u++) {
        assert_memory_equal(users[u], f.assign[u].user_id, KM_STORE_ID_LEN);
        assert_memory_equal(sigs[u], sig[u], KM_STORE_APPROVAL_LEN);
    }
    unsigned char gu[3][KM_STORE_ID_LEN], gs[3][KM_STORE_APPROVAL_LEN];
    memset(users, 0xee, sizeof users);
    memset(sigs, 0xee, sizeof sigs);
    memcpy(gu, users, sizeof gu);
    memcpy(gs, sigs, sizeof gs);
    assert_int_equal(km_store_approval_list(st, sn.id, users, sigs, 2, &n), KM_ERR_BUFFER_SMALL);
    assert_int_equal(n, 3);
    assert_memory_equal(users, gu, sizeof gu);
    assert_memory_equal(sigs, gs, sizeof gs);
    assert_int_equal(km_store_approval_list(st, sn.id, NULL, NULL, 0, &n), KM_ERR_BUFFER_SMALL);
    assert_int_equal(n, 3);
    assert_int_equal(km_store_approval_list(st, quiet.id, NULL, NULL, 0, &n), KM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(km_store_approval_list(st, sn.id, users, NULL, 3, &n), KM_ERR_ARG);
    assert_int_equal(km_store_approval_list(st, sn.id, NULL, sigs, 3, &n), KM_ERR_ARG);
    n = 5;
    assert_int_equal(km_store_approval_list(st, f.kg.id, users, sigs, 3, &n),
                     KM_ERR_NOT_FOUND); /* not a session */
    assert_int_equal(n, 0);
    km_store_close(st);
}

/* A round's records and its state change are one transaction; a retry after
 * the commit is harmless; other records (a lost round) change nothing; a
 * restarted round starts from no records. */
static void set_rec(km_store_record *r, const unsigned char user[KM_STORE_ID_LEN], unsigned char fill) {
    memcpy(r->user_id, user, KM_STORE_ID_LEN);
    km_buf_init(&r->blob);
    unsigned char b[40];
    memset(b, fill, sizeof b);
    memcpy(b, user, KM_STORE_ID_LEN);
    assert_int_equal(km_buf_put(&r->blob, b, sizeof b), KM_OK);
}

static void test_round_records(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    fixture_kg f;
    make_keygen(&f, 600, 1000, 9000);
    assert_int_equal(km_store_keygen_create(st, &f.kg), KM_OK);
    complete_keygen(st, f.kg.id);
    km_store_signing_new sn;
    make_signing(&sn, 610, f.kg.id, 0); /* starts in nonces */
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    km_store_record nonces[3], other[3], partials[3];
    for (size_t u = 0; u < 3; u++) {
        set_rec(&nonces[u], f.assign[u].user_id, 0x11);
        set_rec(&other[u], f.assign[u].user_id, u == 2 ? 0x99 : 0x11);
        set_rec(&partials[u], f.assign[u].user_id, 0x22);
    }
    km_store_signing sg;
    /* partial records before the nonce round: wrong state, nothing written */
    assert_int_equal(km_store_signing_put_records(st, sn.id, KM_RECORD_PARTIAL, partials, 3, 2000),
                     KM_ERR_STATE);
    assert_int_equal(km_store_signing_put_records(st, sn.id, KM_RECORD_NONCE, nonces, 3, 2000), KM_OK);
    assert_int_equal(km_store_signing_get(st, sn.id, &sg), KM_OK);
    assert_int_equal(sg.state, KM_SIGNING_PARTIALS);
    km_store_signing_clear(&sg);
    /* the same round again (a retry after the commit): fine, nothing changes */
    assert_int_equal(km_store_signing_put_records(st, sn.id, KM_RECORD_NONCE, nonces, 3, 2001), KM_OK);
    /* another round's nonces: refused, the stored ones stay */
    assert_int_equal(km_store_signing_put_records(st, sn.id, KM_RECORD_NONCE, other, 3, 2002),
                     KM_ERR_DUPLICATE);
    km_store_record got[3];
    size_t n = 0;
    assert_int_equal(km_store_signing_records(st, sn.id, KM_RECORD_NONCE, got, 3, &n), KM_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(got[2].blob.data, nonces[2].blob.data, nonces[2].blob.len);
    km_store_records_clear(got, n);
    assert_int_equal(km_store_signing_put_records(st, sn.id, KM_RECORD_PARTIAL, partials, 3, 2003), KM_OK);
    assert_int_equal(km_store_signing_get(st, sn.id, &sg), KM_OK);
    assert_int_equal(sg.state, KM_SIGNING_FINALIZING);
    km_store_signing_clear(&sg);
    /* a lost round: back to nonces with no records of either kind */
    assert_int_equal(km_store_signing_restart_round(st, sn.id, 2004), KM_OK);
    assert_int_equal(km_store_signing_get(st, sn.id, &sg), KM_OK);
    assert_int_equal(sg.state, KM_SIGNING_NONCES);
    km_store_signing_clear(&sg);
    assert_int_equal(km_store_signing_records(st, sn.id, KM_RECORD_NONCE, got, 3, &n), KM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(km_store_signing_records(st, sn.id, KM_RECORD_PARTIAL, got, 3, &n), KM_OK);
    assert_int_equal(n, 0);
    /* the new round may bring other nonces now */
    assert_int_equal(km_store_signing_put_records(st, sn.id, KM_RECORD_NONCE, other, 3, 2005), KM_OK);
    assert_int_equal(km_store_signing_put_records(st, sn.id, KM_RECORD_NONCE, NULL, 1, 2006), KM_ERR_ARG);
    unsigned char missing[KM_STORE_ID_LEN] = {0x7f};
    assert_int_equal(km_store_signing_put_records(st, missing, KM_RECORD_NONCE, nonces, 3, 2007),
                     KM_ERR_NOT_FOUND);
    assert_int_equal(km_store_signing_restart_round(st, missing, 2008), KM_ERR_NOT_FOUND);
    for (size_t u = 0; u < 3; u++) {
        km_buf_free(&nonces[u].blob);
        km_buf_free(&other[u].blob);
        km_buf_free(&partials[u].blob);
    }
    km_store_close(st);
}

static void test_key_lists_and_request(void **state) {
    (void)state;
    char path[128];
    km_store *st = fresh_store(path, sizeof path);
    unsigned char owner[KM_STORE_ID_LEN], other[KM_STORE_ID_LEN], origin[KM_STORE_ID_LEN];
    make_id(owner, 600);
    make_id(other, 601);
    make_id(origin, 602);
    /* tag, user, enclave, created_at, has_origin */
    static const struct {
        unsigned tag;
        int other_user;
        uint32_t enclave;
        int64_t created;
        int has_origin;
    } spec[] = {{81, 0, 0, 500, 0}, {80, 0, 0, 500, 0}, {82, 0, 1, 400, 1}, {83, 1, 0, 450, 0}};
    km_store_key keys[4];
    const unsigned char blob[] = {0xbb, 0xcc};
    for (size_t i = 0; i < 4; i++) {
        memset(&keys[i], 0, sizeof keys[i]);
        make_id(keys[i].key_id, spec[i].tag);
        memcpy(keys[i].user_id, spec[i].other_user ? other : owner, KM_STORE_ID_LEN);
        keys[i].enclave_id = spec[i].enclave;
        keys[i].created_at = spec[i].created;
        make_xonly(keys[i].auth_key, 600 + spec[i].tag);
        keys[i].has_origin = spec[i].has_origin;
        if (spec[i].has_origin) memcpy(keys[i].origin_keygen, origin, KM_STORE_ID_LEN);
        assert_int_equal(km_store_key_put(st, &keys[i], blob, sizeof blob), KM_OK);
    }

    sqlite3_int64 len;
    unsigned char *img = snapshot(path, &len);
    km_store_key k = keys[0];
    assert_int_equal(km_store_key_put(st, &k, blob, sizeof blob), KM_OK); /* identical retry */
    make_xonly(k.auth_key, 9);
    assert_int_equal(km_store_key_put(st, &k, blob, sizeof blob), KM_ERR_DUPLICATE);
    k = keys[0];
    k.has_origin = 1;
    assert_int_equal(km_store_key_put(st, &k, blob, sizeof blob), KM_ERR_DUPLICATE);
    k = keys[2];
    k.origin_keygen[3] ^= 1;
    assert_int_equal(km_store_key_put(st, &k, blob, sizeof blob), KM_ERR_DUPLICATE);
    k = keys[2];
    k.has_origin = 0;
    assert_int_equal(km_store_key_put(st, &k, blob, sizeof blob), KM_ERR_DUPLICATE);
    k.has_origin = 2;
    assert_int_equal(km_store_key_put(st, &k, blob, sizeof blob), KM_ERR_ARG);
    k = keys[2];
    memset(k.auth_key, 0, sizeof k.auth_key);
    assert_int_equal(km_store_key_put(st, &k, blob, sizeof blob), KM_ERR_ARG);
    assert_same_image(path, img, len);
    sqlite3_free(img);
    exec_raw(path, "UPDATE keys SET enclave_id = 1", SQLITE_CONSTRAINT);

    km_store_key out[4];
    size_t n = 0;
    assert_int_equal(km_store_key_list_by_user(st, owner, out, 4, &n), KM_OK);
    assert_int_equal(n, 3);
    static const size_t by_user[] = {2, 1, 0}; /* created 400; then 500 by key id 80 < 81 */
    for (size_t i = 0; i < 3; i++) {
        const km_store_key *w = &keys[by_user[i]];
        assert_memory_equal(out[i].key_id, w->key_id, KM_STORE_ID_LEN);
        assert_memory_equal(out[i].user_id, owner, KM_STORE_ID_LEN);
        assert_int_equal(out[i].enclave_id, w->enclave_id);
        assert_int_equal(out[i].created_at, w->created_at);
        assert_memory_equal(out[i].auth_key, w->auth_key, KM_STORE_XONLY_LEN);
        assert_int_equal(out[i].has_origin, w->has_origin);
        assert_memory_equal(out[i].origin_keygen, w->origin_keygen, KM_STORE_ID_LEN);
        assert_null(out[i].import_blob.data);
        assert_int_equal(out[i].import_blob.len, 0);
    }
    km_store_key guard[4];
    memset(out, 0xee, sizeof out);
    memcpy(guard, out, sizeof out);
    assert_int_equal(km_store_key_list_by_user(st, owner, out, 2, &n), KM_ERR_BUFFER_SMALL);
    assert_int_equal(n, 3);
    assert_memory_equal(out, guard, sizeof out);
    unsigned char nobody[KM_STORE_ID_LEN];
    make_id(nobody, 699);
    assert_int_equal(km_store_key_list_by_user(st, nobody, out, 4, &n), KM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(km_store_key_list_by_user(st, owner, NULL, 4, &n), KM_ERR_ARG);

    unsigned char ids[4][KM_STORE_ID_LEN];
    assert_int_equal(km_store_key_list_by_enclave(st, 0, ids, 4, &n), KM_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(ids[0], keys[3].key_id, KM_STORE_ID_LEN); /* 450 */
    assert_memory_equal(ids[1], keys[1].key_id, KM_STORE_ID_LEN); /* 500, id 80 */
    assert_memory_equal(ids[2], keys[0].key_id, KM_STORE_ID_LEN); /* 500, id 81 */
    assert_int_equal(km_store_key_list_by_enclave(st, 1, ids, 4, &n), KM_OK);
    assert_int_equal(n, 1);
    assert_memory_equal(ids[0], keys[2].key_id, KM_STORE_ID_LEN);
    assert_int_equal(km_store_key_list_by_enclave(st, 9, ids, 4, &n), KM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(km_store_key_list_by_enclave(st, 0, ids, 1, &n), KM_ERR_BUFFER_SMALL);
    assert_int_equal(n, 3);

    /* The stored request, for the coordinator. */
    unsigned char rq[KM_STORE_ID_LEN], kid[KM_STORE_ID_LEN];
    make_id(rq, 610);
    const unsigned char req[] = {0x01, 0x02, 0x03};
    assert_int_equal(km_store_keysign_create(st, rq, keys[0].key_id, req, sizeof req, 700, 900), KM_OK);
    km_buf body;
    km_buf_init(&body);
    int64_t created = 0, expires = 0;
    assert_int_equal(km_store_keysign_get_request(st, rq, kid, &body, &created, &expires), KM_OK);
    assert_memory_equal(kid, keys[0].key_id, KM_STORE_ID_LEN);
    assert_int_equal(body.len, sizeof req);
    assert_memory_equal(body.data, req, sizeof req);
    assert_int_equal(created, 700);
    assert_int_equal(expires, 900);
    assert_int_equal(km_store_keysign_get_request(st, rq, NULL, NULL, NULL, &expires), KM_OK);
    const unsigned char sig[] = {0x99};
    assert_int_equal(km_store_keysign_finish(st, rq, sig, 1, NULL, 750), KM_OK);
    assert_int_equal(km_store_keysign_get_request(st, rq, kid, &body, &created, &expires), KM_OK);
    assert_int_equal(expires, 0); /* completed: no expiry */
    assert_int_equal(body.len, sizeof req);
    unsigned char missing[KM_STORE_ID_LEN];
    make_id(missing, 611);
    memset(kid, 0xee, sizeof kid);
    assert_int_equal(km_store_keysign_get_request(st, missing, kid, &body, &created, &expires),
                     KM_ERR_NOT_FOUND);
    assert_int_equal(body.len, 0);
    assert_int_equal(created, 0);
    unsigned char zid[KM_STORE_ID_LEN] = {0};
    assert_memory_equal(kid, zid, KM_STORE_ID_LEN);
    assert_int_equal(km_store_keysign_get_request(st, NULL, kid, &body, &created, &expires), KM_ERR_ARG);
    km_buf_free(&body);
    km_store_close(st);
}

static void test_enclave_list_and_stats(void **state) {
    (void)state;
    char path[128];
    db_path(path, sizeof path);
    km_store *st = open_ok(path);
    km_store_stats stats;
    assert_int_equal(km_store_stats_get(st, &stats), KM_OK);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(stats.keygens[i], 0);
    assert_int_equal(stats.keys, 0);
    assert_true(stats.db_bytes > 0);
    km_store_enclave es[4];
    size_t n = 9;
    assert_int_equal(km_store_enclave_list(st, es, 4, &n), KM_OK);
    assert_int_equal(n, 0);

    add_enclave(st, 5);
    add_enclave(st, 1);
    add_enclave(st, 0);
    assert_int_equal(km_store_enclave_list(st, es, 4, &n), KM_OK);
    assert_int_equal(n, 3);
    static const uint32_t order[] = {0, 1, 5};
    for (size_t i = 0; i < 3; i++) {
        km_store_enclave want;
        assert_int_equal(km_store_enclave_get(st, order[i], &want), KM_OK);
        assert_memory_equal(&es[i], &want, sizeof want);
    }
    km_store_enclave guard[4];
    memset(es, 0xee, sizeof es);
    memcpy(guard, es, sizeof es);
    assert_int_equal(km_store_enclave_list(st, es, 2, &n), KM_ERR_BUFFER_SMALL);
    assert_int_equal(n, 3);
    assert_memory_equal(es, guard, sizeof es);
    assert_int_equal(km_store_enclave_list(st, NULL, 1, &n), KM_ERR_ARG);

    /* keygens: 2 collecting, 1 finalizing, 1 completed, 1 failed. */
    fixture_kg f[5];
    for (unsigned i = 0; i < 5; i++) {
        make_keygen(&f[i], 700 + i, 1000, 9000);
        assert_int_equal(km_store_keygen_create(st, &f[i].kg), KM_OK);
    }
    assert_int_equal(km_store_keygen_set_state(st, f[2].kg.id, KM_KEYGEN_FINALIZING, NULL, 1001), KM_OK);
    complete_keygen(st, f[3].kg.id);
    assert_int_equal(km_store_keygen_set_state(st, f[4].kg.id, KM_KEYGEN_FAILED, "x", 1001), KM_OK);
    /* signings: 1 collecting_approvals, 2 nonces, 1 failed. */
    km_store_signing_new sn;
    make_signing(&sn, 710, f[3].kg.id, 1);
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    make_signing(&sn, 711, f[3].kg.id, 0);
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    make_signing(&sn, 712, f[3].kg.id, 0);
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    make_signing(&sn, 713, f[3].kg.id, 0);
    assert_int_equal(km_store_signing_create(st, &sn), KM_OK);
    assert_int_equal(km_store_signing_set_state(st, sn.id, KM_SIGNING_FAILED, "y", 1700), KM_OK);
    /* keys 2; key sign requests: 2 pending, 1 completed. */
    km_store_key k;
    memset(&k, 0, sizeof k);
    make_xonly(k.auth_key, 720);
    const unsigned char blob[] = {1};
    for (unsigned i = 0; i < 2; i++) {
        make_id(k.key_id, 720 + i);
        assert_int_equal(km_store_key_put(st, &k, blob, 1), KM_OK);
    }
    unsigned char rq[KM_STORE_ID_LEN];
    for (unsigned i = 0; i < 3; i++) {
        make_id(rq, 730 + i);
        assert_int_equal(km_store_keysign_create(st, rq, k.key_id, blob, 1, 800, 900), KM_OK);
    }
    assert_int_equal(km_store_keysign_finish(st, rq, blob, 1, NULL, 801), KM_OK);
    unsigned char pk[KM_STORE_PUBKEY_LEN] = {2};
    for (unsigned char i = 1; i <= 4; i++)
        assert_int_equal(km_store_replay_insert(st, pk, &i, 1, 100, 200), KM_OK);

    assert_int_equal(km_store_stats_get(st, &stats), KM_OK);
    static const size_t want_kg[4] = {2, 1, 1, 1}, want_sg[6] = {1, 2, 0, 0, 0, 1}, want_ks[3] = {2, 1, 0};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(stats.keygens[i], want_kg[i]);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(stats.signings[i], want_sg[i]);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(stats.keysigns[i], want_ks[i]);
    assert_int_equal(stats.keys, 2);
    assert_int_equal(stats.replay_entries, 4);
    km_store_close(st);
    /* db_bytes is the file's page count times page size (checked after close:
     * the checkpoint on close moves the WAL into the file; re-read to compare). */
    st = open_ok(path);
    assert_int_equal(km_store_stats_get(st, &stats), KM_OK);
    assert_int_equal(stats.db_bytes,
                     raw_int(path, "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size"));
    assert_int_equal(km_store_stats_get(st, NULL), KM_ERR_ARG);
    assert_int_equal(km_store_stats_get(NULL, &stats), KM_ERR_ARG);
    assert_int_equal(stats.keys, 0); /* zeroed on failure */
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
        cmocka_unit_test(test_migration_v1_to_v2),
        cmocka_unit_test(test_keygen_auth_and_quota),
        cmocka_unit_test(test_keygen_list_and_delete),
        cmocka_unit_test(test_registration_auth),
        cmocka_unit_test(test_approval_list),
        cmocka_unit_test(test_round_records),
        cmocka_unit_test(test_key_lists_and_request),
        cmocka_unit_test(test_enclave_list_and_stats),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
