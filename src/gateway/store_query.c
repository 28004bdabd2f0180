/* store_query.c — the store's read-only queries added with schema v2: the
 * listings a restarting gateway or enclave needs, per-participant auth data,
 * quota counters and statistics (contracts in store.h).
 *
 * Every listing runs in one read transaction and goes through list_two_pass,
 * so a caller whose buffer is too small gets the total with its buffer
 * untouched, and count and rows always agree.
 */
#include <string.h>

#include "gateway/store.h"
#include "gateway/store_internal.h"

/* ---- enclaves ----------------------------------------------------------------- */

static km_err fill_enclave(sqlite3_stmt *s, void *out, size_t i) {
    km_store_enclave *e = &((km_store_enclave *)out)[i];
    const unsigned char *addr = sqlite3_column_text(s, 1);
    if (addr == NULL || sqlite3_column_bytes(s, 2) != KM_STORE_PUBKEY_LEN ||
        sqlite3_column_bytes(s, 3) != KM_STORE_FINGERPRINT_LEN)
        return KM_ERR_IO;
    memset(e, 0, sizeof *e);
    e->id = (uint32_t)sqlite3_column_int64(s, 0);
    snprintf(e->address, sizeof e->address, "%s", (const char *)addr);
    memcpy(e->pubkey, sqlite3_column_blob(s, 2), KM_STORE_PUBKEY_LEN);
    memcpy(e->fingerprint, sqlite3_column_blob(s, 3), KM_STORE_FINGERPRINT_LEN);
    return KM_OK;
}

km_err km_store_enclave_list(km_store *st, km_store_enclave *out, size_t cap, size_t *n) {
    if (st == NULL || n == NULL || (out == NULL && cap > 0)) return KM_ERR_ARG;
    *n = 0;
    km_err err = tx_begin_read(st);
    if (err) return err;
    sqlite3_stmt *s;
    err = prep(st, "SELECT id, address, pubkey, fingerprint FROM enclaves ORDER BY id", &s);
    if (err == KM_OK) {
        err = list_two_pass(s, cap, n, fill_enclave, out);
        fin(st, s);
    }
    return list_end(st, err);
}

/* ---- keygens ------------------------------------------------------------------ */

static km_err fill_id(sqlite3_stmt *s, void *out, size_t i) {
    if (sqlite3_column_bytes(s, 0) != KM_STORE_ID_LEN) return KM_ERR_IO;
    col_id(s, 0, ((unsigned char(*)[KM_STORE_ID_LEN])out)[i]);
    return KM_OK;
}

km_err km_store_keygen_list(km_store *st, uint32_t enclave_id, uint32_t states,
                            unsigned char (*ids)[KM_STORE_ID_LEN], size_t cap, size_t *n) {
    const uint32_t all = (1u << N_KEYGEN_STATES) - 1;
    if (st == NULL || n == NULL || (ids == NULL && cap > 0) || states == 0 || (states & ~all) != 0)
        return KM_ERR_ARG;
    *n = 0;
    /* The state filter is a bound bitmask tested in SQL, so that the count
     * pass and the fill pass see exactly the same rows. */
    static const char *const sql =
        "SELECT id FROM keygen_sessions k"
        " WHERE ((?1 >> CASE state WHEN 'collecting' THEN 0 WHEN 'finalizing' THEN 1"
        "                          WHEN 'completed' THEN 2 WHEN 'failed' THEN 3 END) & 1) = 1"
        "   AND (?2 IS NULL OR EXISTS (SELECT 1 FROM keygen_inits i"
        "                              WHERE i.keygen_id = k.id AND i.enclave_id = ?2))"
        " ORDER BY created_at, id";
    km_err err = tx_begin_read(st);
    if (err) return err;
    sqlite3_stmt *s;
    err = prep(st, sql, &s);
    if (err == KM_OK) {
        int rc = sqlite3_bind_int64(s, 1, states);
        if (rc == SQLITE_OK)
            rc = enclave_id == KM_STORE_ANY_ENCLAVE ? sqlite3_bind_null(s, 2)
                                                    : sqlite3_bind_int64(s, 2, enclave_id);
        err = rc == SQLITE_OK ? list_two_pass(s, cap, n, fill_id, ids) : map_rc(rc);
        fin(st, s);
    }
    return list_end(st, err);
}

/* ---- registrations ------------------------------------------------------------- */

km_err km_store_registration_info(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                                  const unsigned char user_id[KM_STORE_ID_LEN],
                                  unsigned char auth_key[KM_STORE_XONLY_LEN], uint8_t *flags) {
    if (auth_key) memset(auth_key, 0, KM_STORE_XONLY_LEN);
    if (flags) *flags = 0;
    if (st == NULL || keygen_id == NULL || user_id == NULL || auth_key == NULL || flags == NULL)
        return KM_ERR_ARG;
    sqlite3_stmt *s;
    km_err err =
        prep(st, "SELECT auth_key, flags FROM registrations WHERE keygen_id = ? AND user_id = ?", &s);
    if (err) return err;
    int rc = bind_id(s, 1, keygen_id);
    if (rc == SQLITE_OK) rc = bind_id(s, 2, user_id);
    err = step_row(s, rc);
    if (err == KM_OK) {
        sqlite3_int64 f = sqlite3_column_int64(s, 1);
        if (sqlite3_column_bytes(s, 0) != KM_STORE_XONLY_LEN || f < 0 || f > 255) {
            err = KM_ERR_IO;
        } else {
            memcpy(auth_key, sqlite3_column_blob(s, 0), KM_STORE_XONLY_LEN);
            *flags = (uint8_t)f;
        }
    }
    fin(st, s);
    return err;
}

/* ---- signing ------------------------------------------------------------------ */

km_err km_store_signing_count(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN], size_t *n) {
    if (n) *n = 0;
    if (st == NULL || keygen_id == NULL || n == NULL) return KM_ERR_ARG;
    sqlite3_stmt *s;
    km_err err = prep(st, "SELECT signings_created FROM keygen_sessions WHERE id = ?", &s);
    if (err) return err;
    err = step_row(s, bind_id(s, 1, keygen_id));
    if (err == KM_OK) *n = (size_t)sqlite3_column_int64(s, 0);
    fin(st, s);
    return err;
}

km_err km_store_signing_active_count(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                                     size_t limit, size_t *n) {
    if (n) *n = 0;
    if (st == NULL || keygen_id == NULL || n == NULL) return KM_ERR_ARG;
    sqlite3_stmt *s;
    /* The state list is the WHERE of the partial index
     * signing_sessions_keygen_active (schema v3), so only the keygen's
     * active sessions are visited, never its history; LIMIT stops there. */
    km_err err = prep(st,
                      "SELECT count(*) FROM (SELECT 1 FROM signing_sessions WHERE keygen_id = ? AND state IN"
                      " ('collecting_approvals','nonces','partials','finalizing') LIMIT ?)",
                      &s);
    if (err) return err;
    int rc = bind_id(s, 1, keygen_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
    err = step_row(s, rc);
    if (err == KM_OK) *n = (size_t)sqlite3_column_int64(s, 0);
    fin(st, s);
    return err;
}

typedef struct approval_out {
    unsigned char (*users)[KM_STORE_ID_LEN];
    unsigned char (*sigs)[KM_STORE_APPROVAL_LEN];
} approval_out;

static km_err fill_approval(sqlite3_stmt *s, void *out, size_t i) {
    approval_out *o = out;
    if (sqlite3_column_bytes(s, 0) != KM_STORE_ID_LEN || sqlite3_column_bytes(s, 1) != KM_STORE_APPROVAL_LEN)
        return KM_ERR_IO;
    col_id(s, 0, o->users[i]);
    memcpy(o->sigs[i], sqlite3_column_blob(s, 1), KM_STORE_APPROVAL_LEN);
    return KM_OK;
}

km_err km_store_approval_list(km_store *st, const unsigned char signing_id[KM_STORE_ID_LEN],
                              unsigned char (*users)[KM_STORE_ID_LEN],
                              unsigned char (*sigs)[KM_STORE_APPROVAL_LEN], size_t cap, size_t *n) {
    if (st == NULL || signing_id == NULL || n == NULL || ((users == NULL || sigs == NULL) && cap > 0))
        return KM_ERR_ARG;
    *n = 0;
    km_err err = tx_begin_read(st);
    if (err) return err;
    int cur;
    err = get_state(st, KM_STORE_SIGNING, signing_id, &cur); /* unknown session: NOT_FOUND, not "none" */
    sqlite3_stmt *s = NULL;
    if (err == KM_OK)
        err = prep(st, "SELECT user_id, signature FROM approvals WHERE signing_id = ? ORDER BY user_id", &s);
    if (err == KM_OK) {
        approval_out o = {users, sigs};
        int rc = bind_id(s, 1, signing_id);
        err = rc == SQLITE_OK ? list_two_pass(s, cap, n, fill_approval, &o) : map_rc(rc);
        fin(st, s);
    }
    return list_end(st, err);
}

/* ---- keys --------------------------------------------------------------------- */

km_err km_store_key_list_by_enclave(km_store *st, uint32_t enclave_id,
                                    unsigned char (*key_ids)[KM_STORE_ID_LEN], size_t cap, size_t *n) {
    if (st == NULL || n == NULL || (key_ids == NULL && cap > 0)) return KM_ERR_ARG;
    *n = 0;
    km_err err = tx_begin_read(st);
    if (err) return err;
    sqlite3_stmt *s;
    err = prep(st, "SELECT key_id FROM keys WHERE enclave_id = ? ORDER BY created_at, key_id", &s);
    if (err == KM_OK) {
        int rc = sqlite3_bind_int64(s, 1, enclave_id);
        err = rc == SQLITE_OK ? list_two_pass(s, cap, n, fill_id, key_ids) : map_rc(rc);
        fin(st, s);
    }
    return list_end(st, err);
}

km_err km_store_keysign_get_request(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                    unsigned char key_id[KM_STORE_ID_LEN], km_buf *request,
                                    int64_t *created_at, int64_t *expires_at) {
    if (key_id) memset(key_id, 0, KM_STORE_ID_LEN);
    if (request) km_buf_free(request);
    if (created_at) *created_at = 0;
    if (expires_at) *expires_at = 0;
    if (st == NULL || id == NULL) return KM_ERR_ARG;
    sqlite3_stmt *s;
    km_err err = prep(st,
                      "SELECT key_id, request, created_at, coalesce(expires_at, 0) FROM key_sign_requests"
                      " WHERE id = ?",
                      &s);
    if (err) return err;
    err = step_row(s, bind_id(s, 1, id));
    if (err == KM_OK && sqlite3_column_bytes(s, 0) != KM_STORE_ID_LEN) err = KM_ERR_IO;
    if (err == KM_OK && request) err = col_buf(s, 1, request);
    if (err == KM_OK) {
        if (key_id) col_id(s, 0, key_id);
        if (created_at) *created_at = sqlite3_column_int64(s, 2);
        if (expires_at) *expires_at = sqlite3_column_int64(s, 3);
    }
    fin(st, s);
    if (err && request) km_buf_free(request);
    return err;
}

/* ---- statistics ----------------------------------------------------------------- */

/* Adds "SELECT state, count(*) ... GROUP BY state" rows into counts[]; a state
 * name this code does not know means the file is not what we think it is. */
static km_err count_states(km_store *st, const char *sql, const char *const *names, int n_names,
                           size_t *counts) {
    sqlite3_stmt *s;
    km_err err = prep(st, sql, &s);
    if (err) return err;
    while ((err = step_row(s, SQLITE_OK)) == KM_OK) {
        int idx = state_index(names, n_names, sqlite3_column_text(s, 0));
        if (idx < 0) {
            err = KM_ERR_IO;
            break;
        }
        counts[idx] = (size_t)sqlite3_column_int64(s, 1);
    }
    fin(st, s);
    return err == KM_ERR_NOT_FOUND ? KM_OK : err;
}

static km_err single_int(km_store *st, const char *sql, sqlite3_int64 *v) {
    sqlite3_stmt *s;
    km_err err = prep(st, sql, &s);
    if (err) return err;
    err = step_row(s, SQLITE_OK);
    if (err == KM_OK) *v = sqlite3_column_int64(s, 0);
    if (err == KM_ERR_NOT_FOUND) err = KM_ERR_IO;
    fin(st, s);
    return err;
}

km_err km_store_stats_get(km_store *st, km_store_stats *out) {
    if (out) memset(out, 0, sizeof *out);
    if (st == NULL || out == NULL) return KM_ERR_ARG;
    km_err err = tx_begin_read(st);
    if (err) return err;
    err = count_states(st, "SELECT state, count(*) FROM keygen_sessions GROUP BY state", KEYGEN_STATES,
                       N_KEYGEN_STATES, out->keygens);
    if (err == KM_OK)
        err = count_states(st, "SELECT state, count(*) FROM signing_sessions GROUP BY state", SIGNING_STATES,
                           N_SIGNING_STATES, out->signings);
    if (err == KM_OK)
        err = count_states(st, "SELECT state, count(*) FROM key_sign_requests GROUP BY state", KEYSIGN_STATES,
                           N_KEYSIGN_STATES, out->keysigns);
    sqlite3_int64 keys = 0, replay = 0, pages = 0, page_size = 0;
    if (err == KM_OK) err = single_int(st, "SELECT count(*) FROM keys", &keys);
    if (err == KM_OK) err = single_int(st, "SELECT count(*) FROM replay_cache", &replay);
    if (err == KM_OK) err = single_int(st, "PRAGMA page_count", &pages);
    if (err == KM_OK) err = single_int(st, "PRAGMA page_size", &page_size);
    err = tx_end_read(st, err);
    if (err == KM_OK) {
        out->keys = (size_t)keys;
        out->replay_entries = (size_t)replay;
        out->db_bytes = (int64_t)(pages * page_size);
    } else {
        memset(out, 0, sizeof *out);
    }
    return err;
}
