/* keymeld-gateway — the REST gateway: loads its configuration, opens the
 * store, connects to the enclaves, resumes every unfinished session and
 * serves the API until SIGTERM/SIGINT.
 *
 *   keymeld-gateway --config FILE [--listen HOST:PORT] [--database PATH]
 *                   [--ready-file PATH] [--check-config]
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
#include <unistd.h>

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>

#include "gateway/gateway.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/secret.h"
#include "net/process.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: keymeld-gateway --config FILE [--listen HOST:PORT] [--database PATH]\n"
            "                       [--ready-file PATH] [--check-config]\n"
            "       keymeld-gateway credential new FILE    make the gateway credential (mode 0600) and\n"
            "                                              print its public key for `keymeld-enclave "
            "--gateway-key`\n"
            "       keymeld-gateway credential show FILE   print the public key of an existing credential\n"
            "\n"
            "  --config FILE      JSON configuration (docs/OPERATIONS.md); also KEYMELD_GATEWAY_CONFIG\n"
            "  --listen HOST:PORT override 'listen' (port 0: any free port); also KEYMELD_LISTEN\n"
            "  --database PATH    override 'database'; also KEYMELD_DATABASE\n"
            "  --ready-file PATH  once listening, write the port number there (atomically)\n"
            "  --check-config     validate the configuration, key file and database, then exit\n");
}

static int write_ready_file(const char *path, uint16_t port) {
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "%u\n", port);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        return -1;
    }
    fclose(f);
    return rename(tmp, path);
}

static void open_stores(km_gateway *gw, size_t n, char *msg, size_t msg_len, km_err *err) {
    gw->stores = calloc(n, sizeof *gw->stores);
    gw->free_stores = calloc(n, sizeof *gw->free_stores);
    if (!gw->stores || !gw->free_stores) {
        *err = KM_ERR_NOMEM;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        *err = km_store_open(&gw->stores[i], gw->cfg.database, msg, msg_len);
        if (*err) return;
        gw->n_stores++;
        gw->free_stores[gw->n_free++] = gw->stores[i];
    }
}

/* `credential new|show FILE`: the enclaves trust the gateway by this key. */
static int credential_cmd(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[2], "new") && strcmp(argv[2], "show"))) {
        usage(stderr);
        return 2;
    }
    const char *path = argv[3];
    unsigned char sec[32];
    char msg[512];
    if (!strcmp(argv[2], "new")) {
        char hex[66];
        do {
            if (km_random_bytes(sec, 32) != KM_OK) {
                fprintf(stderr, "keymeld-gateway: no randomness\n");
                return 1;
            }
        } while (!secp256k1_ec_seckey_verify(secp256k1_context_static, sec));
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            fprintf(stderr, "keymeld-gateway: cannot create %s: %s\n", path, strerror(errno));
            km_wipe(sec, 32);
            return 1;
        }
        int ok = km_hex_encode(hex, sizeof hex, sec, 32) == KM_OK;
        hex[64] = '\n';
        ok = ok && write(fd, hex, 65) == 65 && fsync(fd) == 0;
        km_wipe(hex, sizeof hex);
        if (close(fd) != 0 || !ok) {
            fprintf(stderr, "keymeld-gateway: cannot write %s\n", path);
            unlink(path);
            km_wipe(sec, 32);
            return 1;
        }
    } else if (km_gw_config_read_key(path, sec, msg, sizeof msg) != KM_OK) {
        fprintf(stderr, "keymeld-gateway: %s\n", msg);
        return 1;
    }
    secp256k1_keypair kp;
    secp256k1_xonly_pubkey x;
    unsigned char x32[32];
    char xhex[65];
    km_ctx *ctx = NULL;
    int ok = km_ctx_create(&ctx) == KM_OK && secp256k1_keypair_create(km_ctx_secp(ctx), &kp, sec) &&
             secp256k1_keypair_xonly_pub(km_ctx_secp(ctx), &x, NULL, &kp) &&
             secp256k1_xonly_pubkey_serialize(km_ctx_secp(ctx), x32, &x) &&
             km_hex_encode(xhex, sizeof xhex, x32, 32) == KM_OK;
    km_ctx_destroy(ctx);
    km_wipe(&kp, sizeof kp);
    km_wipe(sec, 32);
    if (!ok) return 1;
    printf("%s\n", xhex);
    return 0;
}

int main(int argc, char **argv) {
    km_process_tune_malloc();
    if (argc >= 2 && !strcmp(argv[1], "credential")) return credential_cmd(argc, argv);
    const char *config = getenv("KEYMELD_GATEWAY_CONFIG"), *listen_arg = NULL, *db_arg = NULL, *ready = NULL;
    int check_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--check-config")) {
            check_only = 1;
        } else if (i + 1 < argc && !strcmp(a, "--config")) {
            config = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--listen")) {
            listen_arg = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--database")) {
            db_arg = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--ready-file")) {
            ready = argv[++i];
        } else {
            fprintf(stderr, "keymeld-gateway: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    /* Nothing of the gateway is secret enough to need this, but its memory
     * holds the enclave credential: no core dumps, no ptrace by others. */
    prctl(PR_SET_DUMPABLE, 0);
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    /* Every waiting client holds a connection (a file descriptor): the usual
     * soft limit of 1024 would refuse clients long before
     * http_max_connections. Take what the hard limit allows. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max > 1048576 ? 1048576 : nofile.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &nofile) != 0)
            fprintf(stderr, "keymeld-gateway: cannot raise the open-file limit: %s\n", strerror(errno));
    }

    static km_gateway gw_storage;
    km_gateway *gw = &gw_storage;
    char msg[512] = "";
    km_gw_config_defaults(&gw->cfg);
    if (!config) {
        fprintf(stderr, "keymeld-gateway: no configuration (--config FILE or KEYMELD_GATEWAY_CONFIG)\n");
        return 2;
    }
    if (km_gw_config_load_file(&gw->cfg, config, msg, sizeof msg) ||
        km_gw_config_load_env(&gw->cfg, msg, sizeof msg)) {
        fprintf(stderr, "keymeld-gateway: configuration: %s\n", msg);
        return 2;
    }
    if (listen_arg && km_gw_config_set_listen(&gw->cfg, listen_arg)) {
        fprintf(stderr, "keymeld-gateway: --listen must be HOST:PORT\n");
        return 2;
    }
    if (db_arg) snprintf(gw->cfg.database, sizeof gw->cfg.database, "%s", db_arg);
    if (km_gw_config_validate(&gw->cfg, msg, sizeof msg)) {
        fprintf(stderr, "keymeld-gateway: configuration: %s\n", msg);
        return 2;
    }
    unsigned char gw_sec[32];
    if (km_gw_config_read_key(gw->cfg.gateway_key_file, gw_sec, msg, sizeof msg)) {
        fprintf(stderr, "keymeld-gateway: %s\n", msg);
        return 2;
    }
    /* Signals are taken by sigwait in the main thread; every thread created
     * from here on inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    km_err err = km_ctx_create(&gw->ctx);
    pthread_mutex_init(&gw->store_lock, NULL);
    pthread_cond_init(&gw->store_cond, NULL);
    size_t n_stores = gw->cfg.http_threads + gw->cfg.coordinator_workers + 2;
    if (!err) open_stores(gw, check_only ? 1 : n_stores, msg, sizeof msg, &err);
    if (err) {
        fprintf(stderr, "keymeld-gateway: database %s: %s%s%s\n", gw->cfg.database, km_strerror(err),
                msg[0] ? ": " : "", msg);
        goto out;
    }
    /* Record the configured enclaves with their pinned keys: a key that
     * changed for a known enclave id is refused (DUPLICATE) — an operator
     * must not silently swap an enclave under stored sessions. */
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++) {
        km_store_enclave e;
        memset(&e, 0, sizeof e);
        e.id = gw->cfg.enclaves[i].id;
        snprintf(e.address, sizeof e.address, "%s", gw->cfg.enclaves[i].address);
        memcpy(e.pubkey, gw->cfg.enclaves[i].pubkey, 33);
        km_sha256(e.fingerprint, e.pubkey, 33);
        if (check_only) { /* compare only: checking writes nothing */
            km_store_enclave have;
            err = km_store_enclave_get(gw->stores[0], e.id, &have);
            if (err == KM_ERR_NOT_FOUND)
                err = KM_OK;
            else if (!err && memcmp(have.pubkey, e.pubkey, 33))
                err = KM_ERR_DUPLICATE;
        } else {
            err = km_store_enclave_put(gw->stores[0], &e);
        }
        if (err) {
            fprintf(stderr, "keymeld-gateway: enclave %u: %s\n", e.id,
                    err == KM_ERR_DUPLICATE ? "its public key differs from the one pinned in the database"
                                            : km_strerror(err));
            goto out;
        }
    }
    if (check_only) {
        printf("keymeld-gateway: configuration OK (%zu enclaves, database %s)\n", gw->cfg.n_enclaves,
               gw->cfg.database);
        rc = 0;
        goto out;
    }
    unsigned char owner_rand[8];
    char owner_hex[17];
    if (km_random_bytes(owner_rand, sizeof owner_rand) ||
        km_hex_encode(owner_hex, sizeof owner_hex, owner_rand, 8)) {
        fprintf(stderr, "keymeld-gateway: no randomness\n");
        goto out;
    }
    /* The lease owner. A stable name lets a restarted gateway take its own
     * sessions back at once instead of waiting for its old leases to end; two
     * running gateways MUST have different names (docs/OPERATIONS.md). */
    char host[32] = "";
    if (gw->cfg.instance_name[0])
        snprintf(gw->owner, sizeof gw->owner, "%.47s", gw->cfg.instance_name);
    else if (gw->cfg.listen_port != 0 && gethostname(host, sizeof host - 1) == 0)
        snprintf(gw->owner, sizeof gw->owner, "%.31s:%u", host, gw->cfg.listen_port);
    else
        snprintf(gw->owner, sizeof gw->owner, "gw-%d-%s", (int)getpid(), owner_hex);
    gw->started_at = km_gw_now();

    km_pool_config pc;
    memset(&pc, 0, sizeof pc);
    pc.conns_per_enclave = gw->cfg.enclave_connections;
    pc.call_timeout_ms = gw->cfg.enclave_timeout_ms;
    pc.health_interval_ms = 2000;
    pc.backoff_min_ms = 100;
    pc.backoff_max_ms = 5000;
    km_pool_enclave_cfg *pe = calloc(gw->cfg.n_enclaves, sizeof *pe);
    if (!pe) goto out;
    for (size_t i = 0; i < gw->cfg.n_enclaves; i++) {
        pe[i].id = gw->cfg.enclaves[i].id;
        snprintf(pe[i].address, sizeof pe[i].address, "%s", gw->cfg.enclaves[i].address);
        memcpy(pe[i].pubkey, gw->cfg.enclaves[i].pubkey, 33);
    }
    err = km_pool_create(&gw->pool, gw->ctx, &pc, pe, gw->cfg.n_enclaves, gw_sec);
    free(pe);
    km_wipe(gw_sec, sizeof gw_sec);
    if (err) {
        fprintf(stderr, "keymeld-gateway: enclave pool: %s\n", km_strerror(err));
        goto out;
    }
    err = km_ratelimit_new(&gw->rate, gw->cfg.rate_per_key_per_second, gw->cfg.rate_burst_per_key,
                           gw->cfg.rate_limit_max_keys);
    if (err) {
        fprintf(stderr, "keymeld-gateway: rate limiter: %s\n", km_strerror(err));
        goto out;
    }
    err = km_coord_start(gw);
    if (err) {
        fprintf(stderr, "keymeld-gateway: coordinator: %s\n", km_strerror(err));
        goto out;
    }
    km_http_config hc;
    memset(&hc, 0, sizeof hc);
    hc.listen_host = gw->cfg.listen_host;
    hc.port = gw->cfg.listen_port;
    hc.max_body = gw->cfg.max_body_bytes;
    hc.threads = gw->cfg.http_threads;
    hc.max_connections = gw->cfg.http_max_connections;
    hc.connection_timeout_s = gw->cfg.max_wait_seconds + 30;
    hc.max_waiters = km_gw_config_max_waiters(&gw->cfg);
    hc.max_waiters_per_owner = gw->cfg.max_waiters_per_key;
    hc.max_body_total = gw->cfg.max_body_bytes_total;
    size_t n_routes;
    const km_http_route *routes = km_gw_routes(&n_routes);
    err = km_http_start(&gw->http, &hc, routes, n_routes, gw);
    if (err) {
        fprintf(stderr, "keymeld-gateway: cannot listen on %s:%u: %s\n", gw->cfg.listen_host,
                gw->cfg.listen_port, km_strerror(err));
        goto out;
    }
    uint16_t port = km_http_port(gw->http);
    fprintf(stderr, "keymeld-gateway %s listening on %s:%u (%zu enclaves, database %s)\n", KM_GW_VERSION,
            gw->cfg.listen_host, port, gw->cfg.n_enclaves, gw->cfg.database);
    if (ready && write_ready_file(ready, port) != 0) {
        fprintf(stderr, "keymeld-gateway: cannot write %s: %s\n", ready, strerror(errno));
        goto out;
    }
    int sig = 0;
    while (sigwait(&set, &sig) == 0)
        if (sig == SIGTERM || sig == SIGINT) break;
    fprintf(stderr, "keymeld-gateway: shutting down\n");
    rc = 0;
out:
    km_wipe(gw_sec, sizeof gw_sec);
    /* Order: stop taking requests, stop driving sessions, close enclaves,
     * close the database. Unfinished sessions resume at the next start. */
    km_coord_stop(gw); /* no worker touches the server after this */
    if (gw->http) km_http_stop(gw->http);
    gw->http = NULL;
    km_coord_free(gw);
    if (gw->pool) km_pool_destroy(gw->pool);
    km_ratelimit_free(gw->rate);
    for (size_t i = 0; i < gw->n_stores; i++)
        km_store_close(gw->stores[i]);
    free(gw->stores);
    free(gw->free_stores);
    if (gw->ctx) km_ctx_destroy(gw->ctx);
    return rc;
}
