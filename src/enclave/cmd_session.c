/* cmd_session.c — SESSION_CLEAR: forget a keygen (with its signing sessions)
 * or one signing session, wiping every secret it held.
 *
 * Body: u8 kind (1 = keygen, 2 = signing) | id[16]. Response: empty, or
 * KM_ERR_NOT_FOUND if there was nothing to clear. The gateway may clear what
 * it likes: that only denies service, which it can do anyway; a cleared keygen
 * comes back only through its original, client-encrypted blobs. */
#include "enclave/enclave.h"
#include "enclave/signing.h"

#define CLEAR_KEYGEN  1
#define CLEAR_SIGNING 2

void km_cmd_session_clear(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    km_cursor c;
    uint8_t kind;
    km_uuid id;
    km_cursor_init(&c, body, len);
    if (km_cursor_get_u8(&c, &kind) || km_cursor_get_bytes(&c, id.b, 16) || km_cursor_finish(&c) ||
        (kind != CLEAR_KEYGEN && kind != CLEAR_SIGNING)) {
        km_reply_fail(r, KM_ERR_PARSE, "session_clear: body must be kind (1 keygen, 2 signing) and an id");
        return;
    }
    pthread_mutex_lock(&e->lock);
    int found = kind == CLEAR_KEYGEN ? km_sessions_remove_keygen(e->sessions, &id)
                                     : km_signing_remove(e->sessions, &id);
    pthread_mutex_unlock(&e->lock);
    if (!found) km_reply_fail(r, KM_ERR_NOT_FOUND, "session_clear: no such session");
}
