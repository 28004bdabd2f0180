/* main.c — keymeld-enclave: the trusted signer process.
 *
 *   keymeld-enclave run --listen ADDR --state-dir DIR --sealing-key FILE
 *                       --gateway-key XONLY_HEX [--gateway-key ...] [--dev-ca DIR]
 *                       [--max-connections N]
 *   keymeld-enclave pubkey --state-dir DIR --sealing-key FILE
 *   keymeld-enclave sealing-key new FILE
 *   keymeld-enclave dev-ca init DIR
 *   keymeld-enclave measure
 *
 * ADDR is tcp:HOST:PORT, unix:PATH or vsock:CID:PORT.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "enclave/attest.h"
#include "enclave/enclave.h"
#include "enclave/identity.h"
#include "enclave/server.h"
#include "enclave/sessions.h"
#include "keymeld/aead.h"
#include "keymeld/hex.h"
#include "net/net.h"
#include "net/process.h"

#define MAX_GATEWAY_KEYS 16

static void usage(FILE *f) {
    fputs("usage:\n"
          "  keymeld-enclave run --listen ADDR --state-dir DIR --sealing-key FILE --gateway-key HEX\n"
          "                      [--gateway-key HEX ...] [--dev-ca DIR] [--max-connections N]\n"
          "                      [--max-keygens N] [--max-signings N] [--keygen-ttl S] [--signing-ttl S]\n"
          "                      [--handshake-timeout S]\n"
          "  keymeld-enclave pubkey --state-dir DIR --sealing-key FILE\n"
          "  keymeld-enclave sealing-key new FILE\n"
          "  keymeld-enclave dev-ca init DIR     create a development attestation CA\n"
          "  keymeld-enclave measure             print PCR0 (SHA-384 of this binary)\n"
          "ADDR: tcp:HOST:PORT | unix:PATH | vsock:CID:PORT\n"
          "HEX:  the gateway credential's x-only public key (64 hex digits)\n",
          f);
}

/* No core dumps, no ptrace by same-uid processes: secrets stay in this process. */
static int harden_process(void) {
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_CORE, &rl) != 0) return -1;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return -1;
    return 0;
}

typedef struct {
    const char *listen, *state_dir, *sealing_key, *dev_ca;
    unsigned char gateways[MAX_GATEWAY_KEYS][32];
    size_t n_gateways;
    int max_connections;
    uint64_t handshake_timeout_s;
    uint32_t max_keygens, max_signings;
    uint64_t keygen_ttl_s, signing_ttl_s;
} run_opts;

/* Parses a decimal in [lo, hi]; returns 0 or -1. */
static int parse_num(const char *name, const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*v == '-' || *end || errno || n < lo || n > hi) {
        fprintf(stderr, "keymeld-enclave: %s must be %llu..%llu\n", name, (unsigned long long)lo,
                (unsigned long long)hi);
        return -1;
    }
    *out = n;
    return 0;
}

static int parse_opts(int argc, char **argv, run_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_connections = 64;
    o->handshake_timeout_s = 10;
    o->max_keygens = 10000;
    o->max_signings = 10000;
    o->keygen_ttl_s = 86400;
    o->signing_ttl_s = 3600;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "keymeld-enclave: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--listen") == 0)
            o->listen = v;
        else if (strcmp(a, "--state-dir") == 0)
            o->state_dir = v;
        else if (strcmp(a, "--sealing-key") == 0)
            o->sealing_key = v;
        else if (strcmp(a, "--dev-ca") == 0)
            o->dev_ca = v;
        else if (strcmp(a, "--gateway-key") == 0) {
            if (o->n_gateways == MAX_GATEWAY_KEYS ||
                km_hex_decode(o->gateways[o->n_gateways], 32, v, strlen(v))) {
                fprintf(stderr,
                        "keymeld-enclave: --gateway-key must be 64 lowercase hex digits (max %d keys)\n",
                        MAX_GATEWAY_KEYS);
                return -1;
            }
            o->n_gateways++;
        } else if (strcmp(a, "--max-keygens") == 0 || strcmp(a, "--max-signings") == 0) {
            uint64_t n;
            if (parse_num(a, v, 1, 1000000, &n)) return -1;
            if (strcmp(a, "--max-keygens") == 0)
                o->max_keygens = (uint32_t)n;
            else
                o->max_signings = (uint32_t)n;
        } else if (strcmp(a, "--handshake-timeout") == 0) {
            if (parse_num(a, v, 1, 3600, &o->handshake_timeout_s)) return -1;
        } else if (strcmp(a, "--keygen-ttl") == 0 || strcmp(a, "--signing-ttl") == 0) {
            uint64_t *ttl = strcmp(a, "--keygen-ttl") == 0 ? &o->keygen_ttl_s : &o->signing_ttl_s;
            if (parse_num(a, v, 1, 31536000, ttl)) return -1;
        } else if (strcmp(a, "--max-connections") == 0) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 4096) {
                fprintf(stderr, "keymeld-enclave: --max-connections must be 1..4096\n");
                return -1;
            }
            o->max_connections = (int)n;
        } else {
            fprintf(stderr, "keymeld-enclave: unknown option %s\n", a);
            return -1;
        }
    }
    return 0;
}

/* Loads the identity: sealing key file -> sealer -> sealed enclave key. */
static int open_identity(km_enclave *e, const char *state_dir, const char *sealing_key) {
    const char *detail = "";
    km_secret *skey = NULL;
    km_sealer *sealer = NULL;
    km_err err = km_read_key_file(e->ctx, sealing_key, &skey, &detail);
    if (!err) {
        err = km_sealer_local_new(e->ctx, km_secret_cdata(skey), &sealer);
        detail = "cannot create the sealer";
    }
    if (!err) err = km_identity_load_or_create(e, sealer, state_dir, &detail);
    km_sealer_free(sealer);
    km_secret_free(skey);
    if (err) {
        fprintf(stderr, "keymeld-enclave: %s: %s (%s)\n", sealing_key, detail, km_strerror(err));
        return -1;
    }
    return 0;
}

typedef struct {
    km_enclave *e;
    int listen_fd;
    sigset_t set;
} signal_arg;

/* Signals are blocked everywhere and taken here: no async-signal-safety traps. */
static void *signal_main(void *p) {
    signal_arg *s = p;
    int sig;
    while (sigwait(&s->set, &sig) == 0) {
        if (sig == SIGTERM || sig == SIGINT) {
            s->e->stopping = 1;
            shutdown(s->listen_fd, SHUT_RDWR); /* wakes accept() */
            return NULL;
        }
    }
    return NULL;
}

static int cmd_run(int argc, char **argv) {
    run_opts o;
    if (parse_opts(argc, argv, &o) != 0) return 2;
    if (!o.listen || !o.state_dir || !o.sealing_key || o.n_gateways == 0) {
        usage(stderr);
        return 2;
    }
    if (harden_process() != 0) {
        perror("keymeld-enclave: cannot disable core dumps");
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    km_enclave e;
    memset(&e, 0, sizeof e);
    if (km_ctx_create(&e.ctx) != KM_OK) return 1;
    pthread_mutex_init(&e.lock, NULL);
    e.sessions = km_sessions_new();
    e.gateways = o.gateways;
    e.max_keygens = o.max_keygens;
    e.max_signings = o.max_signings;
    e.keygen_ttl_s = o.keygen_ttl_s;
    e.signing_ttl_s = o.signing_ttl_s;
    e.started_at = km_enclave_now();
    e.n_gateways = o.n_gateways;
    int rc = 1;
    if (km_random_bytes(e.boot_id, sizeof e.boot_id) != KM_OK) {
        fprintf(stderr, "keymeld-enclave: no randomness\n");
        return 1;
    }
    if (km_self_measure(e.pcr0) != 0) {
        fprintf(stderr, "keymeld-enclave: cannot measure the running binary\n");
    } else if (o.dev_ca && km_dev_ca_load(&e, o.dev_ca) != 0) {
        /* message printed */
    } else if (e.sessions && open_identity(&e, o.state_dir, o.sealing_key) == 0) {
        km_err err;
        int lfd = km_net_listen(o.listen, &err);
        if (lfd < 0) {
            fprintf(stderr, "keymeld-enclave: cannot listen on %s: %s\n", o.listen, km_strerror(err));
        } else {
            char fp[65];
            if (km_hex_encode(fp, sizeof fp, e.fingerprint, 32) == KM_OK)
                fprintf(stderr, "keymeld-enclave: listening on %s, key fingerprint %s\n", o.listen, fp);
            signal_arg sa = {&e, lfd, set};
            pthread_t st;
            int have_st = pthread_create(&st, NULL, signal_main, &sa) == 0;
            km_server_limits limits = {o.max_connections, (int)o.handshake_timeout_s, 0, NULL};
            rc = have_st && km_enclave_serve(&e, lfd, &limits) == 0 ? 0 : 1;
            if (have_st) {
                /* Wakes the signal thread if the loop ended without a signal. */
                pthread_kill(st, SIGTERM);
                pthread_join(st, NULL);
            }
            close(lfd);
            fprintf(stderr, "keymeld-enclave: shutting down\n");
        }
    }
    /* Every connection thread has been joined: wipe everything and leave
     * through the normal exit path (the sanitizer build checks for leaks). */
    km_sessions_free(e.sessions);
    e.sessions = NULL;
    km_secret_free(e.key);
    e.key = NULL;
    km_secret_free(e.dev_key);
    km_buf_free(&e.dev_leaf);
    km_buf_free(&e.dev_root);
    km_wipe(o.gateways, sizeof o.gateways);
    km_ctx_destroy(e.ctx);
    pthread_mutex_destroy(&e.lock);
    return rc;
}

static int cmd_pubkey(int argc, char **argv) {
    run_opts o;
    if (parse_opts(argc, argv, &o) != 0 || !o.state_dir || !o.sealing_key) {
        usage(stderr);
        return 2;
    }
    km_enclave e;
    memset(&e, 0, sizeof e);
    if (km_ctx_create(&e.ctx) != KM_OK) return 1;
    int rc = open_identity(&e, o.state_dir, o.sealing_key) == 0 ? 0 : 1;
    char hex[67];
    if (!rc && km_hex_encode(hex, sizeof hex, e.pub, 33) == KM_OK) printf("%s\n", hex);
    km_secret_free(e.key);
    km_ctx_destroy(e.ctx);
    return rc;
}

static int cmd_new_sealing_key(const char *path) {
    unsigned char key[32];
    char hex[65];
    if (km_random_bytes(key, 32) != KM_OK || km_hex_encode(hex, sizeof hex, key, 32) != KM_OK) return 1;
    km_wipe(key, sizeof key);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "keymeld-enclave: cannot create %s: %s\n", path, strerror(errno));
        km_wipe(hex, sizeof hex);
        return 1;
    }
    hex[64] = '\n';
    int ok = write(fd, hex, 65) == 65 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    km_wipe(hex, sizeof hex);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    km_process_tune_malloc();
    if (argc >= 2 && strcmp(argv[1], "run") == 0) return cmd_run(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "pubkey") == 0) return cmd_pubkey(argc - 2, argv + 2);
    if (argc == 4 && strcmp(argv[1], "sealing-key") == 0 && strcmp(argv[2], "new") == 0)
        return cmd_new_sealing_key(argv[3]);
    if (argc == 4 && strcmp(argv[1], "dev-ca") == 0 && strcmp(argv[2], "init") == 0)
        return km_dev_ca_init(argv[3]) == 0 ? 0 : 1;
    if (argc == 2 && strcmp(argv[1], "measure") == 0) {
        unsigned char m[48];
        char hex[97];
        if (km_self_measure(m) != 0 || km_hex_encode(hex, sizeof hex, m, 48) != KM_OK) return 1;
        printf("%s\n", hex);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
