/* gateway/config.c — see config.h. */
#include "gateway/config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <secp256k1.h>

#include "keymeld/hex.h"
#include "keymeld/secret.h"

static km_err fail(char *msg, size_t msg_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static km_err fail(char *msg, size_t msg_len, const char *fmt, ...) {
    if (msg && msg_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msg_len, fmt, ap);
        va_end(ap);
    }
    return KM_ERR_PARSE;
}

void km_gw_config_defaults(km_gw_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 8080;
    cfg->max_body_bytes = 4u << 20;
    cfg->max_body_bytes_total = 256u << 20;
    cfg->max_wait_seconds = 60;
    cfg->auth_window_seconds = 300;
    cfg->max_participants = 1000;
    cfg->max_timeout_seconds = 86400;
    /* Generous: the gateway benchmark drives 1,000 concurrent sessions of one
     * keygen, signed by one key, with several requests each. */
    cfg->max_active_sessions_per_keygen = 4096;
    cfg->rate_per_key_per_second = 1000;
    cfg->rate_burst_per_key = 5000;
    cfg->rate_limit_max_keys = 65536;
    cfg->max_waiters = 0;
    cfg->max_waiters_per_key = 2048;
    cfg->http_threads = 4;
    cfg->http_max_connections = 4096;
    cfg->coordinator_workers = 4;
    cfg->enclave_connections = 2;
    cfg->enclave_timeout_ms = 10000;
    cfg->retry_max_ms = 5000;
}

km_err km_gw_config_set_listen(km_gw_config *cfg, const char *hostport) {
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport) return KM_ERR_PARSE;
    const char *host = hostport;
    size_t hlen = (size_t)(colon - hostport);
    if (host[0] == '[') { /* [::1]:8080 */
        if (hlen < 3 || host[hlen - 1] != ']') return KM_ERR_PARSE;
        host++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof cfg->listen_host) return KM_ERR_PARSE;
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || !end || *end || end == colon + 1 || port > 65535) return KM_ERR_PARSE;
    memcpy(cfg->listen_host, host, hlen);
    cfg->listen_host[hlen] = '\0';
    cfg->listen_port = (uint16_t)port;
    return KM_OK;
}

static km_err get_uint(json_t *v, const char *name, uint64_t lo, uint64_t hi, uint64_t *out, char *msg,
                       size_t msg_len) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < lo ||
        (uint64_t)json_integer_value(v) > hi)
        return fail(msg, msg_len, "'%s' must be an integer in %llu..%llu", name, (unsigned long long)lo,
                    (unsigned long long)hi);
    *out = (uint64_t)json_integer_value(v);
    return KM_OK;
}

static km_err get_str(json_t *v, const char *name, char *out, size_t cap, char *msg, size_t msg_len) {
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= cap ||
        strlen(json_string_value(v)) != json_string_length(v))
        return fail(msg, msg_len, "'%s' must be a non-empty string shorter than %zu bytes", name, cap);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return KM_OK;
}

static km_err load_enclaves(km_gw_config *cfg, json_t *arr, char *msg, size_t msg_len) {
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > KM_GW_MAX_ENCLAVES)
        return fail(msg, msg_len, "'enclaves' must be an array of 1..%d objects", KM_GW_MAX_ENCLAVES);
    cfg->n_enclaves = 0;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        if (!json_is_object(e)) return fail(msg, msg_len, "enclaves[%zu] must be an object", i);
        km_gw_enclave_cfg *ec = &cfg->enclaves[i];
        memset(ec, 0, sizeof *ec);
        int have = 0;
        const char *key;
        json_t *v;
        json_object_foreach(e, key, v) {
            char name[64];
            snprintf(name, sizeof name, "enclaves[%zu].%s", i, key);
            km_err err;
            if (!strcmp(key, "id")) {
                uint64_t id;
                err = get_uint(v, name, 0, UINT32_MAX - 1, &id, msg, msg_len);
                ec->id = (uint32_t)id;
                have |= 1;
            } else if (!strcmp(key, "address")) {
                err = get_str(v, name, ec->address, sizeof ec->address, msg, msg_len);
                if (!err && strncmp(ec->address, "unix:", 5) && strncmp(ec->address, "tcp:", 4) &&
                    strncmp(ec->address, "vsock:", 6))
                    err = fail(msg, msg_len, "'%s' must start with unix:, tcp: or vsock:", name);
                have |= 2;
            } else if (!strcmp(key, "public_key")) {
                if (!json_is_string(v) ||
                    km_hex_decode(ec->pubkey, 33, json_string_value(v), json_string_length(v)))
                    err = fail(msg, msg_len, "'%s' must be 66 hex digits (compressed point)", name);
                else
                    err = KM_OK;
                have |= 4;
            } else {
                err = fail(msg, msg_len, "unknown key '%s'", name);
            }
            if (err) return err;
        }
        if (have != 7) return fail(msg, msg_len, "enclaves[%zu] needs id, address and public_key", i);
        cfg->n_enclaves++;
    }
    return KM_OK;
}

/* Integer settings: name, where, range. */
typedef struct uint_opt {
    const char *name;
    size_t offset;
    size_t size;
    uint64_t lo, hi;
} uint_opt;
#define OPT(field, lo, hi)                                                                                   \
    { #field, offsetof(km_gw_config, field), sizeof(((km_gw_config *)0)->field), lo, hi }
static const uint_opt UINT_OPTS[] = {
    OPT(max_body_bytes, 1024, 64u << 20),
    OPT(max_wait_seconds, 0, 600),
    OPT(auth_window_seconds, 5, 3600),
    OPT(max_participants, 1, 1000),
    OPT(max_timeout_seconds, 1, 30 * 86400),
    OPT(http_threads, 1, 256),
    OPT(http_max_connections, 4, 65536),
    OPT(coordinator_workers, 1, 256),
    OPT(enclave_connections, 1, 16),
    OPT(enclave_timeout_ms, 100, 600000),
    OPT(retry_max_ms, 100, 600000),
    OPT(max_active_sessions_per_keygen, 0, 1000000),
    OPT(max_body_bytes_total, 1024, (uint64_t)1 << 40),
    OPT(rate_per_key_per_second, 0, 1000000),
    OPT(rate_burst_per_key, 1, 1000000),
    OPT(rate_limit_max_keys, 16, 1u << 24),
    OPT(max_waiters, 0, 65536),
    OPT(max_waiters_per_key, 0, 65536),
};
#undef OPT

km_err km_gw_config_load_file(km_gw_config *cfg, const char *path, char *msg, size_t msg_len) {
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (jerr.line < 0 || strstr(jerr.text, "unable to open")) {
            fail(msg, msg_len, "cannot read %s: %s", path, jerr.text);
            return KM_ERR_IO;
        }
        return fail(msg, msg_len, "%s:%d: %s", path, jerr.line, jerr.text);
    }
    km_err err = KM_OK;
    if (!json_is_object(root)) {
        err = fail(msg, msg_len, "%s: the top level must be a JSON object", path);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "listen")) {
            if (!json_is_string(v) || km_gw_config_set_listen(cfg, json_string_value(v)))
                err = fail(msg, msg_len, "'listen' must be \"HOST:PORT\"");
        } else if (!strcmp(key, "database")) {
            err = get_str(v, key, cfg->database, sizeof cfg->database, msg, msg_len);
        } else if (!strcmp(key, "instance_name")) {
            err = get_str(v, key, cfg->instance_name, sizeof cfg->instance_name, msg, msg_len);
        } else if (!strcmp(key, "gateway_key_file")) {
            err = get_str(v, key, cfg->gateway_key_file, sizeof cfg->gateway_key_file, msg, msg_len);
        } else if (!strcmp(key, "enclaves")) {
            err = load_enclaves(cfg, v, msg, msg_len);
        } else {
            size_t i;
            for (i = 0; i < sizeof UINT_OPTS / sizeof UINT_OPTS[0]; i++)
                if (!strcmp(key, UINT_OPTS[i].name)) break;
            if (i == sizeof UINT_OPTS / sizeof UINT_OPTS[0]) {
                err = fail(msg, msg_len, "unknown key '%s'", key);
            } else {
                uint64_t x;
                err = get_uint(v, key, UINT_OPTS[i].lo, UINT_OPTS[i].hi, &x, msg, msg_len);
                if (!err) {
                    unsigned char *field = (unsigned char *)cfg + UINT_OPTS[i].offset;
                    if (UINT_OPTS[i].size == sizeof(size_t)) {
                        size_t s = (size_t)x;
                        memcpy(field, &s, sizeof s);
                    } else {
                        unsigned u = (unsigned)x;
                        memcpy(field, &u, sizeof u);
                    }
                }
            }
        }
        if (err) break;
    }
out:
    json_decref(root);
    return err;
}

km_err km_gw_config_load_env(km_gw_config *cfg, char *msg, size_t msg_len) {
    const char *v = getenv("KEYMELD_LISTEN");
    if (v && km_gw_config_set_listen(cfg, v)) return fail(msg, msg_len, "KEYMELD_LISTEN must be HOST:PORT");
    v = getenv("KEYMELD_DATABASE");
    if (v) {
        if (!*v || strlen(v) >= sizeof cfg->database)
            return fail(msg, msg_len, "KEYMELD_DATABASE is empty or too long");
        snprintf(cfg->database, sizeof cfg->database, "%s", v);
    }
    v = getenv("KEYMELD_GATEWAY_KEY_FILE");
    if (v) {
        if (!*v || strlen(v) >= sizeof cfg->gateway_key_file)
            return fail(msg, msg_len, "KEYMELD_GATEWAY_KEY_FILE is empty or too long");
        snprintf(cfg->gateway_key_file, sizeof cfg->gateway_key_file, "%s", v);
    }
    return KM_OK;
}

km_err km_gw_config_validate(const km_gw_config *cfg, char *msg, size_t msg_len) {
    if (!cfg->database[0]) return fail(msg, msg_len, "no database path ('database' or KEYMELD_DATABASE)");
    if (!cfg->gateway_key_file[0]) return fail(msg, msg_len, "no 'gateway_key_file'");
    if (cfg->n_enclaves == 0) return fail(msg, msg_len, "no 'enclaves' configured");
    for (size_t i = 0; i < cfg->n_enclaves; i++)
        for (size_t j = i + 1; j < cfg->n_enclaves; j++) {
            if (cfg->enclaves[i].id == cfg->enclaves[j].id)
                return fail(msg, msg_len, "enclave id %u is listed twice", cfg->enclaves[i].id);
            if (!memcmp(cfg->enclaves[i].pubkey, cfg->enclaves[j].pubkey, 33))
                return fail(msg, msg_len, "enclaves %u and %u have the same public key", cfg->enclaves[i].id,
                            cfg->enclaves[j].id);
        }
    if (cfg->max_body_bytes_total < cfg->max_body_bytes)
        return fail(msg, msg_len, "'max_body_bytes_total' (%zu) must be at least 'max_body_bytes' (%zu)",
                    cfg->max_body_bytes_total, cfg->max_body_bytes);
    if (cfg->max_waiters > cfg->http_max_connections)
        return fail(msg, msg_len, "'max_waiters' (%u) must not exceed 'http_max_connections' (%u)",
                    cfg->max_waiters, cfg->http_max_connections);
    for (size_t i = 0; i < cfg->n_enclaves; i++) {
        secp256k1_pubkey pk;
        if (!secp256k1_ec_pubkey_parse(secp256k1_context_static, &pk, cfg->enclaves[i].pubkey, 33))
            return fail(msg, msg_len, "enclave %u: public_key is not a valid point", cfg->enclaves[i].id);
    }
    return KM_OK;
}

unsigned km_gw_config_max_waiters(const km_gw_config *cfg) {
    if (cfg->max_waiters) return cfg->max_waiters;
    unsigned n = cfg->http_max_connections - cfg->http_max_connections / 8;
    return n ? n : 1;
}

km_err km_gw_config_read_key(const char *path, unsigned char seckey[32], char *msg, size_t msg_len) {
    memset(seckey, 0, 32);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        fail(msg, msg_len, "cannot open gateway key file %s: %s", path, strerror(errno));
        return KM_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        fail(msg, msg_len, "gateway key file %s is not a regular file", path);
        return KM_ERR_IO;
    }
    if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        fail(msg, msg_len, "gateway key file %s is readable by others (chmod 600 it)", path);
        return KM_ERR_STATE;
    }
    char buf[80];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    km_err err = KM_OK;
    if (n == 65 && buf[64] == '\n') n = 64;
    if (n != 64 || km_hex_decode(seckey, 32, buf, 64)) {
        err = fail(msg, msg_len, "gateway key file %s must hold 64 hex digits", path);
    } else if (!secp256k1_ec_seckey_verify(secp256k1_context_static, seckey)) {
        fail(msg, msg_len, "gateway key file %s does not hold a valid secret key", path);
        err = KM_ERR_INVALID_KEY;
    }
    km_wipe(buf, sizeof buf);
    if (err) km_wipe(seckey, 32);
    return err;
}
