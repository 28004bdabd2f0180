/* cmd_keygen.c — `keymeld key new`, `keymeld enclaves` and
 * `keymeld keygen create|join|wait`.
 *
 * A keygen across separate invocations (and separate people) goes through
 * files: the coordinator's `create` writes the session file (the SDK's
 * export, WITH the session secret: mode 0600, hand it over only over a
 * confidential channel); each participant `join`s with it and their key
 * file; anyone holding it can `wait` for the checked result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/tool/tool.h"
#include "client/http.h"
#include "keymeld/secret.h"
#include "keymeld/taproot.h"

/* ---- key new ----------------------------------------------------------------- */

static const char KEY_HELP[] =
    "usage: keymeld key new --out FILE\n"
    "Make a participant key file: a secret signing key, an auth key (signs requests\n"
    "and approvals) and a user id, as JSON with mode 0600. Refuses to overwrite.\n";

int km_cmd_key(km_tool *t, int argc, char **argv) {
    t->prog = "keymeld key";
    if (argc >= 1 && !strcmp(argv[0], "--help")) {
        fputs(KEY_HELP, stdout);
        return -1;
    }
    if (argc < 1 || strcmp(argv[0], "new") != 0) return km_tool_usage(t, "key needs 'new'");
    t->prog = "keymeld key new";
    const char *out = NULL;
    km_opt opts[] = {{"--out", &out, NULL, NULL}, {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc - 1, argv + 1, opts, KEY_HELP, NULL, 0, NULL);
    if (rc) return rc;
    if (!out) return km_tool_usage(t, "--out FILE is required");
    FILE *probe = fopen(out, "r");
    if (probe) {
        fclose(probe);
        return km_tool_usage(t, "%s exists; not overwriting a key", out);
    }
    km_tool_key k;
    km_err err = km_tool_key_generate(t->ctx, &k);
    if (!err) err = km_tool_key_save(&k, out);
    if (err) {
        km_wipe(&k, sizeof k);
        return km_tool_fail(t, err, "making the key file", out);
    }
    char uid[37];
    km_uuid_format(uid, &k.user_id);
    km_tool_set_str(t, "file", out);
    km_tool_set_hex(t, "public_key_hex", k.pub33, 33);
    km_tool_set_hex(t, "auth_public_key_hex", k.auth_x, 32);
    km_tool_set_str(t, "user_id", uid);
    char pub[67];
    km_tool_hex(pub, k.pub33, 33);
    km_tool_say(t, "wrote %s (mode 0600)\n  public key: %s\n  user id:    %s\n", out, pub, uid);
    km_wipe(&k, sizeof k);
    return 0;
}

/* ---- enclaves ---------------------------------------------------------------- */

static const char ENCLAVES_HELP[] =
    "usage: keymeld enclaves [--verify]\n"
    "List the gateway's enclaves. --verify fetches a fresh attestation document of each\n"
    "and verifies it against the pinned root and PCR0 (exit 3 if any is refused).\n";

int km_cmd_enclaves(km_tool *t, int argc, char **argv) {
    t->prog = "keymeld enclaves";
    int verify = 0;
    km_opt opts[] = {{"--verify", NULL, &verify, NULL}, {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc, argv, opts, ENCLAVES_HELP, NULL, 0, NULL);
    if (rc) return rc;
    km_tool_devnet *d = calloc(1, sizeof *d);
    if (!d) return km_tool_fail(t, KM_ERR_NOMEM, "enclaves", NULL);
    rc = km_tool_resolve_devnet(t, d);
    if (rc) {
        free(d);
        return rc;
    }
    km_client *c = NULL;
    km_client_response r;
    memset(&r, 0, sizeof r);
    km_err err = km_client_new(&c, t->ctx, d->gateway_url);
    if (!err) err = km_client_call(c, "GET", "/api/v1/enclaves", NULL, NULL, &r);
    if (!err && (r.status != 200 || !json_is_array(json_object_get(r.json, "enclaves")))) err = KM_ERR_STATE;
    if (err) {
        rc = km_tool_fail_remote(t, err, "listing the enclaves", c ? km_client_last_error(c) : NULL, 0);
        km_client_response_clear(&r);
        km_client_free(c);
        free(d);
        return rc;
    }
    json_t *list = json_object_get(r.json, "enclaves");
    json_t *outl = json_array();
    km_sdk *sdk = NULL;
    if (verify) {
        err = km_tool_sdk_from_devnet(t->ctx, d, &sdk);
        if (err) {
            rc = km_tool_fail(t, err, "setting up the client", NULL);
            goto out;
        }
    }
    km_tool_say(t, "%zu enclave%s at %s\n", json_array_size(list), json_array_size(list) == 1 ? "" : "s",
                d->gateway_url);
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);
        json_int_t id = json_integer_value(json_object_get(e, "enclave_id"));
        const char *pub = json_string_value(json_object_get(e, "public_key"));
        int ready = json_is_true(json_object_get(e, "ready"));
        json_t *o =
            json_pack("{s:I, s:s, s:b}", "enclave_id", id, "public_key", pub ? pub : "", "ready", ready);
        const char *vs = "";
        if (verify) {
            unsigned char key[33];
            km_err v = km_sdk_verify_enclave(sdk, (uint32_t)id, key);
            json_object_set_new(o, "attestation", json_string(v == KM_OK ? "verified" : km_err_name(v)));
            if (v) {
                json_object_set_new(o, "attestation_error", json_string(km_sdk_last_error(sdk)));
                fprintf(stderr, "keymeld enclaves: %s\n", km_sdk_last_error(sdk)); /* names the enclave */
                if (!rc) rc = km_tool_exit_code(v);
            }
            vs = v == KM_OK ? "  attestation verified" : "  ATTESTATION REFUSED";
        }
        json_array_append_new(outl, o);
        km_tool_say(t, "  enclave %lld: %s %s%s\n", (long long)id, pub ? pub : "?",
                    ready ? "ready" : "not ready", vs);
    }
    if (t->out) json_object_set(t->out, "enclaves", outl);
out:
    json_decref(outl);
    km_sdk_free(sdk);
    km_client_response_clear(&r);
    km_client_free(c);
    free(d);
    return rc;
}

/* ---- keygen ------------------------------------------------------------------ */

static const char KEYGEN_HELP[] =
    "usage: keymeld keygen create --participants N [--tweak MODE] [--tweak-data HEX]\n"
    "                             [--subset I,J,...]... [--session-timeout S] [--out FILE]\n"
    "       keymeld keygen join --session FILE --index I --key KEYFILE [--require-approval]\n"
    "       keymeld keygen wait --session FILE [--index I --key KEYFILE]\n"
    "create: as coordinator, make a keygen for N participants (tweak: bip86 (default),\n"
    "  none, bip341, plain, xonly; the last three take --tweak-data, 64 hex) and write the\n"
    "  session file (default session.json, mode 0600: it holds the session secret).\n"
    "join: register participant I's key (from `keymeld key new`) through its enclave.\n"
    "wait: wait for the result, check it (aggregate recomputed; with --key, that key is at\n"
    "  index I) and show the aggregate and output keys and the P2TR scriptPubKey.\n";

#define MAX_CLI_SUBSETS 32

static int parse_members(const char *s, uint16_t *m, size_t cap, uint16_t *n) {
    size_t k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || v >= KM_SDK_MAX_PARTICIPANTS || k == cap) return -1;
        m[k++] = (uint16_t)v;
        if (*end == ',')
            p = end + 1;
        else if (*end == '\0')
            p = end;
        else
            return -1;
    }
    *n = (uint16_t)k;
    return k ? 0 : -1;
}

static int load_session(km_tool *t, const char *path, km_sdk_session **s) {
    char *text = NULL;
    size_t len = 0;
    km_err err = km_tool_read_file(path, 16u * 1024u * 1024u, &text, &len);
    if (err) return km_tool_fail(t, err, "reading the session file", path);
    err = km_sdk_session_import(t->ctx, text, s);
    km_wipe(text, len);
    free(text);
    if (err) return km_tool_fail(t, err, "loading the session file", path);
    return 0;
}

int km_tool_parse_tweak(km_tool *t, const char *mode, const char *data, km_tweak *tw) {
    km_tweak_mode m;
    if (km_tweak_mode_parse(&m, mode, strlen(mode)) != KM_OK)
        return km_tool_usage(t, "unknown tweak '%s' (none, bip86, bip341, plain, xonly)", mode);
    unsigned char d[32] = {0};
    if (km_tweak_mode_has_data(m)) {
        if (!data || km_tool_unhex(d, 32, data))
            return km_tool_usage(t, "tweak %s needs --tweak-data (64 hex)", mode);
    } else if (data) {
        return km_tool_usage(t, "tweak %s takes no data", mode);
    }
    memset(tw, 0, sizeof *tw);
    tw->mode = m;
    if (km_tweak_mode_has_data(m)) memcpy(tw->data, d, 32);
    return 0;
}

static int keygen_create(km_tool *t, int argc, char **argv) {
    const char *tweak = "bip86", *tweak_data = NULL, *out = "session.json";
    unsigned n = 0, timeout = 3600;
    const char *subsets[MAX_CLI_SUBSETS];
    size_t n_sub = 0;
    /* --subset may repeat: collect them before the generic parser sees argv. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) return km_tool_fail(t, KM_ERR_NOMEM, "keygen create", NULL);
    int nr = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--subset")) {
            if (i + 1 >= argc || n_sub == MAX_CLI_SUBSETS) {
                free(rest);
                return km_tool_usage(t, "--subset needs I,J,... (at most %d subsets)", MAX_CLI_SUBSETS);
            }
            subsets[n_sub++] = argv[++i];
        } else {
            rest[nr++] = argv[i];
        }
    }
    km_opt opts[] = {{"--participants", NULL, NULL, &n},
                     {"--tweak", &tweak, NULL, NULL},
                     {"--tweak-data", &tweak_data, NULL, NULL},
                     {"--session-timeout", NULL, NULL, &timeout},
                     {"--out", &out, NULL, NULL},
                     {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, nr, rest, opts, KEYGEN_HELP, NULL, 0, NULL);
    free(rest);
    if (rc) return rc;
    if (n < 1 || n > KM_SDK_MAX_PARTICIPANTS) return km_tool_usage(t, "--participants must be 1..1000");
    if (timeout < 1 || timeout > 86400) return km_tool_usage(t, "--session-timeout must be 1..86400");
    km_sdk_keygen_params p;
    memset(&p, 0, sizeof p);
    if ((rc = km_tool_parse_tweak(t, tweak, tweak_data, &p.tweak))) return rc;
    km_subset_def defs[MAX_CLI_SUBSETS];
    uint16_t members[MAX_CLI_SUBSETS][64];
    memset(defs, 0, sizeof defs);
    for (size_t i = 0; i < n_sub; i++) {
        if (parse_members(subsets[i], members[i], 64, &defs[i].n))
            return km_tool_usage(t, "--subset wants participant indices like 0,2");
        for (uint16_t k = 0; k < defs[i].n; k++)
            if (members[i][k] >= n)
                return km_tool_usage(t, "--subset index %u >= participants", members[i][k]);
        defs[i].members = members[i];
        if (km_uuid_v7(&defs[i].id, km_tool_unix_ms()) != KM_OK)
            return km_tool_fail(t, KM_ERR_RANDOM, "subset id", NULL);
    }
    p.n_participants = n;
    p.n_subsets = n_sub;
    p.subsets = n_sub ? defs : NULL;
    p.timeout_secs = timeout;
    km_sdk *sdk = NULL;
    if ((rc = km_tool_connect(t, &sdk, NULL))) return rc;
    km_sdk_session *s = NULL;
    char *json = NULL;
    km_err err = km_sdk_keygen_create(sdk, &p, &s);
    if (err) {
        rc = km_tool_fail_remote(t, err, "creating the keygen", km_sdk_last_error(sdk), 0);
        goto out;
    }
    if ((err = km_sdk_session_export(s, &json)) != KM_OK ||
        (err = km_tool_write_file(out, json, strlen(json), 0600))) {
        rc = km_tool_fail(t, err, "writing the session file", out);
        goto out;
    }
    km_uuid kid;
    size_t np = 0;
    if ((err = km_sdk_session_info(s, &kid, &np)) != KM_OK) {
        rc = km_tool_fail(t, err, "session info", NULL);
        goto out;
    }
    char ks[37];
    km_uuid_format(ks, &kid);
    km_tool_set_str(t, "keygen_id", ks);
    km_tool_set_str(t, "session_file", out);
    km_tool_set_str(t, "tweak", km_tweak_mode_name(p.tweak.mode));
    km_tool_say(t,
                "keygen %s created: %zu participants, tweak %s\n  session file: %s (mode 0600, holds the "
                "session secret)\n",
                ks, np, km_tweak_mode_name(p.tweak.mode), out);
    json_t *parts = json_array();
    for (size_t i = 0; i < np; i++) {
        km_uuid uid;
        uint32_t enc = 0;
        if (km_sdk_session_participant(s, i, &uid, &enc) != KM_OK) continue;
        char us[37];
        km_uuid_format(us, &uid);
        json_array_append_new(
            parts, json_pack("{s:i, s:s, s:i}", "index", (int)i, "user_id", us, "enclave_id", (int)enc));
        km_tool_say(t, "  participant %zu: user %s on enclave %u\n", i, us, enc);
    }
    if (t->out)
        json_object_set_new(t->out, "participants", parts);
    else
        json_decref(parts);
    json_t *subs = json_array();
    for (size_t i = 0; i < n_sub; i++) {
        char us[37];
        km_uuid_format(us, &defs[i].id);
        json_array_append_new(subs, json_string(us));
        km_tool_say(t, "  subset %s: %s\n", us, subsets[i]);
    }
    if (t->out)
        json_object_set_new(t->out, "subset_ids", subs);
    else
        json_decref(subs);
out:
    if (json) {
        km_wipe(json, strlen(json));
        free(json);
    }
    km_sdk_session_free(s);
    km_sdk_free(sdk);
    return rc;
}

static int keygen_join(km_tool *t, int argc, char **argv) {
    const char *session = NULL, *keyfile = NULL;
    unsigned index = 0;
    int have_index = 0, approval = 0;
    const char *index_s = NULL;
    km_opt opts[] = {{"--session", &session, NULL, NULL},
                     {"--index", &index_s, NULL, NULL},
                     {"--key", &keyfile, NULL, NULL},
                     {"--require-approval", NULL, &approval, NULL},
                     {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc, argv, opts, KEYGEN_HELP, NULL, 0, NULL);
    if (rc) return rc;
    if (index_s) {
        char *end;
        unsigned long v = strtoul(index_s, &end, 10);
        have_index = *index_s && !*end && v < KM_SDK_MAX_PARTICIPANTS;
        index = (unsigned)v;
    }
    if (!session || !keyfile || !have_index)
        return km_tool_usage(t, "join needs --session, --index and --key");
    km_tool_key k;
    km_err err = km_tool_key_load(t->ctx, keyfile, &k);
    if (err) return km_tool_fail(t, err, "loading the key file", keyfile);
    km_sdk_session *s = NULL;
    km_sdk *sdk = NULL;
    if ((rc = load_session(t, session, &s))) goto out;
    if ((rc = km_tool_connect(t, &sdk, NULL))) goto out;
    double t0 = km_tool_now_ms();
    err = km_sdk_keygen_join(sdk, s, index, k.sec, k.auth_sec, approval);
    if (err) {
        rc = km_tool_fail_remote(t, err, "joining the keygen", km_sdk_last_error(sdk), 0);
        goto out;
    }
    km_uuid uid;
    uint32_t enc = 0;
    char us[37] = "";
    if (km_sdk_session_participant(s, index, &uid, &enc) == KM_OK) km_uuid_format(us, &uid);
    char pub[67];
    km_tool_hex(pub, k.pub33, 33);
    km_tool_set_int(t, "index", index);
    km_tool_set_str(t, "user_id", us);
    km_tool_set_int(t, "enclave_id", enc);
    km_tool_set_str(t, "public_key_hex", pub);
    km_tool_set_int(t, "require_approval", approval);
    km_tool_say(t, "joined as participant %u (user %s, enclave %u, key %s%s) in %.0f ms\n", index, us, enc,
                pub, approval ? ", approval required" : "", km_tool_now_ms() - t0);
out:
    km_wipe(&k, sizeof k);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
    return rc;
}

/* Print and record a checked keygen result. */
void km_tool_show_keygen(km_tool *t, const km_sdk_keygen_result *r) {
    char agg[65], outk[65], spk_hex[2 * KM_TAPROOT_SPK_LEN + 1];
    unsigned char spk[KM_TAPROOT_SPK_LEN];
    km_tool_hex(agg, r->agg_xonly, 32);
    km_tool_hex(outk, r->output_xonly, 32);
    km_taproot_script_pubkey(spk, r->output_xonly);
    km_tool_hex(spk_hex, spk, sizeof spk);
    km_tool_set_str(t, "aggregate_pubkey_hex", agg);
    km_tool_set_str(t, "output_pubkey_hex", outk);
    km_tool_set_int(t, "output_parity", r->output_parity);
    km_tool_set_str(t, "tweak", km_tweak_mode_name(r->tweak.mode));
    km_tool_set_str(t, "script_pubkey_hex", spk_hex);
    km_tool_say(
        t, "  aggregate key (x-only, untweaked): %s\n  output key (tweak %s): %s\n  P2TR scriptPubKey: %s\n",
        agg, km_tweak_mode_name(r->tweak.mode), outk, spk_hex);
    json_t *pk = json_array();
    for (size_t i = 0; i < r->n_participants; i++) {
        char h[67];
        km_tool_hex(h, r->pubkeys[i], 33);
        json_array_append_new(pk, json_string(h));
        km_tool_say(t, "  participant %zu: %s\n", i, h);
    }
    if (t->out)
        json_object_set_new(t->out, "participant_pubkeys_hex", pk);
    else
        json_decref(pk);
    json_t *subs = json_array();
    for (size_t i = 0; i < r->n_subsets; i++) {
        char id[37], h[65];
        km_uuid_format(id, &r->subset_ids[i]);
        km_tool_hex(h, r->subset_output[i], 32);
        json_array_append_new(subs, json_pack("{s:s, s:s}", "subset_id", id, "output_pubkey_hex", h));
        km_tool_say(t, "  subset %s: output key %s\n", id, h);
    }
    if (t->out)
        json_object_set_new(t->out, "subsets", subs);
    else
        json_decref(subs);
}

static int keygen_wait(km_tool *t, int argc, char **argv) {
    const char *session = NULL, *keyfile = NULL, *index_s = NULL;
    km_opt opts[] = {{"--session", &session, NULL, NULL},
                     {"--index", &index_s, NULL, NULL},
                     {"--key", &keyfile, NULL, NULL},
                     {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc, argv, opts, KEYGEN_HELP, NULL, 0, NULL);
    if (rc) return rc;
    if (!session) return km_tool_usage(t, "wait needs --session");
    if (!keyfile != !index_s) return km_tool_usage(t, "--key and --index go together");
    unsigned long index = 0;
    if (index_s) {
        char *end;
        index = strtoul(index_s, &end, 10);
        if (!*index_s || *end) return km_tool_usage(t, "--index wants a number");
    }
    km_tool_key k;
    memset(&k, 0, sizeof k);
    km_err err;
    if (keyfile && (err = km_tool_key_load(t->ctx, keyfile, &k)) != KM_OK)
        return km_tool_fail(t, err, "loading the key file", keyfile);
    km_sdk_session *s = NULL;
    km_sdk *sdk = NULL;
    km_sdk_keygen_result r;
    memset(&r, 0, sizeof r);
    if ((rc = load_session(t, session, &s))) goto out;
    if ((rc = km_tool_connect(t, &sdk, NULL))) goto out;
    double t0 = km_tool_now_ms();
    km_spinner *sp = km_spinner_start(t, "waiting for the keygen");
    err = km_sdk_keygen_wait(sdk, s, t->timeout_s, &r);
    km_spinner_stop(sp);
    if (err) {
        rc = km_tool_fail_remote(
            t, err, err == KM_ERR_RANGE ? "waiting for the keygen (timeout)" : "waiting for the keygen",
            km_sdk_last_error(sdk), 1);
        goto out;
    }
    /* The SDK checks the keys of participants that joined through this
     * session object; a participant joining elsewhere checks theirs here. */
    if (keyfile && (index >= r.n_participants || memcmp(r.pubkeys[index], k.pub33, 33) != 0)) {
        rc = km_tool_fail(t, KM_ERR_VERIFY, "checking our key in the result",
                          "the aggregate does not contain this key at this index");
        goto out;
    }
    km_uuid kid;
    size_t np;
    char ks[37] = "";
    if (km_sdk_session_info(s, &kid, &np) == KM_OK) km_uuid_format(ks, &kid);
    km_tool_set_str(t, "keygen_id", ks);
    km_tool_say(t, "keygen %s completed and checked in %.0f ms%s\n", ks, km_tool_now_ms() - t0,
                keyfile ? " (our key is in it)" : "");
    km_tool_show_keygen(t, &r);
out:
    km_wipe(&k, sizeof k);
    km_sdk_keygen_result_clear(&r);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
    return rc;
}

int km_cmd_keygen(km_tool *t, int argc, char **argv) {
    static const km_tool_sub subs[] = {
        {"create", "keymeld keygen create", keygen_create},
        {"join", "keymeld keygen join", keygen_join},
        {"wait", "keymeld keygen wait", keygen_wait},
    };
    t->prog = "keymeld keygen";
    return km_tool_dispatch(t, "keygen", KEYGEN_HELP, subs, sizeof subs / sizeof subs[0], argc, argv);
}
