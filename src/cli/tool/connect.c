/* connect.c — the devnet description and an SDK handle with pinned trust.
 *
 * Trust never comes from the gateway: the attestation roots and PCR0 are
 * read from the local devnet.json (written by `keymeld devnet up` from the
 * enclave binaries themselves) or given on the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/tool/tool.h"
#include "keymeld/secret.h"

static int copy_str(char *dst, size_t cap, const char *src) {
    if (!src || strlen(src) >= cap) return -1;
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

km_err km_tool_devnet_load(const char *dir, km_tool_devnet *d) {
    memset(d, 0, sizeof *d);
    char path[600];
    if (snprintf(path, sizeof path, "%s/devnet.json", dir) >= (int)sizeof path) return KM_ERR_ARG;
    FILE *probe = fopen(path, "r");
    if (!probe) return KM_ERR_NOT_FOUND;
    fclose(probe);
    json_t *v = km_tool_load_json(path);
    if (!v) return KM_ERR_PARSE;
    km_err err = KM_ERR_PARSE;
    json_t *encs = json_object_get(v, "enclaves");
    if (copy_str(d->dir, sizeof d->dir, json_string_value(json_object_get(v, "dir"))) ||
        copy_str(d->gateway_url, sizeof d->gateway_url,
                 json_string_value(json_object_get(v, "gateway_url"))) ||
        !json_is_array(encs) || json_array_size(encs) == 0 || json_array_size(encs) > 64)
        goto out;
    for (size_t i = 0; i < json_array_size(encs); i++) {
        json_t *e = json_array_get(encs, i);
        km_tool_enclave *x = &d->enc[i];
        json_t *id = json_object_get(e, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= UINT32_MAX)
            goto out;
        x->id = (uint32_t)json_integer_value(id);
        if (km_tool_unhex(x->pub33, 33, json_string_value(json_object_get(e, "public_key_hex"))) ||
            km_tool_unhex(x->pcr0, 48, json_string_value(json_object_get(e, "pcr0_hex"))) ||
            copy_str(x->ca_root, sizeof x->ca_root, json_string_value(json_object_get(e, "ca_root_path"))) ||
            copy_str(x->address, sizeof x->address, json_string_value(json_object_get(e, "address"))))
            goto out;
        x->has_pub = 1;
        /* One PCR0 is pinned for all documents: every enclave runs one binary. */
        if (i > 0 && memcmp(x->pcr0, d->enc[0].pcr0, 48) != 0) goto out;
    }
    d->n_enclaves = json_array_size(encs);
    memcpy(d->pcr0, d->enc[0].pcr0, 48);
    d->has_pcr0 = 1;
    err = KM_OK;
out:
    if (err) fprintf(stderr, "keymeld: %s is not a valid devnet description\n", path);
    json_decref(v);
    return err;
}

int km_tool_resolve_devnet(km_tool *t, km_tool_devnet *d) {
    memset(d, 0, sizeof *d);
    if (t->gateway_url) {
        if (copy_str(d->gateway_url, sizeof d->gateway_url, t->gateway_url))
            return km_tool_usage(t, "gateway URL too long");
        if (!t->n_roots) return km_tool_usage(t, "--gateway needs at least one --ca-root");
        if (!t->pcr0_hex)
            return km_tool_usage(t, "--gateway needs --pcr0 (an unpinned PCR0 trusts any code)");
        for (size_t i = 0; i < t->n_roots; i++) {
            const char *spec = t->root_spec[i], *eq = strchr(spec, '=');
            km_tool_enclave *x = &d->enc[i];
            x->id = UINT32_MAX;
            if (eq) {
                char *end;
                unsigned long id = strtoul(spec, &end, 10);
                if (end != eq || eq == spec || id >= UINT32_MAX)
                    return km_tool_usage(t, "--ca-root wants ID=FILE or FILE, not '%s'", spec);
                x->id = (uint32_t)id;
                spec = eq + 1;
            }
            if (copy_str(x->ca_root, sizeof x->ca_root, spec)) return km_tool_usage(t, "path too long");
        }
        d->n_enclaves = t->n_roots;
    } else {
        const char *dir = t->devnet_dir ? t->devnet_dir : KM_TOOL_DEFAULT_DIR;
        km_err err = km_tool_devnet_load(dir, d);
        if (err == KM_ERR_NOT_FOUND) {
            fprintf(stderr, "%s: no devnet in %s (run `keymeld devnet up --dir %s`, or use --gateway)\n",
                    t->prog, dir, dir);
            if (t->out) json_object_set_new(t->out, "error", json_string("no devnet"));
            return KM_EXIT_UNREACHABLE;
        }
        if (err) return km_tool_fail(t, err, "reading the devnet description", dir);
    }
    if (t->pcr0_hex) {
        if (km_tool_unhex(d->pcr0, 48, t->pcr0_hex)) return km_tool_usage(t, "--pcr0 wants 96 hex digits");
        d->has_pcr0 = 1;
    }
    return 0;
}

km_err km_tool_sdk_from_devnet(km_ctx *ctx, const km_tool_devnet *d, km_sdk **out) {
    *out = NULL;
    km_sdk *sdk = NULL;
    km_err err = km_sdk_new(&sdk, ctx, d->gateway_url);
    for (size_t i = 0; !err && i < d->n_enclaves; i++) {
        char *pem = NULL;
        size_t len = 0;
        err = km_tool_read_file(d->enc[i].ca_root, 1024 * 1024, &pem, &len);
        if (err) {
            fprintf(stderr, "keymeld: cannot read the attestation root %s\n", d->enc[i].ca_root);
            err = KM_ERR_ATTESTATION;
            break;
        }
        err = km_sdk_trust_root(sdk, d->enc[i].id, (const unsigned char *)pem, len);
        free(pem);
    }
    if (!err && d->has_pcr0) err = km_sdk_pin_pcr(sdk, 0, d->pcr0, 48);
    if (err) {
        km_sdk_free(sdk);
        return err;
    }
    *out = sdk;
    return KM_OK;
}

int km_tool_connect(km_tool *t, km_sdk **out, size_t *n_verified) {
    *out = NULL;
    km_tool_devnet *d = calloc(1, sizeof *d);
    if (!d) return km_tool_fail(t, KM_ERR_NOMEM, "connect", NULL);
    int rc = km_tool_resolve_devnet(t, d);
    if (rc) {
        free(d);
        return rc;
    }
    km_sdk *sdk = NULL;
    km_err err = km_tool_sdk_from_devnet(t->ctx, d, &sdk);
    if (err) {
        free(d);
        return km_tool_fail(t, err, "setting up the client", NULL);
    }
    size_t n = 0;
    km_spinner *sp = km_spinner_start(t, "verifying enclave attestations");
    err = km_sdk_verify_enclaves(sdk, &n);
    km_spinner_stop(sp);
    if (err) {
        rc = km_tool_fail_remote(t, err, "verifying the enclaves' attestation", km_sdk_last_error(sdk), 0);
        km_sdk_free(sdk);
        free(d);
        return rc;
    }
    /* devnet.json also names each enclave's key: a gateway listing another
     * key than the one the devnet started is caught by the SDK (bound in the
     * document); here we only compare with what we wrote down. */
    for (size_t i = 0; i < d->n_enclaves; i++) {
        if (!d->enc[i].has_pub) continue;
        unsigned char pub[33];
        err = km_sdk_verify_enclave(sdk, d->enc[i].id, pub);
        if (!err && memcmp(pub, d->enc[i].pub33, 33) != 0) err = KM_ERR_ATTESTATION;
        if (err) {
            rc = km_tool_fail_remote(t, err, "checking an enclave key against devnet.json",
                                     km_sdk_last_error(sdk), 0);
            km_sdk_free(sdk);
            free(d);
            return rc;
        }
    }
    free(d);
    if (n_verified) *n_verified = n;
    *out = sdk;
    return 0;
}
