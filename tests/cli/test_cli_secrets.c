/* test_cli_secrets.c — the whole demo leaves no secret behind.
 *
 * Runs the demos of scripts/demo (quickstart, taproot-spend, adaptors) plus
 * single-signer through the built `keymeld` tool against a real devnet, each
 * with the testing-only --secrets-out option that lists every participant
 * secret key, auth key, session secret, message and adaptor secret the demo
 * used. The session secret's derived keys (data key, session auth key) are
 * added here. Then every file of the devnet directory — the gateway's and the
 * enclaves' logs, the gateway database with its -wal and -shm files, configs
 * and sealed state — is searched for each of them raw, in lowercase and in
 * uppercase hex; once while the devnet runs (the WAL holds the recent
 * writes) and again after a clean shutdown (the WAL checkpointed into the
 * database). The demos' output directory is searched for the keys and
 * session secrets too (it publishes messages and adaptor secrets on purpose:
 * adaptors.json is the demo's own proof that the secrets extract).
 *
 * tests/gateway/test_gateway_flows.c test_logs_clean covers the logs of the
 * gateway test flows; this test covers the demo end to end including the
 * database. test_detector_finds_planted_secrets is the negative control: a
 * copy of a real log and of the real database with one secret planted (in
 * each form) must be reported. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "keymeld/context.h"
#include "keymeld/secret.h"
#include "keymeld/session_crypto.h"
#include "test_cli_support.h"

#define MAX_SECRETS 128

typedef struct secret {
    char kind[32];
    unsigned char b[64];
    size_t n;
} secret;

static secret secrets[MAX_SECRETS];
static size_t n_secrets;
static char out_dir[256], secrets_dir[256];
static int scan_quiet; /* findings expected (controls): do not print them */

/* Kinds the demos publish in their output directory on purpose. */
static int published(const char *kind) {
    return !strcmp(kind, "message") || !strcmp(kind, "adaptor_secret");
}

static void add_secret(const char *kind, const unsigned char *b, size_t n) {
    assert_true(n_secrets < MAX_SECRETS);
    assert_true(n > 0 && n <= sizeof secrets[0].b);
    secret *s = &secrets[n_secrets++];
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    memcpy(s->b, b, n);
    s->n = n;
}

static int unhex(unsigned char *out, size_t cap, size_t *n, const char *hex) {
    size_t len = strlen(hex);
    if (len % 2 || len / 2 > cap) return -1;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (unsigned char)v;
    }
    *n = len / 2;
    return 0;
}

static void hexify(char *out, const unsigned char *b, size_t n, int upper) {
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, upper ? "%02X" : "%02x", b[i]);
}

/* Read one --secrets-out file; add the session secrets' derived keys. */
static void load_secrets(km_ctx *ctx, const char *path) {
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(doc);
    assert_int_equal(cli_mode(path), 0600);
    json_t *l = json_object_get(doc, "secrets"), *v;
    size_t i;
    assert_true(json_array_size(l) > 0);
    json_array_foreach(l, i, v) {
        const char *kind = json_string_value(json_object_get(v, "kind"));
        const char *hex = json_string_value(json_object_get(v, "hex"));
        assert_non_null(kind);
        assert_non_null(hex);
        unsigned char b[64];
        size_t n;
        assert_int_equal(unhex(b, sizeof b, &n, hex), 0);
        add_secret(kind, b, n);
        if (!strcmp(kind, "session_secret")) {
            unsigned char data[32], auth[32];
            assert_int_equal(n, 32);
            assert_int_equal(km_session_derive_raw(ctx, b, data, auth), KM_OK);
            add_secret("session_data_key", data, 32);
            add_secret("session_auth_key", auth, 32);
            km_wipe(data, sizeof data);
            km_wipe(auth, sizeof auth);
        }
    }
    json_decref(doc);
}

static size_t count_kind(const char *kind) {
    size_t c = 0;
    for (size_t i = 0; i < n_secrets; i++)
        c += !strcmp(secrets[i].kind, kind);
    return c;
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 65536, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (n == cap) buf = realloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0) break;
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* The detector: how many (secret, form) pairs occur in the file at path;
 * each finding is printed. Kinds that are published are skipped when
 * skip_published is set. */
static int scan_file(const char *path, int skip_published) {
    size_t len = 0;
    unsigned char *data = slurp(path, &len);
    if (!data) {
        fprintf(stderr, "secrets: cannot read %s\n", path);
        return 1; /* an unreadable file is a failure, not a clean file */
    }
    int found = 0;
    for (size_t i = 0; i < n_secrets; i++) {
        const secret *s = &secrets[i];
        if (skip_published && published(s->kind)) continue;
        char lo[2 * sizeof s->b + 1], up[2 * sizeof s->b + 1];
        hexify(lo, s->b, s->n, 0);
        hexify(up, s->b, s->n, 1);
        const struct {
            const char *form;
            const void *p;
            size_t n;
        } forms[3] = {{"raw", s->b, s->n}, {"hex", lo, 2 * s->n}, {"HEX", up, 2 * s->n}};
        for (int k = 0; k < 3; k++)
            if (memmem(data, len, forms[k].p, forms[k].n)) {
                if (!scan_quiet)
                    fprintf(stderr, "secrets: %s (%s) found in %s\n", s->kind, forms[k].form, path);
                found++;
            }
    }
    free(data);
    return found;
}

/* Scan every regular file under dir (recursively); *files counts them. */
static int scan_dir(const char *dir, int skip_published, int *files) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int found = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        assert_int_equal(lstat(path, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            found += scan_dir(path, skip_published, files);
        } else if (S_ISREG(st.st_mode)) {
            found += scan_file(path, skip_published);
            (*files)++;
        }
    }
    closedir(d);
    return found;
}

static int file_nonempty(const char *dir, const char *name) {
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

static void run_demo(const char *name) {
    char spath[512];
    snprintf(spath, sizeof spath, "%s/%s.json", secrets_dir, name);
    json_t *o = NULL;
    const char *args[] = {"demo",  name,     "--devnet",      cli_devnet_dir, "--out",
                          out_dir, "--json", "--secrets-out", spath,          NULL};
    int rc = cli_json_in(NULL, &o, args);
    assert_non_null(o);
    if (rc != 0) fprintf(stderr, "demo %s: exit %d, error %s\n", name, rc, cli_str(o, "error"));
    assert_int_equal(rc, 0);
    assert_true(json_is_true(json_object_get(o, "ok")));
    json_decref(o);
}

static void test_demo_leaves_no_secret(void **state) {
    (void)state;
    static const char *const demos[] = {"quickstart", "taproot-spend", "adaptors", "single-signer"};
    km_ctx *ctx = NULL;
    assert_int_equal(km_ctx_create(&ctx), KM_OK);
    for (size_t i = 0; i < sizeof demos / sizeof demos[0]; i++) {
        run_demo(demos[i]);
        char spath[512];
        snprintf(spath, sizeof spath, "%s/%s.json", secrets_dir, demos[i]);
        load_secrets(ctx, spath);
    }
    km_ctx_destroy(ctx);
    /* The list is what the demos really used: 3 keygens of 3 participants
     * plus the single-signer key; messages and adaptor secrets (1 + 3 + 3). */
    assert_true(count_kind("secret_key") >= 10);
    assert_true(count_kind("auth_key") >= 10);
    assert_int_equal(count_kind("session_secret"), 3);
    assert_int_equal(count_kind("session_data_key"), 3);
    assert_int_equal(count_kind("session_auth_key"), 3);
    assert_true(count_kind("message") >= 7);
    assert_int_equal(count_kind("adaptor_secret"), 7);

    /* The files that must exist (and so are really searched). */
    assert_true(file_nonempty(cli_devnet_dir, "gateway.log"));
    assert_true(file_nonempty(cli_devnet_dir, "enclave-0.log"));
    assert_true(file_nonempty(cli_devnet_dir, "enclave-1.log"));
    assert_true(file_nonempty(cli_devnet_dir, "gateway.db"));
    assert_true(file_nonempty(cli_devnet_dir, "gateway.db-wal"));

    int files = 0;
    assert_int_equal(scan_dir(cli_devnet_dir, 0, &files), 0);
    assert_true(files >= 5);
    int out_files = 0;
    assert_int_equal(scan_dir(out_dir, 1, &out_files), 0);
    assert_true(out_files >= 2);
    /* The output directory is really read: adaptors.json publishes the
     * adaptor secrets, and the scanner sees them there. */
    char adaptors[512];
    snprintf(adaptors, sizeof adaptors, "%s/adaptors.json", out_dir);
    scan_quiet = 1;
    assert_true(scan_file(adaptors, 0) >= (int)count_kind("adaptor_secret"));
    scan_quiet = 0;

    /* A clean shutdown checkpoints the WAL into the database: search again. */
    const char *down[] = {"devnet", "down", "--dir", cli_devnet_dir, NULL};
    assert_int_equal(cli_run_in(NULL, NULL, down), 0);
    files = 0;
    assert_int_equal(scan_dir(cli_devnet_dir, 0, &files), 0);
    assert_true(files >= 4);
}

/* Copy src to dst, writing plant (n bytes) at offset `at` (appended if at is
 * past the end). */
static void copy_with(const char *src, const char *dst, size_t at, const void *plant, size_t n) {
    size_t len = 0;
    unsigned char *data = slurp(src, &len);
    assert_non_null(data);
    FILE *f = fopen(dst, "wb");
    assert_non_null(f);
    size_t head = at < len ? at : len;
    assert_int_equal(fwrite(data, 1, head, f), head);
    if (n) assert_int_equal(fwrite(plant, 1, n, f), n);
    size_t skip = at < len ? (at + n < len ? at + n : len) : len;
    assert_int_equal(fwrite(data + skip, 1, len - skip, f), len - skip);
    assert_int_equal(fclose(f), 0);
    free(data);
}

/* Negative control: the detector above, on copies of the real gateway log
 * and database with one secret planted, reports it in every form; the
 * unmodified copies are clean. */
static void test_detector_finds_planted_secrets(void **state) {
    (void)state;
    scan_quiet = 1;
    assert_true(n_secrets > 0);
    char log[512], db[512], copy[512];
    snprintf(log, sizeof log, "%s/gateway.log", cli_devnet_dir);
    snprintf(db, sizeof db, "%s/gateway.db", cli_devnet_dir);
    snprintf(copy, sizeof copy, "%s/planted", secrets_dir);
    copy_with(log, copy, SIZE_MAX, NULL, 0);
    assert_int_equal(scan_file(copy, 0), 0);
    copy_with(db, copy, SIZE_MAX, NULL, 0);
    assert_int_equal(scan_file(copy, 0), 0);

    const char *const kinds[] = {"secret_key", "auth_key", "session_secret", "session_auth_key", "message"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        const secret *s = NULL;
        for (size_t i = 0; i < n_secrets && !s; i++)
            if (!strcmp(secrets[i].kind, kinds[k])) s = &secrets[i];
        assert_non_null(s);
        char lo[129], up[129];
        hexify(lo, s->b, s->n, 0);
        hexify(up, s->b, s->n, 1);
        /* In a log line (appended), and in the middle of the database. */
        char line[300];
        snprintf(line, sizeof line, "INFO something happened key=%s\n", lo);
        copy_with(log, copy, SIZE_MAX, line, strlen(line));
        assert_int_equal(scan_file(copy, 0), 1);
        copy_with(log, copy, SIZE_MAX, up, 2 * s->n);
        assert_int_equal(scan_file(copy, 0), 1);
        copy_with(log, copy, SIZE_MAX, s->b, s->n);
        assert_int_equal(scan_file(copy, 0), 1);
        copy_with(db, copy, 4096 + 100, s->b, s->n);
        assert_int_equal(scan_file(copy, 0), 1);
        /* A published kind is still found when publication is not allowed
         * and skipped only where it is (the output directory). */
        if (published(s->kind)) {
            copy_with(log, copy, SIZE_MAX, lo, 2 * s->n);
            assert_int_equal(scan_file(copy, 1), 0);
        }
    }
    remove(copy);
    scan_quiet = 0;
}

static int setup(void **state) {
    (void)state;
    json_t *o = cli_devnet_start();
    if (!o) return -1;
    json_decref(o);
    if (cli_mkdtemp(out_dir, sizeof out_dir) != 0 || cli_mkdtemp(secrets_dir, sizeof secrets_dir) != 0)
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    cli_devnet_down();
    cli_rm_rf(out_dir);
    cli_rm_rf(secrets_dir);
    km_wipe(secrets, sizeof secrets);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_leaves_no_secret),
        cmocka_unit_test(test_detector_finds_planted_secrets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
