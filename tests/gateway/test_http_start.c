/* test_http_start.c — a request that arrives while km_http_start is still
 * running must find the server published (found by keymeld-chaos: a gateway
 * restarted under clients that retry at once took SIGSEGV before it was
 * ready, because its handlers call km_http_wait_seq(gw->http, ...) and
 * gw->http was assigned only after libmicrohttpd had started accepting).
 *
 * The server is started and stopped many times on one port while client
 * threads keep sending requests to it; every handler call records whether
 * the server pointer the application got from km_http_start was already
 * set. The window is short, so one cycle rarely hits it; the many cycles with
 * clients waiting at the door make a regression show up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gateway/http.h"

#define CYCLES  100
#define CLIENTS 3

typedef struct app {
    km_http_server *srv; /* written by km_http_start, as the gateway's gw->http */
    atomic_int calls;
    atomic_int unpublished; /* handler calls that found no server */
} app;

static app g_app;
static atomic_int g_port;
static atomic_int g_stop;

static void h_ping(void *p, const km_http_request *req, km_http_response *resp) {
    (void)req;
    app *a = p;
    atomic_fetch_add(&a->calls, 1);
    km_http_server *s = __atomic_load_n(&a->srv, __ATOMIC_ACQUIRE);
    if (!s)
        atomic_fetch_add(&a->unpublished, 1);
    else
        (void)km_http_wait_seq(s, "ping"); /* what the gateway's long-poll handlers do first */
    km_http_error(resp, 200, "ok", "pong");
}

static const km_http_route g_routes[] = {{"GET", "/ping", h_ping}};

/* Send one request and drop the connection (the answer does not matter). */
static void *client_main(void *arg) {
    (void)arg;
    static const char req[] = "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    while (!atomic_load(&g_stop)) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)atomic_load(&g_port));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
            send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1)) {
            char buf[256];
            struct timeval tv = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            (void)recv(fd, buf, sizeof buf, 0);
        }
        close(fd);
    }
    return NULL;
}

static void test_requests_during_start(void **state) {
    (void)state;
    km_http_config cfg = {.listen_host = "127.0.0.1",
                          .port = 0,
                          .max_body = 1024,
                          .threads = 2,
                          .max_connections = 64,
                          .connection_timeout_s = 5};
    km_http_server *s = NULL;
    /* The first start picks the port every later start reuses. */
    assert_int_equal(km_http_start(&s, &cfg, g_routes, 1, &g_app), KM_OK);
    cfg.port = km_http_port(s);
    atomic_store(&g_port, cfg.port);
    km_http_stop(s);

    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, client_main, NULL), 0);
    int started = 0;
    for (int c = 0; c < CYCLES; c++) {
        /* The port may still be held for a moment by the last server. */
        km_err err = KM_ERR_IO;
        for (int tries = 0; tries < 100 && err; tries++) {
            err = km_http_start(&g_app.srv, &cfg, g_routes, 1, &g_app);
            if (err) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        assert_int_equal(err, KM_OK);
        started++;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
        /* Stopped first: no handler runs after km_http_stop returns. */
        km_http_stop(g_app.srv);
        __atomic_store_n(&g_app.srv, NULL, __ATOMIC_RELEASE);
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    print_message("%d starts, %d requests handled, %d before the server was published\n", started,
                  atomic_load(&g_app.calls), atomic_load(&g_app.unpublished));
    assert_true(atomic_load(&g_app.calls) > 0);
    assert_int_equal(atomic_load(&g_app.unpublished), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_during_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
