/* server.h — the enclave's accept loop. */
#ifndef KM_ENCLAVE_SERVER_H
#define KM_ENCLAVE_SERVER_H

#include "enclave/enclave.h"

struct conn_slot;

typedef struct km_server_limits {
    int max_connections;     /* concurrent gateway connections */
    int handshake_timeout_s; /* a peer must finish the handshake within this */
    int active;              /* current connections (accept thread only) */
    struct conn_slot *slots; /* owned by km_enclave_serve while it runs */
} km_server_limits;

/** Accepts connections on listen_fd until e->stopping is set, then cuts every
 *  connection and joins its thread: when it returns nothing else runs.
 *  Returns 0, or -1 on a fatal accept error. */
int km_enclave_serve(km_enclave *e, int listen_fd, km_server_limits *limits);

#endif
