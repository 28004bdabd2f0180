/* support_gateway.c — see support_gateway.h. */
#include "support_gateway.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "keymeld/hex.h"
#include "keymeld/secret.h"

#ifndef KM_ENCLAVE_BIN
#error "KM_ENCLAVE_BIN must name the keymeld-enclave binary"
#endif
#ifndef KM_GATEWAY_BIN
#error "KM_GATEWAY_BIN must name the keymeld-gateway binary"
#endif

#define KM_GWTEST_READY_POLLS 2000 /* x 10 ms = 20 s */
#define KM_GWTEST_STOP_POLLS  1500 /* x 10 ms = 15 s */
#define KM_GWTEST_LOG_MAX     (64u * 1024u * 1024u)

static void sleep_10ms(void) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* Write a whole file with the given mode, created fresh (an existing file is
 * replaced: O_TRUNC would keep an old, wider mode). */
static km_err write_file(const char *path, const void *data, size_t len, mode_t mode) {
    if (unlink(path) != 0 && errno != ENOENT) return KM_ERR_IO;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return KM_ERR_IO;
    const unsigned char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return KM_ERR_IO;
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0) {
        close(fd);
        return KM_ERR_IO;
    }
    return close(fd) == 0 ? KM_OK : KM_ERR_IO;
}

/* Read a whole file (at most max bytes) into out. */
static km_err read_file(const char *path, km_buf *out, size_t max) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return KM_ERR_IO;
    unsigned char chunk[4096];
    km_err err = KM_OK;
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0) {
            if (errno == EINTR) continue;
            err = KM_ERR_IO;
            break;
        }
        if (r == 0) break;
        if ((size_t)r > max - out->len) {
            err = KM_ERR_RANGE;
            break;
        }
        if (km_buf_put(out, chunk, (size_t)r) != KM_OK) {
            err = KM_ERR_NOMEM;
            break;
        }
    }
    close(fd);
    if (err) km_buf_free(out);
    return err;
}

/* The last bytes of the gateway log, for a failed start. */
static void print_log_tail(const km_gwtest *t) {
    km_buf b;
    km_buf_init(&b);
    if (read_file(t->log_path, &b, KM_GWTEST_LOG_MAX) != KM_OK) {
        fprintf(stderr, "gwtest: no gateway log at %s\n", t->log_path);
        return;
    }
    size_t from = b.len > 4000 ? b.len - 4000 : 0;
    fprintf(stderr, "gwtest: --- tail of %s ---\n", t->log_path);
    if (b.len) fwrite(b.data + from, 1, b.len - from, stderr);
    fprintf(stderr, "\ngwtest: --- end of log ---\n");
    km_buf_free(&b);
}

km_err km_gwtest_write_config(km_gwtest *t, const char *extra_config_json) {
    if (!t || !t->dir[0]) return KM_ERR_ARG;
    json_t *extra = NULL;
    if (extra_config_json) {
        json_error_t jerr;
        extra = json_loads(extra_config_json, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(extra)) {
            fprintf(stderr, "gwtest: extra config is not a JSON object: %s\n", jerr.text);
            json_decref(extra);
            return KM_ERR_PARSE;
        }
    }
    km_err err = KM_ERR_NOMEM;
    char *text = NULL;
    json_t *cfg = json_object(), *encs = json_array();
    if (!cfg || !encs) goto out;
    for (int i = 0; i < t->n_enclaves; i++) {
        char pub[67];
        if (km_hex_encode(pub, sizeof pub, t->enc[i].pub, 33) != KM_OK) goto out;
        json_t *e = json_pack("{s:i, s:s, s:s}", "id", i, "address", t->enc[i].addr, "public_key", pub);
        if (!e || json_array_append_new(encs, e) != 0) goto out;
    }
    if (json_object_set_new(cfg, "listen", json_string("127.0.0.1:0")) != 0 ||
        json_object_set_new(cfg, "database", json_string(t->db_path)) != 0 ||
        json_object_set_new(cfg, "gateway_key_file", json_string(t->key_path)) != 0 ||
        json_object_set(cfg, "enclaves", encs) != 0)
        goto out;
    if (extra && json_object_update(cfg, extra) != 0) goto out;
    text = json_dumps(cfg, JSON_INDENT(2));
    if (!text) goto out;
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL: written by length below */
    err = write_file(t->config_path, text, n + 1, 0600);
out:
    free(text);
    json_decref(encs);
    json_decref(cfg);
    json_decref(extra);
    return err;
}

km_err km_gwtest_start(km_gwtest *t, int n_enclaves, const char *extra_config_json) {
    if (!t) return KM_ERR_ARG;
    km_ctx *ctx = t->ctx;
    memset(t, 0, sizeof *t);
    if (n_enclaves < 1 || n_enclaves > KM_GWTEST_MAX_ENCLAVES) return KM_ERR_ARG;
    km_err err;
    if (!ctx) {
        if ((err = km_ctx_create(&ctx)) != KM_OK) return err;
        t->owns_ctx = 1;
    }
    t->ctx = ctx;
    snprintf(t->dir, sizeof t->dir, "/tmp/km-gwtest-XXXXXX");
    if (!mkdtemp(t->dir)) {
        t->dir[0] = '\0';
        err = KM_ERR_IO;
        goto fail;
    }
    snprintf(t->db_path, sizeof t->db_path, "%s/gateway.db", t->dir);
    snprintf(t->config_path, sizeof t->config_path, "%s/gateway.json", t->dir);
    snprintf(t->key_path, sizeof t->key_path, "%s/gateway.key", t->dir);
    snprintf(t->ready_path, sizeof t->ready_path, "%s/ready", t->dir);
    snprintf(t->log_path, sizeof t->log_path, "%s/gateway.log", t->dir);

    if ((err = km_devnet_keypair(ctx, t->gw_sec, NULL, t->gw_x)) != KM_OK) goto fail;
    for (int i = 0; i < n_enclaves; i++) {
        /* Counted before the start: a failed start still needs its destroy. */
        t->n_enclaves = i + 1;
        err = km_devnet_start_shared(ctx, &t->enc[i], KM_ENCLAVE_BIN, NULL, NULL, t->gw_sec);
        if (err) {
            fprintf(stderr, "gwtest: enclave %d did not start: %s\n", i, km_strerror(err));
            goto fail;
        }
    }

    char hex[66];
    if ((err = km_hex_encode(hex, sizeof hex, t->gw_sec, 32)) != KM_OK) goto fail;
    hex[64] = '\n';
    err = write_file(t->key_path, hex, 65, 0600);
    km_wipe(hex, sizeof hex);
    if (err) goto fail;
    if ((err = km_gwtest_write_config(t, extra_config_json)) != KM_OK) goto fail;
    if ((err = km_gwtest_gateway_start(t)) != KM_OK) goto fail;
    return KM_OK;
fail:
    km_gwtest_stop(t);
    return err;
}

/* The ready file holds "PORT\n" with PORT in 1..65535, nothing else. */
static int read_ready(const char *path, uint16_t *port) {
    char buf[16];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 2 || buf[n - 1] != '\n') return 0;
    unsigned long v = 0;
    for (ssize_t i = 0; i < n - 1; i++) {
        if (buf[i] < '0' || buf[i] > '9' || (i == 0 && buf[i] == '0')) return 0;
        v = v * 10 + (unsigned long)(buf[i] - '0');
        if (v > 65535) return 0;
    }
    if (v == 0) return 0;
    *port = (uint16_t)v;
    return 1;
}

km_err km_gwtest_gateway_start(km_gwtest *t) {
    if (!t || !t->dir[0]) return KM_ERR_ARG;
    if (t->gw_pid > 0) return KM_ERR_STATE;
    /* A ready file of an earlier run must not pass for this one. */
    if (unlink(t->ready_path) != 0 && errno != ENOENT) return KM_ERR_IO;
    t->port = 0;
    t->base_url[0] = '\0';

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return KM_ERR_IO;
    if (pid == 0) {
        /* A gateway must not outlive a crashed test: SIGKILL when the parent
         * thread dies; the getppid check closes the race with a parent that
         * died before prctl. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(126);
        int fd = open(t->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(126);
        const char *argv[] = {KM_GATEWAY_BIN, "--config",    t->config_path,
                              "--ready-file", t->ready_path, NULL};
        execv(KM_GATEWAY_BIN, (char *const *)argv);
        _exit(127);
    }
    t->gw_pid = pid;
    for (int i = 0; i < KM_GWTEST_READY_POLLS; i++) {
        uint16_t port;
        if (read_ready(t->ready_path, &port)) {
            t->port = port;
            snprintf(t->base_url, sizeof t->base_url, "http://127.0.0.1:%u", (unsigned)port);
            return KM_OK;
        }
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            t->gw_pid = 0;
            if (WIFEXITED(st))
                fprintf(stderr, "gwtest: gateway exited with status %d before it was ready\n",
                        WEXITSTATUS(st));
            else
                fprintf(stderr, "gwtest: gateway killed by signal %d before it was ready\n", WTERMSIG(st));
            print_log_tail(t);
            return KM_ERR_IO;
        }
        sleep_10ms();
    }
    fprintf(stderr, "gwtest: gateway not ready after 20 s\n");
    km_gwtest_gateway_kill(t);
    print_log_tail(t);
    return KM_ERR_IO;
}

static int wait_status(int st) {
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void km_gwtest_gateway_kill(km_gwtest *t) {
    if (!t || t->gw_pid <= 0) return;
    kill(t->gw_pid, SIGKILL);
    while (waitpid(t->gw_pid, NULL, 0) < 0 && errno == EINTR) {
    }
    t->gw_pid = 0;
}

int km_gwtest_gateway_stop(km_gwtest *t) {
    if (!t || t->gw_pid <= 0) return -1;
    kill(t->gw_pid, SIGTERM);
    /* Bounded: a gateway that hangs on shutdown fails the test, it must
     * not hang it. */
    for (int i = 0; i < KM_GWTEST_STOP_POLLS; i++) {
        int st;
        pid_t w = waitpid(t->gw_pid, &st, WNOHANG);
        if (w == t->gw_pid) {
            t->gw_pid = 0;
            return wait_status(st);
        }
        if (w < 0 && errno != EINTR) {
            t->gw_pid = 0;
            return -1;
        }
        sleep_10ms();
    }
    fprintf(stderr, "gwtest: gateway ignored SIGTERM for 15 s; killing it\n");
    int st = 0;
    kill(t->gw_pid, SIGKILL);
    while (waitpid(t->gw_pid, &st, 0) < 0 && errno == EINTR) {
    }
    t->gw_pid = 0;
    return wait_status(st);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void km_gwtest_stop(km_gwtest *t) {
    if (!t) return;
    (void)km_gwtest_gateway_stop(t);
    for (int i = 0; i < t->n_enclaves && i < KM_GWTEST_MAX_ENCLAVES; i++)
        km_devnet_destroy(&t->enc[i]);
    t->n_enclaves = 0;
    if (t->dir[0] && strncmp(t->dir, "/tmp/km-gwtest-", 15) == 0) {
        const char *keep = getenv("KM_GWTEST_KEEP");
        if (keep && *keep && strcmp(keep, "0") != 0) {
            /* The credential is wiped even from a kept directory. */
            (void)unlink(t->key_path);
            fprintf(stderr, "gwtest: kept %s\n", t->dir);
        } else if (nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
            fprintf(stderr, "gwtest: cannot remove %s\n", t->dir);
        }
    }
    t->dir[0] = '\0';
    km_wipe(t->gw_sec, sizeof t->gw_sec);
    /* A borrowed context stays in t, ready for the next start. */
    if (t->owns_ctx) {
        km_ctx_destroy(t->ctx);
        t->ctx = NULL;
    }
    t->owns_ctx = 0;
    t->port = 0;
    t->base_url[0] = '\0';
}

km_err km_gwtest_ca_root(const km_gwtest *t, int i, km_buf *out) {
    if (!t || !out || i < 0 || i >= t->n_enclaves) return KM_ERR_ARG;
    km_buf_init(out);
    char path[320];
    snprintf(path, sizeof path, "%s/ca/root.pem", t->enc[i].dir);
    return read_file(path, out, 1024 * 1024);
}

km_err km_gwtest_client(const km_gwtest *t, km_client **out) {
    if (!out) return KM_ERR_ARG;
    *out = NULL;
    if (!t || !t->base_url[0]) return KM_ERR_ARG;
    return km_client_new(out, t->ctx, t->base_url);
}

static int file_contains(const char *path, const void *needle, size_t len) {
    if (!needle || len == 0) return -1;
    km_buf b;
    km_buf_init(&b);
    if (read_file(path, &b, KM_GWTEST_LOG_MAX) != KM_OK) return -1;
    int found = b.len >= len && memmem(b.data, b.len, needle, len) != NULL;
    km_buf_free(&b);
    return found;
}

int km_gwtest_log_contains(const km_gwtest *t, const void *needle, size_t len) {
    if (!t || !t->log_path[0]) return -1;
    return file_contains(t->log_path, needle, len);
}

int km_gwtest_enclave_log_contains(const km_gwtest *t, int i, const void *needle, size_t len) {
    if (!t || i < 0 || i >= t->n_enclaves) return -1;
    char path[320];
    snprintf(path, sizeof path, "%s/enclave.log", t->enc[i].dir);
    return file_contains(path, needle, len);
}
