/* store_sqlite.c — the gateway store on SQLite (see store.h for the contract).
 *
 * Patterns used throughout:
 * - every write is BEGIN IMMEDIATE ... COMMIT: the write lock is taken up
 *   front, so a transaction never fails half-way with SQLITE_BUSY on lock
 *   upgrade, and on any error the whole transaction is rolled back;
 * - every statement is a constant string with bound parameters; the few
 *   per-kind variants are separate constant strings chosen by index;
 * - idempotent creates compare a SHA-256 over a canonical encoding of the
 *   request ("content_hash") instead of re-reading every child row;
 * - listings run in a read transaction (BEGIN, not IMMEDIATE: no write lock)
 *   so their count and rows come from one snapshot.
 * The plumbing lives in store_internal.h; the read-only queries added with
 * schema v2 in store_query.c; the schema in store_schema.c.
 */
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/store.h"
#include "gateway/store_internal.h"

pthread_mutex_t km_store_write_lock = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
#include "keymeld/hash.h"

/* ---- opening and migrations ----------------------------------------------- */

static km_err read_version(km_store *st, int *version) {
    sqlite3_stmt *s;
    km_err err = prep(st, "SELECT coalesce(max(version), 0) FROM schema_version", &s);
    if (err) return err;
    err = step_row(s, SQLITE_OK);
    if (err == KM_OK) *version = sqlite3_column_int(s, 0);
    fin(st, s);
    return err;
}

static km_err migrate(km_store *st, int target, char *msg, size_t msg_len) {
    km_err err = tx_begin(st);
    if (err) return err;
    int version = 0;
    err = exec_const(st, "CREATE TABLE IF NOT EXISTS schema_version("
                         " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT");
    if (err == KM_OK) err = read_version(st, &version);
    if (err == KM_OK && version > KM_STORE_SCHEMA_VERSION) {
        char text[128];
        snprintf(text, sizeof text, "database schema version %d is newer than supported %d; refusing to open",
                 version, KM_STORE_SCHEMA_VERSION);
        set_msg(msg, msg_len, text);
        err = KM_ERR_UNSUPPORTED;
    }
    for (size_t i = 0; err == KM_OK && i < km_store_n_migrations; i++) {
        const km_store_migration *m = &km_store_migrations[i];
        if (m->version <= version || m->version > target) continue;
        for (const char *const *sql = m->sql; err == KM_OK && *sql != NULL; sql++)
            err = exec_const(st, *sql);
        if (err) {
            set_msg(msg, msg_len, sqlite3_errmsg(st->db));
            break;
        }
        sqlite3_stmt *s;
        err = prep(st, "INSERT INTO schema_version(version, applied_at) VALUES (?, unixepoch())", &s);
        if (err == KM_OK) err = run(st, s, sqlite3_bind_int(s, 1, m->version));
    }
    return tx_end(st, err);
}

static km_err pragma_text(km_store *st, const char *sql, const char *expect) {
    sqlite3_stmt *s;
    km_err err = prep(st, sql, &s);
    if (err) return err;
    err = step_row(s, SQLITE_OK);
    if (err == KM_OK) {
        const unsigned char *t = sqlite3_column_text(s, 0);
        if (t == NULL || strcmp((const char *)t, expect) != 0) err = KM_ERR_IO;
    } else if (err == KM_ERR_NOT_FOUND) {
        err = KM_ERR_IO;
    }
    fin(st, s);
    return err;
}

km_err km_store_open(km_store **out, const char *path, char *errmsg, size_t errmsg_len) {
    return km_store_open_version(out, path, KM_STORE_SCHEMA_VERSION, errmsg, errmsg_len);
}

km_err km_store_open_version(km_store **out, const char *path, int target_version, char *errmsg,
                             size_t errmsg_len) {
    if (out == NULL) return KM_ERR_ARG;
    *out = NULL;
    set_msg(errmsg, errmsg_len, "");
    if (target_version < 1 || target_version > KM_STORE_SCHEMA_VERSION) return KM_ERR_ARG;
    if (path == NULL || path[0] == '\0') {
        set_msg(errmsg, errmsg_len, "no database path");
        return KM_ERR_ARG;
    }
    km_store *st = calloc(1, sizeof *st);
    if (st == NULL) return KM_ERR_NOMEM;
    int rc = sqlite3_open_v2(
        path, &st->db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_EXRESCODE, NULL);
    km_err err = KM_OK;
    if (rc != SQLITE_OK) {
        set_msg(errmsg, errmsg_len, st->db ? sqlite3_errmsg(st->db) : "cannot open database");
        err = rc == SQLITE_NOMEM ? KM_ERR_NOMEM : KM_ERR_IO;
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    /* Several gateways/threads may share the file; wait rather than fail fast. */
    if (sqlite3_busy_timeout(st->db, 5000) != SQLITE_OK) {
        err = KM_ERR_IO;
        goto fail;
    }
    /* Each pragma is read back: a silently ignored pragma (e.g. WAL refused on
     * a network file system) must not leave us with weaker guarantees. */
    err = pragma_text(st, "PRAGMA journal_mode=WAL", "wal");
    if (err) {
        set_msg(errmsg, errmsg_len, "cannot enable WAL mode (not a database, or unsupported file system)");
        goto fail;
    }
    err = exec_const(st, "PRAGMA synchronous=FULL");
    if (err == KM_OK) err = pragma_text(st, "PRAGMA synchronous", "2");
    if (err == KM_OK) err = exec_const(st, "PRAGMA foreign_keys=ON");
    if (err == KM_OK) err = pragma_text(st, "PRAGMA foreign_keys", "1");
    if (err) {
        set_msg(errmsg, errmsg_len, "cannot set synchronous=FULL and foreign_keys=ON");
        goto fail;
    }
    err = migrate(st, target_version, errmsg, errmsg_len);
    if (err) {
        if (errmsg != NULL && errmsg_len > 0 && errmsg[0] == '\0')
            set_msg(errmsg, errmsg_len, "schema migration failed");
        goto fail;
    }
    *out = st;
    return KM_OK;
fail:
    km_store_close(st);
    return err;
}

void km_store_close(km_store *st) {
    if (st == NULL) return;
    for (size_t i = 0; i < st->n_cache; i++) {
        sqlite3_finalize(st->cache[i].s);
        free(st->cache[i].sql);
    }
    if (st->db != NULL) {
        if (!sqlite3_get_autocommit(st->db)) (void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(st->db);
    }
    free(st);
}

km_err km_store_integrity_check(km_store *st) {
    if (st == NULL) return KM_ERR_ARG;
    km_err err = pragma_text(st, "PRAGMA integrity_check", "ok");
    if (err) return err;
    sqlite3_stmt *s;
    err = prep(st, "PRAGMA foreign_key_check", &s);
    if (err) return err;
    err = step_row(s, SQLITE_OK);
    fin(st, s);
    if (err == KM_ERR_NOT_FOUND) return KM_OK; /* no violating rows */
    return err == KM_OK ? KM_ERR_IO : err;
}

km_err km_store_schema_version(km_store *st, int *version) {
    if (st == NULL || version == NULL) return KM_ERR_ARG;
    *version = 0;
    return read_version(st, version);
}

/* ---- enclaves --------------------------------------------------------------- */

km_err km_store_enclave_put(km_store *st, const km_store_enclave *e) {
    if (st == NULL || e == NULL || memchr(e->address, 0, sizeof e->address) == NULL || e->address[0] == '\0')
        return KM_ERR_ARG;
    km_err err = tx_begin(st);
    if (err) return err;
    sqlite3_stmt *s;
    err = prep(st, "SELECT pubkey FROM enclaves WHERE id = ?", &s);
    if (err == KM_OK) {
        err = step_row(s, sqlite3_bind_int64(s, 1, e->id));
        int same = err == KM_OK && col_equals(s, 0, e->pubkey, KM_STORE_PUBKEY_LEN);
        fin(st, s);
        if (err == KM_OK && !same) {
            err = KM_ERR_DUPLICATE; /* a different key is pinned */
        } else if (err == KM_OK) {
            err = prep(st, "UPDATE enclaves SET address = ? WHERE id = ?", &s);
            if (err == KM_OK) {
                int rc = bind_text(s, 1, e->address);
                if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, e->id);
                err = run(st, s, rc);
            }
        } else if (err == KM_ERR_NOT_FOUND) {
            err = prep(st, "INSERT INTO enclaves(id, address, pubkey, fingerprint) VALUES (?, ?, ?, ?)", &s);
            if (err == KM_OK) {
                int rc = sqlite3_bind_int64(s, 1, e->id);
                if (rc == SQLITE_OK) rc = bind_text(s, 2, e->address);
                if (rc == SQLITE_OK) rc = bind_blob(s, 3, e->pubkey, KM_STORE_PUBKEY_LEN);
                if (rc == SQLITE_OK) rc = bind_blob(s, 4, e->fingerprint, KM_STORE_FINGERPRINT_LEN);
                err = run(st, s, rc);
            }
        }
    }
    return tx_end(st, err);
}

km_err km_store_enclave_get(km_store *st, uint32_t id, km_store_enclave *e) {
    if (st == NULL || e == NULL) return KM_ERR_ARG;
    memset(e, 0, sizeof *e);
    sqlite3_stmt *s;
    km_err err = prep(st, "SELECT address, pubkey, fingerprint FROM enclaves WHERE id = ?", &s);
    if (err) return err;
    err = step_row(s, sqlite3_bind_int64(s, 1, id));
    if (err == KM_OK) {
        if (sqlite3_column_bytes(s, 1) != KM_STORE_PUBKEY_LEN ||
            sqlite3_column_bytes(s, 2) != KM_STORE_FINGERPRINT_LEN) {
            err = KM_ERR_IO;
        } else {
            e->id = id;
            snprintf(e->address, sizeof e->address, "%s", (const char *)sqlite3_column_text(s, 0));
            memcpy(e->pubkey, sqlite3_column_blob(s, 1), KM_STORE_PUBKEY_LEN);
            memcpy(e->fingerprint, sqlite3_column_blob(s, 2), KM_STORE_FINGERPRINT_LEN);
        }
    }
    fin(st, s);
    if (err) memset(e, 0, sizeof *e);
    return err;
}

/* ---- content hashes for idempotent creates ---------------------------------- */

static void put_blob(km_buf *b, const void *p, size_t n) {
    (void)km_buf_put_u64(b, n);
    if (n > 0) (void)km_buf_put(b, p, n);
}

static km_err finish_hash(km_buf *b, unsigned char out[32]) {
    km_err err = b->failed ? KM_ERR_NOMEM : KM_OK;
    if (err == KM_OK) km_sha256(out, b->data != NULL ? (const void *)b->data : (const void *)"", b->len);
    km_buf_free(b);
    return err;
}

/* Look up the stored hash of a row; KM_OK if equal, KM_ERR_DUPLICATE if it
 * differs, KM_ERR_NOT_FOUND if there is no row. sql selects content_hash by id. */
static km_err compare_hash(km_store *st, const char *sql, const unsigned char id[KM_STORE_ID_LEN],
                           const unsigned char hash[32]) {
    sqlite3_stmt *s;
    km_err err = prep(st, sql, &s);
    if (err) return err;
    err = step_row(s, bind_id(s, 1, id));
    if (err == KM_OK && !col_equals(s, 0, hash, 32)) err = KM_ERR_DUPLICATE;
    fin(st, s);
    return err;
}

/* ---- keygen ---------------------------------------------------------------- */

static km_err keygen_validate(const km_store_keygen_new *kg) {
    if (kg->n_inits == 0 || kg->inits == NULL || kg->n_assignments == 0 || kg->assignments == NULL ||
        kg->expires_at <= kg->created_at || kg->n_inits > 1024 || kg->n_assignments > 4096 ||
        !xonly_ok(kg->session_auth_key))
        return KM_ERR_ARG;
    for (size_t i = 0; i < kg->n_inits; i++) {
        if (kg->inits[i].blob == NULL || kg->inits[i].blob_len == 0 ||
            kg->inits[i].blob_len > KM_STORE_BLOB_MAX)
            return KM_ERR_ARG;
        for (size_t j = 0; j < i; j++)
            if (kg->inits[j].enclave_id == kg->inits[i].enclave_id) return KM_ERR_ARG;
    }
    for (size_t i = 0; i < kg->n_assignments; i++) {
        int has_init = 0;
        for (size_t j = 0; j < kg->n_inits; j++)
            has_init |= kg->inits[j].enclave_id == kg->assignments[i].enclave_id;
        if (!has_init) return KM_ERR_ARG;
        for (size_t j = 0; j < i; j++)
            if (memcmp(kg->assignments[j].user_id, kg->assignments[i].user_id, KM_STORE_ID_LEN) == 0)
                return KM_ERR_ARG;
    }
    return KM_OK;
}

static km_err keygen_hash(const km_store_keygen_new *kg, unsigned char out[32]) {
    km_buf b;
    km_buf_init(&b);
    (void)km_buf_put(&b, "keymeld/store/keygen/v2", 23);
    (void)km_buf_put_u64(&b, (uint64_t)kg->created_at);
    (void)km_buf_put_u64(&b, (uint64_t)kg->expires_at);
    (void)km_buf_put_u64(&b, kg->n_inits);
    for (size_t i = 0; i < kg->n_inits; i++) {
        (void)km_buf_put_u32(&b, kg->inits[i].enclave_id);
        put_blob(&b, kg->inits[i].blob, kg->inits[i].blob_len);
    }
    (void)km_buf_put_u64(&b, kg->n_assignments);
    for (size_t i = 0; i < kg->n_assignments; i++) {
        (void)km_buf_put(&b, kg->assignments[i].user_id, KM_STORE_ID_LEN);
        (void)km_buf_put_u32(&b, kg->assignments[i].enclave_id);
    }
    (void)km_buf_put(&b, kg->session_auth_key, KM_STORE_XONLY_LEN);
    (void)km_buf_put_u32(&b, kg->max_signings);
    return finish_hash(&b, out);
}

km_err km_store_keygen_create(km_store *st, const km_store_keygen_new *kg) {
    if (st == NULL || kg == NULL) return KM_ERR_ARG;
    km_err err = keygen_validate(kg);
    if (err) return err;
    unsigned char hash[32];
    err = keygen_hash(kg, hash);
    if (err) return err;
    err = tx_begin(st);
    if (err) return err;
    err = compare_hash(st, "SELECT content_hash FROM keygen_sessions WHERE id = ?", kg->id, hash);
    if (err != KM_ERR_NOT_FOUND) return tx_end(st, err); /* KM_OK: identical retry, nothing to write */
    sqlite3_stmt *s;
    err = prep(st,
               "INSERT INTO keygen_sessions(id, state, created_at, expires_at, updated_at, content_hash,"
               " session_auth_key, max_signings) VALUES (?, 'collecting', ?, ?, ?, ?, ?, ?)",
               &s);
    if (err == KM_OK) {
        int rc = bind_id(s, 1, kg->id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, kg->created_at);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 3, kg->expires_at);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 4, kg->created_at);
        if (rc == SQLITE_OK) rc = bind_blob(s, 5, hash, 32);
        if (rc == SQLITE_OK) rc = bind_blob(s, 6, kg->session_auth_key, KM_STORE_XONLY_LEN);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 7, kg->max_signings);
        err = run(st, s, rc);
    }
    for (size_t i = 0; err == KM_OK && i < kg->n_inits; i++) {
        err = prep(st, "INSERT INTO keygen_inits(keygen_id, enclave_id, blob) VALUES (?, ?, ?)", &s);
        if (err) break;
        int rc = bind_id(s, 1, kg->id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, kg->inits[i].enclave_id);
        if (rc == SQLITE_OK) rc = bind_blob(s, 3, kg->inits[i].blob, kg->inits[i].blob_len);
        err = run(st, s, rc);
    }
    for (size_t i = 0; err == KM_OK && i < kg->n_assignments; i++) {
        err = prep(st, "INSERT INTO keygen_assignments(keygen_id, user_id, enclave_id) VALUES (?, ?, ?)", &s);
        if (err) break;
        int rc = bind_id(s, 1, kg->id);
        if (rc == SQLITE_OK) rc = bind_id(s, 2, kg->assignments[i].user_id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 3, kg->assignments[i].enclave_id);
        err = run(st, s, rc);
    }
    return tx_end(st, err);
}

void km_store_keygen_clear(km_store_keygen *kg) {
    if (kg == NULL) return;
    km_buf_free(&kg->result);
    memset(kg, 0, sizeof *kg);
}

km_err km_store_keygen_get(km_store *st, const unsigned char id[KM_STORE_ID_LEN], km_store_keygen *out) {
    if (st == NULL || id == NULL || out == NULL) return KM_ERR_ARG;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    km_err err = prep(st,
                      "SELECT state, reason, created_at, coalesce(expires_at, 0), result, session_auth_key,"
                      " max_signings FROM keygen_sessions WHERE id = ?",
                      &s);
    if (err) return err;
    err = step_row(s, bind_id(s, 1, id));
    if (err == KM_OK) {
        int state = state_index(KEYGEN_STATES, N_KEYGEN_STATES, sqlite3_column_text(s, 0));
        if (state < 0 || sqlite3_column_bytes(s, 5) != KM_STORE_XONLY_LEN) {
            err = KM_ERR_IO;
        } else {
            memcpy(out->id, id, KM_STORE_ID_LEN);
            out->state = (km_store_keygen_state)state;
            memcpy(out->session_auth_key, sqlite3_column_blob(s, 5), KM_STORE_XONLY_LEN);
            out->max_signings = (uint32_t)sqlite3_column_int64(s, 6);
            col_reason(s, 1, out->reason);
            out->created_at = sqlite3_column_int64(s, 2);
            out->expires_at = sqlite3_column_int64(s, 3);
            err = col_buf(s, 4, &out->result);
        }
    }
    fin(st, s);
    if (err) km_store_keygen_clear(out);
    return err;
}

static const char *const FAIL_SQL[] = {
    "UPDATE keygen_sessions SET state = 'failed', reason = ?, updated_at = ?, claimed_by = NULL,"
    " lease_until = NULL WHERE id = ?",
    "UPDATE signing_sessions SET state = 'failed', reason = ?, updated_at = ?, claimed_by = NULL,"
    " lease_until = NULL WHERE id = ?",
    "UPDATE key_sign_requests SET state = 'failed', reason = ?, updated_at = ?, claimed_by = NULL,"
    " lease_until = NULL WHERE id = ?",
};

static km_err write_failed(km_store *st, km_store_kind kind, const unsigned char id[KM_STORE_ID_LEN],
                           const char *reason, int64_t now) {
    sqlite3_stmt *s;
    km_err err = prep(st, FAIL_SQL[kind], &s);
    if (err) return err;
    int rc = bind_text(s, 1, reason);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, now);
    if (rc == SQLITE_OK) rc = bind_id(s, 3, id);
    return run(st, s, rc);
}

km_err km_store_keygen_set_state(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                 km_store_keygen_state to, const char *reason, int64_t now) {
    if (st == NULL || id == NULL || (unsigned)to >= N_KEYGEN_STATES) return KM_ERR_ARG;
    if (to == KM_KEYGEN_FAILED && !reason_ok(reason)) return KM_ERR_ARG;
    if (to == KM_KEYGEN_COMPLETED)
        return KM_ERR_STATE; /* completion carries a result: km_store_keygen_complete */
    km_err err = tx_begin(st);
    if (err) return err;
    int cur = 0;
    err = get_state(st, KM_STORE_KEYGEN, id, &cur);
    if (err == KM_OK && cur != (int)to) {
        int terminal = cur == KM_KEYGEN_COMPLETED || cur == KM_KEYGEN_FAILED;
        if (terminal) {
            err = KM_ERR_STATE;
        } else if (to == KM_KEYGEN_FAILED) {
            err = write_failed(st, KM_STORE_KEYGEN, id, reason, now);
        } else if (cur == KM_KEYGEN_COLLECTING && to == KM_KEYGEN_FINALIZING) {
            sqlite3_stmt *s;
            err =
                prep(st, "UPDATE keygen_sessions SET state = 'finalizing', updated_at = ? WHERE id = ?", &s);
            if (err == KM_OK) {
                int rc = sqlite3_bind_int64(s, 1, now);
                if (rc == SQLITE_OK) rc = bind_id(s, 2, id);
                err = run(st, s, rc);
            }
        } else {
            err = KM_ERR_STATE;
        }
    }
    return tx_end(st, err);
}

static const char *const RESULT_SQL[] = {
    "SELECT state, result FROM keygen_sessions WHERE id = ?",
    "SELECT state, result FROM signing_sessions WHERE id = ?",
    "SELECT state, result FROM key_sign_requests WHERE id = ?",
};
static const char *const COMPLETE_SQL[] = {
    "UPDATE keygen_sessions SET state = 'completed', result = ?, expires_at = NULL, updated_at = ?,"
    " claimed_by = NULL, lease_until = NULL WHERE id = ?",
    "UPDATE signing_sessions SET state = 'completed', result = ?, expires_at = NULL, updated_at = ?,"
    " claimed_by = NULL, lease_until = NULL WHERE id = ?",
    "UPDATE key_sign_requests SET state = 'completed', result = ?, expires_at = NULL, updated_at = ?,"
    " claimed_by = NULL, lease_until = NULL WHERE id = ?",
};

/* from_state -> completed with a result; completed with the same result is a no-op. */
static km_err complete_session(km_store *st, km_store_kind kind, const unsigned char id[KM_STORE_ID_LEN],
                               int from_state, int completed_state, const unsigned char *result,
                               size_t result_len, int64_t now) {
    if (st == NULL || id == NULL || result == NULL || result_len == 0 || result_len > KM_STORE_BLOB_MAX)
        return KM_ERR_ARG;
    km_err err = tx_begin(st);
    if (err) return err;
    int cur = 0;
    err = get_state(st, kind, id, &cur);
    if (err == KM_OK && cur == completed_state) {
        sqlite3_stmt *s;
        err = prep(st, RESULT_SQL[kind], &s);
        if (err == KM_OK) {
            err = step_row(s, bind_id(s, 1, id));
            if (err == KM_OK && !col_equals(s, 1, result, result_len)) err = KM_ERR_DUPLICATE;
            fin(st, s);
        }
    } else if (err == KM_OK && cur != from_state) {
        err = KM_ERR_STATE;
    } else if (err == KM_OK) {
        sqlite3_stmt *s;
        err = prep(st, COMPLETE_SQL[kind], &s);
        if (err == KM_OK) {
            int rc = bind_blob(s, 1, result, result_len);
            if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, now);
            if (rc == SQLITE_OK) rc = bind_id(s, 3, id);
            err = run(st, s, rc);
        }
    }
    return tx_end(st, err);
}

km_err km_store_keygen_complete(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                const unsigned char *result, size_t result_len, int64_t now) {
    return complete_session(st, KM_STORE_KEYGEN, id, KM_KEYGEN_FINALIZING, KM_KEYGEN_COMPLETED, result,
                            result_len, now);
}

km_err km_store_keygen_init_get(km_store *st, const unsigned char id[KM_STORE_ID_LEN], uint32_t enclave_id,
                                km_buf *blob) {
    if (st == NULL || id == NULL || blob == NULL) return KM_ERR_ARG;
    km_buf_free(blob);
    sqlite3_stmt *s;
    km_err err = prep(st, "SELECT blob FROM keygen_inits WHERE keygen_id = ? AND enclave_id = ?", &s);
    if (err) return err;
    int rc = bind_id(s, 1, id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, enclave_id);
    err = step_row(s, rc);
    if (err == KM_OK) err = col_buf(s, 0, blob);
    fin(st, s);
    if (err) km_buf_free(blob);
    return err;
}

km_err km_store_keygen_delete(km_store *st, const unsigned char id[KM_STORE_ID_LEN]) {
    if (st == NULL || id == NULL) return KM_ERR_ARG;
    /* One DELETE: the schema's ON DELETE CASCADE chain (inits -> assignments
     * -> registrations; signing sessions -> records, approvals) removes the
     * rest inside the same transaction, so no orphan can outlive the wallet
     * and a failure anywhere leaves everything in place. */
    km_err err = tx_begin(st);
    if (err) return err;
    sqlite3_stmt *s;
    err = prep(st, "DELETE FROM keygen_sessions WHERE id = ?", &s);
    if (err == KM_OK) err = run(st, s, bind_id(s, 1, id));
    if (err == KM_OK && sqlite3_changes(st->db) == 0) err = KM_ERR_NOT_FOUND;
    return tx_end(st, err);
}

km_err km_store_keygen_assignments(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                   km_store_assignment *out, size_t cap, size_t *n) {
    if (st == NULL || id == NULL || n == NULL || (out == NULL && cap > 0)) return KM_ERR_ARG;
    *n = 0;
    int dummy;
    km_err err = tx_begin_read(st); /* one snapshot for count and rows */
    if (err) return err;
    err = get_state(st, KM_STORE_KEYGEN, id, &dummy);
    size_t total = 0;
    if (err == KM_OK)
        err = count_rows(st, "SELECT count(*) FROM keygen_assignments WHERE keygen_id = ?", id, 0, &total);
    if (err == KM_OK && total > cap) err = KM_ERR_BUFFER_SMALL;
    sqlite3_stmt *s = NULL;
    if (err == KM_OK)
        err = prep(st,
                   "SELECT user_id, enclave_id FROM keygen_assignments WHERE keygen_id = ? ORDER BY user_id",
                   &s);
    size_t i = 0;
    if (err == KM_OK) {
        int rc = bind_id(s, 1, id);
        while (err == KM_OK && i < total && (err = step_row(s, rc)) == KM_OK) {
            col_id(s, 0, out[i].user_id);
            out[i].enclave_id = (uint32_t)sqlite3_column_int64(s, 1);
            i++;
        }
        if (err == KM_ERR_NOT_FOUND) err = KM_OK;
        fin(st, s);
    }
    *n = err == KM_ERR_BUFFER_SMALL ? total : (err == KM_OK ? i : 0);
    km_err end = tx_end_read(st, err == KM_ERR_BUFFER_SMALL ? KM_OK : err);
    return err ? err : end;
}

/* ---- registrations --------------------------------------------------------- */

km_err km_store_registration_put(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                                 const unsigned char user_id[KM_STORE_ID_LEN], const unsigned char *blob,
                                 size_t blob_len, const unsigned char *record, size_t record_len,
                                 const unsigned char auth_key[KM_STORE_XONLY_LEN], uint8_t flags,
                                 int64_t now) {
    if (st == NULL || keygen_id == NULL || user_id == NULL || blob == NULL || blob_len == 0 ||
        blob_len > KM_STORE_BLOB_MAX || (record == NULL && record_len != 0) ||
        record_len > KM_STORE_BLOB_MAX || !xonly_ok(auth_key) || (flags & ~KM_STORE_REG_FLAGS_KNOWN) != 0)
        return KM_ERR_ARG;
    km_err err = tx_begin(st);
    if (err) return err;
    int cur = 0;
    err = get_state(st, KM_STORE_KEYGEN, keygen_id, &cur);
    sqlite3_stmt *s;
    if (err == KM_OK) {
        err = prep(st, "SELECT blob, auth_key, flags FROM registrations WHERE keygen_id = ? AND user_id = ?",
                   &s);
        if (err == KM_OK) {
            int rc = bind_id(s, 1, keygen_id);
            if (rc == SQLITE_OK) rc = bind_id(s, 2, user_id);
            err = step_row(s, rc);
            if (err == KM_OK)
                err = col_equals(s, 0, blob, blob_len) && col_equals(s, 1, auth_key, KM_STORE_XONLY_LEN) &&
                              sqlite3_column_int64(s, 2) == flags
                          ? KM_OK
                          : KM_ERR_DUPLICATE;
            fin(st, s);
            if (err == KM_OK) return tx_end(st, KM_OK); /* identical retry */
        }
    }
    if (err == KM_ERR_NOT_FOUND) {
        /* Registration closes when the keygen leaves collecting. */
        err = cur == KM_KEYGEN_COLLECTING ? KM_OK : KM_ERR_STATE;
        if (err == KM_OK)
            err = prep(st,
                       "INSERT INTO registrations(keygen_id, user_id, blob, record, registered_at, auth_key,"
                       " flags) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       &s);
        if (err == KM_OK) {
            int rc = bind_id(s, 1, keygen_id);
            if (rc == SQLITE_OK) rc = bind_id(s, 2, user_id);
            if (rc == SQLITE_OK) rc = bind_blob(s, 3, blob, blob_len);
            if (rc == SQLITE_OK) rc = record ? bind_blob(s, 4, record, record_len) : sqlite3_bind_null(s, 4);
            if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 5, now);
            if (rc == SQLITE_OK) rc = bind_blob(s, 6, auth_key, KM_STORE_XONLY_LEN);
            if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, 7, flags);
            err = run(st, s, rc); /* FK failure (user not assigned) -> KM_ERR_NOT_FOUND */
        }
    }
    return tx_end(st, err);
}

km_err km_store_registration_set_record(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                                        const unsigned char user_id[KM_STORE_ID_LEN],
                                        const unsigned char *record, size_t record_len) {
    if (st == NULL || keygen_id == NULL || user_id == NULL || record == NULL || record_len == 0 ||
        record_len > KM_STORE_BLOB_MAX)
        return KM_ERR_ARG;
    km_err err = tx_begin(st);
    if (err) return err;
    sqlite3_stmt *s;
    err = prep(st, "SELECT record FROM registrations WHERE keygen_id = ? AND user_id = ?", &s);
    int has = 0;
    if (err == KM_OK) {
        int rc = bind_id(s, 1, keygen_id);
        if (rc == SQLITE_OK) rc = bind_id(s, 2, user_id);
        err = step_row(s, rc);
        if (err == KM_OK && sqlite3_column_type(s, 0) != SQLITE_NULL) {
            has = 1;
            if (!col_equals(s, 0, record, record_len)) err = KM_ERR_DUPLICATE;
        }
        fin(st, s);
    }
    if (err == KM_OK && !has) {
        err = prep(st, "UPDATE registrations SET record = ? WHERE keygen_id = ? AND user_id = ?", &s);
        if (err == KM_OK) {
            int rc = bind_blob(s, 1, record, record_len);
            if (rc == SQLITE_OK) rc = bind_id(s, 2, keygen_id);
            if (rc == SQLITE_OK) rc = bind_id(s, 3, user_id);
            err = run(st, s, rc);
        }
    }
    return tx_end(st, err);
}

km_err km_store_registration_get(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                                 const unsigned char user_id[KM_STORE_ID_LEN], km_buf *blob, km_buf *record) {
    if (st == NULL || keygen_id == NULL || user_id == NULL) return KM_ERR_ARG;
    if (blob) km_buf_free(blob);
    if (record) km_buf_free(record);
    sqlite3_stmt *s;
    km_err err = prep(st, "SELECT blob, record FROM registrations WHERE keygen_id = ? AND user_id = ?", &s);
    if (err) return err;
    int rc = bind_id(s, 1, keygen_id);
    if (rc == SQLITE_OK) rc = bind_id(s, 2, user_id);
    err = step_row(s, rc);
    if (err == KM_OK && blob) err = col_buf(s, 0, blob);
    if (err == KM_OK && record) err = col_buf(s, 1, record);
    fin(st, s);
    if (err) {
        if (blob) km_buf_free(blob);
        if (record) km_buf_free(record);
    }
    return err;
}

km_err km_store_registration_list(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                                  unsigned char (*users)[KM_STORE_ID_LEN], size_t cap, size_t *n) {
    if (st == NULL || keygen_id == NULL || n == NULL || (users == NULL && cap > 0)) return KM_ERR_ARG;
    *n = 0;
    km_err err = tx_begin_read(st);
    if (err) return err;
    int dummy;
    err = get_state(st, KM_STORE_KEYGEN, keygen_id, &dummy);
    size_t total = 0;
    if (err == KM_OK)
        err = count_rows(st, "SELECT count(*) FROM registrations WHERE keygen_id = ?", keygen_id, 0, &total);
    if (err == KM_OK && total > cap) err = KM_ERR_BUFFER_SMALL;
    sqlite3_stmt *s = NULL;
    size_t i = 0;
    if (err == KM_OK)
        err = prep(st, "SELECT user_id FROM registrations WHERE keygen_id = ? ORDER BY user_id", &s);
    if (err == KM_OK) {
        int rc = bind_id(s, 1, keygen_id);
        while (err == KM_OK && i < total && (err = step_row(s, rc)) == KM_OK)
            col_id(s, 0, users[i++]);
        if (err == KM_ERR_NOT_FOUND) err = KM_OK;
        fin(st, s);
    }
    *n = err == KM_ERR_BUFFER_SMALL ? total : (err == KM_OK ? i : 0);
    km_err end = tx_end_read(st, err == KM_ERR_BUFFER_SMALL ? KM_OK : err);
    return err ? err : end;
}

/* ---- signing ---------------------------------------------------------------- */

static km_err signing_hash(const km_store_signing_new *sn, unsigned char out[32]) {
    km_buf b;
    km_buf_init(&b);
    (void)km_buf_put(&b, "keymeld/store/signing/v1", 24);
    (void)km_buf_put(&b, sn->keygen_id, KM_STORE_ID_LEN);
    (void)km_buf_put_u64(&b, (uint64_t)sn->created_at);
    (void)km_buf_put_u64(&b, (uint64_t)sn->expires_at);
    (void)km_buf_put_u8(&b, sn->needs_approvals ? 1 : 0);
    put_blob(&b, sn->items, sn->items_len);
    return finish_hash(&b, out);
}

km_err km_store_signing_create(km_store *st, const km_store_signing_new *sn) {
    if (st == NULL || sn == NULL || sn->items == NULL || sn->items_len == 0 ||
        sn->items_len > KM_STORE_BLOB_MAX || sn->expires_at <= sn->created_at)
        return KM_ERR_ARG;
    unsigned char hash[32];
    km_err err = signing_hash(sn, hash);
    if (err) return err;
    err = tx_begin(st);
    if (err) return err;
    err = compare_hash(st, "SELECT content_hash FROM signing_sessions WHERE id = ?", sn->id, hash);
    if (err != KM_ERR_NOT_FOUND) return tx_end(st, err);
    int kstate = 0;
    err = get_state(st, KM_STORE_KEYGEN, sn->keygen_id, &kstate);
    if (err == KM_OK && kstate != KM_KEYGEN_COMPLETED) err = KM_ERR_STATE; /* only a wallet can sign */
    size_t active = 0;
    if (err == KM_OK && sn->max_active)
        err = km_store_signing_active_count(st, sn->keygen_id, sn->max_active, &active);
    if (err == KM_OK && sn->max_active && active >= sn->max_active) err = KM_ERR_RANGE;
    sqlite3_stmt *s;
    /* Check and increment under the write lock of this transaction: two
     * creators cannot both take the last allowed session. */
    if (err == KM_OK)
        err = prep(st,
                   "UPDATE keygen_sessions SET signings_created = signings_created + 1 WHERE id = ?"
                   " AND (max_signings = 0 OR signings_created < max_signings)",
                   &s);
    if (err == KM_OK) err = run(st, s, bind_id(s, 1, sn->keygen_id));
    if (err == KM_OK && sqlite3_changes(st->db) == 0) err = KM_ERR_RANGE;
    if (err == KM_OK)
        err = prep(
            st,
            "INSERT INTO signing_sessions(id, keygen_id, state, items, created_at, expires_at, updated_at,"
            " content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            &s);
    if (err == KM_OK) {
        int rc = bind_id(s, 1, sn->id);
        if (rc == SQLITE_OK) rc = bind_id(s, 2, sn->keygen_id);
        if (rc == SQLITE_OK)
            rc = bind_text(
                s, 3,
                SIGNING_STATES[sn->needs_approvals ? KM_SIGNING_COLLECTING_APPROVALS : KM_SIGNING_NONCES]);
        if (rc == SQLITE_OK) rc = bind_blob(s, 4, sn->items, sn->items_len);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 5, sn->created_at);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 6, sn->expires_at);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 7, sn->created_at);
        if (rc == SQLITE_OK) rc = bind_blob(s, 8, hash, 32);
        err = run(st, s, rc);
    }
    return tx_end(st, err);
}

void km_store_signing_clear(km_store_signing *sg) {
    if (sg == NULL) return;
    km_buf_free(&sg->items);
    km_buf_free(&sg->result);
    memset(sg, 0, sizeof *sg);
}

km_err km_store_signing_get(km_store *st, const unsigned char id[KM_STORE_ID_LEN], km_store_signing *out) {
    if (st == NULL || id == NULL || out == NULL) return KM_ERR_ARG;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    km_err err = prep(st,
                      "SELECT keygen_id, state, reason, created_at, coalesce(expires_at, 0), items, result"
                      " FROM signing_sessions WHERE id = ?",
                      &s);
    if (err) return err;
    err = step_row(s, bind_id(s, 1, id));
    if (err == KM_OK) {
        int state = state_index(SIGNING_STATES, N_SIGNING_STATES, sqlite3_column_text(s, 1));
        if (state < 0) {
            err = KM_ERR_IO;
        } else {
            memcpy(out->id, id, KM_STORE_ID_LEN);
            col_id(s, 0, out->keygen_id);
            out->state = (km_store_signing_state)state;
            col_reason(s, 2, out->reason);
            out->created_at = sqlite3_column_int64(s, 3);
            out->expires_at = sqlite3_column_int64(s, 4);
            err = col_buf(s, 5, &out->items);
            if (err == KM_OK) err = col_buf(s, 6, &out->result);
        }
    }
    fin(st, s);
    if (err) km_store_signing_clear(out);
    return err;
}

/* Forward steps and the nonce-round restart; failure and completion are separate. */
static int signing_legal(int from, int to) {
    if (to == from + 1 && to <= KM_SIGNING_FINALIZING) return 1;
    return to == KM_SIGNING_NONCES && (from == KM_SIGNING_PARTIALS || from == KM_SIGNING_FINALIZING);
}

km_err km_store_signing_set_state(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                  km_store_signing_state to, const char *reason, int64_t now) {
    if (st == NULL || id == NULL || (unsigned)to >= N_SIGNING_STATES) return KM_ERR_ARG;
    if (to == KM_SIGNING_FAILED && !reason_ok(reason)) return KM_ERR_ARG;
    if (to == KM_SIGNING_COMPLETED) return KM_ERR_STATE;
    km_err err = tx_begin(st);
    if (err) return err;
    int cur = 0;
    err = get_state(st, KM_STORE_SIGNING, id, &cur);
    if (err == KM_OK && cur != (int)to) {
        sqlite3_stmt *s;
        if (cur == KM_SIGNING_COMPLETED || cur == KM_SIGNING_FAILED) {
            err = KM_ERR_STATE;
        } else if (to == KM_SIGNING_FAILED) {
            err = write_failed(st, KM_STORE_SIGNING, id, reason, now);
        } else if (!signing_legal(cur, (int)to)) {
            err = KM_ERR_STATE;
        } else {
            if (to == KM_SIGNING_NONCES && cur > KM_SIGNING_NONCES) {
                /* A new nonce round: partials of the old round must never be
                 * combined with the new nonces, so both go. */
                err = prep(st, "DELETE FROM signing_records WHERE signing_id = ?", &s);
                if (err == KM_OK) err = run(st, s, bind_id(s, 1, id));
            }
            if (err == KM_OK)
                err = prep(st, "UPDATE signing_sessions SET state = ?, updated_at = ? WHERE id = ?", &s);
            if (err == KM_OK) {
                int rc = bind_text(s, 1, SIGNING_STATES[to]);
                if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, now);
                if (rc == SQLITE_OK) rc = bind_id(s, 3, id);
                err = run(st, s, rc);
            }
        }
    }
    return tx_end(st, err);
}

km_err km_store_signing_restart_round(km_store *st, const unsigned char id[KM_STORE_ID_LEN], int64_t now) {
    if (st == NULL || id == NULL) return KM_ERR_ARG;
    km_err err = tx_begin(st);
    if (err) return err;
    int cur = 0;
    err = get_state(st, KM_STORE_SIGNING, id, &cur);
    if (err == KM_OK && cur != KM_SIGNING_NONCES && cur != KM_SIGNING_PARTIALS &&
        cur != KM_SIGNING_FINALIZING)
        err = KM_ERR_STATE;
    sqlite3_stmt *s;
    /* Every record of the lost round goes, in the same transaction as the
     * state: nonces or partials of two rounds are never mixed. */
    if (err == KM_OK) err = prep(st, "DELETE FROM signing_records WHERE signing_id = ?", &s);
    if (err == KM_OK) err = run(st, s, bind_id(s, 1, id));
    if (err == KM_OK)
        err = prep(st, "UPDATE signing_sessions SET state = ?, updated_at = ? WHERE id = ?", &s);
    if (err == KM_OK) {
        int rc = bind_text(s, 1, SIGNING_STATES[KM_SIGNING_NONCES]);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, now);
        if (rc == SQLITE_OK) rc = bind_id(s, 3, id);
        err = run(st, s, rc);
    }
    return tx_end(st, err);
}

km_err km_store_signing_complete(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                 const unsigned char *result, size_t result_len, int64_t now) {
    return complete_session(st, KM_STORE_SIGNING, id, KM_SIGNING_FINALIZING, KM_SIGNING_COMPLETED, result,
                            result_len, now);
}

/* One record inside an open transaction; cur is the session's state.
 * Equal record already there: KM_OK; another: KM_ERR_DUPLICATE; absent and
 * the state is not the record's round (want): KM_ERR_STATE. */
static km_err put_record_in_tx(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                               km_store_record_kind kind, const unsigned char user_id[KM_STORE_ID_LEN],
                               const unsigned char *blob, size_t blob_len, int cur, int want) {
    sqlite3_stmt *s;
    km_err err =
        prep(st, "SELECT blob FROM signing_records WHERE signing_id = ? AND kind = ? AND user_id = ?", &s);
    if (err) return err;
    int rc = bind_id(s, 1, id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, 2, (int)kind);
    if (rc == SQLITE_OK) rc = bind_id(s, 3, user_id);
    err = step_row(s, rc);
    if (err == KM_OK && !col_equals(s, 0, blob, blob_len)) err = KM_ERR_DUPLICATE;
    fin(st, s);
    if (err != KM_ERR_NOT_FOUND) return err;
    if (cur != want) return KM_ERR_STATE;
    err = prep(st, "INSERT INTO signing_records(signing_id, kind, user_id, blob) VALUES (?, ?, ?, ?)", &s);
    if (err) return err;
    rc = bind_id(s, 1, id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, 2, (int)kind);
    if (rc == SQLITE_OK) rc = bind_id(s, 3, user_id);
    if (rc == SQLITE_OK) rc = bind_blob(s, 4, blob, blob_len);
    return run(st, s, rc);
}

km_err km_store_signing_put_record(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                   km_store_record_kind kind, const unsigned char user_id[KM_STORE_ID_LEN],
                                   const unsigned char *blob, size_t blob_len) {
    if (st == NULL || id == NULL || user_id == NULL || blob == NULL || blob_len == 0 ||
        blob_len > KM_STORE_BLOB_MAX || (kind != KM_RECORD_NONCE && kind != KM_RECORD_PARTIAL))
        return KM_ERR_ARG;
    km_err err = tx_begin(st);
    if (err) return err;
    int cur = 0;
    err = get_state(st, KM_STORE_SIGNING, id, &cur);
    if (err == KM_OK)
        err = put_record_in_tx(st, id, kind, user_id, blob, blob_len, cur,
                               kind == KM_RECORD_NONCE ? KM_SIGNING_NONCES : KM_SIGNING_PARTIALS);
    return tx_end(st, err);
}

km_err km_store_signing_put_records(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                    km_store_record_kind kind, const km_store_record *recs, size_t n,
                                    int64_t now) {
    if (st == NULL || id == NULL || (recs == NULL && n > 0) ||
        (kind != KM_RECORD_NONCE && kind != KM_RECORD_PARTIAL))
        return KM_ERR_ARG;
    for (size_t i = 0; i < n; i++)
        if (recs[i].blob.data == NULL || recs[i].blob.len == 0 || recs[i].blob.len > KM_STORE_BLOB_MAX)
            return KM_ERR_ARG;
    int want = kind == KM_RECORD_NONCE ? KM_SIGNING_NONCES : KM_SIGNING_PARTIALS;
    int next = kind == KM_RECORD_NONCE ? KM_SIGNING_PARTIALS : KM_SIGNING_FINALIZING;
    km_err err = tx_begin(st);
    if (err) return err;
    int cur = 0;
    err = get_state(st, KM_STORE_SIGNING, id, &cur);
    /* A retry after the commit finds the next state and equal records. */
    if (err == KM_OK && cur != want && cur != next) err = KM_ERR_STATE;
    for (size_t i = 0; err == KM_OK && i < n; i++)
        err = put_record_in_tx(st, id, kind, recs[i].user_id, recs[i].blob.data, recs[i].blob.len, cur, want);
    if (err == KM_OK && cur == want) {
        sqlite3_stmt *s;
        err = prep(st, "UPDATE signing_sessions SET state = ?, updated_at = ? WHERE id = ?", &s);
        if (err == KM_OK) {
            int rc = bind_text(s, 1, SIGNING_STATES[next]);
            if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, now);
            if (rc == SQLITE_OK) rc = bind_id(s, 3, id);
            err = run(st, s, rc);
        }
    }
    return tx_end(st, err);
}

void km_store_records_clear(km_store_record *recs, size_t n) {
    if (recs == NULL) return;
    for (size_t i = 0; i < n; i++) {
        km_buf_free(&recs[i].blob);
        memset(recs[i].user_id, 0, KM_STORE_ID_LEN);
    }
}

km_err km_store_signing_records(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                km_store_record_kind kind, km_store_record *out, size_t cap, size_t *n) {
    if (st == NULL || id == NULL || n == NULL || (out == NULL && cap > 0) ||
        (kind != KM_RECORD_NONCE && kind != KM_RECORD_PARTIAL))
        return KM_ERR_ARG;
    *n = 0;
    for (size_t i = 0; i < cap; i++)
        km_buf_init(&out[i].blob);
    km_err err = tx_begin_read(st);
    if (err) return err;
    int dummy;
    err = get_state(st, KM_STORE_SIGNING, id, &dummy);
    size_t total = 0;
    if (err == KM_OK)
        err = count_rows(st, "SELECT count(*) FROM signing_records WHERE signing_id = ? AND kind = ?", id,
                         (int)kind, &total);
    if (err == KM_OK && total > cap) err = KM_ERR_BUFFER_SMALL;
    sqlite3_stmt *s = NULL;
    size_t i = 0;
    if (err == KM_OK)
        err = prep(
            st,
            "SELECT user_id, blob FROM signing_records WHERE signing_id = ? AND kind = ? ORDER BY user_id",
            &s);
    if (err == KM_OK) {
        int rc = bind_id(s, 1, id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, 2, (int)kind);
        while (err == KM_OK && i < total && (err = step_row(s, rc)) == KM_OK) {
            col_id(s, 0, out[i].user_id);
            err = col_buf(s, 1, &out[i].blob);
            i++;
        }
        if (err == KM_ERR_NOT_FOUND) err = KM_OK;
        fin(st, s);
    }
    if (err && err != KM_ERR_BUFFER_SMALL) km_store_records_clear(out, i);
    *n = err == KM_ERR_BUFFER_SMALL ? total : (err == KM_OK ? i : 0);
    km_err end = tx_end_read(st, err == KM_ERR_BUFFER_SMALL ? KM_OK : err);
    return err ? err : end;
}

/* ---- approvals --------------------------------------------------------------- */

km_err km_store_approval_put(km_store *st, const unsigned char signing_id[KM_STORE_ID_LEN],
                             const unsigned char user_id[KM_STORE_ID_LEN], const unsigned char *sig,
                             size_t sig_len, int64_t now) {
    if (st == NULL || signing_id == NULL || user_id == NULL || sig == NULL ||
        sig_len != KM_STORE_APPROVAL_LEN)
        return KM_ERR_ARG;
    km_err err = tx_begin(st);
    if (err) return err;
    int cur = 0;
    err = get_state(st, KM_STORE_SIGNING, signing_id, &cur);
    sqlite3_stmt *s;
    if (err == KM_OK) {
        err = prep(st, "SELECT signature FROM approvals WHERE signing_id = ? AND user_id = ?", &s);
        if (err == KM_OK) {
            int rc = bind_id(s, 1, signing_id);
            if (rc == SQLITE_OK) rc = bind_id(s, 2, user_id);
            err = step_row(s, rc);
            if (err == KM_OK && !col_equals(s, 0, sig, sig_len)) err = KM_ERR_DUPLICATE;
            fin(st, s);
            if (err == KM_OK) return tx_end(st, KM_OK);
        }
    }
    if (err == KM_ERR_NOT_FOUND) {
        err = cur == KM_SIGNING_COLLECTING_APPROVALS ? KM_OK : KM_ERR_STATE;
        if (err == KM_OK)
            err = prep(
                st, "INSERT INTO approvals(signing_id, user_id, signature, approved_at) VALUES (?, ?, ?, ?)",
                &s);
        if (err == KM_OK) {
            int rc = bind_id(s, 1, signing_id);
            if (rc == SQLITE_OK) rc = bind_id(s, 2, user_id);
            if (rc == SQLITE_OK) rc = bind_blob(s, 3, sig, sig_len);
            if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 4, now);
            err = run(st, s, rc);
        }
    }
    return tx_end(st, err);
}

km_err km_store_approval_get(km_store *st, const unsigned char signing_id[KM_STORE_ID_LEN],
                             const unsigned char user_id[KM_STORE_ID_LEN], km_buf *sig) {
    if (st == NULL || signing_id == NULL || user_id == NULL) return KM_ERR_ARG;
    if (sig) km_buf_free(sig);
    sqlite3_stmt *s;
    km_err err = prep(st, "SELECT signature FROM approvals WHERE signing_id = ? AND user_id = ?", &s);
    if (err) return err;
    int rc = bind_id(s, 1, signing_id);
    if (rc == SQLITE_OK) rc = bind_id(s, 2, user_id);
    err = step_row(s, rc);
    if (err == KM_OK && sig) err = col_buf(s, 0, sig);
    fin(st, s);
    if (err && sig) km_buf_free(sig);
    return err;
}

km_err km_store_approval_count(km_store *st, const unsigned char signing_id[KM_STORE_ID_LEN], size_t *n) {
    if (st == NULL || signing_id == NULL || n == NULL) return KM_ERR_ARG;
    *n = 0;
    return count_rows(st, "SELECT count(*) FROM approvals WHERE signing_id = ?", signing_id, 0, n);
}

/* ---- single-signer keys ------------------------------------------------------ */

static const unsigned char NO_ORIGIN[KM_STORE_ID_LEN];

km_err km_store_key_put(km_store *st, const km_store_key *k, const unsigned char *blob, size_t blob_len) {
    if (st == NULL || k == NULL || blob == NULL || blob_len == 0 || blob_len > KM_STORE_BLOB_MAX ||
        !xonly_ok(k->auth_key) || (k->has_origin != 0 && k->has_origin != 1))
        return KM_ERR_ARG;
    km_err err = tx_begin(st);
    if (err) return err;
    sqlite3_stmt *s;
    err = prep(st,
               "SELECT user_id, enclave_id, import_blob, auth_key, origin_keygen FROM keys WHERE key_id = ?",
               &s);
    if (err == KM_OK) {
        err = step_row(s, bind_id(s, 1, k->key_id));
        if (err == KM_OK) {
            int same_origin = k->has_origin ? col_equals(s, 4, k->origin_keygen, KM_STORE_ID_LEN)
                                            : sqlite3_column_type(s, 4) == SQLITE_NULL;
            if (!(col_equals(s, 0, k->user_id, KM_STORE_ID_LEN) &&
                  sqlite3_column_int64(s, 1) == (sqlite3_int64)k->enclave_id &&
                  col_equals(s, 2, blob, blob_len) && col_equals(s, 3, k->auth_key, KM_STORE_XONLY_LEN) &&
                  same_origin))
                err = KM_ERR_DUPLICATE;
        }
        fin(st, s);
    }
    if (err == KM_ERR_NOT_FOUND) {
        err = prep(
            st,
            "INSERT INTO keys(key_id, user_id, enclave_id, import_blob, created_at, auth_key, origin_keygen)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            &s);
        if (err == KM_OK) {
            int rc = bind_id(s, 1, k->key_id);
            if (rc == SQLITE_OK) rc = bind_id(s, 2, k->user_id);
            if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 3, k->enclave_id);
            if (rc == SQLITE_OK) rc = bind_blob(s, 4, blob, blob_len);
            if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 5, k->created_at);
            if (rc == SQLITE_OK) rc = bind_blob(s, 6, k->auth_key, KM_STORE_XONLY_LEN);
            if (rc == SQLITE_OK)
                rc = k->has_origin ? bind_id(s, 7, k->origin_keygen) : sqlite3_bind_null(s, 7);
            err = run(st, s, rc);
        }
    }
    return tx_end(st, err);
}

/* Columns: key_id, user_id, enclave_id, created_at, auth_key, origin_keygen.
 * import_blob is left as it is (empty). */
static km_err key_from_row(sqlite3_stmt *s, km_store_key *k) {
    if (sqlite3_column_bytes(s, 4) != KM_STORE_XONLY_LEN) return KM_ERR_IO;
    col_id(s, 0, k->key_id);
    col_id(s, 1, k->user_id);
    k->enclave_id = (uint32_t)sqlite3_column_int64(s, 2);
    k->created_at = sqlite3_column_int64(s, 3);
    memcpy(k->auth_key, sqlite3_column_blob(s, 4), KM_STORE_XONLY_LEN);
    k->has_origin = sqlite3_column_type(s, 5) != SQLITE_NULL;
    if (k->has_origin)
        col_id(s, 5, k->origin_keygen);
    else
        memcpy(k->origin_keygen, NO_ORIGIN, KM_STORE_ID_LEN);
    return KM_OK;
}

km_err km_store_key_get(km_store *st, const unsigned char key_id[KM_STORE_ID_LEN], km_store_key *out) {
    if (st == NULL || key_id == NULL || out == NULL) return KM_ERR_ARG;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    km_err err = prep(st,
                      "SELECT key_id, user_id, enclave_id, created_at, auth_key, origin_keygen, import_blob"
                      " FROM keys WHERE key_id = ?",
                      &s);
    if (err) return err;
    err = step_row(s, bind_id(s, 1, key_id));
    if (err == KM_OK) err = key_from_row(s, out);
    if (err == KM_OK) err = col_buf(s, 6, &out->import_blob);
    fin(st, s);
    if (err) {
        km_buf_free(&out->import_blob);
        memset(out, 0, sizeof *out);
    }
    return err;
}

static km_err fill_key(sqlite3_stmt *s, void *out, size_t i) {
    km_store_key *k = &((km_store_key *)out)[i];
    memset(k, 0, sizeof *k);
    return key_from_row(s, k);
}

km_err km_store_key_list_by_user(km_store *st, const unsigned char user_id[KM_STORE_ID_LEN],
                                 km_store_key *out, size_t cap, size_t *n) {
    if (st == NULL || user_id == NULL || n == NULL || (out == NULL && cap > 0)) return KM_ERR_ARG;
    *n = 0;
    km_err err = tx_begin_read(st);
    if (err) return err;
    sqlite3_stmt *s;
    err = prep(st,
               "SELECT key_id, user_id, enclave_id, created_at, auth_key, origin_keygen FROM keys"
               " WHERE user_id = ? ORDER BY created_at, key_id",
               &s);
    if (err == KM_OK) {
        int rc = bind_id(s, 1, user_id);
        err = rc == SQLITE_OK ? list_two_pass(s, cap, n, fill_key, out) : map_rc(rc);
        fin(st, s);
    }
    return list_end(st, err);
}

km_err km_store_key_delete(km_store *st, const unsigned char key_id[KM_STORE_ID_LEN]) {
    if (st == NULL || key_id == NULL) return KM_ERR_ARG;
    km_err err = tx_begin(st);
    if (err) return err;
    sqlite3_stmt *s;
    err = prep(st, "DELETE FROM keys WHERE key_id = ?", &s);
    if (err == KM_OK) err = run(st, s, bind_id(s, 1, key_id));
    if (err == KM_OK && sqlite3_changes(st->db) == 0) err = KM_ERR_NOT_FOUND;
    return tx_end(st, err);
}

km_err km_store_keysign_create(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                               const unsigned char key_id[KM_STORE_ID_LEN], const unsigned char *request,
                               size_t request_len, int64_t created_at, int64_t expires_at) {
    if (st == NULL || id == NULL || key_id == NULL || request == NULL || request_len == 0 ||
        request_len > KM_STORE_BLOB_MAX || expires_at <= created_at)
        return KM_ERR_ARG;
    unsigned char hash[32];
    km_buf b;
    km_buf_init(&b);
    (void)km_buf_put(&b, "keymeld/store/keysign/v1", 24);
    (void)km_buf_put(&b, key_id, KM_STORE_ID_LEN);
    (void)km_buf_put_u64(&b, (uint64_t)created_at);
    (void)km_buf_put_u64(&b, (uint64_t)expires_at);
    put_blob(&b, request, request_len);
    km_err err = finish_hash(&b, hash);
    if (err) return err;
    err = tx_begin(st);
    if (err) return err;
    err = compare_hash(st, "SELECT content_hash FROM key_sign_requests WHERE id = ?", id, hash);
    if (err != KM_ERR_NOT_FOUND) return tx_end(st, err);
    sqlite3_stmt *s;
    err = prep(st,
               "INSERT INTO key_sign_requests(id, key_id, state, request, created_at, expires_at, updated_at,"
               " content_hash) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
               &s);
    if (err == KM_OK) {
        int rc = bind_id(s, 1, id);
        if (rc == SQLITE_OK) rc = bind_id(s, 2, key_id);
        if (rc == SQLITE_OK) rc = bind_blob(s, 3, request, request_len);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 4, created_at);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 5, expires_at);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 6, created_at);
        if (rc == SQLITE_OK) rc = bind_blob(s, 7, hash, 32);
        err = run(st, s, rc);
    }
    return tx_end(st, err);
}

km_err km_store_keysign_get(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                            km_store_keysign_state *state, char *reason, km_buf *result) {
    if (st == NULL || id == NULL || state == NULL) return KM_ERR_ARG;
    *state = KM_KEYSIGN_PENDING;
    if (reason) reason[0] = '\0';
    if (result) km_buf_free(result);
    sqlite3_stmt *s;
    km_err err = prep(st, "SELECT state, reason, result FROM key_sign_requests WHERE id = ?", &s);
    if (err) return err;
    err = step_row(s, bind_id(s, 1, id));
    if (err == KM_OK) {
        int idx = state_index(KEYSIGN_STATES, N_KEYSIGN_STATES, sqlite3_column_text(s, 0));
        if (idx < 0)
            err = KM_ERR_IO;
        else
            *state = (km_store_keysign_state)idx;
        if (err == KM_OK && reason) col_reason(s, 1, reason);
        if (err == KM_OK && result) err = col_buf(s, 2, result);
    }
    fin(st, s);
    if (err && result) km_buf_free(result);
    return err;
}

km_err km_store_keysign_finish(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                               const unsigned char *result, size_t result_len, const char *reason,
                               int64_t now) {
    if (st == NULL || id == NULL) return KM_ERR_ARG;
    if (result != NULL)
        return complete_session(st, KM_STORE_KEYSIGN, id, KM_KEYSIGN_PENDING, KM_KEYSIGN_COMPLETED, result,
                                result_len, now);
    if (!reason_ok(reason)) return KM_ERR_ARG;
    km_err err = tx_begin(st);
    if (err) return err;
    int cur = 0;
    err = get_state(st, KM_STORE_KEYSIGN, id, &cur);
    if (err == KM_OK && cur == KM_KEYSIGN_COMPLETED)
        err = KM_ERR_STATE;
    else if (err == KM_OK && cur == KM_KEYSIGN_PENDING)
        err = write_failed(st, KM_STORE_KEYSIGN, id, reason, now);
    return tx_end(st, err);
}

/* ---- replay cache -------------------------------------------------------------- */

/* One write statement outside an explicit transaction, under the process's
 * writer lock (see store_internal.h). */
static km_err run_locked(km_store *st, sqlite3_stmt *s, int bind_rc) {
    pthread_mutex_lock(&km_store_write_lock);
    km_err err = run(st, s, bind_rc);
    write_unlock();
    return err;
}

static km_err replay_insert(km_store *st, const unsigned char auth_pubkey[KM_STORE_PUBKEY_LEN],
                            const unsigned char *nonce, size_t nonce_len, int64_t seen_at, int64_t expires_at,
                            int durable) {
    if (st == NULL || auth_pubkey == NULL || nonce == NULL || nonce_len == 0 || nonce_len > 64 ||
        expires_at <= seen_at)
        return KM_ERR_ARG;
    if (st->broken) return KM_ERR_IO;
    /* One statement is its own transaction; the primary key makes the check
     * and the insert atomic even between gateways sharing the file. */
    sqlite3_stmt *s;
    km_err err =
        prep(st, "INSERT INTO replay_cache(auth_pubkey, nonce, seen_at, expires_at) VALUES (?, ?, ?, ?)", &s);
    if (err) return err;
    int rc = bind_blob(s, 1, auth_pubkey, KM_STORE_PUBKEY_LEN);
    if (rc == SQLITE_OK) rc = bind_blob(s, 2, nonce, nonce_len);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 3, seen_at);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 4, expires_at);
    pthread_mutex_lock(&km_store_write_lock);
    /* synchronous is a property of this connection: relax it for this one
     * commit only (WAL + NORMAL: durable at the next sync of the log, which
     * the next FULL commit of any handle performs; lost only by a power cut). */
    if (!durable && exec_const(st, "PRAGMA synchronous=NORMAL") != KM_OK) rc = SQLITE_ERROR;
    err = run(st, s, rc);
    if (!durable && exec_const(st, "PRAGMA synchronous=FULL") != KM_OK) {
        /* Never leave a handle relaxed: close the door on every later write. */
        st->broken = 1;
        if (err == KM_OK) err = KM_ERR_IO;
    }
    write_unlock();
    return err;
}

km_err km_store_set_durable(km_store *st, int durable) {
    if (st == NULL) return KM_ERR_ARG;
    pthread_mutex_lock(&km_store_write_lock);
    km_err err = exec_const(st, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    if (err && durable) st->broken = 1; /* never leave a handle relaxed by accident */
    write_unlock();
    return err;
}

km_err km_store_sync(km_store *st) {
    if (st == NULL) return KM_ERR_ARG;
    if (st->broken) return KM_ERR_IO;
    sqlite3_stmt *s;
    km_err err = prep(st, "UPDATE sync_marks SET seq = seq + 1 WHERE id = 0", &s);
    return err ? err : run_locked(st, s, SQLITE_OK);
}

km_err km_store_replay_insert(km_store *st, const unsigned char auth_pubkey[KM_STORE_PUBKEY_LEN],
                              const unsigned char *nonce, size_t nonce_len, int64_t seen_at,
                              int64_t expires_at) {
    return replay_insert(st, auth_pubkey, nonce, nonce_len, seen_at, expires_at, 1);
}

km_err km_store_replay_insert_relaxed(km_store *st, const unsigned char auth_pubkey[KM_STORE_PUBKEY_LEN],
                                      const unsigned char *nonce, size_t nonce_len, int64_t seen_at,
                                      int64_t expires_at) {
    return replay_insert(st, auth_pubkey, nonce, nonce_len, seen_at, expires_at, 0);
}

km_err km_store_replay_purge(km_store *st, int64_t now, size_t *removed) {
    if (removed) *removed = 0;
    if (st == NULL) return KM_ERR_ARG;
    sqlite3_stmt *s;
    km_err err = prep(st, "DELETE FROM replay_cache WHERE expires_at <= ?", &s);
    if (err) return err;
    err = run_locked(st, s, sqlite3_bind_int64(s, 1, now));
    if (err == KM_OK && removed) *removed = (size_t)sqlite3_changes(st->db);
    return err;
}

/* ---- restart, expiry, leases ---------------------------------------------------- */

static km_err fill_ref(sqlite3_stmt *s, void *out, size_t i) {
    static const char *const *const names[] = {KEYGEN_STATES, SIGNING_STATES, KEYSIGN_STATES};
    static const int counts[] = {N_KEYGEN_STATES, N_SIGNING_STATES, N_KEYSIGN_STATES};
    km_store_session_ref *r = &((km_store_session_ref *)out)[i];
    int kind = sqlite3_column_int(s, 0);
    if (kind < 0 || kind > KM_STORE_KEYSIGN) return KM_ERR_IO;
    int state = state_index(names[kind], counts[kind], sqlite3_column_text(s, 2));
    if (state < 0) return KM_ERR_IO;
    r->kind = (km_store_kind)kind;
    col_id(s, 1, r->id);
    r->state = state;
    return KM_OK;
}

km_err km_store_list_nonterminal(km_store *st, km_store_session_ref *out, size_t cap, size_t *n) {
    if (st == NULL || n == NULL || (out == NULL && cap > 0)) return KM_ERR_ARG;
    *n = 0;
    static const char *const sql =
        "SELECT 0, id, state FROM keygen_sessions WHERE state IN ('collecting','finalizing')"
        " UNION ALL SELECT 1, id, state FROM signing_sessions WHERE state NOT IN ('completed','failed')"
        " UNION ALL SELECT 2, id, state FROM key_sign_requests WHERE state = 'pending'"
        " ORDER BY 1, 2";
    km_err err = tx_begin_read(st); /* one snapshot: the count stays right */
    if (err) return err;
    sqlite3_stmt *s;
    err = prep(st, sql, &s);
    if (err == KM_OK) {
        err = list_two_pass(s, cap, n, fill_ref, out);
        fin(st, s);
    }
    return list_end(st, err);
}

km_err km_store_expire(km_store *st, int64_t now, size_t *n_failed) {
    if (n_failed) *n_failed = 0;
    if (st == NULL) return KM_ERR_ARG;
    /* Completed rows have expires_at NULL (a CHECK enforces it), so they can
     * never match: a wallet is not lost to a timeout (original bug 18). */
    static const char *const sql[] = {
        "UPDATE keygen_sessions SET state = 'failed', reason = 'expired', updated_at = ?1, claimed_by = NULL,"
        " lease_until = NULL WHERE state IN ('collecting','finalizing') AND expires_at <= ?1",
        "UPDATE signing_sessions SET state = 'failed', reason = 'expired', updated_at = ?1, claimed_by = "
        "NULL,"
        " lease_until = NULL WHERE state NOT IN ('completed','failed') AND expires_at <= ?1",
        "UPDATE key_sign_requests SET state = 'failed', reason = 'expired', updated_at = ?1, claimed_by = "
        "NULL,"
        " lease_until = NULL WHERE state = 'pending' AND expires_at <= ?1",
    };
    km_err err = tx_begin(st);
    if (err) return err;
    size_t total = 0;
    for (size_t i = 0; err == KM_OK && i < 3; i++) {
        sqlite3_stmt *s;
        err = prep(st, sql[i], &s);
        if (err == KM_OK) err = run(st, s, sqlite3_bind_int64(s, 1, now));
        if (err == KM_OK) total += (size_t)sqlite3_changes(st->db);
    }
    err = tx_end(st, err);
    if (err == KM_OK && n_failed) *n_failed = total;
    return err;
}

static int owner_ok(const char *owner) {
    return owner != NULL && owner[0] != '\0' && strlen(owner) < KM_STORE_OWNER_MAX;
}

km_err km_store_claim(km_store *st, km_store_kind kind, const unsigned char id[KM_STORE_ID_LEN],
                      const char *owner, int64_t now, int64_t lease_until) {
    if (st == NULL || id == NULL || (unsigned)kind > KM_STORE_KEYSIGN || !owner_ok(owner) ||
        lease_until <= now)
        return KM_ERR_ARG;
    /* The compare and the set are one UPDATE: two gateways racing on the same
     * row are serialized by SQLite's write lock, and the loser's WHERE no
     * longer matches. */
    static const char *const sql[] = {
        "UPDATE keygen_sessions SET claimed_by = ?1, lease_until = ?2 WHERE id = ?3"
        " AND state IN ('collecting','finalizing')"
        " AND (claimed_by IS NULL OR claimed_by = ?1 OR lease_until <= ?4)",
        "UPDATE signing_sessions SET claimed_by = ?1, lease_until = ?2 WHERE id = ?3"
        " AND state NOT IN ('completed','failed')"
        " AND (claimed_by IS NULL OR claimed_by = ?1 OR lease_until <= ?4)",
        "UPDATE key_sign_requests SET claimed_by = ?1, lease_until = ?2 WHERE id = ?3"
        " AND state = 'pending'"
        " AND (claimed_by IS NULL OR claimed_by = ?1 OR lease_until <= ?4)",
    };
    km_err err = tx_begin(st);
    if (err) return err;
    sqlite3_stmt *s;
    err = prep(st, sql[kind], &s);
    if (err == KM_OK) {
        int rc = bind_text(s, 1, owner);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, lease_until);
        if (rc == SQLITE_OK) rc = bind_id(s, 3, id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 4, now);
        err = run(st, s, rc);
    }
    if (err == KM_OK && sqlite3_changes(st->db) == 0) {
        int cur;
        err = get_state(st, kind, id, &cur);
        if (err == KM_OK) err = KM_ERR_STATE; /* exists, but held by another owner or terminal */
    }
    return tx_end(st, err);
}

km_err km_store_release(km_store *st, km_store_kind kind, const unsigned char id[KM_STORE_ID_LEN],
                        const char *owner) {
    if (st == NULL || id == NULL || (unsigned)kind > KM_STORE_KEYSIGN || !owner_ok(owner)) return KM_ERR_ARG;
    static const char *const sql[] = {
        "UPDATE keygen_sessions SET claimed_by = NULL, lease_until = NULL WHERE id = ? AND claimed_by = ?",
        "UPDATE signing_sessions SET claimed_by = NULL, lease_until = NULL WHERE id = ? AND claimed_by = ?",
        "UPDATE key_sign_requests SET claimed_by = NULL, lease_until = NULL WHERE id = ? AND claimed_by = ?",
    };
    sqlite3_stmt *s;
    km_err err = prep(st, sql[kind], &s);
    if (err) return err;
    int rc = bind_id(s, 1, id);
    if (rc == SQLITE_OK) rc = bind_text(s, 2, owner);
    return run_locked(st, s, rc);
}
