/* cmd_sign.c — `keymeld sign create|approve|wait` and
 * `keymeld single import|sign|delete`.
 *
 * A signing session across invocations goes through a signing file
 * (signing id and the exact items, no secret): the approval and the wait
 * both need the very items that were submitted, because the approval digest
 * and the result check are computed from them on the client side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/tool/tool.h"
#include "keymeld/proto_key.h"
#include "keymeld/secret.h"

/* ---- items as JSON --------------------------------------------------------------- */

static const char *adaptor_name(km_adaptor_type a) {
    switch (a) {
    case KM_ADAPTOR_SINGLE:
        return "single";
    case KM_ADAPTOR_AND:
        return "and";
    case KM_ADAPTOR_OR:
        return "or";
    default:
        return "none";
    }
}

km_sign_item *km_tool_items_from_json(const json_t *v, size_t *n) {
    *n = 0;
    const json_t *arr = json_is_array(v) ? v : json_object_get(v, "items");
    size_t cnt = json_array_size(arr);
    if (!json_is_array(arr) || cnt == 0 || cnt > KM_MAX_ITEMS) {
        fprintf(stderr, "keymeld: items: want {\"items\": [...]} with 1..%d entries\n", KM_MAX_ITEMS);
        return NULL;
    }
    km_sign_item *items = calloc(cnt, sizeof *items);
    if (!items) return NULL;
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(arr, i);
        km_sign_item *it = &items[i];
        const char *id = json_string_value(json_object_get(e, "id"));
        const char *msg = json_string_value(json_object_get(e, "message_hex"));
        const char *tw = json_string_value(json_object_get(e, "tweak"));
        const char *twd = json_string_value(json_object_get(e, "tweak_data_hex"));
        const char *sub = json_string_value(json_object_get(e, "subset_id"));
        const char *ad = json_string_value(json_object_get(e, "adaptor"));
        json_t *pts = json_object_get(e, "points_hex");
        const char *why = NULL;
        if (!json_is_object(e))
            why = "not an object";
        else if (!msg || km_tool_unhex(it->msg, 32, msg))
            why = "message_hex must be 64 hex (a 32-byte digest)";
        else if (id && km_uuid_parse(&it->id, id, strlen(id)))
            why = "id is not a UUID";
        else if (!id && km_uuid_v7(&it->id, km_tool_unix_ms()) != KM_OK)
            why = "no randomness";
        if (!why && tw && strcmp(tw, "default") != 0) {
            km_tweak_mode m;
            if (km_tweak_mode_parse(&m, tw, strlen(tw)) != KM_OK) {
                why = "unknown tweak";
            } else {
                it->own_tweak = 1;
                it->tweak.mode = m;
                if (km_tweak_mode_has_data(m) && (!twd || km_tool_unhex(it->tweak.data, 32, twd)))
                    why = "tweak_data_hex (64 hex) needed for this tweak";
            }
        }
        if (!why && sub) {
            if (km_uuid_parse(&it->subset_id, sub, strlen(sub))) why = "subset_id is not a UUID";
            it->has_subset = 1;
        }
        if (!why && ad && strcmp(ad, "none") != 0) {
            if (!strcmp(ad, "single"))
                it->adaptor = KM_ADAPTOR_SINGLE;
            else if (!strcmp(ad, "and"))
                it->adaptor = KM_ADAPTOR_AND;
            else if (!strcmp(ad, "or"))
                it->adaptor = KM_ADAPTOR_OR;
            else
                why = "adaptor must be none, single, and or or";
            if (!why && (!json_is_array(pts) || json_array_size(pts) < 1 ||
                         json_array_size(pts) > KM_MAX_ADAPTOR_POINTS))
                why = "points_hex must list 1..16 points";
            for (size_t k = 0; !why && k < json_array_size(pts); k++)
                if (km_tool_unhex(it->points[k], 33, json_string_value(json_array_get(pts, k))))
                    why = "a point is not 66 hex";
            it->n_points = (uint16_t)json_array_size(pts);
        }
        if (why) {
            fprintf(stderr, "keymeld: item %zu: %s\n", i, why);
            free(items);
            return NULL;
        }
    }
    *n = cnt;
    return items;
}

json_t *km_tool_items_to_json(const km_sign_item *items, size_t n) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        const km_sign_item *it = &items[i];
        char id[37], msg[65];
        km_uuid_format(id, &it->id);
        km_tool_hex(msg, it->msg, 32);
        json_t *e = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "message_hex", msg, "tweak",
                              it->own_tweak ? km_tweak_mode_name(it->tweak.mode) : "default", "adaptor",
                              adaptor_name(it->adaptor));
        if (!e) continue;
        if (it->own_tweak && km_tweak_mode_has_data(it->tweak.mode)) {
            char d[65];
            km_tool_hex(d, it->tweak.data, 32);
            json_object_set_new(e, "tweak_data_hex", json_string(d));
        }
        if (it->has_subset) {
            char s[37];
            km_uuid_format(s, &it->subset_id);
            json_object_set_new(e, "subset_id", json_string(s));
        }
        if (it->n_points) {
            json_t *pts = json_array();
            for (uint16_t k = 0; k < it->n_points; k++) {
                char p[67];
                km_tool_hex(p, it->points[k], 33);
                json_array_append_new(pts, json_string(p));
            }
            json_object_set_new(e, "points_hex", pts);
        }
        json_array_append_new(arr, e);
    }
    return arr;
}

json_t *km_tool_sign_result_json(const km_sdk_sign_result *r) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < r->n; i++) {
        const km_sdk_item_result *it = &r->items[i];
        char id[37], key[65];
        km_uuid_format(id, &it->item_id);
        km_tool_hex(key, it->key_xonly, 32);
        json_t *units = json_array();
        for (uint16_t u = 0; u < it->n_units; u++) {
            char sig[129], T[67];
            km_tool_hex(sig, it->units[u].sig, 64);
            if (it->units[u].has_T) {
                km_tool_hex(T, it->units[u].T, 33);
                json_array_append_new(
                    units, json_pack("{s:s, s:s}", "presignature_hex", sig, "adaptor_point_hex", T));
            } else {
                json_array_append_new(units, json_pack("{s:s}", "signature_hex", sig));
            }
        }
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:s, s:o}", "id", id, "adaptor",
                                        adaptor_name(it->adaptor), "key_xonly_hex", key, "units", units));
    }
    return arr;
}

/* ---- sign ------------------------------------------------------------------------- */

static const char SIGN_HELP[] =
    "usage: keymeld sign create --session FILE (--message HEX | --items FILE) [--subset ID]\n"
    "                           [--tweak MODE [--tweak-data HEX]] [--session-timeout S] [--out FILE]\n"
    "       keymeld sign approve --session FILE --signing FILE --index I --key KEYFILE\n"
    "       keymeld sign wait --session FILE --signing FILE\n"
    "create: submit a signing session for a completed keygen: one 32-byte message (hex), or\n"
    "  the items of a JSON file {\"items\": [{\"message_hex\", \"tweak\", \"tweak_data_hex\",\n"
    "  \"subset_id\", \"adaptor\": none|single|and|or, \"points_hex\": [...]}]}. Writes the\n"
    "  signing file (default signing.json: signing id and items, no secret). The session\n"
    "  must complete within --session-timeout seconds (1..86400, default 600).\n"
    "approve: as participant I (if it joined with --require-approval), approve exactly these items.\n"
    "wait: wait for the signatures; each is verified (BIP-340 under the expected key, or as an\n"
    "  adaptor pre-signature against its point) before it is shown.\n";

static int load_session_file(km_tool *t, const char *path, km_sdk_session **s) {
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

static int load_signing(km_tool *t, const char *path, km_uuid *sid, km_sign_item **items, size_t *n) {
    json_t *v = km_tool_load_json(path);
    if (!v) return km_tool_fail(t, KM_ERR_PARSE, "reading the signing file", path);
    const char *s = json_string_value(json_object_get(v, "signing_id"));
    int rc = 0;
    if (!s || km_uuid_parse(sid, s, strlen(s)))
        rc = km_tool_fail(t, KM_ERR_PARSE, "signing file", "signing_id");
    if (!rc && !(*items = km_tool_items_from_json(v, n)))
        rc = km_tool_fail(t, KM_ERR_PARSE, "signing file", "items");
    json_decref(v);
    return rc;
}

static int sign_create(km_tool *t, int argc, char **argv) {
    const char *session = NULL, *message = NULL, *items_path = NULL, *subset = NULL, *tweak = NULL,
               *tweak_data = NULL, *out = "signing.json";
    unsigned timeout = 600;
    km_opt opts[] = {{"--session", &session, NULL, NULL},
                     {"--message", &message, NULL, NULL},
                     {"--items", &items_path, NULL, NULL},
                     {"--subset", &subset, NULL, NULL},
                     {"--tweak", &tweak, NULL, NULL},
                     {"--tweak-data", &tweak_data, NULL, NULL},
                     {"--out", &out, NULL, NULL},
                     {"--session-timeout", NULL, NULL, &timeout},
                     {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc, argv, opts, SIGN_HELP, NULL, 0, NULL);
    if (rc) return rc;
    if (!session) return km_tool_usage(t, "create needs --session");
    if (!message == !items_path) return km_tool_usage(t, "give exactly one of --message and --items");
    if (items_path && (subset || tweak)) return km_tool_usage(t, "--subset/--tweak go with --message");
    if (timeout < 1 || timeout > 86400) return km_tool_usage(t, "--session-timeout must be 1..86400");
    km_sign_item *items = NULL;
    size_t n = 0;
    if (message) {
        items = calloc(1, sizeof *items);
        if (!items) return km_tool_fail(t, KM_ERR_NOMEM, "sign create", NULL);
        n = 1;
        if (km_tool_unhex(items[0].msg, 32, message)) {
            free(items);
            return km_tool_usage(t, "--message wants 64 hex digits (a 32-byte digest)");
        }
        if (subset) {
            if (km_uuid_parse(&items[0].subset_id, subset, strlen(subset))) {
                free(items);
                return km_tool_usage(t, "--subset wants a subset UUID");
            }
            items[0].has_subset = 1;
        }
        if (tweak) {
            if ((rc = km_tool_parse_tweak(t, tweak, tweak_data, &items[0].tweak))) {
                free(items);
                return rc;
            }
            items[0].own_tweak = 1;
        }
        if (km_uuid_v7(&items[0].id, km_tool_unix_ms()) != KM_OK) {
            free(items);
            return km_tool_fail(t, KM_ERR_RANDOM, "item id", NULL);
        }
    } else {
        json_t *v = km_tool_load_json(items_path);
        items = v ? km_tool_items_from_json(v, &n) : NULL;
        json_decref(v);
        if (!items) return km_tool_usage(t, "cannot use the items in %s", items_path);
    }
    km_sdk_session *s = NULL;
    km_sdk *sdk = NULL;
    km_uuid sid;
    if ((rc = load_session_file(t, session, &s))) goto out;
    if ((rc = km_tool_connect(t, &sdk, NULL))) goto out;
    km_err err = km_uuid_v7(&sid, km_tool_unix_ms());
    if (!err) err = km_sdk_sign_create(sdk, s, &sid, items, n, timeout);
    if (err) {
        rc = km_tool_fail_remote(t, err, "creating the signing session", km_sdk_last_error(sdk), 0);
        goto out;
    }
    char ss[37], ks[37] = "";
    km_uuid_format(ss, &sid);
    km_uuid kid;
    size_t np;
    if (km_sdk_session_info(s, &kid, &np) == KM_OK) km_uuid_format(ks, &kid);
    json_t *f = json_pack("{s:s, s:s, s:o}", "signing_id", ss, "keygen_id", ks, "items",
                          km_tool_items_to_json(items, n));
    err = f ? km_tool_write_json(out, f, 0644) : KM_ERR_NOMEM;
    json_decref(f);
    if (err) {
        rc = km_tool_fail(t, err, "writing the signing file", out);
        goto out;
    }
    km_tool_set_str(t, "signing_id", ss);
    km_tool_set_str(t, "signing_file", out);
    km_tool_set_int(t, "items", (long long)n);
    km_tool_say(t, "signing session %s created (%zu item%s) for keygen %s\n  signing file: %s\n", ss, n,
                n == 1 ? "" : "s", ks, out);
out:
    free(items);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
    return rc;
}

static int parse_index(const char *s, size_t *out) {
    if (!s || !*s) return -1;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v >= KM_SDK_MAX_PARTICIPANTS) return -1;
    *out = v;
    return 0;
}

static int sign_approve(km_tool *t, int argc, char **argv) {
    const char *session = NULL, *signing = NULL, *index_s = NULL, *keyfile = NULL;
    km_opt opts[] = {{"--session", &session, NULL, NULL},
                     {"--signing", &signing, NULL, NULL},
                     {"--index", &index_s, NULL, NULL},
                     {"--key", &keyfile, NULL, NULL},
                     {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc, argv, opts, SIGN_HELP, NULL, 0, NULL);
    if (rc) return rc;
    size_t index;
    if (!session || !signing || !keyfile || parse_index(index_s, &index))
        return km_tool_usage(t, "approve needs --session, --signing, --index and --key");
    km_tool_key k;
    km_err err = km_tool_key_load(t->ctx, keyfile, &k);
    if (err) return km_tool_fail(t, err, "loading the key file", keyfile);
    km_sdk_session *s = NULL;
    km_sdk *sdk = NULL;
    km_sign_item *items = NULL;
    size_t n = 0;
    km_uuid sid;
    if ((rc = load_session_file(t, session, &s)) || (rc = load_signing(t, signing, &sid, &items, &n)))
        goto out;
    if ((rc = km_tool_connect(t, &sdk, NULL))) goto out;
    err = km_sdk_sign_approve(sdk, s, index, k.auth_sec, &sid, items, n);
    if (err) {
        rc = km_tool_fail_remote(t, err, "approving", km_sdk_last_error(sdk), 0);
        goto out;
    }
    char ss[37];
    km_uuid_format(ss, &sid);
    km_tool_set_str(t, "signing_id", ss);
    km_tool_set_int(t, "index", (long long)index);
    km_tool_say(t, "participant %zu approved signing session %s (%zu item%s)\n", index, ss, n,
                n == 1 ? "" : "s");
out:
    km_wipe(&k, sizeof k);
    free(items);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
    return rc;
}

static int sign_wait(km_tool *t, int argc, char **argv) {
    const char *session = NULL, *signing = NULL;
    km_opt opts[] = {
        {"--session", &session, NULL, NULL}, {"--signing", &signing, NULL, NULL}, {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc, argv, opts, SIGN_HELP, NULL, 0, NULL);
    if (rc) return rc;
    if (!session || !signing) return km_tool_usage(t, "wait needs --session and --signing");
    km_sdk_session *s = NULL;
    km_sdk *sdk = NULL;
    km_sign_item *items = NULL;
    size_t n = 0;
    km_uuid sid;
    km_sdk_sign_result r;
    memset(&r, 0, sizeof r);
    if ((rc = load_session_file(t, session, &s)) || (rc = load_signing(t, signing, &sid, &items, &n)))
        goto out;
    if ((rc = km_tool_connect(t, &sdk, NULL))) goto out;
    double t0 = km_tool_now_ms();
    km_spinner *sp = km_spinner_start(t, "waiting for the signatures");
    km_err err = km_sdk_sign_wait(sdk, s, &sid, items, n, t->timeout_s, &r);
    km_spinner_stop(sp);
    if (err) {
        rc = km_tool_fail_remote(t, err,
                                 err == KM_ERR_RANGE ? "waiting for the signatures (timeout)" : "signing",
                                 km_sdk_last_error(sdk), 1);
        goto out;
    }
    char ss[37];
    km_uuid_format(ss, &sid);
    km_tool_set_str(t, "signing_id", ss);
    if (t->out) json_object_set_new(t->out, "results", km_tool_sign_result_json(&r));
    km_tool_say(t, "signing session %s completed in %.0f ms; every unit verified:\n", ss,
                km_tool_now_ms() - t0);
    for (size_t i = 0; i < r.n; i++) {
        char id[37], key[65];
        km_uuid_format(id, &r.items[i].item_id);
        km_tool_hex(key, r.items[i].key_xonly, 32);
        km_tool_say(t, "  item %s (%s) under key %s\n", id, adaptor_name(r.items[i].adaptor), key);
        for (uint16_t u = 0; u < r.items[i].n_units; u++) {
            char sig[129];
            km_tool_hex(sig, r.items[i].units[u].sig, 64);
            km_tool_say(t, "    %s %s\n", r.items[i].units[u].has_T ? "pre-signature" : "signature", sig);
        }
    }
out:
    km_sdk_sign_result_clear(&r);
    free(items);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
    return rc;
}

int km_cmd_sign(km_tool *t, int argc, char **argv) {
    static const km_tool_sub subs[] = {
        {"create", "keymeld sign create", sign_create},
        {"approve", "keymeld sign approve", sign_approve},
        {"wait", "keymeld sign wait", sign_wait},
    };
    t->prog = "keymeld sign";
    return km_tool_dispatch(t, "sign", SIGN_HELP, subs, sizeof subs / sizeof subs[0], argc, argv);
}

/* ---- single -------------------------------------------------------------------------- */

static const char SINGLE_HELP[] =
    "usage: keymeld single import --key KEYFILE [--require-approval] [--out FILE]\n"
    "       keymeld single sign --single FILE --key KEYFILE --message HEX [--ecdsa] [--approve]\n"
    "       keymeld single delete --single FILE --key KEYFILE\n"
    "import: put KEYFILE's secret key into an enclave (write FILE, default single.json: key id,\n"
    "  user id, public key, enclave). sign: BIP-340 over the message bytes (hex, up to 1024\n"
    "  bytes), or --ecdsa over a 32-byte digest; --approve adds the auth key's approval\n"
    "  (needed for keys imported with --require-approval). Every signature is verified\n"
    "  against the imported public key. delete: remove the key from its enclave.\n";

static int load_single(km_tool *t, const char *path, km_uuid *key_id, km_uuid *user_id,
                       unsigned char pub[33]) {
    json_t *v = km_tool_load_json(path);
    if (!v) return km_tool_fail(t, KM_ERR_PARSE, "reading the single-key file", path);
    const char *k = json_string_value(json_object_get(v, "key_id"));
    const char *u = json_string_value(json_object_get(v, "user_id"));
    const char *p = json_string_value(json_object_get(v, "public_key_hex"));
    int rc = 0;
    if (!k || !u || !p || km_uuid_parse(key_id, k, strlen(k)) || km_uuid_parse(user_id, u, strlen(u)) ||
        km_tool_unhex(pub, 33, p))
        rc = km_tool_fail(t, KM_ERR_PARSE, "reading the single-key file", path);
    json_decref(v);
    return rc;
}

static int single_import(km_tool *t, int argc, char **argv) {
    const char *keyfile = NULL, *out = "single.json";
    int approval = 0;
    km_opt opts[] = {{"--key", &keyfile, NULL, NULL},
                     {"--require-approval", NULL, &approval, NULL},
                     {"--out", &out, NULL, NULL},
                     {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc, argv, opts, SINGLE_HELP, NULL, 0, NULL);
    if (rc) return rc;
    if (!keyfile) return km_tool_usage(t, "import needs --key");
    km_tool_key k;
    km_err err = km_tool_key_load(t->ctx, keyfile, &k);
    if (err) return km_tool_fail(t, err, "loading the key file", keyfile);
    km_sdk *sdk = NULL;
    if ((rc = km_tool_connect(t, &sdk, NULL))) goto out;
    km_uuid key_id;
    uint32_t enc = 0;
    err = km_uuid_v7(&key_id, km_tool_unix_ms());
    if (!err) err = km_sdk_key_import(sdk, &key_id, &k.user_id, k.sec, k.auth_sec, approval, &enc);
    if (err) {
        rc = km_tool_fail_remote(t, err, "importing the key", km_sdk_last_error(sdk), 0);
        goto out;
    }
    char ks[37], us[37], pub[67];
    km_uuid_format(ks, &key_id);
    km_uuid_format(us, &k.user_id);
    km_tool_hex(pub, k.pub33, 33);
    json_t *f = json_pack("{s:s, s:s, s:s, s:i, s:b}", "key_id", ks, "user_id", us, "public_key_hex", pub,
                          "enclave_id", (int)enc, "require_approval", approval);
    err = f ? km_tool_write_json(out, f, 0644) : KM_ERR_NOMEM;
    json_decref(f);
    if (err) {
        rc = km_tool_fail(t, err, "writing the single-key file", out);
        goto out;
    }
    km_tool_set_str(t, "key_id", ks);
    km_tool_set_str(t, "user_id", us);
    km_tool_set_str(t, "public_key_hex", pub);
    km_tool_set_int(t, "enclave_id", enc);
    km_tool_say(t, "imported key %s (public key %s) into enclave %u%s\n  wrote %s\n", ks, pub, enc,
                approval ? ", approval required" : "", out);
out:
    km_wipe(&k, sizeof k);
    km_sdk_free(sdk);
    return rc;
}

static int single_sign(km_tool *t, int argc, char **argv) {
    const char *single = NULL, *keyfile = NULL, *message = NULL;
    int ecdsa = 0, approve = 0;
    km_opt opts[] = {{"--single", &single, NULL, NULL},   {"--key", &keyfile, NULL, NULL},
                     {"--message", &message, NULL, NULL}, {"--ecdsa", NULL, &ecdsa, NULL},
                     {"--approve", NULL, &approve, NULL}, {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc, argv, opts, SINGLE_HELP, NULL, 0, NULL);
    if (rc) return rc;
    if (!single || !keyfile || !message) return km_tool_usage(t, "sign needs --single, --key and --message");
    size_t hl = strlen(message);
    unsigned char msg[KM_KEY_MSG_MAX];
    size_t ml = hl / 2;
    if (hl % 2 || ml > KM_KEY_MSG_MAX || (ml && km_tool_unhex(msg, ml, message)))
        return km_tool_usage(t, "--message wants hex, at most %d bytes", KM_KEY_MSG_MAX);
    if (ecdsa && ml != 32) return km_tool_usage(t, "--ecdsa signs a 32-byte digest (64 hex)");
    km_uuid key_id, user_id;
    unsigned char pub[33];
    if ((rc = load_single(t, single, &key_id, &user_id, pub))) return rc;
    km_tool_key k;
    km_err err = km_tool_key_load(t->ctx, keyfile, &k);
    if (err) return km_tool_fail(t, err, "loading the key file", keyfile);
    km_sdk *sdk = NULL;
    if ((rc = km_tool_connect(t, &sdk, NULL))) goto out;
    unsigned char sig[64];
    double t0 = km_tool_now_ms();
    km_spinner *sp = km_spinner_start(t, "signing");
    err =
        km_sdk_key_sign(sdk, &key_id, &user_id, pub, k.auth_sec,
                        ecdsa ? KM_KEY_ALGO_ECDSA : KM_KEY_ALGO_SCHNORR, msg, ml, approve, t->timeout_s, sig);
    km_spinner_stop(sp);
    if (err) {
        rc = km_tool_fail_remote(t, err, "signing", km_sdk_last_error(sdk), 1);
        goto out;
    }
    char sh[129];
    km_tool_hex(sh, sig, 64);
    km_tool_set_str(t, "algorithm", ecdsa ? "ecdsa" : "bip340");
    km_tool_set_str(t, "signature_hex", sh);
    km_tool_say(t, "%s signature (verified against the imported key) in %.0f ms:\n  %s\n",
                ecdsa ? "ECDSA (compact, low-S)" : "BIP-340", km_tool_now_ms() - t0, sh);
out:
    km_wipe(&k, sizeof k);
    km_sdk_free(sdk);
    return rc;
}

static int single_delete(km_tool *t, int argc, char **argv) {
    const char *single = NULL, *keyfile = NULL;
    km_opt opts[] = {
        {"--single", &single, NULL, NULL}, {"--key", &keyfile, NULL, NULL}, {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc, argv, opts, SINGLE_HELP, NULL, 0, NULL);
    if (rc) return rc;
    if (!single || !keyfile) return km_tool_usage(t, "delete needs --single and --key");
    km_uuid key_id, user_id;
    unsigned char pub[33];
    if ((rc = load_single(t, single, &key_id, &user_id, pub))) return rc;
    km_tool_key k;
    km_err err = km_tool_key_load(t->ctx, keyfile, &k);
    if (err) return km_tool_fail(t, err, "loading the key file", keyfile);
    km_sdk *sdk = NULL;
    if ((rc = km_tool_connect(t, &sdk, NULL))) goto out;
    err = km_sdk_key_delete(sdk, &key_id, &user_id, k.auth_sec);
    if (err) {
        rc = km_tool_fail_remote(t, err, "deleting the key", km_sdk_last_error(sdk), 0);
        goto out;
    }
    char ks[37];
    km_uuid_format(ks, &key_id);
    km_tool_set_str(t, "key_id", ks);
    km_tool_say(t, "deleted key %s\n", ks);
out:
    km_wipe(&k, sizeof k);
    km_sdk_free(sdk);
    return rc;
}

int km_cmd_single(km_tool *t, int argc, char **argv) {
    static const km_tool_sub subs[] = {
        {"import", "keymeld single import", single_import},
        {"sign", "keymeld single sign", single_sign},
        {"delete", "keymeld single delete", single_delete},
    };
    t->prog = "keymeld single";
    return km_tool_dispatch(t, "single", SINGLE_HELP, subs, sizeof subs / sizeof subs[0], argc, argv);
}
