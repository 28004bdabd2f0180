/* chaos_check.c — what keymeld-chaos checks once the storm is over: every
 * session the gateway acknowledged is still there and final (re-read even if
 * a client already saw it end, so that an outcome lost or changed by a
 * later crash shows up), no nonce point twice, and the database file is
 * sound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "chaos.h"

size_t ch_settle(ch_run *run, km_sdk *sdk, unsigned wait_s) {
    run->hard_end_ms = ch_now_ms() + (uint64_t)wait_s * 1000u;
    size_t lost = 0;
    /* The registries no longer grow (every client has ended). */
    for (size_t i = 0; i < run->n_kgs; i++) {
        ch_keygen *kg = run->kgs[i];
        unsigned left = (unsigned)((run->hard_end_ms - ch_now_ms()) / 1000u);
        /* A keygen whose client gave up joining cannot end; it is reported
         * (a violation was recorded when the join was refused). */
        if (!kg->joined || !ch_keygen_wait(run, sdk, kg, left ? left : 1)) {
            lost++;
            fprintf(stderr, "chaos: LOST keygen %zu: %s\n", i, kg->reason[0] ? kg->reason : "not final");
        }
    }
    for (size_t i = 0; i < run->n_sgs; i++) {
        ch_signing *s = run->sgs[i];
        unsigned left = (unsigned)((run->hard_end_ms - ch_now_ms()) / 1000u);
        if (!ch_signing_wait(run, sdk, s, left ? left : 1)) {
            lost++;
            fprintf(stderr, "chaos: LOST signing %zu: %s\n", i, s->reason[0] ? s->reason : "not final");
        } else if (s->failed && !s->reason[0]) {
            ch_violation(run, "signing session %zu failed without a reason", i);
        } else if (s->failed && strncmp(s->reason, "signing round lost", 18) != 0) {
            /* Honest clients, honest enclaves: the storm explains only a
             * session whose rounds were lost too often. Anything else (e.g.
             * a refusal by an enclave that was not restored yet) is a bug. */
            ch_violation(run, "signing session %zu failed for a reason kills do not explain: %s", i,
                         s->reason);
        }
    }
    for (size_t i = 0; i < run->n_kgs; i++)
        if (run->kgs[i]->failed)
            ch_violation(run, "keygen %zu failed: %s", i,
                         run->kgs[i]->reason[0] ? run->kgs[i]->reason : "(no reason given)");
    return lost;
}

static int cmp32(const void *a, const void *b) {
    return memcmp(a, b, 32);
}

size_t ch_nonce_repeats(ch_run *run) {
    if (run->n_R < 2) return 0;
    qsort(run->R, run->n_R, 32, cmp32);
    size_t rep = 0;
    for (size_t i = 1; i < run->n_R; i++)
        if (!memcmp(run->R[i - 1], run->R[i], 32)) rep++;
    return rep;
}

int ch_integrity(const char *db_path, char *result, size_t cap) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(result, cap, "not checked");
    /* Read-write: a WAL left by a killed gateway is recovered on open. */
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        snprintf(result, cap, "cannot open: %s", db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return 0;
    }
    int ok = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        snprintf(result, cap, "%s", sqlite3_errmsg(db));
    } else if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(result, cap, "%s", t ? (const char *)t : "(null)");
        ok = t && !strcmp((const char *)t, "ok");
    } else {
        snprintf(result, cap, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}
