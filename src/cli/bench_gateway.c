/* bench_gateway.c — keymeld-bench-gateway: KeyMeld end to end, as a client
 * sees it. A real keymeld-gateway (durable SQLite: WAL, synchronous=FULL, on
 * the disk under /tmp) over 3 real keymeld-enclave processes on loopback,
 * started by the gateway test harness (tests/gateway/support_gateway.h), and
 * driven only through the client SDK (include/keymeld/client.h), which
 * verifies every enclave's attestation (its development root, PCR0 = SHA-384
 * of the enclave binary) and every result before returning it.
 *
 * Figures (each next to its target on this 2-core machine, MET or MISSED):
 *  (a) keygen latency, n = 2, 3, 5, 10: create, then the n participants join
 *      at once (each with its own SDK handle and copy of the invitation, as
 *      separate parties would) while the creator waits for the checked
 *      result; p50/p99 over --runs runs;
 *  (b) single-item signing session latency, n = 2, 3, 5, 10: create to the
 *      verified signature in the hands of the waiting client (long poll);
 *  (c) batch throughput, n = 3, batches of 1 .. 10,000 items: items per
 *      second of the best run, and its ratio to the crypto floor;
 *  (d) concurrency: --concurrent signing sessions (n = 3) in flight at once,
 *      one thread and one SDK handle each, released together: total time,
 *      p50/p99 latency, errors, peak RSS (VmHWM) of the gateway and the
 *      enclaves during this phase (the high-water marks are reset first
 *      through /proc/PID/clear_refs);
 *  (e) single-signer signing latency (imported key, BIP-340).
 * Where the work goes is shown by the CPU seconds that the gateway, the
 * enclaves and this client consumed during (c) and (d).
 *
 * The crypto floor is measured in this same run, at the start and again at
 * the end (the lower figure counts): the whole MuSig2 session of one item for
 * n parties in ONE process through libkeymeld's wrappers (keymeld/musig.h),
 * i.e. the session of bench/crypto.c (b_session / wb_session) and the "round
 * floor" of keymeld-bench-enclave: n nonce_gen, nonce_agg, n session_init,
 * n partial_sign (each self-verified), n partial_verify, partial_agg, final
 * verify. It runs on one core; the system under test may use both.
 *
 * Usage: keymeld-bench-gateway [--quick] [--json FILE] [--runs N] [--concurrent N]
 *   --quick         tiny sizes (a few runs, batches up to 10, 20 concurrent
 *                   sessions): checks that everything runs (CTest); the
 *                   figures mean nothing, the 10,000-item target is not
 *                   evaluated.
 *   --json FILE     also write the machine, the figures, the floor and the
 *                   targets to FILE.
 *   --runs N        runs per latency figure (default 100, --quick 5).
 *   --concurrent N  sessions of (d) (default 1000, --quick 20).
 *   --only LETTERS  run only these parts, e.g. --only b (for profiling one
 *                   part: the targets of the others are NOT MEASURED).
 *   --database-dir DIR  put the gateway's database in DIR (removed at exit)
 *                   instead of the harness's directory under /tmp, e.g.
 *                   /dev/shm to see what the disk's fsyncs cost (a tmpfs
 *                   database is NOT durable: such figures are not the
 *                   product's).
 *   --gateway-config JSON  extra gateway configuration (a JSON object merged
 *                   into the harness's, e.g. '{"http_threads": 8}'), to try
 *                   other settings; not with --database-dir.
 * The gateway runs with its default configuration (http_max_connections
 * 4096 suffices for 1000 clients, and the per-key rate and waiter caps are
 * above what (d) asks of its one key; a 10,000-item batch is about 2 MB of
 * JSON, under the default max_body_bytes of 4 MiB).
 * The exit status is 0 when everything ran, whether targets were met or not;
 * figures are never asserted. It is 1 if a call failed outside (d) (a
 * benchmark whose calls fail measures nothing) and 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../../bench/bench_util.h"
#include "cli/devnet.h"
#include "gateway/support_gateway.h"
#include "keymeld/aead.h"
#include "keymeld/client.h"
#include "keymeld/hash.h"
#include "keymeld/musig.h"
#include "keymeld/secret.h"

#define N_ENCLAVES 3
#define MAX_N      10
#define WAIT_S     600
#define FLOOR_RUNS 3

static const size_t g_ns[] = {2, 3, 5, 10};
#define N_NS (sizeof g_ns / sizeof g_ns[0])

/* ---- state and failure ----------------------------------------------------------- */

static km_gwtest g_t;
static km_ctx *g_ctx;
static unsigned char g_pcr0[48];
static km_buf g_root[N_ENCLAVES];

/* Stops the gateway and the enclaves and removes their directory on every
 * path out, a failed check included (they would otherwise outlive us). */
static char g_db_path[600]; /* --database-dir: our database, removed at exit */

static void cleanup(void) {
    for (int i = 0; i < N_ENCLAVES; i++)
        km_buf_free(&g_root[i]);
    km_gwtest_stop(&g_t);
    if (g_db_path[0]) {
        static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
        char p[640];
        for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
            snprintf(p, sizeof p, "%s%s", g_db_path, sfx[i]);
            (void)unlink(p);
        }
        g_db_path[0] = '\0';
    }
    if (g_ctx) km_ctx_destroy(g_ctx);
    g_ctx = NULL;
}

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "keymeld-bench-gateway: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(EXIT_FAILURE);
}

/* A failed SDK call names the call, the code and the SDK's explanation. */
#define SDK_OK(sdk, expr)                                                                                    \
    do {                                                                                                     \
        km_err e_ = (expr);                                                                                  \
        if (e_ != KM_OK)                                                                                     \
            die("%s:%d: %s: %s (%s)", __FILE__, __LINE__, #expr, km_err_name(e_),                            \
                (sdk) ? km_sdk_last_error(sdk) : "");                                                        \
    } while (0)
#define KM_OK_OR_DIE(expr) SDK_OK((km_sdk *)NULL, expr)

/* Wall-clock milliseconds, for UUIDv7 ids (not for timing). */
static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static km_uuid new_id(void) {
    km_uuid u;
    KM_OK_OR_DIE(km_uuid_v7(&u, now_ms()));
    return u;
}

/* Progress on stderr: one line rewritten in place on a terminal; elsewhere
 * (a log) only the first run of each phase, one line each. */
static void progress(const char *fmt, ...) {
    char line[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "\rbench: %-70s", line);
    else if (!strstr(line, "run ") || strstr(line, "run 1/"))
        fprintf(stderr, "bench: %s\n", line);
}

static void progress_end(void) {
    if (isatty(STDERR_FILENO)) fprintf(stderr, "\r%-78s\r", "");
}

/* ---- statistics ------------------------------------------------------------------ */

typedef struct stats {
    size_t runs;
    double p50, p99, min, max, mean; /* milliseconds */
} stats;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles: p99 of 100 runs is the 99th fastest, an observed
 * value (no interpolation that would invent one). v is sorted in place. */
static stats stats_of(double *v, size_t n) {
    stats s;
    memset(&s, 0, sizeof s);
    if (n == 0) return s;
    qsort(v, n, sizeof *v, cmp_double);
    size_t r50 = (n * 50 + 99) / 100, r99 = (n * 99 + 99) / 100;
    s.runs = n;
    s.p50 = v[r50 ? r50 - 1 : 0];
    s.p99 = v[r99 ? r99 - 1 : 0];
    s.min = v[0];
    s.max = v[n - 1];
    for (size_t i = 0; i < n; i++)
        s.mean += v[i];
    s.mean /= (double)n;
    return s;
}

/* ---- processes: CPU time and memory ---------------------------------------------------- */

/* CPU seconds (user + system) a process consumed so far; -1 if unknown. */
static double proc_cpu_s(pid_t pid) {
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1.0;
    size_t got = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[got] = '\0';
    /* Fields after the command name (which may contain spaces) start at the
     * last ')'; utime and stime are fields 14 and 15. */
    const char *p = strrchr(line, ')');
    if (!p) return -1.0;
    unsigned long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1.0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Vm...:" line of /proc/PID/status in kB; -1 if unknown. */
static long proc_status_kb(pid_t pid, const char *key) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            kb = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* Reset VmHWM to the current RSS (Linux >= 4.0: "5" to clear_refs).
 * Returns 0 on success. */
static int proc_reset_hwm(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t w = write(fd, "5", 1);
    close(fd);
    return w == 1 ? 0 : -1;
}

/* CPU seconds of the gateway, the enclaves (summed) and this client. */
typedef struct cpu_split {
    double gateway, enclaves, client;
} cpu_split;

static cpu_split cpu_now(void) {
    cpu_split c;
    c.gateway = proc_cpu_s(g_t.gw_pid);
    c.enclaves = 0.0;
    for (int i = 0; i < N_ENCLAVES; i++)
        c.enclaves += proc_cpu_s(g_t.enc[i].pid);
    c.client = proc_cpu_s(getpid());
    return c;
}

static cpu_split cpu_diff(cpu_split a, cpu_split b) {
    cpu_split d = {b.gateway - a.gateway, b.enclaves - a.enclaves, b.client - a.client};
    return d;
}

/* ---- the crypto floor -------------------------------------------------------------- */

/* n parties in one process; the keys are made once, every session is fresh. */
typedef struct floor_fx {
    size_t n;
    unsigned char sk[MAX_N][32];
    unsigned char pk[MAX_N][33];
    km_musig_keyagg ka; /* BIP-86 tweaked, like the benchmark's keygens */
    unsigned char msg[32];
} floor_fx;

static void floor_setup(floor_fx *f, size_t n) {
    memset(f, 0, sizeof *f);
    f->n = n;
    for (size_t i = 0; i < n; i++)
        KM_OK_OR_DIE(km_devnet_keypair(g_ctx, f->sk[i], f->pk[i], NULL));
    km_tweak tw;
    km_tweak_bip86(&tw);
    KM_OK_OR_DIE(km_musig_key_agg(g_ctx, &f->ka, &f->pk[0][0], n, NULL));
    KM_OK_OR_DIE(km_musig_keyagg_tweak(g_ctx, &f->ka, &tw));
    KM_OK_OR_DIE(km_random_bytes(f->msg, 32));
}

/* One item's whole session, every result checked. */
static void floor_session(floor_fx *f) {
    const size_t n = f->n;
    km_secret *sn[MAX_N];
    unsigned char pn[MAX_N][66], agg[66], ps[MAX_N][32], sig[64];
    km_musig_session ses[MAX_N];
    memset(pn, 0, sizeof pn); /* n >= 1 fills what is read; this only silences the analyser */
    memset(ps, 0, sizeof ps);
    for (size_t i = 0; i < n; i++)
        KM_OK_OR_DIE(km_musig_nonce_gen(g_ctx, &sn[i], pn[i], f->sk[i], f->pk[i], f->msg, &f->ka, NULL));
    KM_OK_OR_DIE(km_musig_nonce_agg(g_ctx, agg, &pn[0][0], n, NULL));
    for (size_t i = 0; i < n; i++) {
        KM_OK_OR_DIE(km_musig_session_init(g_ctx, &ses[i], agg, f->msg, &f->ka));
        km_err err = km_musig_partial_sign(g_ctx, ps[i], sn[i], f->sk[i], &ses[i]);
        km_secret_free(sn[i]);
        KM_OK_OR_DIE(err);
    }
    for (size_t i = 0; i < n; i++)
        KM_OK_OR_DIE(km_musig_partial_verify(g_ctx, &ses[0], ps[i], pn[i], f->pk[i]));
    KM_OK_OR_DIE(km_musig_partial_agg(g_ctx, sig, &ses[0], &ps[0][0], n, NULL));
    KM_OK_OR_DIE(km_musig_verify_final(g_ctx, sig, f->msg, &f->ka));
}

/* The keygen's crypto: aggregation and tweak of n keys. */
static void floor_keyagg(floor_fx *f) {
    km_musig_keyagg ka;
    km_tweak tw;
    km_tweak_bip86(&tw);
    KM_OK_OR_DIE(km_musig_key_agg(g_ctx, &ka, &f->pk[0][0], f->n, NULL));
    KM_OK_OR_DIE(km_musig_keyagg_tweak(g_ctx, &ka, &tw));
    if (memcmp(ka.output_xonly, f->ka.output_xonly, 32)) die("floor: key aggregation is not deterministic");
}

/* Microseconds per call: iterations sized to fill run_s, minimum of
 * FLOOR_RUNS runs (a disturbance only ever adds time; see bench_util.h). */
static double floor_us(floor_fx *f, void (*fn)(floor_fx *), double run_s) {
    double t0 = bench_now();
    size_t warm = 0;
    while (bench_now() - t0 < run_s / 4 || warm < 3) { /* warm-up and calibration */
        fn(f);
        warm++;
    }
    double per = (bench_now() - t0) / (double)warm;
    size_t iters = (size_t)(run_s / per) + 1;
    double best = 1e30;
    for (int r = 0; r < FLOOR_RUNS; r++) {
        t0 = bench_now();
        for (size_t i = 0; i < iters; i++)
            fn(f);
        double us = (bench_now() - t0) * 1e6 / (double)iters;
        if (us < best) best = us;
    }
    return best;
}

typedef struct floor_fig {
    double session_us[N_NS], keyagg_us[N_NS]; /* the lower of the two measurements */
    double first_session_us[N_NS], last_session_us[N_NS];
} floor_fig;

static void measure_floor(floor_fig *fl, int last, int quick) {
    for (size_t j = 0; j < N_NS; j++) {
        progress("crypto floor, n = %zu%s", g_ns[j], last ? " (again)" : "");
        floor_fx fx;
        floor_setup(&fx, g_ns[j]);
        double s = floor_us(&fx, floor_session, quick ? 0.02 : 0.25);
        double k = floor_us(&fx, floor_keyagg, quick ? 0.01 : 0.05);
        km_wipe(&fx, sizeof fx);
        if (!last) {
            fl->first_session_us[j] = fl->session_us[j] = s;
            fl->keyagg_us[j] = k;
        } else {
            fl->last_session_us[j] = s;
            if (s < fl->session_us[j]) fl->session_us[j] = s;
            if (k < fl->keyagg_us[j]) fl->keyagg_us[j] = k;
        }
    }
}

static double floor_for(const floor_fig *fl, size_t n) {
    for (size_t j = 0; j < N_NS; j++)
        if (g_ns[j] == n) return fl->session_us[j];
    return 0.0;
}

/* ---- SDK handles --------------------------------------------------------------------- */

/* A handle that trusts each enclave's own development root, pins PCR0 and
 * has verified every enclave. Returns KM_OK or the failing call's code
 * (the handle, if any, in *out for km_sdk_last_error). */
static km_err sdk_open(km_sdk **out) {
    km_err err = km_sdk_new(out, g_ctx, g_t.base_url);
    for (uint32_t i = 0; !err && i < N_ENCLAVES; i++)
        err = km_sdk_trust_root(*out, i, g_root[i].data, g_root[i].len);
    if (!err) err = km_sdk_pin_pcr(*out, 0, g_pcr0, sizeof g_pcr0);
    size_t n = 0;
    if (!err) err = km_sdk_verify_enclaves(*out, &n);
    if (!err && n != N_ENCLAVES) err = KM_ERR_STATE;
    return err;
}

static km_sdk *sdk_open_or_die(void) {
    km_sdk *sdk = NULL;
    km_err err = sdk_open(&sdk);
    if (err) die("SDK handle: %s (%s)", km_err_name(err), sdk ? km_sdk_last_error(sdk) : "");
    return sdk;
}

typedef struct party {
    unsigned char sk[32], auth[32];
} party;

static void make_parties(party *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        KM_OK_OR_DIE(km_devnet_keypair(g_ctx, p[i].sk, NULL, NULL));
        KM_OK_OR_DIE(km_devnet_keypair(g_ctx, p[i].auth, NULL, NULL));
    }
}

/* The participants' own handles: a participant is another party, with its
 * own connection and its own copy of the session (the invitation JSON). */
static km_sdk *g_party_sdk[MAX_N];

typedef struct joiner {
    size_t i;
    const char *session_json;
    const party *p;
    km_err err;
    char msg[256];
} joiner;

static void *join_main(void *arg) {
    joiner *j = arg;
    km_sdk *sdk = g_party_sdk[j->i];
    km_sdk_session *s = NULL;
    j->err = km_sdk_session_import(g_ctx, j->session_json, &s);
    if (!j->err) j->err = km_sdk_keygen_join(sdk, s, j->i, j->p->sk, j->p->auth, 0);
    if (j->err) snprintf(j->msg, sizeof j->msg, "%s (%s)", km_err_name(j->err), km_sdk_last_error(sdk));
    km_sdk_session_free(s);
    return NULL;
}

/* One keygen of n participants: the coordinator creates it and hands the
 * invitation to the n participants, who join at the same time (each with its
 * own handle, as separate parties would), while the coordinator waits for
 * the checked result. Returns its wall time in ms; the session and result
 * are kept if asked for, else freed. */
static double keygen_once(km_sdk *sdk, size_t n, km_sdk_session **keep, km_sdk_keygen_result *kg_keep) {
    party p[MAX_N];
    make_parties(p, n);
    km_sdk_keygen_params kp;
    memset(&kp, 0, sizeof kp);
    kp.n_participants = n;
    km_tweak_bip86(&kp.tweak);
    kp.timeout_secs = 600;
    km_sdk_session *s = NULL;
    km_sdk_keygen_result kg;
    joiner jn[MAX_N];
    pthread_t th[MAX_N];
    char *json = NULL;
    double t0 = bench_now();
    SDK_OK(sdk, km_sdk_keygen_create(sdk, &kp, &s));
    KM_OK_OR_DIE(km_sdk_session_export(s, &json));
    for (size_t i = 0; i < n; i++) {
        jn[i] = (joiner){i, json, &p[i], KM_OK, ""};
        if (pthread_create(&th[i], NULL, join_main, &jn[i])) die("pthread_create failed");
    }
    km_err werr = km_sdk_keygen_wait(sdk, s, WAIT_S, &kg);
    double ms = (bench_now() - t0) * 1e3;
    for (size_t i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    for (size_t i = 0; i < n; i++)
        if (jn[i].err) die("keygen: participant %zu could not join: %s", i, jn[i].msg);
    if (werr) die("keygen: %s (%s)", km_err_name(werr), km_sdk_last_error(sdk));
    km_wipe(json, strlen(json));
    free(json);
    km_wipe(p, sizeof p);
    if (kg.n_participants != n)
        die("keygen: %zu participants in the result, %zu expected", kg.n_participants, n);
    if (keep) {
        *keep = s;
        *kg_keep = kg;
    } else {
        km_sdk_keygen_result_clear(&kg);
        km_sdk_session_free(s);
    }
    return ms;
}

static void fill_items(km_sign_item *it, size_t n) {
    memset(it, 0, n * sizeof *it);
    for (size_t i = 0; i < n; i++) {
        it[i].id = new_id();
        KM_OK_OR_DIE(km_random_bytes(it[i].msg, 32));
    }
}

/* The SDK verified every signature (BIP-340, under the key it recomputed);
 * this checks that it is the key of OUR keygen and that every item came back. */
static void check_sign_result(const km_sdk_sign_result *res, const km_sign_item *it, size_t n,
                              const unsigned char key[32]) {
    if (res->n != n) die("signing: %zu items in the result, %zu expected", res->n, n);
    for (size_t i = 0; i < n; i++) {
        const km_sdk_item_result *r = &res->items[i];
        if (r->n_units != 1 || memcmp(r->key_xonly, key, 32) || memcmp(r->item_id.b, it[i].id.b, 16))
            die("signing: item %zu of the result is not the signature asked for", i);
    }
}

/* One signing session of n items: create to the verified signatures. */
static double sign_once(km_sdk *sdk, const km_sdk_session *s, const unsigned char key[32], km_sign_item *it,
                        size_t n) {
    fill_items(it, n);
    km_uuid sid = new_id();
    km_sdk_sign_result res;
    double t0 = bench_now();
    SDK_OK(sdk, km_sdk_sign(sdk, s, &sid, it, n, 600, WAIT_S, &res));
    double ms = (bench_now() - t0) * 1e3;
    check_sign_result(&res, it, n, key);
    km_sdk_sign_result_clear(&res);
    return ms;
}

/* ---- (d) concurrency ------------------------------------------------------------------ */

typedef struct worker {
    pthread_t th;
    const char *session_json; /* shared, read only */
    const unsigned char *key; /* the keygen's output key */
    pthread_barrier_t *ready, *go;
    double t_start, t_end; /* create sent, verified signature received */
    km_err setup_err, err;
    char msg[200];
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    km_sdk *sdk = NULL;
    km_sdk_session *s = NULL;
    km_sdk_keygen_result kg;
    memset(&kg, 0, sizeof kg);
    /* Untimed setup: a handle of its own (verified enclaves) and a copy of
     * the session (a session may not be shared between handles unserialised),
     * whose finished keygen is fetched and checked once. */
    w->setup_err = sdk_open(&sdk);
    if (!w->setup_err) w->setup_err = km_sdk_session_import(g_ctx, w->session_json, &s);
    if (!w->setup_err) w->setup_err = km_sdk_keygen_wait(sdk, s, WAIT_S, &kg);
    if (w->setup_err)
        snprintf(w->msg, sizeof w->msg, "setup: %s (%s)", km_err_name(w->setup_err),
                 sdk ? km_sdk_last_error(sdk) : "");
    km_sign_item it;
    km_uuid sid;
    if (!w->setup_err) {
        memset(&it, 0, sizeof it);
        w->setup_err = km_uuid_v7(&it.id, now_ms());
        if (!w->setup_err) w->setup_err = km_uuid_v7(&sid, now_ms());
        if (!w->setup_err) w->setup_err = km_random_bytes(it.msg, 32);
    }
    pthread_barrier_wait(w->ready);
    pthread_barrier_wait(w->go);
    if (!w->setup_err) {
        km_sdk_sign_result res;
        w->t_start = bench_now();
        w->err = km_sdk_sign(sdk, s, &sid, &it, 1, 600, WAIT_S, &res);
        w->t_end = bench_now();
        if (w->err) {
            snprintf(w->msg, sizeof w->msg, "%s (%s)", km_err_name(w->err), km_sdk_last_error(sdk));
        } else {
            if (res.n != 1 || res.items[0].n_units != 1 || memcmp(res.items[0].key_xonly, w->key, 32)) {
                w->err = KM_ERR_VERIFY;
                snprintf(w->msg, sizeof w->msg, "result under another key");
            }
            km_sdk_sign_result_clear(&res);
        }
    }
    km_sdk_keygen_result_clear(&kg);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
    return NULL;
}

typedef struct conc_fig {
    size_t sessions, errors, setup_errors;
    double total_s, setup_s;
    stats lat;
    char first_error[200];
    long gw_hwm_kb, enc_hwm_kb[N_ENCLAVES];
    int hwm_reset; /* 1: the peaks are this phase's; 0: the processes' lifetime peaks */
    cpu_split cpu;
} conc_fig;

static void run_concurrency(conc_fig *cf, size_t n_sessions, const char *session_json,
                            const unsigned char key[32]) {
    memset(cf, 0, sizeof *cf);
    cf->sessions = n_sessions;
    worker *w = calloc(n_sessions, sizeof *w);
    double *lat = calloc(n_sessions, sizeof *lat);
    if (!w || !lat) die("out of memory");
    pthread_barrier_t ready, go;
    if (pthread_barrier_init(&ready, NULL, (unsigned)n_sessions + 1) ||
        pthread_barrier_init(&go, NULL, (unsigned)n_sessions + 1))
        die("barrier");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1u << 20); /* 1000 threads: keep the address space modest */
    double t_setup = bench_now();
    for (size_t i = 0; i < n_sessions; i++) {
        w[i].session_json = session_json;
        w[i].key = key;
        w[i].ready = &ready;
        w[i].go = &go;
        if (pthread_create(&w[i].th, &attr, worker_main, &w[i])) die("cannot start thread %zu", i);
    }
    pthread_attr_destroy(&attr);
    pthread_barrier_wait(&ready); /* every handle set up */
    cf->setup_s = bench_now() - t_setup;
    cf->hwm_reset = proc_reset_hwm(g_t.gw_pid) == 0;
    for (int i = 0; i < N_ENCLAVES; i++)
        cf->hwm_reset &= proc_reset_hwm(g_t.enc[i].pid) == 0;
    cpu_split c0 = cpu_now();
    double t0 = bench_now();
    pthread_barrier_wait(&go);
    size_t n_lat = 0;
    double t_last = t0;
    for (size_t i = 0; i < n_sessions; i++) {
        pthread_join(w[i].th, NULL);
        if (w[i].setup_err) {
            cf->setup_errors++;
        } else if (w[i].err) {
            cf->errors++;
        } else {
            lat[n_lat++] = (w[i].t_end - w[i].t_start) * 1e3;
        }
        if (!w[i].setup_err && w[i].t_end > t_last) t_last = w[i].t_end;
        if ((w[i].setup_err || w[i].err) && !cf->first_error[0])
            snprintf(cf->first_error, sizeof cf->first_error, "%s", w[i].msg);
    }
    cf->total_s = t_last - t0;
    cf->cpu = cpu_diff(c0, cpu_now());
    cf->lat = stats_of(lat, n_lat);
    cf->gw_hwm_kb = proc_status_kb(g_t.gw_pid, "VmHWM");
    for (int i = 0; i < N_ENCLAVES; i++)
        cf->enc_hwm_kb[i] = proc_status_kb(g_t.enc[i].pid, "VmHWM");
    pthread_barrier_destroy(&ready);
    pthread_barrier_destroy(&go);
    free(w);
    free(lat);
}

/* ---- output ------------------------------------------------------------------------------ */

typedef struct batch_fig {
    size_t items;
    int runs;
    double best_s, runs_s[5];
    double items_per_s, floor_items_per_s, ratio;
    cpu_split cpu; /* over all runs of this size */
} batch_fig;

typedef struct target {
    const char *name;
    const char *unit;
    int le; /* 1: figure <= limit; 0: figure >= limit */
    double limit, figure;
    int measured;
} target;

static const char *target_status(const target *t) {
    if (!t->measured) return "NOT MEASURED";
    return (t->le ? t->figure <= t->limit : t->figure >= t->limit) ? "MET" : "MISSED";
}

static void json_stats(FILE *f, const stats *s) {
    fprintf(f,
            "\"runs\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f, "
            "\"mean_ms\": %.3f",
            s->runs, s->p50, s->p99, s->min, s->max, s->mean);
}

static void json_cpu(FILE *f, const cpu_split *c) {
    fprintf(f, "{\"gateway\": %.3f, \"enclaves\": %.3f, \"client\": %.3f}", c->gateway, c->enclaves,
            c->client);
}

static void usage(void) {
    fprintf(stderr, "usage: keymeld-bench-gateway [--quick] [--json FILE] [--runs N] [--concurrent N] "
                    "[--only abcde] [--database-dir DIR | --gateway-config JSON]\n");
}

static int parse_count(const char *s, size_t lo, size_t hi, size_t *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    /* A closed reader of our output (`| head`) must not kill us before the
     * gateway and the enclaves are stopped: writes fail with EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    int quick = 0;
    const char *json_path = NULL;
    size_t runs = 0, n_conc = 0;
    const char *only = "abcde";
    const char *db_dir = NULL, *gw_config = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            json_path = argv[++i];
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            if (parse_count(argv[++i], 1, 100000, &runs)) return usage(), 2;
        } else if (!strcmp(argv[i], "--database-dir") && i + 1 < argc) {
            db_dir = argv[++i];
            if (strlen(db_dir) > 400 || strpbrk(db_dir, "\"\\")) return usage(), 2;
        } else if (!strcmp(argv[i], "--gateway-config") && i + 1 < argc) {
            gw_config = argv[++i];
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
            if (!*only || strspn(only, "abcde") != strlen(only)) return usage(), 2;
        } else if (!strcmp(argv[i], "--concurrent") && i + 1 < argc) {
            if (parse_count(argv[++i], 1, 1000, &n_conc)) return usage(), 2;
        } else {
            usage();
            return 2;
        }
    }
    if (db_dir && gw_config) return usage(), 2;
    if (!runs) runs = quick ? 5 : 100;
    if (!n_conc) n_conc = quick ? 20 : 1000;
    static const size_t full_batches[] = {1, 10, 100, 1000, 10000};
    static const int full_batch_runs[] = {5, 5, 5, 3, 2};
    static const size_t quick_batches[] = {1, 10};
    static const int quick_batch_runs[] = {2, 2};
    const size_t *batches = quick ? quick_batches : full_batches;
    const int *batch_runs = quick ? quick_batch_runs : full_batch_runs;
    const size_t n_batches = quick ? 2 : 5;

    /* Opened before measuring, so that a bad path fails in a second, not
     * after minutes. */
    FILE *jf = NULL;
    if (json_path && !(jf = fopen(json_path, "w"))) {
        fprintf(stderr, "keymeld-bench-gateway: cannot write %s: %s\n", json_path, strerror(errno));
        return 2;
    }
    /* 1000 clients hold 1000 sockets here and in the gateway (our child: it
     * inherits the limit). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    atexit(cleanup);
    bench_machine mach;
    bench_machine_info(&mach);
    KM_OK_OR_DIE(km_ctx_create(&g_ctx));

    floor_fig fl;
    memset(&fl, 0, sizeof fl);
    measure_floor(&fl, 0, quick);

    /* ---- the stack ---- */
    progress("starting %d enclaves and the gateway", N_ENCLAVES);
    g_t.ctx = g_ctx;
    char extra[700] = "";
    if (db_dir) {
        snprintf(g_db_path, sizeof g_db_path, "%s/keymeld-bench-%d.db", db_dir, (int)getpid());
        snprintf(extra, sizeof extra, "{\"database\": \"%s\"}", g_db_path);
    }
    km_err err = km_gwtest_start(&g_t, N_ENCLAVES, db_dir ? extra : gw_config);
    if (err) die("cannot start the enclaves and the gateway: %s", km_err_name(err));
    {
        /* PCR0 of a development enclave: SHA-384 of its binary. */
        km_buf bin;
        km_buf_init(&bin);
        FILE *f = fopen(KM_ENCLAVE_BIN, "rb");
        if (!f) die("cannot read %s", KM_ENCLAVE_BIN);
        unsigned char chunk[65536];
        size_t r;
        while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
            KM_OK_OR_DIE(km_buf_put(&bin, chunk, r));
        fclose(f);
        km_sha384(g_pcr0, bin.data, bin.len);
        km_buf_free(&bin);
        for (int i = 0; i < N_ENCLAVES; i++)
            KM_OK_OR_DIE(km_gwtest_ca_root(&g_t, i, &g_root[i]));
    }
    km_sdk *sdk = sdk_open_or_die();
    for (size_t i = 0; i < MAX_N; i++)
        g_party_sdk[i] = sdk_open_or_die();
    const int run_a = !!strchr(only, 'a'), run_b = !!strchr(only, 'b'), run_c = !!strchr(only, 'c'),
              run_d = !!strchr(only, 'd'), run_e = !!strchr(only, 'e');

    /* ---- (a) keygen ---- */
    stats kg_stats[N_NS];
    memset(kg_stats, 0, sizeof kg_stats);
    double *v = calloc(runs, sizeof *v);
    if (!v) die("out of memory");
    for (size_t j = 0; run_a && j < N_NS; j++) {
        for (int w = 0; w < 3; w++) /* warm-up: connections, caches, SQLite pages */
            (void)keygen_once(sdk, g_ns[j], NULL, NULL);
        for (size_t r = 0; r < runs; r++) {
            if (r % 10 == 0) progress("(a) keygen n = %zu: run %zu/%zu", g_ns[j], r + 1, runs);
            v[r] = keygen_once(sdk, g_ns[j], NULL, NULL);
        }
        kg_stats[j] = stats_of(v, runs);
    }

    /* ---- (b) single-item signing ---- */
    stats sg_stats[N_NS];
    memset(sg_stats, 0, sizeof sg_stats);
    km_sdk_session *sess3 = NULL; /* the n = 3 key, kept for (c) and (d) */
    km_sdk_keygen_result kg3;
    memset(&kg3, 0, sizeof kg3);
    for (size_t j = 0; j < N_NS; j++) {
        if (!run_b && g_ns[j] != 3) continue;
        km_sdk_session *s = NULL;
        km_sdk_keygen_result kg;
        (void)keygen_once(sdk, g_ns[j], &s, &kg);
        km_sign_item it;
        for (int w = 0; run_b && w < 3; w++)
            (void)sign_once(sdk, s, kg.output_xonly, &it, 1);
        for (size_t r = 0; run_b && r < runs; r++) {
            if (r % 10 == 0) progress("(b) signing n = %zu: run %zu/%zu", g_ns[j], r + 1, runs);
            v[r] = sign_once(sdk, s, kg.output_xonly, &it, 1);
        }
        if (run_b) sg_stats[j] = stats_of(v, runs);
        if (g_ns[j] == 3) {
            sess3 = s;
            kg3 = kg;
        } else {
            km_sdk_keygen_result_clear(&kg);
            km_sdk_session_free(s);
        }
    }

    /* ---- (e) single-signer keys ---- */
    stats ss_stats;
    memset(&ss_stats, 0, sizeof ss_stats);
    double import_ms = 0.0;
    if (run_e) {
        unsigned char sk[32], pub[33], auth[32], msg[32], sig[64];
        KM_OK_OR_DIE(km_devnet_keypair(g_ctx, sk, pub, NULL));
        KM_OK_OR_DIE(km_devnet_keypair(g_ctx, auth, NULL, NULL));
        km_uuid kid = new_id(), uid = new_id();
        double t0 = bench_now();
        SDK_OK(sdk, km_sdk_key_import(sdk, &kid, &uid, sk, auth, 0, NULL));
        import_ms = (bench_now() - t0) * 1e3;
        km_wipe(sk, sizeof sk);
        size_t n_ss = runs * 2;
        double *vs = calloc(n_ss + 3, sizeof *vs);
        if (!vs) die("out of memory");
        for (size_t r = 0; r < n_ss + 3; r++) { /* the first 3 are the warm-up */
            if (r % 20 == 0) progress("(e) single-signer signing: run %zu/%zu", r + 1, n_ss + 3);
            KM_OK_OR_DIE(km_random_bytes(msg, sizeof msg));
            t0 = bench_now();
            SDK_OK(sdk, km_sdk_key_sign(sdk, &kid, &uid, pub, auth, KM_KEY_ALGO_SCHNORR, msg, sizeof msg, 0,
                                        WAIT_S, sig));
            vs[r] = (bench_now() - t0) * 1e3;
        }
        ss_stats = stats_of(vs + 3, n_ss);
        free(vs);
        km_wipe(auth, sizeof auth);
    }

    /* ---- (c) batches, n = 3 ---- */
    batch_fig bf[5];
    memset(bf, 0, sizeof bf);
    long gw_hwm_before_conc = -1;
    if (run_c) {
        size_t max_items = batches[n_batches - 1];
        km_sign_item *items = calloc(max_items, sizeof *items);
        if (!items) die("out of memory");
        double floor3 = floor_for(&fl, 3);
        for (size_t k = 0; k < n_batches; k++) {
            batch_fig *b = &bf[k];
            b->items = batches[k];
            b->runs = batch_runs[k];
            b->best_s = 1e30;
            cpu_split c0 = cpu_now();
            for (int r = 0; r < b->runs; r++) {
                progress("(c) batch of %zu: run %d/%d", b->items, r + 1, b->runs);
                double s = sign_once(sdk, sess3, kg3.output_xonly, items, b->items) / 1e3;
                b->runs_s[r] = s;
                if (s < b->best_s) b->best_s = s;
            }
            b->cpu = cpu_diff(c0, cpu_now());
            b->items_per_s = (double)b->items / b->best_s;
            b->floor_items_per_s = 1e6 / floor3;
            b->ratio = b->items_per_s / b->floor_items_per_s;
        }
        free(items);
    }
    gw_hwm_before_conc = proc_status_kb(g_t.gw_pid, "VmHWM");
    free(v);

    /* ---- (d) concurrency ---- */
    conc_fig cf;
    memset(&cf, 0, sizeof cf);
    if (run_d) {
        char *json = NULL;
        KM_OK_OR_DIE(km_sdk_session_export(sess3, &json));
        progress("(d) %zu concurrent sessions: setting up %zu handles", n_conc, n_conc);
        run_concurrency(&cf, n_conc, json, kg3.output_xonly);
        km_wipe(json, strlen(json));
        free(json);
    }
    km_sdk_keygen_result_clear(&kg3);
    km_sdk_session_free(sess3);
    km_sdk_free(sdk);
    for (size_t i = 0; i < MAX_N; i++)
        km_sdk_free(g_party_sdk[i]);

    measure_floor(&fl, 1, quick);
    bench_loadavg(mach.load_end, sizeof mach.load_end);
    progress_end();

    /* ---- targets ---- */
    size_t j3 = 1; /* g_ns[1] == 3 */
    const batch_fig *b10k = &bf[n_batches - 1];
    target tg[] = {
        {"3-party signing session p50", "ms", 1, 5.0, sg_stats[j3].p50, run_b},
        {"3-party signing session p99", "ms", 1, 20.0, sg_stats[j3].p99, run_b},
        {"3-party keygen p50", "ms", 1, 10.0, kg_stats[j3].p50, run_a},
        {"3-party batch of 10,000: share of floor", "%", 0, 50.0, b10k->ratio * 100.0,
         run_c && b10k->items == 10000},
        {"concurrent sessions: errors", "", 1, 0.0, (double)(cf.errors + cf.setup_errors),
         run_d && n_conc >= 1000},
        {"concurrent sessions: gateway peak RSS", "MB", 1, 200.0, (double)cf.gw_hwm_kb / 1024.0,
         run_d && n_conc >= 1000 && cf.gw_hwm_kb >= 0},
    };
    const size_t n_tg = sizeof tg / sizeof tg[0];

    /* ---- table ---- */
    printf("keymeld-bench-gateway%s: end to end through keymeld-gateway (durable SQLite) and %d enclave\n"
           "processes on loopback, driven through the client SDK (attestation and results verified)\n",
           quick ? " (--quick: figures are rough)" : "", N_ENCLAVES);
    printf("machine: %s, %ld cores, %s\n", mach.cpu, mach.cores, mach.kernel);
    if (db_dir) printf("DATABASE IN %s (--database-dir): not the default durable setup\n", db_dir);
    if (gw_config) printf("GATEWAY CONFIGURATION CHANGED (--gateway-config): %s\n", gw_config);
    printf("load average (1 min): %s at start, %s at end\n\n", mach.load_start, mach.load_end);
    printf("crypto floor: one item's whole MuSig2 session, n parties in one process, one core\n"
           "(keymeld/musig.h: n nonce_gen, nonce_agg, n session_init, n partial_sign, n partial_verify,\n"
           "partial_agg, verify; min of start and end of this run)\n");
    printf("%4s %14s %14s %14s %16s\n", "n", "session us", "(start/end)", "items/s", "keyagg+tweak us");
    for (size_t j = 0; j < N_NS; j++) {
        char se[40];
        snprintf(se, sizeof se, "%.0f/%.0f", fl.first_session_us[j], fl.last_session_us[j]);
        printf("%4zu %14.1f %14s %14.0f %16.1f\n", g_ns[j], fl.session_us[j], se, 1e6 / fl.session_us[j],
               fl.keyagg_us[j]);
    }
    if (!run_a) printf("\n(a) keygen: not run (--only)\n");
    if (run_a)
        printf("\n(a) keygen: create, n participants joining at once, checked result (ms, %zu runs)\n", runs);
    if (run_a) printf("%4s %9s %9s %9s %9s %9s\n", "n", "p50", "p99", "min", "max", "mean");
    for (size_t j = 0; run_a && j < N_NS; j++)
        printf("%4zu %9.2f %9.2f %9.2f %9.2f %9.2f\n", g_ns[j], kg_stats[j].p50, kg_stats[j].p99,
               kg_stats[j].min, kg_stats[j].max, kg_stats[j].mean);
    if (!run_b) printf("\n(b) single-item signing: not run (--only)\n");
    if (run_b)
        printf("\n(b) single-item signing session: create to the verified signature (ms, %zu runs)\n", runs);
    if (run_b) printf("%4s %9s %9s %9s %9s %9s %12s\n", "n", "p50", "p99", "min", "max", "mean", "p50/floor");
    for (size_t j = 0; run_b && j < N_NS; j++)
        printf("%4zu %9.2f %9.2f %9.2f %9.2f %9.2f %11.0fx\n", g_ns[j], sg_stats[j].p50, sg_stats[j].p99,
               sg_stats[j].min, sg_stats[j].max, sg_stats[j].mean, sg_stats[j].p50 * 1e3 / fl.session_us[j]);
    if (!run_c) printf("\n(c) batch throughput: not run (--only)\n");
    if (run_c) printf("\n(c) batch throughput, n = 3 (best run; CPU seconds over all runs of the size)\n");
    if (run_c)
        printf("%6s %5s %10s %10s %10s %8s %9s %9s %9s\n", "items", "runs", "best s", "items/s", "floor/s",
               "share", "cpu gw", "cpu encl", "cpu cli");
    for (size_t k = 0; run_c && k < n_batches; k++)
        printf("%6zu %5d %10.4f %10.0f %10.0f %7.1f%% %9.2f %9.2f %9.2f\n", bf[k].items, bf[k].runs,
               bf[k].best_s, bf[k].items_per_s, bf[k].floor_items_per_s, bf[k].ratio * 100.0,
               bf[k].cpu.gateway, bf[k].cpu.enclaves, bf[k].cpu.client);
    if (!run_d) printf("\n(d) concurrency: not run (--only)\n");
    if (run_d) {
        printf("\n(d) %zu signing sessions (n = 3) in flight at once, one thread + SDK handle each\n",
               cf.sessions);
        printf("    handles set up (verified enclaves, session imported) in %.2f s, untimed\n", cf.setup_s);
        printf("    total %.3f s, %.0f sessions/s; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
               cf.total_s,
               cf.total_s > 0 ? (double)(cf.sessions - cf.errors - cf.setup_errors) / cf.total_s : 0.0,
               cf.lat.p50, cf.lat.p99, cf.lat.max);
        printf("    errors %zu (+ %zu in setup)%s%s\n", cf.errors, cf.setup_errors,
               cf.first_error[0] ? ": " : "", cf.first_error);
        printf("    peak RSS%s: gateway %.1f MB, enclaves",
               cf.hwm_reset ? " during this phase" : " (lifetime)", (double)cf.gw_hwm_kb / 1024.0);
        for (int i = 0; i < N_ENCLAVES; i++)
            printf(" %.1f", (double)cf.enc_hwm_kb[i] / 1024.0);
        printf(" MB (gateway lifetime peak before: %.1f MB)\n", (double)gw_hwm_before_conc / 1024.0);
        printf("    CPU s: gateway %.2f, enclaves %.2f, client %.2f\n", cf.cpu.gateway, cf.cpu.enclaves,
               cf.cpu.client);
    }
    if (!run_e) printf("\n(e) single-signer signing: not run (--only)\n");
    if (run_e)
        printf(
            "\n(e) single-signer signing (imported key, BIP-340, 32-byte message; ms, %zu runs; import %.2f "
            "ms)\n",
            ss_stats.runs, import_ms);
    if (run_e)
        printf("     p50 %.2f, p99 %.2f, min %.2f, max %.2f, mean %.2f\n", ss_stats.p50, ss_stats.p99,
               ss_stats.min, ss_stats.max, ss_stats.mean);
    printf("\ntargets (this 2-core machine)\n");
    for (size_t i = 0; i < n_tg; i++)
        printf("  %-42s %10.2f %-2s %s %8.2f  %s\n", tg[i].name, tg[i].figure, tg[i].unit,
               tg[i].le ? "<=" : ">=", tg[i].limit, target_status(&tg[i]));
    fflush(stdout);

    /* ---- JSON ---- */
    if (jf) {
        fprintf(jf, "{\n  \"benchmark\": \"keymeld gateway end to end\",\n  \"quick\": %s,\n",
                quick ? "true" : "false");
        fprintf(jf, "  \"machine\": {\"cpu\": ");
        bench_json_string(jf, mach.cpu);
        fprintf(jf, ", \"cores\": %ld, \"kernel\": ", mach.cores);
        bench_json_string(jf, mach.kernel);
        fprintf(jf, ", \"loadavg_start\": ");
        bench_json_string(jf, mach.load_start);
        fprintf(jf, ", \"loadavg_end\": ");
        bench_json_string(jf, mach.load_end);
        fprintf(jf, "},\n  \"setup\": {\"enclaves\": %d, \"gateway_config\": ", N_ENCLAVES);
        bench_json_string(jf, gw_config ? gw_config : "defaults");
        fprintf(jf,
                ", \"database\": \"SQLite WAL synchronous=FULL in %s\", \"runs\": %zu, \"parts_run\": "
                "\"%s\"},\n",
                db_dir ? db_dir : "/tmp", runs, only);
        fprintf(
            jf,
            "  \"floor\": {\"definition\": \"one item's whole MuSig2 session for n parties in one process "
            "through keymeld/musig.h, one core\", \"per_n\": [");
        for (size_t j = 0; j < N_NS; j++)
            fprintf(jf,
                    "%s\n    {\"n\": %zu, \"session_us\": %.3f, \"session_us_start\": %.3f, "
                    "\"session_us_end\": %.3f, \"items_per_s\": %.1f, \"keyagg_tweak_us\": %.3f}",
                    j ? "," : "", g_ns[j], fl.session_us[j], fl.first_session_us[j], fl.last_session_us[j],
                    1e6 / fl.session_us[j], fl.keyagg_us[j]);
        fprintf(jf, "]},\n  \"keygen\": [");
        for (size_t j = 0; j < N_NS; j++) {
            fprintf(jf, "%s\n    {\"n\": %zu, ", j ? "," : "", g_ns[j]);
            json_stats(jf, &kg_stats[j]);
            fprintf(jf, "}");
        }
        fprintf(jf, "],\n  \"signing\": [");
        for (size_t j = 0; j < N_NS; j++) {
            fprintf(jf, "%s\n    {\"n\": %zu, ", j ? "," : "", g_ns[j]);
            json_stats(jf, &sg_stats[j]);
            fprintf(jf, ", \"floor_us\": %.3f, \"p50_over_floor\": %.2f}", fl.session_us[j],
                    sg_stats[j].p50 * 1e3 / fl.session_us[j]);
        }
        fprintf(jf, "],\n  \"batch\": [");
        for (size_t k = 0; k < n_batches; k++) {
            fprintf(jf, "%s\n    {\"n\": 3, \"items\": %zu, \"best_s\": %.6f, \"runs_s\": [", k ? "," : "",
                    bf[k].items, bf[k].best_s);
            for (int r = 0; r < bf[k].runs; r++)
                fprintf(jf, "%s%.6f", r ? ", " : "", bf[k].runs_s[r]);
            fprintf(jf,
                    "], \"items_per_s\": %.1f, \"floor_items_per_s\": %.1f, \"ratio_to_floor\": %.4f, "
                    "\"cpu_s\": ",
                    bf[k].items_per_s, bf[k].floor_items_per_s, bf[k].ratio);
            json_cpu(jf, &bf[k].cpu);
            fprintf(jf, "}");
        }
        fprintf(jf,
                "],\n  \"concurrency\": {\"n\": 3, \"sessions\": %zu, \"threads\": %zu, \"setup_s\": %.3f, "
                "\"total_s\": %.6f, ",
                cf.sessions, cf.sessions, cf.setup_s, cf.total_s);
        json_stats(jf, &cf.lat);
        fprintf(jf, ", \"errors\": %zu, \"setup_errors\": %zu, \"first_error\": ", cf.errors,
                cf.setup_errors);
        bench_json_string(jf, cf.first_error);
        fprintf(jf,
                ", \"peak_rss_kb\": {\"phase_only\": %s, \"gateway\": %ld, \"enclaves\": [%ld, %ld, %ld]}, "
                "\"gateway_peak_rss_kb_before\": %ld, \"cpu_s\": ",
                cf.hwm_reset ? "true" : "false", cf.gw_hwm_kb, cf.enc_hwm_kb[0], cf.enc_hwm_kb[1],
                cf.enc_hwm_kb[2], gw_hwm_before_conc);
        json_cpu(jf, &cf.cpu);
        fprintf(jf, "},\n  \"single_signer\": {\"algo\": \"bip340\", \"import_ms\": %.3f, ", import_ms);
        json_stats(jf, &ss_stats);
        fprintf(jf, "},\n  \"targets\": [");
        for (size_t i = 0; i < n_tg; i++) {
            fprintf(jf, "%s\n    {\"name\": ", i ? "," : "");
            bench_json_string(jf, tg[i].name);
            fprintf(jf, ", \"unit\": ");
            bench_json_string(jf, tg[i].unit);
            fprintf(jf, ", \"comparison\": \"%s\", \"target\": %.3f, \"figure\": %.3f, \"status\": \"%s\"}",
                    tg[i].le ? "<=" : ">=", tg[i].limit, tg[i].figure, target_status(&tg[i]));
        }
        fprintf(jf, "]\n}\n");
        if (fclose(jf) != 0) die("cannot write %s", json_path);
    }
    return 0;
}
