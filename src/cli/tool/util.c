/* util.c — options, output, files and key files of the keymeld tool. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/tool/tool.h"
#include "keymeld/aead.h"
#include "keymeld/hex.h"
#include "keymeld/secret.h"
#include "keymeld/single.h"

/* ---- options ---------------------------------------------------------------- */

static const char COMMON_HELP[] =
    "Common options:\n"
    "  --json              one JSON object on stdout (for scripts)\n"
    "  --devnet DIR        use the devnet in DIR (default ./" KM_TOOL_DEFAULT_DIR ")\n"
    "  --gateway URL       talk to this gateway instead (needs --ca-root and --pcr0)\n"
    "  --ca-root [ID=]FILE trust this attestation root (for enclave ID, or all)\n"
    "  --pcr0 HEX          demand this PCR0 (96 hex) in every attestation document\n"
    "  --timeout SECONDS   how long to wait for a result (default 120)\n"
    "  --help              this text\n"
    "Exit codes: 0 ok, 1 failure/refusal, 2 usage, 3 verification failure,\n"
    "            4 timeout, 5 gateway or enclave unreachable.\n";

static int parse_uint(const char *s, unsigned *out) {
    if (!s || !*s) return -1;
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 100000000ul) return -1;
    }
    *out = (unsigned)v;
    return 0;
}

int km_tool_parse(km_tool *t, int argc, char **argv, const km_opt *opts, const char *help, const char **pos,
                  size_t max_pos, size_t *n_pos) {
    size_t np = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(help, stdout);
            fputs(COMMON_HELP, stdout);
            return -1;
        }
        if (strcmp(a, "--json") == 0) {
            t->json = 1;
            continue;
        }
        const char **common_str = NULL;
        if (strcmp(a, "--devnet") == 0) common_str = &t->devnet_dir;
        if (strcmp(a, "--gateway") == 0) common_str = &t->gateway_url;
        if (strcmp(a, "--pcr0") == 0) common_str = &t->pcr0_hex;
        if (common_str) {
            if (!val) return km_tool_usage(t, "%s needs an argument", a);
            *common_str = val;
            i++;
            continue;
        }
        if (strcmp(a, "--ca-root") == 0) {
            if (!val) return km_tool_usage(t, "%s needs an argument", a);
            if (t->n_roots == KM_TOOL_MAX_ROOTS) return km_tool_usage(t, "too many --ca-root");
            t->root_spec[t->n_roots++] = val;
            i++;
            continue;
        }
        if (strcmp(a, "--timeout") == 0) {
            if (!val || parse_uint(val, &t->timeout_s) != 0 || t->timeout_s == 0)
                return km_tool_usage(t, "--timeout needs a positive number of seconds");
            i++;
            continue;
        }
        const km_opt *o = NULL;
        for (size_t k = 0; opts && opts[k].name; k++)
            if (strcmp(opts[k].name, a) == 0) o = &opts[k];
        if (o) {
            if (o->flag) {
                *o->flag = 1;
            } else if (!val) {
                return km_tool_usage(t, "%s needs an argument", a);
            } else if (o->str) {
                *o->str = val;
                i++;
            } else {
                if (parse_uint(val, o->uint) != 0)
                    return km_tool_usage(t, "%s needs a number, not '%s'", a, val);
                i++;
            }
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') return km_tool_usage(t, "unknown option %s", a);
        if (np == max_pos) return km_tool_usage(t, "unexpected argument '%s'", a);
        pos[np++] = a;
    }
    if (n_pos) *n_pos = np;
    if (t->gateway_url && t->devnet_dir) return km_tool_usage(t, "--gateway and --devnet exclude each other");
    return 0;
}

/* ---- output ----------------------------------------------------------------- */

void km_tool_say(const km_tool *t, const char *fmt, ...) {
    if (t->json) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

int km_tool_exit_code(km_err err) {
    switch (err) {
    case KM_OK:
        return KM_EXIT_OK;
    case KM_ERR_ATTESTATION:
    case KM_ERR_VERIFY:
    case KM_ERR_DECRYPT:
        return KM_EXIT_VERIFY;
    default:
        return KM_EXIT_FAIL;
    }
}

static int report(km_tool *t, int rc, km_err err, const char *what, const char *detail);

int km_tool_fail(km_tool *t, km_err err, const char *what, const char *detail) {
    return report(t, km_tool_exit_code(err), err, what, detail);
}

int km_tool_fail_remote(km_tool *t, km_err err, const char *what, const char *detail, int wait) {
    int rc = km_tool_exit_code(err);
    /* The SDK reports an unreachable gateway (or one that cannot reach the
     * enclave) as KM_ERR_IO, and a wait that ran out as KM_ERR_RANGE. */
    if (err == KM_ERR_IO) rc = KM_EXIT_UNREACHABLE;
    if (wait && err == KM_ERR_RANGE) rc = KM_EXIT_TIMEOUT;
    return report(t, rc, err, what, detail);
}

static int report(km_tool *t, int rc, km_err err, const char *what, const char *detail) {
    fprintf(stderr, "%s: %s failed: %s%s%s\n", t->prog, what, km_strerror(err), detail && *detail ? ": " : "",
            detail ? detail : "");
    if (t->out) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: %s%s%s", what, km_strerror(err), detail && *detail ? ": " : "",
                 detail ? detail : "");
        json_object_set_new(t->out, "error", json_string(msg));
        json_object_set_new(t->out, "error_code", json_string(km_err_name(err)));
    }
    return rc;
}

int km_tool_usage(km_tool *t, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s (see --help)\n", t->prog, msg);
    if (t->out) json_object_set_new(t->out, "error", json_string(msg));
    return KM_EXIT_USAGE;
}

int km_tool_finish(km_tool *t, int rc) {
    if (t->json && t->out) {
        json_object_set_new(t->out, "ok", json_boolean(rc == 0));
        json_object_set_new(t->out, "exit_code", json_integer(rc));
        char *s = json_dumps(t->out, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (s) {
            puts(s);
            free(s);
        }
        fflush(stdout);
    }
    json_decref(t->out);
    t->out = NULL;
    return rc;
}

void km_tool_hex(char *out, const unsigned char *p, size_t n) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

km_err km_tool_unhex(unsigned char *out, size_t n, const char *hex) {
    if (!hex || strlen(hex) != 2 * n) return KM_ERR_PARSE;
    return km_hex_decode(out, n, hex, 2 * n) == KM_OK ? KM_OK : KM_ERR_PARSE;
}

void km_tool_set_str(km_tool *t, const char *key, const char *value) {
    if (t->out) json_object_set_new(t->out, key, json_string(value));
}

void km_tool_set_hex(km_tool *t, const char *key, const unsigned char *p, size_t n) {
    char *h = malloc(2 * n + 1);
    if (!h) return;
    km_tool_hex(h, p, n);
    km_tool_set_str(t, key, h);
    free(h);
}

void km_tool_set_int(km_tool *t, const char *key, long long v) {
    if (t->out) json_object_set_new(t->out, key, json_integer(v));
}

double km_tool_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

uint64_t km_tool_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- spinner ---------------------------------------------------------------- */

struct km_spinner {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    char label[128];
};

static void *spin(void *arg) {
    km_spinner *s = arg;
    static const char frames[] = "|/-\\";
    unsigned k = 0;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        fprintf(stderr, "\r%c %s ", frames[k++ % 4], s->label);
        fflush(stderr);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 120 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    /* Clear the line so that what follows starts clean. */
    fprintf(stderr, "\r%*s\r", (int)strlen(s->label) + 3, "");
    fflush(stderr);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

km_spinner *km_spinner_start(const km_tool *t, const char *label) {
    if (t->json || !isatty(2)) return NULL;
    km_spinner *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    snprintf(s->label, sizeof s->label, "%s", label);
    if (pthread_create(&s->thread, NULL, spin, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    return s;
}

void km_spinner_update(km_spinner *s, const char *label) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    snprintf(s->label, sizeof s->label, "%s", label);
    pthread_mutex_unlock(&s->mu);
}

void km_spinner_stop(km_spinner *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- files ------------------------------------------------------------------ */

km_err km_tool_read_file(const char *path, size_t max, char **out, size_t *len) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return KM_ERR_IO;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    km_err err = buf ? KM_OK : KM_ERR_NOMEM;
    while (!err) {
        if (n == cap) {
            if (cap >= max) {
                err = KM_ERR_RANGE;
                break;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                err = KM_ERR_NOMEM;
                break;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            err = KM_ERR_IO;
        } else if (r == 0) {
            break;
        } else {
            n += (size_t)r;
        }
    }
    close(fd);
    if (!err && n > max) err = KM_ERR_RANGE;
    if (err) {
        if (buf) km_wipe(buf, n);
        free(buf);
        return err;
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return KM_OK;
}

km_err km_tool_write_file(const char *path, const void *data, size_t len, unsigned mode) {
    /* Write a temporary file next to the target and rename it: a reader never
     * sees half a file, and the mode is set on a file nobody else opened. */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof tmp) return KM_ERR_IO;
    (void)unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) return KM_ERR_IO;
    km_err err = fchmod(fd, (mode_t)mode) == 0 ? KM_OK : KM_ERR_IO;
    const unsigned char *p = data;
    size_t done = 0;
    while (!err && done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            err = KM_ERR_IO;
        } else {
            done += (size_t)w;
        }
    }
    if (!err && fsync(fd) != 0) err = KM_ERR_IO;
    if (close(fd) != 0) err = KM_ERR_IO;
    if (!err && rename(tmp, path) != 0) err = KM_ERR_IO;
    if (err) (void)unlink(tmp);
    return err;
}

km_err km_tool_write_json(const char *path, const json_t *v, unsigned mode) {
    char *s = json_dumps(v, JSON_INDENT(2));
    if (!s) return KM_ERR_NOMEM;
    size_t n = strlen(s);
    char *s2 = realloc(s, n + 2);
    if (!s2) {
        km_wipe(s, n);
        free(s);
        return KM_ERR_NOMEM;
    }
    s2[n] = '\n';
    km_err err = km_tool_write_file(path, s2, n + 1, mode);
    km_wipe(s2, n + 1);
    free(s2);
    return err;
}

json_t *km_tool_load_json(const char *path) {
    char *text = NULL;
    size_t len = 0;
    km_err err = km_tool_read_file(path, 64u * 1024u * 1024u, &text, &len);
    if (err) {
        fprintf(stderr, "keymeld: cannot read %s: %s\n", path,
                err == KM_ERR_IO ? strerror(errno) : km_strerror(err));
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    km_wipe(text, len);
    free(text);
    if (!json_is_object(v)) {
        fprintf(stderr, "keymeld: %s is not a JSON object: %s (line %d)\n", path, v ? "wrong type" : je.text,
                je.line);
        json_decref(v);
        return NULL;
    }
    return v;
}

/* ---- key files -------------------------------------------------------------- */

km_err km_tool_key_generate(km_ctx *ctx, km_tool_key *k) {
    memset(k, 0, sizeof *k);
    km_err err;
    do {
        if ((err = km_random_bytes(k->sec, 32)) != KM_OK) goto fail;
    } while (km_single_seckey_check(ctx, k->sec) != KM_OK);
    do {
        if ((err = km_random_bytes(k->auth_sec, 32)) != KM_OK) goto fail;
    } while (km_single_seckey_check(ctx, k->auth_sec) != KM_OK);
    if ((err = km_single_pubkey(ctx, k->pub33, k->sec)) != KM_OK) goto fail;
    if ((err = km_single_xonly_pubkey(ctx, k->auth_x, k->auth_sec)) != KM_OK) goto fail;
    if ((err = km_uuid_v7(&k->user_id, km_tool_unix_ms())) != KM_OK) goto fail;
    return KM_OK;
fail:
    km_wipe(k, sizeof *k);
    return err;
}

km_err km_tool_key_save(const km_tool_key *k, const char *path) {
    char sec[65], auth[65], pub[67], ax[65], uid[37];
    km_tool_hex(sec, k->sec, 32);
    km_tool_hex(auth, k->auth_sec, 32);
    km_tool_hex(pub, k->pub33, 33);
    km_tool_hex(ax, k->auth_x, 32);
    km_uuid_format(uid, &k->user_id);
    char text[1024];
    int n = snprintf(
        text, sizeof text,
        "{\n  \"type\": \"keymeld-key\",\n  \"secret_key_hex\": \"%s\",\n  \"auth_key_hex\": \"%s\",\n"
        "  \"public_key_hex\": \"%s\",\n  \"auth_public_key_hex\": \"%s\",\n  \"user_id\": \"%s\"\n}\n",
        sec, auth, pub, ax, uid);
    km_err err = km_tool_write_file(path, text, (size_t)n, 0600);
    km_wipe(text, sizeof text);
    km_wipe(sec, sizeof sec);
    km_wipe(auth, sizeof auth);
    return err;
}

km_err km_tool_key_load(km_ctx *ctx, const char *path, km_tool_key *k) {
    memset(k, 0, sizeof *k);
    struct stat st;
    if (stat(path, &st) != 0) return KM_ERR_IO;
    /* A secret readable by others is already leaked: refuse rather than use it. */
    if (st.st_mode & 077) {
        fprintf(stderr, "keymeld: %s is readable by group or others (mode %03o); chmod 600 it\n", path,
                (unsigned)(st.st_mode & 0777));
        return KM_ERR_STATE;
    }
    json_t *v = km_tool_load_json(path);
    if (!v) return KM_ERR_PARSE;
    km_err err = KM_ERR_PARSE;
    const char *sec = json_string_value(json_object_get(v, "secret_key_hex"));
    const char *auth = json_string_value(json_object_get(v, "auth_key_hex"));
    const char *uid = json_string_value(json_object_get(v, "user_id"));
    if (!sec || !auth || !uid) goto out;
    if (km_tool_unhex(k->sec, 32, sec) || km_tool_unhex(k->auth_sec, 32, auth) ||
        km_uuid_parse(&k->user_id, uid, strlen(uid)))
        goto out;
    if ((err = km_single_pubkey(ctx, k->pub33, k->sec)) != KM_OK) goto out;
    if ((err = km_single_xonly_pubkey(ctx, k->auth_x, k->auth_sec)) != KM_OK) goto out;
    err = KM_OK;
out:
    /* jansson keeps its own copy of the strings: wipe them before freeing. */
    if (sec) km_wipe((void *)sec, strlen(sec));
    if (auth) km_wipe((void *)auth, strlen(auth));
    json_decref(v);
    if (err) km_wipe(k, sizeof *k);
    return err;
}

int km_tool_dispatch(km_tool *t, const char *group, const char *help, const km_tool_sub *subs, size_t n,
                     int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help")) {
        if (argc >= 1) {
            fputs(help, stdout);
            return -1;
        }
        return km_tool_usage(t, "%s needs a command", group);
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(argv[0], subs[i].name)) {
            t->prog = subs[i].prog;
            return subs[i].run(t, argc - 1, argv + 1);
        }
    return km_tool_usage(t, "unknown %s command '%s'", group, argv[0]);
}
