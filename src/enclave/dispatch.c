/* dispatch.c — the enclave's fixed command table.
 *
 * Only commands in this table are answered; anything else is refused with
 * KM_ERR_UNSUPPORTED. Per-session state rules (which command is allowed in
 * which state, which may run once) are enforced by each handler against the
 * session it names, under e->lock.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "enclave/enclave.h"
#include "enclave/signing.h"

static const struct {
    uint16_t code;
    km_cmd_handler handler;
} km_cmd_table[] = {
    {KM_CMD_INFO, km_cmd_info},
    {KM_CMD_ATTEST, km_cmd_attest},
    {KM_CMD_KEYGEN_INIT, km_cmd_keygen_init},
    {KM_CMD_KEYGEN_REGISTER, km_cmd_keygen_register},
    {KM_CMD_KEYGEN_FINALIZE, km_cmd_keygen_finalize},
    {KM_CMD_SIGN_INIT, km_cmd_sign_init},
    {KM_CMD_SIGN_APPROVE, km_cmd_sign_approve},
    {KM_CMD_SIGN_PARTIAL, km_cmd_sign_partial},
    {KM_CMD_SIGN_FINALIZE, km_cmd_sign_finalize},
    {KM_CMD_SESSION_CLEAR, km_cmd_session_clear},
    {KM_CMD_KEY_IMPORT, km_cmd_key_import},
    {KM_CMD_KEY_SIGN, km_cmd_key_sign},
    {KM_CMD_KEY_DELETE, km_cmd_key_delete},
};

uint64_t km_enclave_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

void km_enclave_expire(km_enclave *e, uint64_t now) {
    /* Run on every request, it was a measurable share of the enclave's CPU
     * with thousands of sessions held (keymeld-bench-gateway, perf). */
    if (now == e->expired_at) return;
    e->expired_at = now;
    km_enclave_sessions *s = e->sessions;
    /* Expired entries are unlinked where the walk finds them (no lookup, no
     * re-walk from the head): many expiring at once stays linear. */
    for (km_signing_state *st = s->signings; st;) {
        km_signing_state *next = st->next;
        if (now - st->created_at > e->signing_ttl_s) km_signing_remove_entry(s, st);
        st = next;
    }
    /* Finalised keygens are wallets: they stay until cleared. */
    for (km_keygen_state *k = s->keygens; k;) {
        km_keygen_state *next = k->next;
        if (!k->finalized && now - k->created_at > e->keygen_ttl_s) km_sessions_remove_keygen_entry(s, k);
        k = next;
    }
}

void km_reply_fail(km_reply *r, km_err err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    r->err = err ? err : KM_ERR_STATE;
}

void km_enclave_dispatch(km_enclave *e, const km_msg *req, km_buf *out) {
    km_reply r;
    memset(&r, 0, sizeof r);
    km_buf_init(&r.body);
    km_cmd_handler h = NULL;
    for (size_t i = 0; i < sizeof km_cmd_table / sizeof km_cmd_table[0]; i++)
        if (km_cmd_table[i].code == req->code) h = km_cmd_table[i].handler;
    if (req->kind != KM_MSG_REQUEST)
        km_reply_fail(&r, KM_ERR_PARSE, "expected a request");
    else if (!h)
        km_reply_fail(&r, KM_ERR_UNSUPPORTED, "unknown command 0x%04x", req->code);
    else {
        pthread_mutex_lock(&e->lock);
        km_enclave_expire(e, km_enclave_now());
        pthread_mutex_unlock(&e->lock);
        h(e, req->body, req->body_len, &r);
    }
    if (!r.err && r.body.failed) km_reply_fail(&r, KM_ERR_NOMEM, "out of memory");
    km_err werr;
    if (r.err) {
        werr = km_msg_put_error(out, req->request_id, r.err, r.detail);
    } else {
        werr = km_msg_put_header(out, KM_MSG_RESPONSE, req->request_id, KM_OK);
        if (!werr) werr = km_buf_put(out, r.body.data, r.body.len);
    }
    if (werr) out->failed = 1;
    km_buf_free(&r.body);
}
