/* harness.c — see harness.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <secp256k1_extrakeys.h>

#include "keymeld/aead.h"
#include "keymeld/hex.h"
#include "net/net.h"
#include "tests/enclave/harness.h"

void km_test_keypair(km_ctx *ctx, unsigned char sec[32], unsigned char pub33[33], unsigned char x32[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_keypair kp;
    do {
        if (km_random_bytes(sec, 32) != KM_OK) abort();
    } while (!secp256k1_keypair_create(secp, &kp, sec));
    secp256k1_pubkey pk;
    secp256k1_xonly_pubkey xo;
    size_t len = 33;
    if (!secp256k1_keypair_pub(secp, &pk, &kp) || !secp256k1_keypair_xonly_pub(secp, &xo, NULL, &kp)) abort();
    if (pub33) secp256k1_ec_pubkey_serialize(secp, pub33, &len, &pk, SECP256K1_EC_COMPRESSED);
    if (x32) secp256k1_xonly_pubkey_serialize(secp, x32, &xo);
}

/* Runs argv to completion, capturing stdout into out (NUL-terminated). */
static int run_capture(char *const argv[], char *out, size_t cap) {
    int p[2];
    if (pipe(p) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t r;
    while ((r = read(p[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int spawn(km_test_enclave *t) {
    char sealing[300], gw[65], ca[300];
    snprintf(sealing, sizeof sealing, "%s/sealing.key", t->dir);
    snprintf(ca, sizeof ca, "%s/ca", t->dir);
    if (km_hex_encode(gw, sizeof gw, t->gw_x, 32) != KM_OK) return -1;
    /* The identity is created (or loaded) by `pubkey` before `run` starts. */
    char *pk_argv[] = {KM_ENCLAVE_BIN, "pubkey", "--state-dir", t->dir, "--sealing-key", sealing, NULL};
    char out[256];
    if (run_capture(pk_argv, out, sizeof out) != 0 || strlen(out) < 66 ||
        km_hex_decode(t->pub, 33, out, 66) != KM_OK)
        return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        /* The enclave's log goes to DIR/enclave.log: tests grep it for secrets. */
        char log[300];
        snprintf(log, sizeof log, "%s/enclave.log", t->dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) dup2(fd, 2);
        const char *argv[24] = {KM_ENCLAVE_BIN,  "run",   "--listen",      t->addr, "--state-dir", t->dir,
                                "--sealing-key", sealing, "--gateway-key", gw,      "--dev-ca",    ca};
        int n = 12;
        for (int i = 0; t->extra[i] && i < 8; i++)
            argv[n++] = t->extra[i];
        argv[n] = NULL;
        execv(KM_ENCLAVE_BIN, (char *const *)argv);
        _exit(127);
    }
    t->pid = pid;
    /* Wait (bounded) until the socket accepts. */
    for (int i = 0; i < 500; i++) {
        km_err err;
        int fd = km_net_connect(t->addr, &err);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

int km_test_enclave_start(km_ctx *ctx, km_test_enclave *t) {
    return km_test_enclave_start_with(ctx, t, NULL);
}

int km_test_enclave_start_with(km_ctx *ctx, km_test_enclave *t, const char *const *extra) {
    memset(t, 0, sizeof *t);
    for (int i = 0; extra && extra[i] && i < 8; i++)
        t->extra[i] = extra[i];
    snprintf(t->dir, sizeof t->dir, "/tmp/km-enclave-XXXXXX");
    if (!mkdtemp(t->dir)) return -1;
    snprintf(t->addr, sizeof t->addr, "unix:%s/enclave.sock", t->dir);
    char path[300];
    snprintf(path, sizeof path, "%s/sealing.key", t->dir);
    char *argv[] = {KM_ENCLAVE_BIN, "sealing-key", "new", path, NULL};
    char out[16];
    if (run_capture(argv, out, sizeof out) != 0) return -1;
    snprintf(path, sizeof path, "%s/ca", t->dir);
    char *ca_argv[] = {KM_ENCLAVE_BIN, "dev-ca", "init", path, NULL};
    if (run_capture(ca_argv, out, sizeof out) != 0) return -1;
    km_test_keypair(ctx, t->gw_sec, NULL, t->gw_x);
    return spawn(t);
}

int km_test_enclave_restart(km_test_enclave *t) {
    return spawn(t);
}

int km_test_enclave_stop(km_test_enclave *t) {
    if (t->pid <= 0) return -1;
    kill(t->pid, SIGTERM);
    int st = 0;
    while (waitpid(t->pid, &st, 0) < 0 && errno == EINTR) {
    }
    t->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void km_test_enclave_kill(km_test_enclave *t) {
    if (t->pid <= 0) return;
    kill(t->pid, SIGKILL);
    while (waitpid(t->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    t->pid = 0;
}

void km_test_enclave_destroy(km_test_enclave *t) {
    if (t->pid > 0) km_test_enclave_stop(t);
    char cmd[400];
    if (t->dir[0] && strncmp(t->dir, "/tmp/km-enclave-", 16) == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
        if (system(cmd) != 0) fprintf(stderr, "harness: cannot remove %s\n", t->dir);
    }
}

km_err km_test_enclave_connect(km_ctx *ctx, const km_test_enclave *t, km_enclave_conn *c) {
    return km_enclave_conn_open(c, ctx, t->addr, t->pub, t->gw_sec);
}
