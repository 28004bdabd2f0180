/* store_internal.h — shared between the store's translation units only.
 *
 * The plumbing is static inline so that every store_*.c file uses the same
 * error mapping and transaction discipline without exporting symbols from the
 * library.
 */
#ifndef KEYMELD_GATEWAY_STORE_INTERNAL_H
#define KEYMELD_GATEWAY_STORE_INTERNAL_H

#include <pthread.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/store.h"

typedef struct km_store_migration {
    int version; /**< strictly increasing from 1 */
    const char *const
        *sql; /**< constant DDL statements, NULL-terminated, run inside the migration transaction */
} km_store_migration;

extern const km_store_migration km_store_migrations[];
extern const size_t km_store_n_migrations;

/** km_store_open, but migrating only up to target_version (1..KM_STORE_SCHEMA_VERSION).
 *  For tests: it builds the file an older release would have written, to test
 *  the later migrations on it. Never used by the gateway itself. */
km_err km_store_open_version(km_store **out, const char *path, int target_version, char *errmsg,
                             size_t errmsg_len) KM_WARN_UNUSED;

/* Prepared statements are kept per handle and reused (SQL parsing and
 * planning were a large part of the gateway's CPU per request). */
#define KM_STORE_STMT_CACHE 64
typedef struct km_store_stmt {
    char *sql; /* owned copy: the cache key */
    sqlite3_stmt *s;
    int busy; /* handed out by prep, not yet given back by fin */
} km_store_stmt;

struct km_store {
    sqlite3 *db;
    int broken; /* synchronous=FULL could not be restored: refuse every write */
    km_store_stmt cache[KM_STORE_STMT_CACHE];
    size_t n_cache;
};

static const char *const KEYGEN_STATES[] = {"collecting", "finalizing", "completed", "failed"};
static const char *const SIGNING_STATES[] = {"collecting_approvals", "nonces",    "partials",
                                             "finalizing",           "completed", "failed"};
static const char *const KEYSIGN_STATES[] = {"pending", "completed", "failed"};
#define N_KEYGEN_STATES  4
#define N_SIGNING_STATES 6
#define N_KEYSIGN_STATES 3

/* ---- plumbing --------------------------------------------------------------- */

static inline km_err map_rc(int rc) {
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return KM_OK;
    case SQLITE_NOMEM:
        return KM_ERR_NOMEM;
    case SQLITE_TOOBIG:
        return KM_ERR_RANGE;
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) return KM_ERR_DUPLICATE;
        if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return KM_ERR_NOT_FOUND;
        return KM_ERR_ARG; /* CHECK / NOT NULL / trigger: the row was impossible */
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        return KM_ERR_ARG;
    default:
        return KM_ERR_IO; /* BUSY, LOCKED, IOERR, CORRUPT, FULL, NOTADB, ... */
    }
}

/* A statement for sql: a cached one not in use, or a new one (cached while
 * there is room). Give it back with fin. */
static inline km_err prep(km_store *st, const char *sql, sqlite3_stmt **s) {
    *s = NULL;
    for (size_t i = 0; i < st->n_cache; i++) {
        km_store_stmt *c = &st->cache[i];
        if (!c->busy && strcmp(c->sql, sql) == 0) {
            c->busy = 1;
            *s = c->s;
            return KM_OK;
        }
    }
    int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, s, NULL);
    if (rc != SQLITE_OK) return map_rc(rc);
    char *copy = st->n_cache < KM_STORE_STMT_CACHE ? strdup(sql) : NULL;
    if (copy) st->cache[st->n_cache++] = (km_store_stmt){copy, *s, 1};
    return KM_OK;
}

/* Done with a statement from prep: a cached one is reset (its read lock and
 * bindings released) for the next use; any other is finalized. */
static inline void fin(km_store *st, sqlite3_stmt *s) {
    for (size_t i = 0; i < st->n_cache; i++)
        if (st->cache[i].s == s) {
            (void)sqlite3_reset(s);
            (void)sqlite3_clear_bindings(s);
            st->cache[i].busy = 0;
            return;
        }
    sqlite3_finalize(s);
}

/* sqlite3_bind_blob with a NULL pointer binds SQL NULL; an empty blob must be a zeroblob. */
static inline int bind_blob(sqlite3_stmt *s, int i, const void *p, size_t n) {
    if (n > KM_STORE_BLOB_MAX) return SQLITE_TOOBIG;
    if (n == 0) return sqlite3_bind_zeroblob(s, i, 0);
    return sqlite3_bind_blob(s, i, p, (int)n, SQLITE_STATIC);
}

static inline int bind_id(sqlite3_stmt *s, int i, const unsigned char id[KM_STORE_ID_LEN]) {
    return sqlite3_bind_blob(s, i, id, KM_STORE_ID_LEN, SQLITE_STATIC);
}

static inline int bind_text(sqlite3_stmt *s, int i, const char *t) {
    return sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
}

/* Run a statement expected to produce no row; gives it back (fin). */
static inline km_err run(km_store *st, sqlite3_stmt *s, int bind_rc) {
    km_err err = KM_OK;
    if (bind_rc != SQLITE_OK) {
        err = map_rc(bind_rc);
    } else {
        int rc = sqlite3_step(s);
        if (rc != SQLITE_DONE)
            err = rc == SQLITE_ROW ? KM_ERR_ARG : map_rc(sqlite3_extended_errcode(sqlite3_db_handle(s)));
    }
    fin(st, s);
    return err;
}

/* Step expecting a row (KM_OK), none (KM_ERR_NOT_FOUND) or an error. Does not finalize. */
static inline km_err step_row(sqlite3_stmt *s, int bind_rc) {
    if (bind_rc != SQLITE_OK) return map_rc(bind_rc);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return KM_OK;
    if (rc == SQLITE_DONE) return KM_ERR_NOT_FOUND;
    return map_rc(sqlite3_extended_errcode(sqlite3_db_handle(s)));
}

static inline km_err exec_const(km_store *st, const char *sql) {
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? KM_OK : map_rc(sqlite3_extended_errcode(st->db));
}

/* Writers of one process take this lock around their transaction. SQLite
 * serialises writers anyway (one write lock per file); without the mutex a
 * second handle of the same process would find the file locked and sleep in
 * SQLite's busy handler (1 ms and more per try) while the first one syncs;
 * with it, it wakes the moment the first commits. Other processes still meet
 * at SQLite's lock (busy_timeout). Held from tx_begin to tx_end. */
extern pthread_mutex_t km_store_write_lock;

/* Leave the writer lock. It is an error-checking mutex: releasing it
 * without holding it is a bug that would let two writers in, so it stops
 * the process instead of going unnoticed. */
static inline void write_unlock(void) {
    if (pthread_mutex_unlock(&km_store_write_lock) != 0) {
        fprintf(stderr, "keymeld store: writer lock released without being held\n");
        abort();
    }
}

static inline km_err tx_begin(km_store *st) {
    if (st->broken) return KM_ERR_IO;
    pthread_mutex_lock(&km_store_write_lock);
    km_err err = exec_const(st, "BEGIN IMMEDIATE");
    if (err) write_unlock();
    return err;
}

static inline km_err tx_end_read(km_store *st, km_err err);

/* Commit on success, roll back on any error; returns the first error. */
static inline km_err tx_end(km_store *st, km_err err) {
    err = tx_end_read(st, err);
    write_unlock();
    return err;
}

static inline km_err col_buf(sqlite3_stmt *s, int col, km_buf *out) {
    km_buf_free(out);
    const void *p = sqlite3_column_blob(s, col);
    int n = sqlite3_column_bytes(s, col);
    if (n > 0 && p == NULL) return KM_ERR_NOMEM;
    if (n > 0) return km_buf_put(out, p, (size_t)n);
    return KM_OK;
}

/* Compare a blob column with (p, n). */
static inline int col_equals(sqlite3_stmt *s, int col, const void *p, size_t n) {
    const void *q = sqlite3_column_blob(s, col);
    size_t m = (size_t)sqlite3_column_bytes(s, col);
    if (sqlite3_column_type(s, col) == SQLITE_NULL) return 0;
    return m == n && (n == 0 || memcmp(p, q, n) == 0);
}

static inline void col_id(sqlite3_stmt *s, int col, unsigned char id[KM_STORE_ID_LEN]) {
    const void *p = sqlite3_column_blob(s, col);
    if (p != NULL && sqlite3_column_bytes(s, col) == KM_STORE_ID_LEN)
        memcpy(id, p, KM_STORE_ID_LEN);
    else
        memset(id, 0, KM_STORE_ID_LEN);
}

static inline void col_reason(sqlite3_stmt *s, int col, char out[KM_STORE_REASON_MAX]) {
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, KM_STORE_REASON_MAX, "%s", t ? (const char *)t : "");
}

static inline int state_index(const char *const *names, int n, const unsigned char *text) {
    if (text == NULL) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], (const char *)text) == 0) return i;
    return -1;
}

static inline void set_msg(char *msg, size_t len, const char *text) {
    if (msg != NULL && len > 0) snprintf(msg, len, "%s", text);
}

static inline int reason_ok(const char *reason) {
    return reason != NULL && reason[0] != '\0' && strlen(reason) < KM_STORE_REASON_MAX;
}

/* Current state index of a session of the given kind; KM_ERR_NOT_FOUND if none. */
static const char *const STATE_SQL[] = {
    "SELECT state FROM keygen_sessions WHERE id = ?",
    "SELECT state FROM signing_sessions WHERE id = ?",
    "SELECT state FROM key_sign_requests WHERE id = ?",
};

static inline km_err get_state(km_store *st, km_store_kind kind, const unsigned char id[KM_STORE_ID_LEN],
                               int *state) {
    static const char *const *const names[] = {KEYGEN_STATES, SIGNING_STATES, KEYSIGN_STATES};
    static const int counts[] = {N_KEYGEN_STATES, N_SIGNING_STATES, N_KEYSIGN_STATES};
    sqlite3_stmt *s;
    km_err err = prep(st, STATE_SQL[kind], &s);
    if (err) return err;
    err = step_row(s, bind_id(s, 1, id));
    if (err == KM_OK) {
        *state = state_index(names[kind], counts[kind], sqlite3_column_text(s, 0));
        if (*state < 0) err = KM_ERR_IO;
    }
    fin(st, s);
    return err;
}

/* Count rows for a cap/n listing; count_sql takes the id as parameter 1. */
static inline km_err count_rows(km_store *st, const char *count_sql, const unsigned char id[KM_STORE_ID_LEN],
                                int kind, size_t *n) {
    sqlite3_stmt *s;
    km_err err = prep(st, count_sql, &s);
    if (err) return err;
    int rc = bind_id(s, 1, id);
    if (rc == SQLITE_OK && kind != 0) rc = sqlite3_bind_int(s, 2, kind);
    err = step_row(s, rc);
    if (err == KM_OK) *n = (size_t)sqlite3_column_int64(s, 0);
    fin(st, s);
    return err;
}

/* An auth key must be a BIP-340 x-only key; libsecp256k1 decides (parsing
 * needs no precomputed tables, so the static context suffices). Refusing at
 * the store also keeps the all-zero "v1, no key" sentinel from being written
 * as if it were a real key. */
static inline int xonly_ok(const unsigned char k[KM_STORE_XONLY_LEN]) {
    secp256k1_xonly_pubkey pk;
    return k != NULL && secp256k1_xonly_pubkey_parse(secp256k1_context_static, &pk, k) == 1;
}

/* A read transaction: in WAL mode BEGIN (deferred) pins one snapshot at the
 * first read without taking the write lock, so a listing's count and rows
 * agree while writers on other handles proceed. */
static inline km_err tx_begin_read(km_store *st) {
    return exec_const(st, "BEGIN");
}

/* End a read transaction (it never took the writer lock). */
static inline km_err tx_end_read(km_store *st, km_err err) {
    if (err == KM_OK) err = exec_const(st, "COMMIT");
    if (err && !sqlite3_get_autocommit(st->db)) (void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

/* Fills out[i] from the current row of a listing. */
typedef km_err (*km_store_row_fn)(sqlite3_stmt *s, void *out, size_t i);

/* The cap/n contract of every listing: step once to count; if the rows do not
 * fit, report the total and leave out untouched; else reset and fill. Must run
 * inside a transaction so both passes see the same rows. Does not finalize. */
static inline km_err list_two_pass(sqlite3_stmt *s, size_t cap, size_t *n, km_store_row_fn fill, void *out) {
    size_t total = 0;
    km_err err;
    while ((err = step_row(s, SQLITE_OK)) == KM_OK)
        total++;
    if (err != KM_ERR_NOT_FOUND) return err;
    if (total > cap) {
        *n = total;
        return KM_ERR_BUFFER_SMALL;
    }
    sqlite3_reset(s);
    size_t i = 0;
    while (i < total && (err = step_row(s, SQLITE_OK)) == KM_OK)
        err = fill(s, out, i++);
    if (err == KM_ERR_NOT_FOUND) err = i == total ? KM_OK : KM_ERR_IO;
    *n = err == KM_OK ? i : 0;
    return err;
}

/* Ends a listing's transaction: BUFFER_SMALL is a result, not a failure. */
static inline km_err list_end(km_store *st, km_err err) {
    km_err end = tx_end_read(st, err == KM_ERR_BUFFER_SMALL ? KM_OK : err);
    return err ? err : end;
}

#endif
