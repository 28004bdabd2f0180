/* net.c — listening, connecting and framed I/O over stream sockets. */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "net/net.h"

typedef struct {
    int family;
    struct sockaddr_storage ss;
    socklen_t len;
} km_sockaddr;

/* Parses "tcp:HOST:PORT" (numeric IPv4/IPv6 or a name), "unix:PATH",
 * "vsock:CID:PORT". */
static km_err parse_addr(const char *addr, km_sockaddr *out) {
    memset(out, 0, sizeof *out);
    if (strncmp(addr, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
        size_t n = strlen(addr + 5);
        if (n == 0 || n >= sizeof un->sun_path) return KM_ERR_PARSE;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, addr + 5, n + 1);
        out->family = AF_UNIX;
        out->len = (socklen_t)sizeof *un;
        return KM_OK;
    }
    int is_tcp = strncmp(addr, "tcp:", 4) == 0, is_vsock = strncmp(addr, "vsock:", 6) == 0;
    if (!is_tcp && !is_vsock) return KM_ERR_PARSE;
    const char *rest = addr + (is_tcp ? 4 : 6);
    const char *colon = strrchr(rest, ':');
    if (!colon || colon == rest || colon[1] == '\0') return KM_ERR_PARSE;
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || errno || port > (is_tcp ? 65535ul : UINT32_MAX) || (is_tcp && port == 0)) return KM_ERR_PARSE;
    char host[256];
    size_t hl = (size_t)(colon - rest);
    if (hl >= sizeof host) return KM_ERR_PARSE;
    memcpy(host, rest, hl);
    host[hl] = '\0';
    if (is_vsock) {
        unsigned long cid = strtoul(host, &end, 10);
        if (*end || cid > UINT32_MAX) return KM_ERR_PARSE;
        struct sockaddr_vm *vm = (struct sockaddr_vm *)&out->ss;
        vm->svm_family = AF_VSOCK;
        vm->svm_cid = (unsigned)cid;
        vm->svm_port = (unsigned)port;
        out->family = AF_VSOCK;
        out->len = (socklen_t)sizeof *vm;
        return KM_OK;
    }
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') { /* [::1] */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%lu", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res) return KM_ERR_PARSE;
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    out->family = res->ai_family;
    freeaddrinfo(res);
    return KM_OK;
}

int km_net_listen(const char *addr, km_err *err) {
    km_sockaddr sa;
    *err = parse_addr(addr, &sa);
    if (*err) return -1;
    int fd = socket(sa.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) goto io;
    int one = 1;
    if (sa.family == AF_INET || sa.family == AF_INET6)
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (sa.family == AF_UNIX) unlink(((struct sockaddr_un *)&sa.ss)->sun_path);
    if (bind(fd, (struct sockaddr *)&sa.ss, sa.len) != 0 || listen(fd, 128) != 0) goto io;
    return fd;
io:
    if (fd >= 0) close(fd);
    *err = KM_ERR_IO;
    return -1;
}

int km_net_connect(const char *addr, km_err *err) {
    km_sockaddr sa;
    *err = parse_addr(addr, &sa);
    if (*err) return -1;
    int fd = socket(sa.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa.ss, sa.len) == 0) {
        int one = 1;
        /* Small request/response frames: do not wait to coalesce. */
        if (sa.family == AF_INET || sa.family == AF_INET6)
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return fd;
    }
    if (fd >= 0) close(fd);
    *err = KM_ERR_IO;
    return -1;
}

static km_err read_full(int fd, unsigned char *p, size_t n) {
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return KM_ERR_IO;
        p += r;
        n -= (size_t)r;
    }
    return KM_OK;
}

km_err km_net_read_frame(int fd, km_buf *out, size_t max) {
    unsigned char hdr[4];
    out->len = 0;
    if (read_full(fd, hdr, 4) != KM_OK) return KM_ERR_IO;
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (len == 0 || len > max) return KM_ERR_RANGE;
    if (out->cap < len) {
        km_buf_free(out);
        out->data = malloc(len);
        if (!out->data) return KM_ERR_NOMEM;
        out->cap = len;
    }
    km_err err = read_full(fd, out->data, len);
    if (!err) out->len = len;
    return err;
}

km_err km_net_write_frame(int fd, const unsigned char *p, size_t len) {
    if (len == 0 || len > KM_FRAME_MAX) return KM_ERR_RANGE;
    unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                            (unsigned char)len};
    /* One sendmsg for header and payload: with TCP_NODELAY two writes would
     * cost two packets per frame. */
    struct iovec iov[2] = {{hdr, 4}, {(void *)p, len}};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    size_t left = 4 + len;
    while (left) {
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return KM_ERR_IO;
        left -= (size_t)w;
        while (w > 0 && msg.msg_iovlen) { /* advance past what was written */
            size_t n = (size_t)w < msg.msg_iov->iov_len ? (size_t)w : msg.msg_iov->iov_len;
            msg.msg_iov->iov_base = (unsigned char *)msg.msg_iov->iov_base + n;
            msg.msg_iov->iov_len -= n;
            w -= (ssize_t)n;
            if (msg.msg_iov->iov_len == 0) {
                msg.msg_iov++;
                msg.msg_iovlen--;
            }
        }
    }
    return KM_OK;
}
