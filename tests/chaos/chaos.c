/* chaos.c — keymeld-chaos: a bounded mixed workload of keygens and signing
 * sessions through the client SDK against real enclave processes and a real
 * gateway (the gateway test harness), while this thread kill -9's a random
 * enclave or the gateway at random moments and restarts it (an enclave on
 * its state directory, so with the same sealed identity; the gateway on the
 * same database and port). Afterwards, with nothing killed any more:
 *   - every session the gateway acknowledged is completed, or failed with a
 *     reason (lost: 0), and reads the same as when the client first saw it;
 *   - every signature verifies (BIP-340, under the key the client aggregates
 *     from its own participants' keys, over the message it asked for;
 *     adaptor pre-signatures verify against the client's point and complete
 *     with its secret);
 *   - no nonce point x(R) appears twice among everything produced;
 *   - after one last kill -9 of the gateway, PRAGMA integrity_check is "ok".
 * Exit status: 0 if all of that holds, 1 on any violation, 2 on a usage
 * error. The seed is printed; --seed replays the workload and the kill
 * schedule (not the timing of the machine).
 *
 * Usage: keymeld-chaos [--seconds N] [--sessions N] [--seed N]
 *        [--kill-interval-ms N] [--enclaves N] [--clients N]
 *        [--database-dir DIR] [--settle-seconds N] [--json FILE] */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"

#define MAX_DOWN_MS 300 /* a killed process stays down 0..MAX_DOWN_MS */

static ch_run g_run;

static void usage(void) {
    fprintf(stderr, "usage: keymeld-chaos [--seconds N] [--sessions N] [--seed N] [--kill-interval-ms N]\n"
                    "                     [--enclaves 1..8] [--clients 1..32] [--database-dir DIR]\n"
                    "                     [--settle-seconds N] [--json FILE]\n");
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* ---- the stack -------------------------------------------------------------------- */

static int load_trust(ch_run *run) {
    FILE *f = fopen(KM_ENCLAVE_BIN, "rb");
    if (!f) return -1;
    km_buf bin;
    km_buf_init(&bin);
    unsigned char chunk[65536];
    size_t r;
    int bad = 0;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
        bad |= km_buf_put(&bin, chunk, r) != KM_OK;
    fclose(f);
    if (!bad) km_sha384(run->pcr0, bin.data, bin.len); /* PCR0 of a development enclave */
    km_buf_free(&bin);
    for (int i = 0; !bad && i < run->n_enclaves; i++)
        bad = km_gwtest_ca_root(&run->t, i, &run->roots[i]) != KM_OK;
    return bad ? -1 : 0;
}

/* Restart what was killed. A start that fails (the process crashed or
 * exited before it was ready: its log tail is printed) is a violation: a
 * gateway must always start on its own database, an enclave on its state.
 * A restart that fails five times ends the run. */
static void restart_gateway(ch_run *run) {
    km_err err = KM_ERR_IO;
    for (int tries = 0; tries < 5 && err; tries++) {
        err = km_gwtest_gateway_start(&run->t);
        if (err) {
            ch_violation(run, "the gateway did not start on its database (%s)", km_err_name(err));
            ch_sleep_ms(300);
        }
    }
    if (err) {
        /* Clients are still running: no atexit clean-up under their feet;
         * the children die with this process (PR_SET_PDEATHSIG). */
        fprintf(stderr, "chaos: the gateway does not restart: %s\n", km_err_name(err));
        _exit(1);
    }
}

static void restart_enclave(ch_run *run, int i) {
    km_err err = KM_ERR_IO;
    for (int tries = 0; tries < 5 && err; tries++) {
        err = km_devnet_restart(&run->t.enc[i]);
        if (err) {
            ch_violation(run, "enclave %d did not restart on its state (%s)", i, km_err_name(err));
            ch_sleep_ms(300);
        }
    }
    if (err) {
        fprintf(stderr, "chaos: enclave %d does not restart: %s\n", i, km_err_name(err));
        _exit(1);
    }
}

static int storm_over(const ch_run *run) {
    if (ch_now_ms() >= run->work_end_ms) return 1;
    return run->max_sessions && atomic_load(&run->sessions_started) >= run->max_sessions;
}

/* Kill at random intervals (interval/2 .. 3*interval/2): the gateway a third
 * of the time, else a random enclave; one kill in eight takes the gateway
 * and an enclave together. */
static void killer(ch_run *run, uint64_t *rng, unsigned interval_ms, int verbose) {
    while (!storm_over(run)) {
        unsigned wait = interval_ms / 2 + (unsigned)(ch_rng(rng) % (interval_ms + 1));
        uint64_t until = ch_now_ms() + wait;
        while (ch_now_ms() < until && !storm_over(run))
            ch_sleep_ms(20);
        if (storm_over(run)) break;
        unsigned pick = (unsigned)(ch_rng(rng) % 24);
        int gw = pick < 8 || pick >= 21;
        int enc = pick >= 8 ? (int)(ch_rng(rng) % (uint64_t)run->n_enclaves) : -1;
        unsigned down = (unsigned)(ch_rng(rng) % (MAX_DOWN_MS + 1));
        if (gw) {
            km_gwtest_gateway_kill(&run->t);
            atomic_fetch_add(&run->kills_gateway, 1);
        }
        if (enc >= 0) {
            km_devnet_kill(&run->t.enc[enc]);
            atomic_fetch_add(&run->kills_enclave, 1);
        }
        if (verbose) {
            char what[48];
            snprintf(what, sizeof what, "%s%s", gw ? "gateway" : "", enc >= 0 && gw ? " + " : "");
            if (enc >= 0) snprintf(what + strlen(what), sizeof what - strlen(what), "enclave %d", enc);
            printf("  kill -9 %s, down %u ms (%zu sessions so far)\n", what, down,
                   atomic_load(&run->sessions_started));
            fflush(stdout);
        }
        ch_sleep_ms(down);
        if (enc >= 0) restart_enclave(run, enc);
        if (gw) restart_gateway(run);
    }
}

/* ---- summary ---------------------------------------------------------------------- */

typedef struct tally {
    char reason[80];
    unsigned n;
} tally;

/* Count a failure reason, cut at its first '(' (the part that names ids or
 * details differs between sessions). */
static void tally_add(tally *t, size_t *n, size_t cap, const char *reason) {
    char key[80];
    snprintf(key, sizeof key, "%s", reason[0] ? reason : "(none)");
    char *p = strchr(key, '(');
    if (p && p != key) *p = '\0';
    size_t len = strlen(key);
    while (len && key[len - 1] == ' ')
        key[--len] = '\0';
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(t[i].reason, key)) {
            t[i].n++;
            return;
        }
    if (*n < cap) {
        snprintf(t[*n].reason, sizeof t[*n].reason, "%s", key);
        t[(*n)++].n = 1;
    }
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void cleanup(void) {
    ch_run *run = &g_run;
    for (size_t i = 0; i < run->n_sgs; i++) {
        km_wipe(run->sgs[i]->secrets, sizeof run->sgs[i]->secrets);
        free(run->sgs[i]);
    }
    for (size_t i = 0; i < run->n_kgs; i++) {
        km_sdk_session_free(run->kgs[i]->s);
        km_wipe(run->kgs[i]->p, sizeof run->kgs[i]->p);
        free(run->kgs[i]);
    }
    free(run->sgs);
    free(run->kgs);
    free(run->R);
    run->sgs = NULL;
    run->kgs = NULL;
    run->R = NULL;
    run->n_sgs = run->n_kgs = 0;
    for (int i = 0; i < KM_GWTEST_MAX_ENCLAVES; i++)
        km_buf_free(&run->roots[i]);
    km_gwtest_stop(&run->t);
    if (run->ctx) km_ctx_destroy(run->ctx);
    run->ctx = NULL;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    ch_run *run = &g_run;
    uint64_t seconds = 60, sessions = 0, seed = 0, interval = 1000, enclaves = 3, clients = 4, settle = 180;
    const char *db_dir = NULL, *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!v) {
            bad = 1;
        } else if (!strcmp(a, "--seconds")) {
            bad = parse_u64(v, 1, 86400, &seconds);
        } else if (!strcmp(a, "--sessions")) {
            bad = parse_u64(v, 1, 10000000, &sessions);
        } else if (!strcmp(a, "--seed")) {
            bad = parse_u64(v, 1, UINT64_MAX, &seed);
        } else if (!strcmp(a, "--kill-interval-ms")) {
            bad = parse_u64(v, 10, 3600000, &interval);
        } else if (!strcmp(a, "--enclaves")) {
            bad = parse_u64(v, 1, KM_GWTEST_MAX_ENCLAVES, &enclaves);
        } else if (!strcmp(a, "--clients")) {
            bad = parse_u64(v, 1, CH_MAX_CLIENTS, &clients);
        } else if (!strcmp(a, "--settle-seconds")) {
            bad = parse_u64(v, 10, 3600, &settle);
        } else if (!strcmp(a, "--database-dir")) {
            db_dir = v;
            bad = strlen(v) > 400 || strpbrk(v, "\"\\") != NULL;
        } else if (!strcmp(a, "--json")) {
            json_path = v;
        } else {
            bad = 1;
        }
        if (bad) {
            usage();
            return 2;
        }
        i++;
    }
    if (!seed) seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    FILE *jf = NULL;
    if (json_path && !(jf = fopen(json_path, "w"))) {
        fprintf(stderr, "keymeld-chaos: cannot write %s: %s\n", json_path, strerror(errno));
        return 2;
    }
    run->seed = seed;
    run->n_enclaves = (int)enclaves;
    run->clients = (unsigned)clients;
    run->max_sessions = (size_t)sessions;
    pthread_mutex_init(&run->mu, NULL);
    atexit(cleanup);
    if (km_ctx_create(&run->ctx) != KM_OK) return 1;

    printf("keymeld-chaos: seed %llu (--seed %llu replays the workload and the kill schedule)\n",
           (unsigned long long)seed, (unsigned long long)seed);
    printf("  %llu s%s, %u clients, %d enclaves, a kill every %llu ms on average\n",
           (unsigned long long)seconds, sessions ? " or until the session bound" : "", run->clients,
           run->n_enclaves, (unsigned long long)interval);
    fflush(stdout);

    /* ---- the stack: the gateway pinned to its first port, clients keep one URL ---- */
    char extra[600], db_path[520] = "";
    if (db_dir) {
        snprintf(db_path, sizeof db_path, "%s/keymeld-chaos-%d.db", db_dir, (int)getpid());
        snprintf(extra, sizeof extra, "{\"database\": \"%s\"}", db_path);
    }
    run->t.ctx = run->ctx;
    if (km_gwtest_start(&run->t, run->n_enclaves, db_dir ? extra : NULL) != KM_OK) {
        fprintf(stderr, "keymeld-chaos: cannot start the enclaves and the gateway\n");
        return 1;
    }
    if (!db_dir) snprintf(db_path, sizeof db_path, "%.299s", run->t.db_path);
    if (db_dir)
        snprintf(extra, sizeof extra, "{\"listen\": \"127.0.0.1:%u\", \"database\": \"%s\"}",
                 (unsigned)run->t.port, db_path);
    else
        snprintf(extra, sizeof extra, "{\"listen\": \"127.0.0.1:%u\"}", (unsigned)run->t.port);
    if (km_gwtest_write_config(&run->t, extra) != KM_OK || load_trust(run) != 0) {
        fprintf(stderr, "keymeld-chaos: cannot pin the gateway's port or read the enclaves' roots\n");
        return 1;
    }

    /* ---- the storm ---- */
    uint64_t t0 = ch_now_ms();
    run->work_end_ms = t0 + seconds * 1000u;
    run->hard_end_ms = run->work_end_ms + settle * 1000u;
    ch_client cl[CH_MAX_CLIENTS];
    for (unsigned k = 0; k < run->clients; k++) {
        cl[k].run = run;
        cl[k].index = k;
        if (pthread_create(&cl[k].th, NULL, ch_client_main, &cl[k]) != 0) {
            fprintf(stderr, "keymeld-chaos: cannot start client %u\n", k);
            return 1;
        }
    }
    uint64_t rng = seed;
    killer(run, &rng, (unsigned)interval, isatty(STDOUT_FILENO) || seconds <= 120);
    uint64_t storm_ms = ch_now_ms() - t0;
    printf("  storm over after %.1f s; clients finish what they started\n", (double)storm_ms / 1000.0);
    fflush(stdout);
    for (unsigned k = 0; k < run->clients; k++)
        pthread_join(cl[k].th, NULL);

    /* ---- after the storm: everything running, nothing killed ---- */
    km_sdk *sdk = NULL;
    if (ch_sdk_open(run, &sdk) != KM_OK) {
        ch_violation(run, "SDK handle after the storm: %s", sdk ? km_sdk_last_error(sdk) : "");
        km_sdk_free(sdk);
        return 1;
    }
    size_t lost = ch_settle(run, sdk, (unsigned)settle);
    km_sdk_free(sdk);
    size_t repeats = ch_nonce_repeats(run);
    /* One last crash, then the file as the next start would find it. */
    km_gwtest_gateway_kill(&run->t);
    char integrity[200];
    int integrity_ok = ch_integrity(db_path, integrity, sizeof integrity);
    uint64_t total_ms = ch_now_ms() - t0;

    /* ---- figures ---- */
    size_t kg_done = 0, kg_failed = 0, sg_done = 0, sg_failed = 0, units = 0, confirmed = 0;
    tally reasons[32];
    size_t n_reasons = 0;
    for (size_t i = 0; i < run->n_kgs; i++) {
        kg_done += run->kgs[i]->completed;
        kg_failed += run->kgs[i]->failed;
        confirmed += run->kgs[i]->confirmed;
        if (run->kgs[i]->failed) tally_add(reasons, &n_reasons, 32, run->kgs[i]->reason);
    }
    for (size_t i = 0; i < run->n_sgs; i++) {
        ch_signing *s = run->sgs[i];
        sg_done += s->completed;
        sg_failed += s->failed;
        units += s->units_verified;
        confirmed += s->confirmed;
        if (s->failed) tally_add(reasons, &n_reasons, 32, s->reason);
    }
    unsigned kills_gw = atomic_load(&run->kills_gateway), kills_enc = atomic_load(&run->kills_enclave);
    int ok = run->violations == 0 && lost == 0 && repeats == 0 && integrity_ok;

    printf("\nkeymeld-chaos summary (seed %llu, %.1f s of storm, %.1f s in all)\n", (unsigned long long)seed,
           (double)storm_ms / 1000.0, (double)total_ms / 1000.0);
    printf("  kills (kill -9):       %u gateway, %u enclave\n", kills_gw, kills_enc);
    printf("  keygens:               %zu acknowledged: %zu completed, %zu failed (%u creates never "
           "acknowledged)\n",
           run->n_kgs, kg_done, kg_failed, atomic_load(&run->kg_unacked));
    printf("  signing sessions:      %zu acknowledged: %zu completed, %zu failed (%u creates never "
           "acknowledged)\n",
           run->n_sgs, sg_done, sg_failed, atomic_load(&run->sg_unacked));
    for (size_t i = 0; i < n_reasons; i++)
        printf("    failed %4u x  %s\n", reasons[i].n, reasons[i].reason);
    if (run->first_unacked[0]) printf("    first create never acknowledged: %s\n", run->first_unacked);
    printf(
        "  signatures verified:   %zu (plain and adaptor units; every acknowledged session re-read: %zu)\n",
        units, confirmed);
    printf("  client retries:        %u calls repeated after outages (beyond the SDK's own)\n",
           atomic_load(&run->retries));
    printf("  lost:                  %zu\n", lost);
    printf("  nonce reuse:           %zu (%zu nonce points)\n", repeats, run->n_R);
    printf("  integrity:             %s\n", integrity);
    printf("  violations:            %u%s%s\n", run->violations, run->violations ? ": first: " : "",
           run->first_violation);
    printf("  result:                %s\n", ok ? "PASS" : "FAIL");
    if (db_dir) printf("  database kept:         %s\n", db_path);
    fflush(stdout);

    if (jf) {
        fprintf(jf,
                "{\n  \"seed\": %llu,\n  \"storm_s\": %.3f,\n  \"total_s\": %.3f,\n  \"clients\": %u,\n"
                "  \"enclaves\": %d,\n  \"kill_interval_ms\": %llu,\n",
                (unsigned long long)seed, (double)storm_ms / 1000.0, (double)total_ms / 1000.0, run->clients,
                run->n_enclaves, (unsigned long long)interval);
        fprintf(jf, "  \"kills\": {\"gateway\": %u, \"enclave\": %u},\n", kills_gw, kills_enc);
        fprintf(jf,
                "  \"keygens\": {\"acknowledged\": %zu, \"completed\": %zu, \"failed\": %zu, "
                "\"unacknowledged\": %u},\n",
                run->n_kgs, kg_done, kg_failed, atomic_load(&run->kg_unacked));
        fprintf(jf,
                "  \"signing\": {\"acknowledged\": %zu, \"completed\": %zu, \"failed\": %zu, "
                "\"unacknowledged\": %u},\n  \"failure_reasons\": [",
                run->n_sgs, sg_done, sg_failed, atomic_load(&run->sg_unacked));
        for (size_t i = 0; i < n_reasons; i++) {
            fprintf(jf, "%s{\"reason\": ", i ? ", " : "");
            json_str(jf, reasons[i].reason);
            fprintf(jf, ", \"count\": %u}", reasons[i].n);
        }
        fprintf(jf,
                "],\n  \"signatures_verified\": %zu,\n  \"retries\": %u,\n"
                "  \"lost\": %zu,\n  \"nonce_points\": %zu,\n  \"nonce_reuse\": %zu,\n  \"integrity\": ",
                units, atomic_load(&run->retries), lost, run->n_R, repeats);
        json_str(jf, integrity);
        fprintf(jf, ",\n  \"violations\": %u,\n  \"first_violation\": ", run->violations);
        json_str(jf, run->first_violation);
        fprintf(jf, ",\n  \"pass\": %s\n}\n", ok ? "true" : "false");
        if (fclose(jf) != 0) ok = 0;
    }
    return ok ? 0 : 1;
}
