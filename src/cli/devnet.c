/* devnet.c — see devnet.h. */
#include "cli/devnet.h"

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

#include <secp256k1_extrakeys.h>

#include "keymeld/aead.h"
#include "keymeld/hex.h"
#include "keymeld/secret.h"
#include "net/net.h"

km_err km_devnet_keypair(km_ctx *ctx, unsigned char sec[32], unsigned char pub33[33], unsigned char x32[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_keypair kp;
    do {
        if (km_random_bytes(sec, 32) != KM_OK) {
            km_wipe(sec, 32);
            return KM_ERR_RANDOM;
        }
    } while (!secp256k1_keypair_create(secp, &kp, sec));
    secp256k1_pubkey pk;
    secp256k1_xonly_pubkey xo;
    size_t len = 33;
    km_err err = KM_OK;
    if (!secp256k1_keypair_pub(secp, &pk, &kp) || !secp256k1_keypair_xonly_pub(secp, &xo, NULL, &kp))
        err = KM_ERR_CRYPTO;
    if (!err && pub33 && !secp256k1_ec_pubkey_serialize(secp, pub33, &len, &pk, SECP256K1_EC_COMPRESSED))
        err = KM_ERR_CRYPTO;
    if (!err && x32 && !secp256k1_xonly_pubkey_serialize(secp, x32, &xo)) err = KM_ERR_CRYPTO;
    km_wipe(&kp, sizeof kp);
    if (err) km_wipe(sec, 32);
    return err;
}

/* Runs argv to completion, capturing stdout into out (NUL-terminated);
 * returns the exit status or -1. */
int km_devnet_run_capture(const char *const argv[], char *out, size_t cap) {
    int p[2];
    if (cap == 0 || pipe2(p, O_CLOEXEC) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        if (dup2(p[1], 1) < 0) _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    for (;;) {
        ssize_t r = got + 1 < cap ? read(p[0], out + got, cap - 1 - got) : 0;
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    out[got] = '\0';
    close(p[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static km_err spawn(km_devnet_enclave *t) {
    char sealing[300], gw[65], ca[300];
    snprintf(sealing, sizeof sealing, "%s/sealing.key", t->dir);
    snprintf(ca, sizeof ca, "%s/ca", t->dir);
    if (km_hex_encode(gw, sizeof gw, t->gw_x, 32) != KM_OK) return KM_ERR_ARG;
    /* The identity is created (or loaded) by `pubkey` before `run` starts. */
    char *pk_argv[] = {(char *)t->bin, "pubkey", "--state-dir", t->dir, "--sealing-key", sealing, NULL};
    char out[256];
    if (km_devnet_run_capture((const char *const *)pk_argv, out, sizeof out) != 0 || strlen(out) < 66 ||
        km_hex_decode(t->pub, 33, out, 66) != KM_OK)
        return KM_ERR_IO;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return KM_ERR_IO;
    if (pid == 0) {
        /* A development enclave must not outlive whoever started it (a demo
         * killed by ^C or SIGPIPE, a crashing test): it would keep running
         * with secrets in memory and nobody to stop it. The getppid check
         * closes the race with a parent that died before prctl. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(126);
        /* The enclave's log goes to DIR/enclave.log (tests grep it for secrets). */
        char log[300];
        snprintf(log, sizeof log, "%s/enclave.log", t->dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) dup2(fd, 2);
        const char *argv[24] = {t->bin,          "run",   "--listen",      t->addr, "--state-dir", t->dir,
                                "--sealing-key", sealing, "--gateway-key", gw,      "--dev-ca",    ca};
        int n = 12;
        for (int i = 0; i < KM_DEVNET_MAX_EXTRA && t->extra[i]; i++)
            argv[n++] = t->extra[i];
        argv[n] = NULL;
        execv(t->bin, (char *const *)argv);
        _exit(127);
    }
    t->pid = pid;
    /* Wait (bounded, 30 s) until the socket accepts; give up early if it
     * died. Natively it accepts within milliseconds; the bound leaves room
     * for an enclave started under valgrind (scripts/valgrind). */
    for (int i = 0; i < 3000; i++) {
        km_err err;
        int fd = km_net_connect(t->addr, &err);
        if (fd >= 0) {
            close(fd);
            return KM_OK;
        }
        int st;
        if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
            t->pid = 0;
            return KM_ERR_IO;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return KM_ERR_IO;
}

km_err km_devnet_start(km_ctx *ctx, km_devnet_enclave *t, const char *bin, const char *dir,
                       const char *const *extra) {
    return km_devnet_start_shared(ctx, t, bin, dir, extra, NULL);
}

km_err km_devnet_start_shared(km_ctx *ctx, km_devnet_enclave *t, const char *bin, const char *dir,
                              const char *const *extra, const unsigned char gateway_seckey[32]) {
    if (!t) return KM_ERR_ARG;
    memset(t, 0, sizeof *t);
    if (!ctx || !bin) return KM_ERR_ARG;
    t->bin = bin;
    for (int i = 0; extra && i < KM_DEVNET_MAX_EXTRA && extra[i]; i++)
        t->extra[i] = extra[i];
    if (dir) {
        /* Room for "/enclave.sock" and friends inside addr/paths. */
        if (strlen(dir) + 1 > sizeof t->dir || strlen(dir) > 200) return KM_ERR_ARG;
        snprintf(t->dir, sizeof t->dir, "%s", dir);
    } else {
        snprintf(t->dir, sizeof t->dir, "/tmp/km-enclave-XXXXXX");
        if (!mkdtemp(t->dir)) {
            t->dir[0] = '\0';
            return KM_ERR_IO;
        }
        t->owns_dir = 1;
    }
    snprintf(t->addr, sizeof t->addr, "unix:%s/enclave.sock", t->dir);
    char path[300];
    snprintf(path, sizeof path, "%s/sealing.key", t->dir);
    char *argv[] = {(char *)bin, "sealing-key", "new", path, NULL};
    char out[16];
    if (km_devnet_run_capture((const char *const *)argv, out, sizeof out) != 0) return KM_ERR_IO;
    snprintf(path, sizeof path, "%s/ca", t->dir);
    char *ca_argv[] = {(char *)bin, "dev-ca", "init", path, NULL};
    if (km_devnet_run_capture((const char *const *)ca_argv, out, sizeof out) != 0) return KM_ERR_IO;
    km_err err;
    if (gateway_seckey) {
        secp256k1_keypair kp;
        secp256k1_xonly_pubkey x;
        if (!secp256k1_keypair_create(km_ctx_secp(ctx), &kp, gateway_seckey) ||
            !secp256k1_keypair_xonly_pub(km_ctx_secp(ctx), &x, NULL, &kp) ||
            !secp256k1_xonly_pubkey_serialize(km_ctx_secp(ctx), t->gw_x, &x)) {
            km_wipe(&kp, sizeof kp);
            return KM_ERR_INVALID_KEY;
        }
        km_wipe(&kp, sizeof kp);
        memcpy(t->gw_sec, gateway_seckey, 32);
    } else {
        err = km_devnet_keypair(ctx, t->gw_sec, NULL, t->gw_x);
        if (err) return err;
    }
    return spawn(t);
}

km_err km_devnet_restart(km_devnet_enclave *t) {
    if (!t || !t->bin) return KM_ERR_ARG;
    if (t->pid > 0) return KM_ERR_STATE;
    return spawn(t);
}

int km_devnet_stop(km_devnet_enclave *t) {
    if (!t || t->pid <= 0) return -1;
    kill(t->pid, SIGTERM);
    int st = 0;
    while (waitpid(t->pid, &st, 0) < 0 && errno == EINTR) {
    }
    t->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void km_devnet_kill(km_devnet_enclave *t) {
    if (!t || t->pid <= 0) return;
    kill(t->pid, SIGKILL);
    while (waitpid(t->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    t->pid = 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void km_devnet_destroy(km_devnet_enclave *t) {
    if (!t) return;
    if (t->pid > 0) (void)km_devnet_stop(t);
    /* Only a directory we made ourselves is removed: a caller's directory
     * holds the enclave identity they asked to keep. */
    if (t->owns_dir && t->dir[0] && strncmp(t->dir, "/tmp/km-enclave-", 16) == 0) {
        if (nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
            fprintf(stderr, "devnet: cannot remove %s\n", t->dir);
    }
    km_wipe(t->gw_sec, sizeof t->gw_sec);
    t->owns_dir = 0;
}

km_err km_devnet_connect(km_ctx *ctx, const km_devnet_enclave *t, km_enclave_conn *c) {
    if (!t) return KM_ERR_ARG;
    return km_enclave_conn_open(c, ctx, t->addr, t->pub, t->gw_sec);
}
