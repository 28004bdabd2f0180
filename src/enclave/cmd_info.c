/* cmd_info.c — INFO: who this enclave is (public data only).
 *
 * Response body: u16 protocol version | enclave_pub[33] | fingerprint[32]
 *                | u32 keygens | u32 signing sessions | u32 imported keys | u64 uptime_s
 *                | boot_id[16]
 * boot_id is random per process: a gateway that sees it change knows the
 * enclave restarted (and lost its memory) however quickly that happened. */
#include "enclave/enclave.h"
#include "enclave/sessions.h"

void km_cmd_info(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    (void)body;
    if (len != 0) {
        km_reply_fail(r, KM_ERR_PARSE, "info takes no body");
        return;
    }
    km_enclave_counts counts;
    pthread_mutex_lock(&e->lock);
    km_sessions_count(e->sessions, &counts);
    pthread_mutex_unlock(&e->lock);
    (void)km_buf_put_u16(&r->body, 1);
    (void)km_buf_put(&r->body, e->pub, 33);
    (void)km_buf_put(&r->body, e->fingerprint, 32);
    (void)km_buf_put_u32(&r->body, counts.keygens);
    (void)km_buf_put_u32(&r->body, counts.signings);
    (void)km_buf_put_u32(&r->body, counts.keys);
    (void)km_buf_put_u64(&r->body, km_enclave_now() - e->started_at);
    (void)km_buf_put(&r->body, e->boot_id, sizeof e->boot_id); /* a failed put: body.failed */
}
