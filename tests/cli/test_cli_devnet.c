/* test_cli_devnet.c — the built `keymeld` tool end to end through separate
 * invocations, as a script would use it: devnet up/status/down, key files,
 * keygen create/join/wait and sign create/approve/wait through files,
 * single-signer keys, the documented exit codes (usage 2, refused
 * verification 3, unreachable 5) and the modes of files holding secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "keymeld/context.h"
#include "keymeld/hex.h"
#include "keymeld/single.h"
#include "test_cli_support.h"

static char work[256]; /* the invocations' working directory (key files etc.) */
static char first_enclave_key[67];

static int expect_json(json_t **o, int want, const char *const *args) {
    int rc = cli_json_in(work, o, args);
    if (rc != want)
        fprintf(stderr, "keymeld %s %s: exit %d, wanted %d (error: %s)\n", args[0], args[1] ? args[1] : "",
                rc, want, *o ? cli_str(*o, "error") : "?");
    assert_int_equal(rc, want);
    assert_non_null(*o);
    assert_int_equal(json_is_true(json_object_get(*o, "ok")), want == 0);
    assert_int_equal(json_integer_value(json_object_get(*o, "exit_code")), want);
    return rc;
}

static void test_status_and_modes(void **state) {
    (void)state;
    json_t *o = NULL;
    const char *st[] = {"devnet", "status", "--dir", cli_devnet_dir, "--json", NULL};
    expect_json(&o, 0, st);
    assert_string_equal(cli_str(o, "state"), "up");
    assert_string_equal(cli_str(o, "health"), "ok");
    assert_int_equal(json_integer_value(json_object_get(o, "alive")), 3);
    assert_int_equal(json_array_size(json_object_get(o, "processes")), 3);
    json_decref(o);
    /* Idempotent: a second up only says so. */
    const char *up[] = {"devnet", "up", "--dir", cli_devnet_dir, "--json", NULL};
    expect_json(&o, 0, up);
    assert_string_equal(cli_str(o, "state"), "already_up");
    json_decref(o);
    char p[512];
    assert_int_equal(cli_mode(cli_devnet_dir), 0700);
    snprintf(p, sizeof p, "%s/gateway.key", cli_devnet_dir);
    assert_int_equal(cli_mode(p), 0600);
    snprintf(p, sizeof p, "%s/enclave-0", cli_devnet_dir);
    assert_int_equal(cli_mode(p), 0700);
    snprintf(p, sizeof p, "%s/enclave-1/sealing.key", cli_devnet_dir);
    assert_int_equal(cli_mode(p) & 077, 0);
    const char *en[] = {"enclaves", "--verify", "--devnet", cli_devnet_dir, "--json", NULL};
    expect_json(&o, 0, en);
    json_t *l = json_object_get(o, "enclaves");
    assert_int_equal(json_array_size(l), 2);
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(cli_str(json_array_get(l, i), "attestation"), "verified");
    snprintf(first_enclave_key, sizeof first_enclave_key, "%s", cli_str(json_array_get(l, 0), "public_key"));
    json_decref(o);
}

static void test_usage_errors(void **state) {
    (void)state;
    json_t *o = NULL;
    const char *a1[] = {"frobnicate", "--json", NULL};
    const char *a2[] = {"keygen", "create", "--participants", "0", "--json", NULL};
    const char *a3[] = {"sign", "create", "--json", NULL};
    const char *a4[] = {"keygen", "join", "--session", "x.json", "--json", NULL};
    const char *a5[] = {"demo", "nosuchdemo", "--json", NULL};
    const char *a6[] = {"devnet", "up", "--bogus-flag", "--json", NULL};
    const char *a7[] = {"key", "new", "--json", NULL};
    const char *a8[] = {"enclaves", "--gateway", "http://127.0.0.1:1", "--json", NULL};
    const char *const *all[] = {a1, a2, a3, a4, a5, a6, a7, a8};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        expect_json(&o, 2, all[i]);
        assert_non_null(cli_str(o, "error"));
        json_decref(o);
    }
    /* --help is not an error, and prints no JSON. */
    char *out = NULL;
    const char *h[] = {"keygen", "create", "--help", NULL};
    assert_int_equal(cli_run_in(work, &out, h), 0);
    assert_non_null(strstr(out, "usage: keymeld keygen"));
    free(out);
}

/* A copy of devnet.json with one field replaced, in DIR/name/. */
static void tampered_devnet(const char *name, const char *field, const char *value, int in_enclave0) {
    char src[512], dir[512], dst[600];
    snprintf(src, sizeof src, "%s/devnet.json", cli_devnet_dir);
    snprintf(dir, sizeof dir, "%s/%s", work, name);
    snprintf(dst, sizeof dst, "%s/devnet.json", dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    json_error_t je;
    json_t *v = json_load_file(src, 0, &je);
    assert_non_null(v);
    json_t *target = v;
    if (in_enclave0) {
        /* Both enclaves: one PCR0 is pinned for all. */
        json_t *encs = json_object_get(v, "enclaves");
        for (size_t i = 0; i < json_array_size(encs); i++)
            json_object_set_new(json_array_get(encs, i), field, json_string(value));
    } else {
        json_object_set_new(target, field, json_string(value));
    }
    assert_int_equal(json_dump_file(v, dst, JSON_INDENT(2)), 0);
    json_decref(v);
}

static void test_refused_verification(void **state) {
    (void)state;
    /* The real PCR0 with its first digit changed: every document is refused. */
    char src[512];
    snprintf(src, sizeof src, "%s/devnet.json", cli_devnet_dir);
    json_error_t je;
    json_t *v = json_load_file(src, 0, &je);
    assert_non_null(v);
    char pcr[97];
    snprintf(pcr, sizeof pcr, "%s", cli_str(json_array_get(json_object_get(v, "enclaves"), 0), "pcr0_hex"));
    json_decref(v);
    pcr[0] = pcr[0] == '0' ? '1' : '0';
    tampered_devnet("badpcr", "pcr0_hex", pcr, 1);
    json_t *o = NULL;
    const char *a1[] = {"enclaves", "--verify", "--devnet", "badpcr", "--json", NULL};
    expect_json(&o, 3, a1);
    json_decref(o);
    const char *a2[] = {"keygen", "create", "--participants", "2",      "--devnet",
                        "badpcr", "--out",  "never.json",     "--json", NULL};
    expect_json(&o, 3, a2);
    json_decref(o);
    char p[512];
    snprintf(p, sizeof p, "%s/never.json", work);
    assert_int_equal(access(p, F_OK), -1); /* nothing was created */
    /* A devnet.json naming another enclave key than the gateway's: refused. */
    char other[67];
    snprintf(other, sizeof other, "%s", first_enclave_key);
    other[65] = other[65] == '0' ? '1' : '0';
    tampered_devnet("badkey", "public_key_hex", other, 1);
    const char *a3[] = {"keygen", "create", "--participants", "2", "--devnet", "badkey", "--json", NULL};
    expect_json(&o, 3, a3);
    json_decref(o);
}

static void test_unreachable(void **state) {
    (void)state;
    json_t *o = NULL;
    const char *a1[] = {"enclaves", "--devnet", "/tmp/km-cli-does-not-exist", "--json", NULL};
    expect_json(&o, 5, a1);
    json_decref(o);
    tampered_devnet("deadgw", "gateway_url", "http://127.0.0.1:1", 0);
    const char *a2[] = {"keygen", "create", "--participants", "2", "--devnet", "deadgw", "--json", NULL};
    expect_json(&o, 5, a2);
    json_decref(o);
}

static void keyfile(const char *name, char pub[67]) {
    json_t *o = NULL;
    const char *a[] = {"key", "new", "--out", name, "--json", NULL};
    expect_json(&o, 0, a);
    snprintf(pub, 67, "%s", cli_str(o, "public_key_hex"));
    json_decref(o);
    char p[512];
    snprintf(p, sizeof p, "%s/%s", work, name);
    assert_int_equal(cli_mode(p), 0600);
}

static void test_keygen_and_sign_through_files(void **state) {
    (void)state;
    char pubs[3][67];
    keyfile("p0.key", pubs[0]);
    keyfile("p1.key", pubs[1]);
    keyfile("p2.key", pubs[2]);
    json_t *o = NULL;
    /* key new never overwrites a key. */
    const char *again[] = {"key", "new", "--out", "p0.key", "--json", NULL};
    expect_json(&o, 2, again);
    json_decref(o);
    const char *dn = cli_devnet_dir;
    const char *cr[] = {"keygen", "create", "--participants", "3",        "--tweak", "bip86",  "--subset",
                        "0,2",    "--out",  "session.json",   "--devnet", dn,        "--json", NULL};
    expect_json(&o, 0, cr);
    assert_int_equal(json_array_size(json_object_get(o, "participants")), 3);
    char subset[40];
    snprintf(subset, sizeof subset, "%s",
             json_string_value(json_array_get(json_object_get(o, "subset_ids"), 0)));
    json_decref(o);
    char p[512];
    snprintf(p, sizeof p, "%s/session.json", work);
    assert_int_equal(cli_mode(p), 0600); /* it holds the session secret */

    const char *j0[] = {"keygen", "join",   "--session", "session.json",       "--index",
                        "0",      "--key",  "p0.key",    "--require-approval", "--devnet",
                        dn,       "--json", NULL};
    const char *j1[] = {"keygen", "join",     "--session", "session.json", "--index", "1", "--key",
                        "p1.key", "--devnet", dn,          "--json",       NULL};
    const char *j2[] = {"keygen", "join",     "--session", "session.json", "--index", "2", "--key",
                        "p2.key", "--devnet", dn,          "--json",       NULL};
    expect_json(&o, 0, j0);
    json_decref(o);
    expect_json(&o, 0, j1);
    json_decref(o);
    expect_json(&o, 0, j2);
    json_decref(o);
    const char *w[] = {"keygen", "wait",     "--session", "session.json", "--index", "1", "--key",
                       "p1.key", "--devnet", dn,          "--json",       NULL};
    expect_json(&o, 0, w);
    char out_key[65];
    snprintf(out_key, sizeof out_key, "%s", cli_str(o, "output_pubkey_hex"));
    json_t *pk = json_object_get(o, "participant_pubkeys_hex");
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_array_get(pk, i)), pubs[i]);
    char spk[70];
    snprintf(spk, sizeof spk, "5120%s", out_key);
    assert_string_equal(cli_str(o, "script_pubkey_hex"), spk);
    assert_string_equal(cli_str(o, "tweak"), "bip86");
    json_decref(o);
    /* The attacker's path: claiming our key sits at another index is refused. */
    const char *wbad[] = {"keygen", "wait",     "--session", "session.json", "--index", "0", "--key",
                          "p1.key", "--devnet", dn,          "--json",       NULL};
    expect_json(&o, 3, wbad);
    json_decref(o);

    /* Sign: participant 0 requires approval. */
    static const char msg[] = "6b65796d656c6420636c692074657374206d6573736167652033322062797465";
    const char *sc[] = {"sign",         "create",   "--session", "session.json", "--message", msg, "--out",
                        "signing.json", "--devnet", dn,          "--json",       NULL};
    expect_json(&o, 0, sc);
    json_decref(o);
    const char *sa[] = {"sign",    "approve", "--session", "session.json", "--signing", "signing.json",
                        "--index", "0",       "--key",     "p0.key",       "--devnet",  dn,
                        "--json",  NULL};
    expect_json(&o, 0, sa);
    json_decref(o);
    const char *sw[] = {"sign",         "wait",     "--session", "session.json", "--signing",
                        "signing.json", "--devnet", dn,          "--json",       NULL};
    expect_json(&o, 0, sw);
    json_t *item = json_array_get(json_object_get(o, "results"), 0);
    assert_string_equal(cli_str(item, "key_xonly_hex"), out_key);
    const char *sig_hex = cli_str(json_array_get(json_object_get(item, "units"), 0), "signature_hex");
    assert_non_null(sig_hex);
    /* Checked here with the core library, independently of the tool. */
    km_ctx *ctx = NULL;
    assert_int_equal(km_ctx_create(&ctx), KM_OK);
    unsigned char sig[64], m[32], q[32];
    assert_int_equal(km_hex_decode(sig, 64, sig_hex, 128), KM_OK);
    assert_int_equal(km_hex_decode(m, 32, msg, 64), KM_OK);
    assert_int_equal(km_hex_decode(q, 32, out_key, 64), KM_OK);
    assert_int_equal(km_single_schnorr_verify(ctx, sig, m, 32, q), KM_OK);
    sig[5] ^= 1;
    assert_int_equal(km_single_schnorr_verify(ctx, sig, m, 32, q), KM_ERR_VERIFY);
    km_ctx_destroy(ctx);
    json_decref(o);

    /* The subset (participants 0 and 2) signs too. */
    const char *sc2[] = {"sign", "create", "--session",     "session.json", "--message", msg,      "--subset",
                         subset, "--out",  "signing2.json", "--devnet",     dn,          "--json", NULL};
    expect_json(&o, 0, sc2);
    json_decref(o);
    const char *sa2[] = {"sign",    "approve", "--session", "session.json", "--signing", "signing2.json",
                         "--index", "0",       "--key",     "p0.key",       "--devnet",  dn,
                         "--json",  NULL};
    expect_json(&o, 0, sa2);
    json_decref(o);
    const char *sw2[] = {"sign",          "wait",     "--session", "session.json", "--signing",
                         "signing2.json", "--devnet", dn,          "--json",       NULL};
    expect_json(&o, 0, sw2);
    item = json_array_get(json_object_get(o, "results"), 0);
    assert_string_not_equal(cli_str(item, "key_xonly_hex"), out_key);
    json_decref(o);
}

static void test_single_through_files(void **state) {
    (void)state;
    char pub[67];
    keyfile("s.key", pub);
    const char *dn = cli_devnet_dir;
    json_t *o = NULL;
    const char *im[] = {"single",   "import", "--key",  "s.key", "--require-approval", "--out", "single.json",
                        "--devnet", dn,       "--json", NULL};
    expect_json(&o, 0, im);
    assert_string_equal(cli_str(o, "public_key_hex"), pub);
    json_decref(o);
    static const char digest[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const char *s1[] = {"single", "sign",      "--single", "single.json", "--key",
                        "s.key",  "--message", digest,     "--approve",   "--devnet",
                        dn,       "--json",    NULL};
    expect_json(&o, 0, s1);
    assert_string_equal(cli_str(o, "algorithm"), "bip340");
    json_decref(o);
    const char *s2[] = {"single", "sign",    "--single",  "single.json", "--key", "s.key",  "--message",
                        digest,   "--ecdsa", "--approve", "--devnet",    dn,      "--json", NULL};
    expect_json(&o, 0, s2);
    assert_string_equal(cli_str(o, "algorithm"), "ecdsa");
    json_decref(o);
    /* Without the approval the enclave refuses. */
    const char *s3[] = {"single", "sign",     "--single", "single.json", "--key", "s.key", "--message",
                        digest,   "--devnet", dn,         "--json",      NULL};
    expect_json(&o, 1, s3);
    json_decref(o);
    const char *de[] = {"single", "delete",   "--single", "single.json", "--key",
                        "s.key",  "--devnet", dn,         "--json",      NULL};
    expect_json(&o, 0, de);
    json_decref(o);
    expect_json(&o, 1, s1); /* gone */
    json_decref(o);
    /* A key file readable by others is refused before anything is sent. */
    char p[512];
    snprintf(p, sizeof p, "%s/s.key", work);
    assert_int_equal(chmod(p, 0644), 0);
    expect_json(&o, 1, im);
    json_decref(o);
}

/* Last: down without purge, then up again restarts the same enclaves. */
static void test_down_and_restart(void **state) {
    (void)state;
    json_t *o = NULL;
    const char *down[] = {"devnet", "down", "--dir", cli_devnet_dir, "--json", NULL};
    expect_json(&o, 0, down);
    assert_int_equal(json_integer_value(json_object_get(o, "stopped")), 3);
    json_decref(o);
    const char *st[] = {"devnet", "status", "--dir", cli_devnet_dir, "--json", NULL};
    expect_json(&o, 5, st);
    assert_string_equal(cli_str(o, "state"), "down");
    assert_int_equal(json_integer_value(json_object_get(o, "alive")), 0);
    json_decref(o);
    const char *up[] = {"devnet", "up", "--dir", cli_devnet_dir, "--json", NULL};
    expect_json(&o, 0, up);
    assert_string_equal(cli_str(o, "state"), "started");
    json_decref(o);
    const char *en[] = {"enclaves", "--verify", "--devnet", cli_devnet_dir, "--json", NULL};
    expect_json(&o, 0, en);
    /* The sealed identity survived the restart. */
    assert_string_equal(cli_str(json_array_get(json_object_get(o, "enclaves"), 0), "public_key"),
                        first_enclave_key);
    json_decref(o);
}

static int setup(void **state) {
    (void)state;
    json_t *o = cli_devnet_start();
    if (!o) return -1;
    json_decref(o);
    if (cli_mkdtemp(work, sizeof work) != 0) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    cli_devnet_down();
    cli_rm_rf(work);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_and_modes),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_refused_verification),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_keygen_and_sign_through_files),
        cmocka_unit_test(test_single_through_files),
        cmocka_unit_test(test_down_and_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
