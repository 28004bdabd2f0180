/* cmd_devnet.c — `keymeld devnet up|status|down`: a local development
 * network of keymeld-enclave processes and one keymeld-gateway on loopback.
 *
 * Unlike the test harness (src/cli/devnet.c), these processes outlive the
 * command: they are daemons (double fork, setsid, no parent-death signal),
 * log to DIR/NAME.log and are found again through DIR/NAME.pid. Everything a
 * client needs to trust them (dev CA roots, PCR0 of the enclave binary,
 * enclave keys) is written to DIR/devnet.json from the local files, never
 * learnt from the gateway.
 *
 * Layout of DIR (mode 0700):
 *   devnet.json               the description every other command reads
 *   gateway.key               the gateway credential (0600)
 *   gateway.json, gateway.db  config and database; gateway.log, gateway.pid
 *   enclave-I/                state dir: sealing.key, ca/, enclave.sock
 *   enclave-I.log, enclave-I.pid
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/devnet.h"
#include "cli/tool/tool.h"
#include "client/http.h"

#ifndef KM_DEFAULT_ENCLAVE_BIN
#define KM_DEFAULT_ENCLAVE_BIN "keymeld-enclave"
#endif
#ifndef KM_DEFAULT_GATEWAY_BIN
#define KM_DEFAULT_GATEWAY_BIN "keymeld-gateway"
#endif

#define MAX_ENCLAVES 16

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *enclave_bin(const char *opt) {
    if (opt) return opt;
    const char *e = getenv("KEYMELD_ENCLAVE_BIN");
    return e && *e ? e : KM_DEFAULT_ENCLAVE_BIN;
}

static const char *gateway_bin(const char *opt) {
    if (opt) return opt;
    const char *e = getenv("KEYMELD_GATEWAY_BIN");
    return e && *e ? e : KM_DEFAULT_GATEWAY_BIN;
}

/* The first run of `n` hex digits in s, copied into out (n+1 bytes). */
static int find_hex(const char *s, size_t n, char *out) {
    size_t run = 0;
    for (const char *p = s;; p++) {
        int h = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f');
        if (h) {
            run++;
            continue;
        }
        if (run == n) {
            memcpy(out, p - n, n);
            out[n] = '\0';
            return 0;
        }
        run = 0;
        if (!*p) return -1;
    }
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- pid files and liveness ------------------------------------------------ */

static pid_t read_pid(const char *path) {
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *end;
    long v = strtol(buf, &end, 10);
    if (v <= 1 || v > INT_MAX || (*end && *end != '\n')) return 0;
    return (pid_t)v;
}

/* Is pid alive and running binary `bin`? A pid file can outlive its process
 * and the number be reused; comparing the command line keeps `down` from
 * signalling an unrelated process. */
static int alive_as(pid_t pid, const char *bin) {
    if (pid <= 0 || kill(pid, 0) != 0) return 0;
    char path[64], cmd[4096];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, cmd, sizeof cmd - 1);
    close(fd);
    if (n <= 0) return 0; /* a zombie has an empty command line */
    cmd[n] = '\0';
    return strcmp(cmd, bin) == 0;
}

/* Is a process we just started still there? Until it has exec'd, its
 * command line is still ours, so alive_as would say no; a zombie (an exec
 * that failed) counts as gone. */
static int alive_started(pid_t pid) {
    if (pid <= 0 || kill(pid, 0) != 0) return 0;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* Start argv as a daemon: its own session, stdin /dev/null, stdout and stderr
 * appended to log, no descriptor of ours. Returns its pid or -1. */
static pid_t daemonize(const char *const argv[], const char *log, const char *cwd) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    pid_t mid = fork();
    if (mid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (mid == 0) {
        /* The middle process makes the session and exits at once, so the
         * daemon is re-parented to init and is never our zombie. */
        if (setsid() < 0) _exit(126);
        pid_t pid = fork();
        if (pid < 0) _exit(126);
        if (pid > 0) {
            ssize_t w = write(p[1], &pid, sizeof pid);
            _exit(w == (ssize_t)sizeof pid ? 0 : 126);
        }
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (in < 0 || fd < 0 || dup2(in, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(126);
        if (chdir(cwd) != 0) _exit(126);
        umask(077);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    pid_t pid = -1;
    ssize_t r;
    do
        r = read(p[0], &pid, sizeof pid);
    while (r < 0 && errno == EINTR);
    close(p[0]);
    int st;
    while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {
    }
    if (r != (ssize_t)sizeof pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return -1;
    return pid;
}

static km_err write_pid(const char *path, pid_t pid) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)pid);
    return km_tool_write_file(path, buf, (size_t)n, 0600);
}

static int unix_connects(const char *path) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) return 0;
    memcpy(sa.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* SIGTERM, wait up to 10 s (the process is not our child: poll), then SIGKILL. */
static int stop_pid(pid_t pid, const char *bin) {
    if (!alive_as(pid, bin)) return 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        if (!alive_as(pid, bin)) return 1;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    for (int i = 0; i < 500 && alive_as(pid, bin); i++)
        sleep_ms(10);
    return 1;
}

/* ---- the description ------------------------------------------------------ */

typedef struct devnet_files {
    char dir[PATH_MAX];
    char enclave_bin[PATH_MAX], gateway_bin[PATH_MAX];
    size_t n;
} devnet_files;

/* DIR/enclave-I followed by suffix (".pid", ".log", "/enclave.sock", ""). */
static void path_of(char *out, size_t cap, const char *dir, const char *suffix, int i) {
    snprintf(out, cap, "%s/enclave-%d%s", dir, i, suffix);
}

/* What devnet.json says about the processes (binaries, count); 0 if there is
 * no usable devnet.json. */
static int read_files(const char *dir, devnet_files *f) {
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/devnet.json", dir);
    if (!exists(path)) return 0;
    json_t *v = km_tool_load_json(path);
    if (!v) return 0;
    const char *eb = json_string_value(json_object_get(v, "enclave_bin"));
    const char *gb = json_string_value(json_object_get(v, "gateway_bin"));
    json_t *encs = json_object_get(v, "enclaves");
    int ok = eb && gb && json_is_array(encs) && json_array_size(encs) >= 1 &&
             json_array_size(encs) <= MAX_ENCLAVES && strlen(eb) < PATH_MAX && strlen(gb) < PATH_MAX;
    if (ok) {
        snprintf(f->enclave_bin, sizeof f->enclave_bin, "%s", eb);
        snprintf(f->gateway_bin, sizeof f->gateway_bin, "%s", gb);
        f->n = json_array_size(encs);
    }
    json_decref(v);
    return ok;
}

/* How many of the devnet's processes run: *n_alive of *n_total. */
static void count_alive(const devnet_files *f, size_t *n_alive, size_t *n_total, json_t *procs) {
    char path[PATH_MAX + 64];
    *n_alive = 0;
    *n_total = f->n + 1;
    for (size_t i = 0; i <= f->n; i++) {
        int is_gw = i == f->n;
        if (is_gw)
            snprintf(path, sizeof path, "%s/gateway.pid", f->dir);
        else
            path_of(path, sizeof path, f->dir, ".pid", (int)i);
        pid_t pid = read_pid(path);
        int up = alive_as(pid, is_gw ? f->gateway_bin : f->enclave_bin);
        if (up) (*n_alive)++;
        if (procs) {
            char name[32];
            if (is_gw)
                snprintf(name, sizeof name, "gateway");
            else
                snprintf(name, sizeof name, "enclave-%d", (int)i);
            json_array_append_new(procs,
                                  json_pack("{s:s, s:i, s:b}", "name", name, "pid", (int)pid, "alive", up));
        }
    }
}

/* GET /api/v1/health: 1 if 200, 0 otherwise. */
static int gateway_healthy(km_ctx *ctx, const char *url, char *state, size_t cap) {
    km_client *c = NULL;
    if (km_client_new(&c, ctx, url) != KM_OK) return 0;
    km_client_set_timeout(c, 3000);
    km_client_response r;
    memset(&r, 0, sizeof r);
    int ok = 0;
    if (km_client_call(c, "GET", "/api/v1/health", NULL, NULL, &r) == KM_OK) {
        ok = r.status == 200;
        const char *s = json_string_value(json_object_get(r.json, "status"));
        snprintf(state, cap, "%s", s ? s : "unknown");
    } else {
        snprintf(state, cap, "unreachable");
    }
    km_client_response_clear(&r);
    km_client_free(c);
    return ok;
}

/* ---- up -------------------------------------------------------------------- */

static const char UP_HELP[] =
    "usage: keymeld devnet up [--dir DIR] [--enclaves N] [--port P]\n"
    "                         [--enclave-bin PATH] [--gateway-bin PATH]\n"
    "Start N (default 2) keymeld-enclave processes and a keymeld-gateway on 127.0.0.1:P\n"
    "(default: a free port) with their state in DIR (default ./" KM_TOOL_DEFAULT_DIR ").\n"
    "They keep running after the command returns; `keymeld devnet down` stops them.\n"
    "Running it again on a running devnet only says so; on a stopped one it restarts the\n"
    "same enclaves (same identities) and gateway (same database).\n";

static const char STATUS_HELP[] = "usage: keymeld devnet status [--dir DIR]\n"
                                  "Which devnet processes are alive, and the gateway's /health.\n";

static const char DOWN_HELP[] = "usage: keymeld devnet down [--dir DIR] [--purge]\n"
                                "Stop the devnet's processes (SIGTERM, then SIGKILL after 10 s) and remove\n"
                                "the pid files; --purge also removes DIR.\n";

typedef struct up_state {
    pid_t pids[MAX_ENCLAVES + 1];
    size_t n_started;
} up_state;

static void up_rollback(const devnet_files *f, up_state *u) {
    char path[PATH_MAX + 64];
    for (size_t i = 0; i < u->n_started; i++) {
        int is_gw = i == f->n;
        stop_pid(u->pids[i], is_gw ? f->gateway_bin : f->enclave_bin);
        if (is_gw)
            snprintf(path, sizeof path, "%s/gateway.pid", f->dir);
        else
            path_of(path, sizeof path, f->dir, ".pid", (int)i);
        (void)unlink(path);
    }
}

static int devnet_up(km_tool *t, int argc, char **argv) {
    const char *dir_opt = NULL, *ebin_opt = NULL, *gbin_opt = NULL;
    unsigned n_enc = 0, port = 0;
    km_opt opts[] = {{"--dir", &dir_opt, NULL, NULL},
                     {"--enclaves", NULL, NULL, &n_enc},
                     {"--port", NULL, NULL, &port},
                     {"--enclave-bin", &ebin_opt, NULL, NULL},
                     {"--gateway-bin", &gbin_opt, NULL, NULL},
                     {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc, argv, opts, UP_HELP, NULL, 0, NULL);
    if (rc) return rc;
    if (!dir_opt) dir_opt = t->devnet_dir ? t->devnet_dir : KM_TOOL_DEFAULT_DIR;
    if (n_enc > MAX_ENCLAVES) return km_tool_usage(t, "--enclaves must be 1..%d", MAX_ENCLAVES);
    if (port > 65535) return km_tool_usage(t, "--port must be 0..65535");

    if (mkdir(dir_opt, 0700) != 0 && errno != EEXIST)
        return km_tool_fail(t, KM_ERR_IO, "creating the state directory", strerror(errno));
    devnet_files *f = calloc(1, sizeof *f);
    if (!f) return km_tool_fail(t, KM_ERR_NOMEM, "devnet up", NULL);
    char dir[PATH_MAX];
    if (!realpath(dir_opt, dir)) {
        free(f);
        return km_tool_fail(t, KM_ERR_IO, "resolving the state directory", strerror(errno));
    }
    /* The state directory holds keys and the credential: owner only. */
    if (chmod(dir, 0700) != 0) {
        free(f);
        return km_tool_fail(t, KM_ERR_IO, "chmod 0700 of the state directory", strerror(errno));
    }
    km_tool_set_str(t, "dir", dir);
    char jpath[PATH_MAX + 64];
    snprintf(jpath, sizeof jpath, "%s/devnet.json", dir);

    if (read_files(dir, f)) {
        size_t alive, total;
        count_alive(f, &alive, &total, NULL);
        if (alive == total) {
            km_tool_devnet d;
            if (km_tool_devnet_load(dir, &d) == KM_OK) km_tool_set_str(t, "gateway_url", d.gateway_url);
            km_tool_set_str(t, "state", "already_up");
            km_tool_set_int(t, "enclaves", (long long)f->n);
            km_tool_say(t, "devnet in %s is already up (%zu enclaves, gateway %s)\n", dir, f->n,
                        km_tool_devnet_load(dir, &d) == KM_OK ? d.gateway_url : "?");
            free(f);
            return 0;
        }
        if (alive > 0) {
            free(f);
            fprintf(stderr,
                    "keymeld devnet up: %zu of %zu processes of %s are running; run `keymeld devnet down"
                    " --dir %s` first\n",
                    alive, total, dir, dir_opt);
            km_tool_set_str(t, "error", "devnet partially running");
            return KM_EXIT_FAIL;
        }
        if (n_enc && n_enc != f->n) {
            size_t had = f->n;
            free(f);
            return km_tool_usage(t, "the devnet in %s has %zu enclaves; purge it to change that", dir, had);
        }
        km_tool_say(t, "restarting the stopped devnet in %s\n", dir);
    } else {
        f->n = n_enc ? n_enc : 2;
    }
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    /* Absolute binary paths: the daemons run from DIR, and liveness checks
     * compare command lines. */
    if (!realpath(enclave_bin(ebin_opt), f->enclave_bin) || access(f->enclave_bin, X_OK) != 0 ||
        !realpath(gateway_bin(gbin_opt), f->gateway_bin) || access(f->gateway_bin, X_OK) != 0) {
        free(f);
        return km_tool_usage(t,
                             "keymeld-enclave or keymeld-gateway not found (--enclave-bin, --gateway-bin)");
    }

    up_state u;
    memset(&u, 0, sizeof u);
    km_err err = KM_OK;
    const char *what = "";
    char detail[PATH_MAX + 128] = "";
    char out[1024], path[PATH_MAX + 64], gw_x[65], pcr0[97];
    char pub[MAX_ENCLAVES][67];
    double t0 = km_tool_now_ms();
    km_spinner *sp = km_spinner_start(t, "starting the devnet");

    /* The gateway credential: the enclaves accept only this key's channel. */
    snprintf(path, sizeof path, "%s/gateway.key", dir);
    {
        const char *argv_c[] = {f->gateway_bin, "credential", exists(path) ? "show" : "new", path, NULL};
        if (km_devnet_run_capture(argv_c, out, sizeof out) != 0 || find_hex(out, 64, gw_x) != 0) {
            err = KM_ERR_IO;
            what = "making the gateway credential";
            goto fail;
        }
    }
    {
        const char *argv_m[] = {f->enclave_bin, "measure", NULL};
        if (km_devnet_run_capture(argv_m, out, sizeof out) != 0 || find_hex(out, 96, pcr0) != 0) {
            err = KM_ERR_IO;
            what = "measuring the enclave binary (PCR0)";
            goto fail;
        }
    }
    json_t *encs = json_array();
    for (size_t i = 0; i < f->n; i++) {
        char edir[PATH_MAX + 32], sealing[PATH_MAX + 64], ca[PATH_MAX + 64], sock[PATH_MAX + 64];
        path_of(edir, sizeof edir, dir, "", (int)i);
        snprintf(sealing, sizeof sealing, "%s/sealing.key", edir);
        snprintf(ca, sizeof ca, "%s/ca", edir);
        snprintf(sock, sizeof sock, "%s/enclave.sock", edir);
        if (strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            err = KM_ERR_ARG;
            what = "socket path";
            snprintf(detail, sizeof detail, "%s is too long for a Unix socket; use a shorter --dir", sock);
            json_decref(encs);
            goto fail;
        }
        if ((mkdir(edir, 0700) != 0 && errno != EEXIST) || chmod(edir, 0700) != 0) {
            err = KM_ERR_IO;
            what = "creating an enclave state directory";
            json_decref(encs);
            goto fail;
        }
        const char *a1[] = {f->enclave_bin, "sealing-key", "new", sealing, NULL};
        const char *a2[] = {f->enclave_bin, "dev-ca", "init", ca, NULL};
        const char *a3[] = {f->enclave_bin, "pubkey", "--state-dir", edir, "--sealing-key", sealing, NULL};
        if ((!exists(sealing) && km_devnet_run_capture(a1, out, sizeof out) != 0) ||
            (!exists(ca) && km_devnet_run_capture(a2, out, sizeof out) != 0) ||
            km_devnet_run_capture(a3, out, sizeof out) != 0 || find_hex(out, 66, pub[i]) != 0) {
            err = KM_ERR_IO;
            what = "preparing an enclave (sealing key, dev CA, identity)";
            json_decref(encs);
            goto fail;
        }
        char addr[PATH_MAX + 80], root[PATH_MAX + 80], log[PATH_MAX + 64];
        snprintf(addr, sizeof addr, "unix:%s", sock);
        snprintf(root, sizeof root, "%s/root.pem", ca);
        path_of(log, sizeof log, dir, ".log", (int)i);
        const char *run[] = {
            f->enclave_bin,  "run", "--listen", addr, "--state-dir", edir, "--sealing-key", sealing,
            "--gateway-key", gw_x,  "--dev-ca", ca,   NULL};
        pid_t pid = daemonize(run, log, dir);
        if (pid < 0) {
            err = KM_ERR_IO;
            what = "starting an enclave";
            json_decref(encs);
            goto fail;
        }
        u.pids[u.n_started++] = pid;
        path_of(path, sizeof path, dir, ".pid", (int)i);
        if (write_pid(path, pid) != KM_OK) {
            err = KM_ERR_IO;
            what = "writing a pid file";
            json_decref(encs);
            goto fail;
        }
        json_array_append_new(encs, json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "id", (int)i,
                                              "public_key_hex", pub[i], "ca_root_path", root, "pcr0_hex",
                                              pcr0, "address", addr, "log", log));
    }
    /* Wait (10 s) until every enclave accepts connections. */
    for (size_t i = 0; i < f->n; i++) {
        char sock[PATH_MAX + 64];
        path_of(sock, sizeof sock, dir, "/enclave.sock", (int)i);
        int ok = 0;
        for (int k = 0; k < 1000 && !ok; k++) {
            ok = unix_connects(sock);
            if (!ok && !alive_started(u.pids[i])) break;
            if (!ok) sleep_ms(10);
        }
        if (!ok) {
            err = KM_ERR_IO;
            what = "waiting for an enclave";
            path_of(detail, sizeof detail, dir, ".log", (int)i);
            json_decref(encs);
            goto fail;
        }
    }

    /* The gateway: config, then start and wait for its ready file. */
    {
        json_t *cfg_encs = json_array();
        for (size_t i = 0; i < f->n; i++)
            json_array_append_new(cfg_encs, json_pack("{s:i, s:O, s:s}", "id", (int)i, "address",
                                                      json_object_get(json_array_get(encs, i), "address"),
                                                      "public_key", pub[i]));
        char listen[32], db[PATH_MAX + 32], key[PATH_MAX + 32];
        snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
        snprintf(db, sizeof db, "%s/gateway.db", dir);
        snprintf(key, sizeof key, "%s/gateway.key", dir);
        /* A fixed instance name: a restarted devnet gateway takes its
         * sessions back at once instead of waiting for the old leases. */
        json_t *cfg =
            json_pack("{s:s, s:s, s:s, s:s, s:o}", "listen", listen, "database", db, "gateway_key_file", key,
                      "instance_name", "keymeld-devnet", "enclaves", cfg_encs);
        snprintf(path, sizeof path, "%s/gateway.json", dir);
        err = cfg ? km_tool_write_json(path, cfg, 0600) : KM_ERR_NOMEM;
        json_decref(cfg);
        if (err) {
            what = "writing the gateway config";
            json_decref(encs);
            goto fail;
        }
    }
    char ready[PATH_MAX + 32], log[PATH_MAX + 32], url[64] = "";
    snprintf(ready, sizeof ready, "%s/gateway.ready", dir);
    snprintf(log, sizeof log, "%s/gateway.log", dir);
    (void)unlink(ready);
    {
        const char *run[] = {f->gateway_bin, "--config", path, "--ready-file", ready, NULL};
        pid_t pid = daemonize(run, log, dir);
        if (pid < 0) {
            err = KM_ERR_IO;
            what = "starting the gateway";
            json_decref(encs);
            goto fail;
        }
        u.pids[u.n_started++] = pid; /* index f->n: the gateway */
        snprintf(path, sizeof path, "%s/gateway.pid", dir);
        if (write_pid(path, pid) != KM_OK) {
            err = KM_ERR_IO;
            what = "writing a pid file";
            json_decref(encs);
            goto fail;
        }
        for (int k = 0; k < 2000 && !url[0]; k++) {
            char buf[32];
            int fd = open(ready, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                ssize_t n = read(fd, buf, sizeof buf - 1);
                close(fd);
                if (n > 1 && buf[n - 1] == '\n') {
                    buf[n - 1] = '\0';
                    long p = strtol(buf, NULL, 10);
                    if (p > 0 && p < 65536) snprintf(url, sizeof url, "http://127.0.0.1:%ld", p);
                }
            }
            if (!url[0] && !alive_started(pid)) break;
            if (!url[0]) sleep_ms(10);
        }
        if (!url[0]) {
            err = KM_ERR_IO;
            what = "waiting for the gateway";
            snprintf(detail, sizeof detail, "see %s", log);
            json_decref(encs);
            goto fail;
        }
    }
    /* Ready means listening; healthy means every enclave is connected. */
    char state[32] = "";
    int healthy = 0;
    for (int k = 0; k < 200 && !healthy; k++) {
        healthy = gateway_healthy(t->ctx, url, state, sizeof state);
        if (!healthy) sleep_ms(50);
    }
    if (!healthy) {
        err = KM_ERR_IO;
        what = "waiting for the gateway to be healthy";
        snprintf(detail, sizeof detail, "/health says %s; see %s", state, log);
        json_decref(encs);
        goto fail;
    }
    {
        json_t *desc = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:o}", "version", 1, "dir", dir,
                                 "gateway_url", url, "enclave_bin", f->enclave_bin, "gateway_bin",
                                 f->gateway_bin, "gateway_log", log, "enclaves", encs);
        err = desc ? km_tool_write_json(jpath, desc, 0644) : KM_ERR_NOMEM;
        json_decref(desc);
        if (err) {
            what = "writing devnet.json";
            goto fail;
        }
    }
    km_spinner_stop(sp);
    km_tool_set_str(t, "state", "started");
    km_tool_set_str(t, "gateway_url", url);
    km_tool_set_str(t, "devnet_json", jpath);
    km_tool_set_int(t, "enclaves", (long long)f->n);
    km_tool_set_str(t, "pcr0_hex", pcr0);
    km_tool_say(t, "devnet up in %.1f s\n  gateway:  %s (pid %d, log %s)\n", (km_tool_now_ms() - t0) / 1000.0,
                url, (int)u.pids[f->n], log);
    for (size_t i = 0; i < f->n; i++)
        km_tool_say(t, "  enclave %zu: pid %d, key %s\n", i, (int)u.pids[i], pub[i]);
    km_tool_say(t, "  PCR0 (SHA-384 of %s): %s\n  description: %s\n", f->enclave_bin, pcr0, jpath);
    free(f);
    return 0;
fail:
    km_spinner_stop(sp);
    up_rollback(f, &u);
    free(f);
    return km_tool_fail(t, err, what, detail);
}

/* ---- status ----------------------------------------------------------------- */

static int devnet_status(km_tool *t, int argc, char **argv) {
    const char *dir_opt = NULL;
    km_opt opts[] = {{"--dir", &dir_opt, NULL, NULL}, {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc, argv, opts, STATUS_HELP, NULL, 0, NULL);
    if (rc) return rc;
    if (!dir_opt) dir_opt = t->devnet_dir ? t->devnet_dir : KM_TOOL_DEFAULT_DIR;
    devnet_files *f = calloc(1, sizeof *f);
    if (!f) return km_tool_fail(t, KM_ERR_NOMEM, "devnet status", NULL);
    if (!read_files(dir_opt, f)) {
        free(f);
        km_tool_set_str(t, "state", "absent");
        km_tool_say(t, "no devnet in %s\n", dir_opt);
        fprintf(stderr, "keymeld devnet status: no devnet in %s\n", dir_opt);
        return KM_EXIT_UNREACHABLE;
    }
    json_t *procs = json_array();
    size_t alive, total;
    count_alive(f, &alive, &total, procs);
    km_tool_devnet d;
    char state[32] = "unknown";
    int healthy = 0;
    if (km_tool_devnet_load(dir_opt, &d) == KM_OK && alive > 0)
        healthy = gateway_healthy(t->ctx, d.gateway_url, state, sizeof state);
    else
        snprintf(d.gateway_url, sizeof d.gateway_url, "?");
    const char *overall = alive == total && healthy ? "up" : alive == 0 ? "down" : "degraded";
    km_tool_set_str(t, "state", overall);
    km_tool_set_str(t, "gateway_url", d.gateway_url);
    km_tool_set_str(t, "health", state);
    km_tool_set_int(t, "alive", (long long)alive);
    km_tool_set_int(t, "total", (long long)total);
    if (t->out) json_object_set(t->out, "processes", procs);
    km_tool_say(t, "devnet %s: %s (%zu of %zu processes alive; gateway %s: %s)\n", dir_opt, overall, alive,
                total, d.gateway_url, state);
    for (size_t i = 0; i < json_array_size(procs); i++) {
        json_t *p = json_array_get(procs, i);
        km_tool_say(t, "  %-10s pid %-7d %s\n", json_string_value(json_object_get(p, "name")),
                    (int)json_integer_value(json_object_get(p, "pid")),
                    json_is_true(json_object_get(p, "alive")) ? "alive" : "not running");
    }
    json_decref(procs);
    free(f);
    if (!strcmp(overall, "up")) return 0;
    return alive == 0 ? KM_EXIT_UNREACHABLE : KM_EXIT_FAIL;
}

/* ---- down ------------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int devnet_down(km_tool *t, int argc, char **argv) {
    const char *dir_opt = NULL;
    int purge = 0;
    km_opt opts[] = {
        {"--dir", &dir_opt, NULL, NULL}, {"--purge", NULL, &purge, NULL}, {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc, argv, opts, DOWN_HELP, NULL, 0, NULL);
    if (rc) return rc;
    if (!dir_opt) dir_opt = t->devnet_dir ? t->devnet_dir : KM_TOOL_DEFAULT_DIR;
    devnet_files *f = calloc(1, sizeof *f);
    if (!f) return km_tool_fail(t, KM_ERR_NOMEM, "devnet down", NULL);
    if (!read_files(dir_opt, f)) {
        free(f);
        km_tool_set_str(t, "state", "absent");
        km_tool_say(t, "no devnet in %s: nothing to stop\n", dir_opt);
        return 0;
    }
    size_t stopped = 0;
    char path[PATH_MAX + 64];
    /* The gateway first: it must not see the enclaves vanish and retry. */
    for (size_t k = 0; k <= f->n; k++) {
        size_t i = k == 0 ? f->n : k - 1;
        int is_gw = i == f->n;
        if (is_gw)
            snprintf(path, sizeof path, "%s/gateway.pid", f->dir);
        else
            path_of(path, sizeof path, f->dir, ".pid", (int)i);
        pid_t pid = read_pid(path);
        stopped += (size_t)stop_pid(pid, is_gw ? f->gateway_bin : f->enclave_bin);
        (void)unlink(path);
    }
    km_tool_set_int(t, "stopped", (long long)stopped);
    km_tool_say(t, "devnet %s: stopped %zu process%s\n", dir_opt, stopped, stopped == 1 ? "" : "es");
    if (purge) {
        /* Only a directory that is a devnet (it has devnet.json) is removed. */
        if (nftw(dir_opt, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
            free(f);
            return km_tool_fail(t, KM_ERR_IO, "removing the state directory", strerror(errno));
        }
        km_tool_say(t, "removed %s\n", dir_opt);
        km_tool_set_str(t, "state", "purged");
    } else {
        km_tool_set_str(t, "state", "down");
    }
    free(f);
    return 0;
}

int km_cmd_devnet(km_tool *t, int argc, char **argv) {
    static const char help[] =
        "usage: keymeld devnet up|status|down [options] (see `keymeld devnet up --help`)\n";
    static const km_tool_sub subs[] = {
        {"up", "keymeld devnet up", devnet_up},
        {"status", "keymeld devnet status", devnet_status},
        {"down", "keymeld devnet down", devnet_down},
    };
    t->prog = "keymeld devnet";
    return km_tool_dispatch(t, "devnet", help, subs, sizeof subs / sizeof subs[0], argc, argv);
}
