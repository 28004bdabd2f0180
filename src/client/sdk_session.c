/* client/sdk_session.c — the session object and its JSON form (the
 * invitation a coordinator hands to participants):
 *
 *   {"version":1,
 *    "keygen_id":"<uuid>",
 *    "session_secret":"<64 hex>",
 *    "participants":[{"user_id":"<uuid>","enclave_id":N,"enclave_public_key":"<66 hex>"},...],
 *    "tweak":{"mode":"none|bip86|bip341|plain|xonly","data":"<64 hex>"},
 *    "subsets":[{"subset_id":"<uuid>","members":[i,...]},...],
 *    "gateway_url":"http://..."}          (gateway_url optional)
 *
 * Import is strict (unknown or missing fields, bad hex, out-of-range values,
 * duplicate keys or ids: KM_ERR_PARSE), so one session has one spelling.
 *
 * The session secret must not linger in memory the SDK does not wipe. JSON
 * libraries copy strings freely, so the secret never enters jansson: export
 * writes a placeholder and puts the hex digits into the final string itself;
 * import finds the secret's digits in a private copy of the text, takes
 * them out and puts the placeholder in their place before parsing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/sdk_internal.h"
#include "keymeld/hex.h"
#include "keymeld/musig.h"

#define SESSION_JSON_VERSION 1
/* 64 characters that are no hex digit: cannot occur in any other field's hex
 * and are refused by the secret's decoder if they ever reach it. */
#define SECRET_PLACEHOLDER "SESSION-SECRET-PLACEHOLDER-SESSION-SECRET-PLACEHOLDER-SESSION-SE"

/* ---- the object ------------------------------------------------------------- */

km_err sdk_session_alloc(km_ctx *ctx, size_t n, size_t n_subsets, km_sdk_session **out) {
    *out = NULL;
    km_sdk_session *s = calloc(1, sizeof *s);
    if (!s) return KM_ERR_NOMEM;
    s->ctx = ctx;
    s->n = n;
    s->n_subsets = n_subsets;
    s->users = calloc(n, sizeof *s->users);
    s->enclave_ids = calloc(n, sizeof *s->enclave_ids);
    s->enclave_pubs = calloc(n, sizeof *s->enclave_pubs);
    s->joined = calloc(n, 1);
    s->own_pubs = calloc(n, sizeof *s->own_pubs);
    s->pubkeys = calloc(n, sizeof *s->pubkeys);
    s->subsets = n_subsets ? calloc(n_subsets, sizeof *s->subsets) : NULL;
    if (!s->users || !s->enclave_ids || !s->enclave_pubs || !s->joined || !s->own_pubs || !s->pubkeys ||
        (n_subsets && !s->subsets)) {
        km_sdk_session_free(s);
        return KM_ERR_NOMEM;
    }
    km_tweak_none(&s->tweak);
    *out = s;
    return KM_OK;
}

km_err sdk_session_set_secret(km_sdk_session *s, const unsigned char secret32[32]) {
    km_err err = km_secret_from(s->ctx, secret32, 32, &s->secret);
    if (!err) err = km_session_derive(s->ctx, secret32, &s->keys);
    return err;
}

int sdk_session_subset(const km_sdk_session *s, const km_uuid *id) {
    for (size_t i = 0; i < s->n_subsets; i++)
        if (!memcmp(s->subsets[i].id.b, id->b, 16)) return (int)i;
    return -1;
}

void km_sdk_session_free(km_sdk_session *s) {
    if (!s) return;
    km_secret_free(s->secret);
    km_session_free(s->keys);
    free(s->users);
    free(s->enclave_ids);
    free(s->enclave_pubs);
    free(s->joined);
    free(s->own_pubs);
    free(s->pubkeys);
    for (size_t i = 0; s->subsets && i < s->n_subsets; i++)
        free(s->subsets[i].members);
    free(s->subsets);
    free(s->gateway_url);
    km_wipe(s, sizeof *s);
    free(s);
}

km_err km_sdk_session_info(const km_sdk_session *s, km_uuid *keygen_id, size_t *n_participants) {
    if (!s) return KM_ERR_ARG;
    if (keygen_id) *keygen_id = s->keygen_id;
    if (n_participants) *n_participants = s->n;
    return KM_OK;
}

km_err km_sdk_session_participant(const km_sdk_session *s, size_t i, km_uuid *user_id, uint32_t *enclave_id) {
    if (!s) return KM_ERR_ARG;
    if (i >= s->n) return KM_ERR_RANGE;
    if (user_id) *user_id = s->users[i];
    if (enclave_id) *enclave_id = s->enclave_ids[i];
    return KM_OK;
}

/* ---- export ----------------------------------------------------------------------- */

static json_t *build_json(const km_sdk_session *s) {
    json_t *parts = json_array(), *subs = json_array();
    json_t *tweak = json_pack("{s:s,s:o}", "mode", km_tweak_mode_name(s->tweak.mode), "data",
                              sdk_hexj(s->tweak.data, 32));
    json_t *o = json_pack("{s:i,s:o,s:s}", "version", SESSION_JSON_VERSION, "keygen_id",
                          sdk_uuidj(&s->keygen_id), "session_secret", SECRET_PLACEHOLDER);
    int bad = !parts || !subs || !tweak || !o;
    for (size_t i = 0; !bad && i < s->n; i++)
        bad = json_array_append_new(parts,
                                    json_pack("{s:o,s:I,s:o}", "user_id", sdk_uuidj(&s->users[i]),
                                              "enclave_id", (json_int_t)s->enclave_ids[i],
                                              "enclave_public_key", sdk_hexj(s->enclave_pubs[i], 33))) != 0;
    for (size_t i = 0; !bad && i < s->n_subsets; i++) {
        json_t *m = json_array();
        bad = !m;
        for (uint16_t k = 0; !bad && k < s->subsets[i].n; k++)
            bad = json_array_append_new(m, json_integer(s->subsets[i].members[k])) != 0;
        if (!bad)
            bad = json_array_append_new(subs, json_pack("{s:o,s:o}", "subset_id",
                                                        sdk_uuidj(&s->subsets[i].id), "members", m)) != 0;
        else
            json_decref(m);
    }
    if (!bad)
        bad = json_object_set(o, "participants", parts) || json_object_set(o, "tweak", tweak) ||
              json_object_set(o, "subsets", subs);
    if (!bad && s->gateway_url) bad = json_object_set_new(o, "gateway_url", json_string(s->gateway_url)) != 0;
    json_decref(parts);
    json_decref(subs);
    json_decref(tweak);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

km_err km_sdk_session_export(const km_sdk_session *s, char **json) {
    if (json) *json = NULL;
    if (!s || !json || !s->secret) return KM_ERR_ARG;
    json_t *o = build_json(s);
    if (!o) return KM_ERR_NOMEM;
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text) return KM_ERR_NOMEM;
    char *slot = strstr(text, SECRET_PLACEHOLDER);
    char hex[65];
    if (!slot || strstr(slot + 1, SECRET_PLACEHOLDER) ||
        km_hex_encode(hex, sizeof hex, km_secret_cdata(s->secret), 32) != KM_OK) {
        free(text);
        return KM_ERR_STATE; /* cannot happen: the placeholder is written once */
    }
    memcpy(slot, hex, 64);
    km_wipe(hex, sizeof hex);
    *json = text;
    return KM_OK;
}

/* ---- import ----------------------------------------------------------------------- */

/* Find the value of the top-level "session_secret" in a private copy of the
 * text, decode it into secret32 and overwrite it with the placeholder. The
 * parser then checks that what it saw there is the placeholder, so a text
 * this scanner reads differently from the parser is refused. */
static km_err take_secret(char *text, unsigned char secret32[32]) {
    static const char key[] = "\"session_secret\"";
    int depth = 0, found = 0;
    for (char *p = text; *p; p++) {
        if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']')
            depth--;
        else if (*p == '"') {
            char *start = p;
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1]) p++;
            if (!*p) return KM_ERR_PARSE;
            if (depth != 1 || (size_t)(p + 1 - start) != sizeof key - 1 || memcmp(start, key, sizeof key - 1))
                continue;
            char *v = p + 1;
            while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
                v++;
            if (*v++ != ':') continue; /* a value spelled like the key: the parser refuses the text */
            while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
                v++;
            if (found || *v != '"' || strnlen(v + 1, 65) < 65 || v[65] != '"') return KM_ERR_PARSE;
            if (km_hex_decode(secret32, 32, v + 1, 64) != KM_OK) return KM_ERR_PARSE;
            memcpy(v + 1, SECRET_PLACEHOLDER, 64);
            found = 1;
            p = v + 65;
        }
    }
    return found ? KM_OK : KM_ERR_PARSE;
}

/* The object o has exactly these keys (optional ones may be absent). */
static int only_keys(const json_t *o, const char *const *allowed) {
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        (void)v;
        int ok = 0;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = !strcmp(k, allowed[i]);
        if (!ok) return 0;
    }
    return 1;
}

static int get_uuid(const json_t *o, const char *name, km_uuid *out) {
    const json_t *v = json_object_get(o, name);
    const char *s = json_string_value(v);
    if (!s || km_uuid_parse(out, s, json_string_length(v)) != KM_OK) return 0;
    static const unsigned char zero[16];
    return memcmp(out->b, zero, 16) != 0;
}

static int get_uint(const json_t *o, json_int_t max, json_int_t *out) {
    if (!json_is_integer(o)) return 0;
    *out = json_integer_value(o);
    return *out >= 0 && *out <= max;
}

static km_err parse_session(km_ctx *ctx, const json_t *root, km_sdk_session **out) {
    static const char *const top_keys[] = {"version", "keygen_id", "session_secret", "participants",
                                           "tweak",   "subsets",   "gateway_url",    NULL};
    static const char *const part_keys[] = {"user_id", "enclave_id", "enclave_public_key", NULL};
    static const char *const tweak_keys[] = {"mode", "data", NULL};
    static const char *const subset_keys[] = {"subset_id", "members", NULL};
    json_int_t v;
    const json_t *parts = json_object_get(root, "participants"), *subs = json_object_get(root, "subsets");
    const json_t *tweak = json_object_get(root, "tweak"), *url = json_object_get(root, "gateway_url");
    const char *secret = json_string_value(json_object_get(root, "session_secret"));
    if (!json_is_object(root) || !only_keys(root, top_keys) ||
        !get_uint(json_object_get(root, "version"), 100, &v) || v != SESSION_JSON_VERSION || !secret ||
        strcmp(secret, SECRET_PLACEHOLDER) || !json_is_array(parts) || json_array_size(parts) < 1 ||
        json_array_size(parts) > KM_SDK_MAX_PARTICIPANTS || !json_is_array(subs) ||
        json_array_size(subs) > KM_SDK_MAX_SUBSETS || !json_is_object(tweak) ||
        !only_keys(tweak, tweak_keys) ||
        (url &&
         (!json_is_string(url) || json_string_length(url) > KM_CLIENT_BASE_URL_MAX ||
          (strncmp(json_string_value(url), "http://", 7) && strncmp(json_string_value(url), "https://", 8)))))
        return KM_ERR_PARSE;
    size_t n = json_array_size(parts), ns = json_array_size(subs);
    km_sdk_session *s;
    km_err err = sdk_session_alloc(ctx, n, ns, &s);
    if (err) return err;
    err = KM_ERR_PARSE;
    if (!get_uuid(root, "keygen_id", &s->keygen_id)) goto out;
    const char *mode = json_string_value(json_object_get(tweak, "mode"));
    if (!mode || km_tweak_mode_parse(&s->tweak.mode, mode, strlen(mode)) != KM_OK ||
        sdk_get_hex_fixed(tweak, "data", s->tweak.data, 32) != KM_OK || km_tweak_check(&s->tweak) != KM_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const json_t *p = json_array_get(parts, i);
        if (!json_is_object(p) || !only_keys(p, part_keys) || !get_uuid(p, "user_id", &s->users[i]) ||
            !get_uint(json_object_get(p, "enclave_id"), (json_int_t)UINT32_MAX - 1, &v) ||
            sdk_get_hex_fixed(p, "enclave_public_key", s->enclave_pubs[i], 33) != KM_OK ||
            km_musig_pubkey_check(ctx, s->enclave_pubs[i]) != KM_OK)
            goto out;
        s->enclave_ids[i] = (uint32_t)v;
        for (size_t j = 0; j < i; j++) {
            if (!memcmp(s->users[j].b, s->users[i].b, 16)) goto out; /* one user, one slot */
            /* One enclave id has one key throughout the session. */
            if (s->enclave_ids[j] == s->enclave_ids[i] && memcmp(s->enclave_pubs[j], s->enclave_pubs[i], 33))
                goto out;
        }
    }
    for (size_t i = 0; i < ns; i++) {
        const json_t *d = json_array_get(subs, i), *m = json_object_get(d, "members");
        km_subset_def *sd = &s->subsets[i];
        if (!json_is_object(d) || !only_keys(d, subset_keys) || !get_uuid(d, "subset_id", &sd->id) ||
            !json_is_array(m) || json_array_size(m) < 1 || json_array_size(m) > n)
            goto out;
        for (size_t j = 0; j < i; j++)
            if (!memcmp(s->subsets[j].id.b, sd->id.b, 16)) goto out;
        sd->n = (uint16_t)json_array_size(m);
        sd->members = calloc(sd->n, sizeof *sd->members);
        if (!sd->members) {
            err = KM_ERR_NOMEM;
            goto out;
        }
        for (uint16_t k = 0; k < sd->n; k++) {
            if (!get_uint(json_array_get(m, k), (json_int_t)n - 1, &v)) goto out;
            sd->members[k] = (uint16_t)v;
            for (uint16_t j = 0; j < k; j++)
                if (sd->members[j] == sd->members[k]) goto out;
        }
    }
    if (url) {
        s->gateway_url = strdup(json_string_value(url));
        if (!s->gateway_url) {
            err = KM_ERR_NOMEM;
            goto out;
        }
    }
    err = KM_OK;
out:
    if (err)
        km_sdk_session_free(s);
    else
        *out = s;
    return err;
}

km_err km_sdk_session_import(km_ctx *ctx, const char *json, km_sdk_session **out) {
    if (out) *out = NULL;
    if (!ctx || !json || !out) return KM_ERR_ARG;
    size_t len = strlen(json);
    if (len > (size_t)4 << 20) return KM_ERR_PARSE;
    char *text = malloc(len + 1);
    if (!text) return KM_ERR_NOMEM;
    memcpy(text, json, len + 1);
    unsigned char secret[32];
    km_err err = take_secret(text, secret);
    json_t *root = NULL;
    if (!err) {
        json_error_t jerr;
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) err = KM_ERR_PARSE;
    }
    km_wipe(text, len);
    free(text);
    km_sdk_session *s = NULL;
    if (!err) err = parse_session(ctx, root, &s);
    json_decref(root);
    if (!err) {
        err = sdk_session_set_secret(s, secret);
        if (err) {
            km_sdk_session_free(s);
            s = NULL;
        }
    }
    km_wipe(secret, sizeof secret);
    *out = s;
    return err;
}
