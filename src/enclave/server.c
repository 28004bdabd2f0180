/* server.c — accepts gateway connections, runs the handshake, then serves
 * requests. One thread per connection; a connection carries many requests
 * (the gateway pipelines them; each response carries its request id). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "enclave/enclave.h"
#include "enclave/server.h"
#include "keymeld/channel.h"
#include "net/net.h"

/* One slot per possible connection: the thread serving it and its socket.
 * Slots are joined when their thread is done, and all are shut down and
 * joined at stop, so the process ends with nothing running and everything
 * freed. */
typedef struct conn_slot {
    km_enclave *e;
    int fd;
    pthread_t thread;
    int used;        /* slot holds a thread that has not been joined */
    atomic_int done; /* the thread has finished serving */
} conn_slot;

/* The handshake frames are tiny; refuse anything bigger before allocating. */
#define HANDSHAKE_FRAME_MAX 256

static km_err do_handshake(km_enclave *e, int fd, km_channel *ch) {
    km_buf in;
    km_buf_init(&in);
    unsigned char reply[KM_CHANNEL_REPLY_LEN];
    km_err err = km_net_read_frame(fd, &in, HANDSHAKE_FRAME_MAX);
    if (!err) err = km_channel_enclave_reply(e->ctx, ch, in.data, in.len, km_secret_cdata(e->key), reply);
    if (!err) err = km_net_write_frame(fd, reply, sizeof reply);
    if (!err) err = km_net_read_frame(fd, &in, HANDSHAKE_FRAME_MAX);
    if (!err)
        err = km_channel_enclave_finish(e->ctx, ch, in.data, in.len, (const unsigned char(*)[32])e->gateways,
                                        e->n_gateways);
    km_buf_free(&in);
    return err;
}

static void serve_connection(km_enclave *e, int fd) {
    km_channel ch;
    km_err err = do_handshake(e, fd, &ch);
    if (err) {
        /* Nothing is ever answered to an unauthenticated peer. */
        fprintf(stderr, "keymeld-enclave: handshake refused: %s\n", km_strerror(err));
        km_channel_clear(&ch);
        return;
    }
    /* After the handshake, no read deadline: an idle gateway connection is normal. */
    struct timeval tv = {0, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    km_buf in, out;
    km_buf_init(&in);
    km_buf_init(&out);
    while (!e->stopping) {
        size_t n;
        if (km_net_read_frame(fd, &in, KM_FRAME_MAX) != KM_OK) break;
        if (km_channel_open(&ch, in.data, in.len, &n) != KM_OK) break; /* tampering: drop the connection */
        km_msg req;
        out.len = 0;
        km_buf resp;
        km_buf_init(&resp);
        if (km_msg_decode(&req, in.data, n) != KM_OK) {
            if (km_msg_put_error(&resp, 0, KM_ERR_PARSE, "malformed envelope")) resp.failed = 1;
        } else {
            km_enclave_dispatch(e, &req, &resp);
        }
        int ok = !resp.failed && km_channel_seal(&ch, resp.data, resp.len, &out) == KM_OK &&
                 km_net_write_frame(fd, out.data, out.len) == KM_OK;
        km_buf_free(&resp);
        /* Requests may carry secrets in transit. Only this frame's bytes:
         * those past them were wiped after their own request, and wiping the
         * whole capacity cost every request after one large batch as much as
         * that batch's size (a failed read ends the loop: km_buf_free wipes
         * everything). */
        km_wipe(in.data, in.len);
        if (!ok) break;
    }
    km_buf_free(&in);
    km_buf_free(&out);
    km_channel_clear(&ch);
}

static void *conn_main(void *p) {
    conn_slot *c = p;
    serve_connection(c->e, c->fd);
    /* The peer sees the end now; the descriptor is closed when the slot is
     * reaped, so it cannot be reused under a concurrent shutdown(). */
    shutdown(c->fd, SHUT_RDWR);
    c->done = 1;
    return NULL;
}

/* Joins finished connection threads; with `all`, first cuts every connection
 * so that all threads finish. Returns the number of slots still in use. */
static int reap(km_server_limits *limits, int all) {
    int active = 0;
    for (int i = 0; i < limits->max_connections; i++) {
        conn_slot *c = &limits->slots[i];
        if (!c->used) continue;
        if (all) shutdown(c->fd, SHUT_RDWR);
        if (all || c->done) {
            pthread_join(c->thread, NULL);
            close(c->fd);
            c->used = 0;
        } else {
            active++;
        }
    }
    return active;
}

int km_enclave_serve(km_enclave *e, int listen_fd, km_server_limits *limits) {
    limits->slots = calloc((size_t)limits->max_connections, sizeof *limits->slots);
    if (!limits->slots) return -1;
    int rc = 0;
    while (!e->stopping) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (e->stopping) break;
            perror("keymeld-enclave: accept");
            rc = -1;
            break;
        }
        limits->active = reap(limits, 0);
        conn_slot *slot = NULL;
        for (int i = 0; !slot && i < limits->max_connections; i++)
            if (!limits->slots[i].used) slot = &limits->slots[i];
        if (!slot) { /* over the cap: refuse instead of queueing unbounded work */
            close(fd);
            continue;
        }
        /* A peer that connects and never completes the handshake is cut off. */
        struct timeval tv = {limits->handshake_timeout_s, 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        slot->e = e;
        slot->fd = fd;
        slot->done = 0;
        if (pthread_create(&slot->thread, NULL, conn_main, slot) != 0) {
            close(fd);
            continue;
        }
        slot->used = 1;
        limits->active++;
    }
    reap(limits, 1);
    limits->active = 0;
    free(limits->slots);
    limits->slots = NULL;
    return rc;
}
