/* cmd_key.c — KEY_IMPORT, KEY_SIGN, KEY_DELETE: one imported key, one signer.
 *
 * Trust rules enforced here (DESIGN.md §3, docs/PROTOCOL.md §5.4):
 * - the key arrives ECIES-encrypted to this enclave's attested key, bound by
 *   its associated data to the key id and the user, so the gateway can
 *   neither read it nor move the blob to another key id; an imported key is
 *   never replaced by another import under the same id;
 * - a sign request is ECIES-encrypted too (the gateway never sees what is
 *   signed) and names a response key: the signature goes back sealed for the
 *   client, so the gateway never sees it either;
 * - a key flagged "require approval" signs only a message approved by its
 *   auth key for exactly this key, request and message; the enclave checks
 *   that itself, whatever the gateway says;
 * - a request id is signed once: a retry gets the bytes already returned,
 *   another plaintext under the same id is refused;
 * - only the auth key deletes a key.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <secp256k1_extrakeys.h>

#include "enclave/enclave.h"
#include "enclave/sessions.h"
#include "keymeld/ecies.h"
#include "keymeld/hash.h"
#include "keymeld/proto_key.h"
#include "keymeld/reqauth.h"
#include "keymeld/single.h"

static km_err check_time(uint64_t timestamp) {
    time_t now = time(NULL);
    if (now < 0) return KM_ERR_RANGE;
    return km_reqauth_check_time((uint64_t)now, timestamp, KM_KEY_TIME_WINDOW);
}

void km_cmd_key_import(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    const secp256k1_context *secp = km_ctx_secp(e->ctx);
    km_key_import_cmd cmd;
    if (km_key_import_parse(&cmd, body, len) != KM_OK) {
        km_reply_fail(r, KM_ERR_PARSE, "key_import: malformed body");
        return;
    }
    km_ad ad;
    km_secret *pt = NULL, *imp_secret = NULL;
    km_err err = km_key_import_ad(&ad, &cmd.key_id, &cmd.user_id);
    if (!err)
        err = km_ecies_open_secret(e->ctx, km_secret_cdata(e->key), ad.bytes, ad.len, cmd.blob, cmd.blob_len,
                                   &pt);
    if (err) {
        km_reply_fail(r, err, "key_import: blob does not open for this enclave, key and user");
        return;
    }
    /* Decode straight into locked memory: the struct holds the secret key. */
    err = km_secret_new(e->ctx, sizeof(km_key_import), &imp_secret);
    km_key_import *imp = err ? NULL : (km_key_import *)(void *)km_secret_data(imp_secret);
    unsigned char digest[32];
    if (!err) {
        /* The user is part of what must match on a re-import: the same key
         * under the same id for another user is a different import. */
        const void *parts[2] = {cmd.user_id.b, km_secret_cdata(pt)};
        size_t lens[2] = {16, km_secret_len(pt)};
        km_sha256_parts(digest, parts, lens, 2);
        err = km_key_import_decode(imp, km_secret_cdata(pt), km_secret_len(pt));
    }
    km_secret_free(pt);
    secp256k1_xonly_pubkey auth;
    if (err) {
        km_reply_fail(r, err, "key_import: invalid import");
    } else if (km_single_seckey_check(e->ctx, imp->seckey) != KM_OK) {
        km_reply_fail(r, KM_ERR_INVALID_KEY, "key_import: invalid secret key");
    } else if (!secp256k1_xonly_pubkey_parse(secp, &auth, imp->auth_pub)) {
        km_reply_fail(r, KM_ERR_INVALID_POINT, "key_import: invalid auth key");
    }
    if (r->err) {
        km_secret_free(imp_secret);
        return;
    }
    pthread_mutex_lock(&e->lock);
    km_key_state *old = km_sessions_find_key(e->sessions, &cmd.key_id);
    if (old) {
        /* Idempotent: the restore replays the stored blob (and a retry may
         * re-encrypt it); a different key, auth key, flags or user under an
         * existing id is refused, so nobody can swap a key or drop its
         * approval requirement by re-importing. */
        if (!km_ct_equal(old->import_digest, digest, 32))
            km_reply_fail(r, KM_ERR_DUPLICATE, "key_import: key exists with a different import");
    } else {
        km_key_state *k = calloc(1, sizeof *k);
        err = k ? km_secret_from(e->ctx, imp->seckey, 32, &k->seckey) : KM_ERR_NOMEM;
        if (!err) {
            k->id = cmd.key_id;
            k->user_id = cmd.user_id;
            memcpy(k->import_digest, digest, 32);
            memcpy(k->auth_pub, imp->auth_pub, 32);
            k->flags = imp->flags;
            err = km_sessions_add_key(e->sessions, k); /* on success the table owns k */
        }
        if (err) {
            km_key_state_free(k);
            km_reply_fail(r, err, "key_import: cannot store the key");
        }
    }
    pthread_mutex_unlock(&e->lock);
    km_secret_free(imp_secret);
}

/* The earlier answer to request_id, or NULL. */
static km_key_sign_done *find_done(km_key_state *k, const km_uuid *request_id) {
    for (size_t i = 0; i < k->n_done; i++)
        if (memcmp(k->done[i].request_id.b, request_id->b, 16) == 0) return &k->done[i];
    return NULL;
}

/* Records an answer; once KM_KEY_SIGN_CACHE are kept, the oldest goes. The
 * ring grows on demand so that a key signing rarely costs little memory. */
static km_err remember_done(km_key_state *k, const km_uuid *request_id, const unsigned char digest[32],
                            const km_buf *result) {
    /* Copy first: nothing in the ring changes unless the whole entry fits. */
    km_buf copy;
    km_buf_init(&copy);
    if (km_buf_put(&copy, result->data, result->len) != KM_OK) {
        km_buf_free(&copy);
        return KM_ERR_NOMEM;
    }
    km_key_sign_done *slot;
    if (k->n_done < KM_KEY_SIGN_CACHE) {
        if (k->n_done == k->cap_done) {
            size_t cap = k->cap_done ? k->cap_done * 2 : 16;
            if (cap > KM_KEY_SIGN_CACHE) cap = KM_KEY_SIGN_CACHE;
            km_key_sign_done *d = realloc(k->done, cap * sizeof *d);
            if (!d) {
                km_buf_free(&copy);
                return KM_ERR_NOMEM;
            }
            k->done = d;
            k->cap_done = cap;
        }
        slot = &k->done[k->n_done++];
    } else {
        slot = &k->done[k->next_done];
        km_buf_free(&slot->result);
        k->next_done = (k->next_done + 1) % KM_KEY_SIGN_CACHE;
    }
    slot->request_id = *request_id;
    memcpy(slot->digest, digest, 32);
    slot->result = copy; /* ownership moves to the ring */
    return KM_OK;
}

/* Signs req with k and seals the signature for the client. Called under e->lock. */
static km_err sign_and_seal(km_enclave *e, km_key_state *k, const km_key_sign_cmd *cmd,
                            const km_key_sign_req *req, km_buf *sealed) {
    unsigned char sig[64];
    km_err err;
    if (req->algo == KM_KEY_ALGO_SCHNORR)
        err = km_single_schnorr_sign(e->ctx, sig, req->msg, req->msg_len, km_secret_cdata(k->seckey));
    else
        err = km_single_ecdsa_sign(e->ctx, sig, req->msg, km_secret_cdata(k->seckey));
    if (!err)
        err = km_key_sign_result_seal(e->ctx, req->response_key, &cmd->key_id, &cmd->request_id, req->algo,
                                      sig, sealed);
    km_wipe(sig, sizeof sig);
    return err;
}

void km_cmd_key_sign(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    km_key_sign_cmd cmd;
    if (km_key_sign_parse(&cmd, body, len) != KM_OK) {
        km_reply_fail(r, KM_ERR_PARSE, "key_sign: malformed body");
        return;
    }
    km_ad ad;
    km_secret *pt = NULL;
    km_err err = km_key_sign_ad(&ad, &cmd.key_id, &cmd.request_id);
    if (!err)
        err = km_ecies_open_secret(e->ctx, km_secret_cdata(e->key), ad.bytes, ad.len, cmd.blob, cmd.blob_len,
                                   &pt);
    if (err) {
        km_reply_fail(r, err, "key_sign: request does not open for this enclave, key and request id");
        return;
    }
    /* req points into pt (locked memory): the message and response key never
     * leave it. */
    km_key_sign_req req;
    unsigned char digest[32], approval[32];
    km_sha256(digest, km_secret_cdata(pt), km_secret_len(pt));
    err = km_key_sign_decode(&req, km_secret_cdata(pt), km_secret_len(pt));
    if (err) {
        km_reply_fail(r, err, "key_sign: invalid request");
        km_secret_free(pt);
        return;
    }
    km_key_approval_digest(approval, &cmd.key_id, &cmd.request_id, req.algo, req.msg, req.msg_len);
    km_buf sealed;
    km_buf_init(&sealed);
    pthread_mutex_lock(&e->lock);
    km_key_state *k = km_sessions_find_key(e->sessions, &cmd.key_id);
    km_key_sign_done *done = k ? find_done(k, &cmd.request_id) : NULL;
    if (!k) {
        km_reply_fail(r, KM_ERR_NOT_FOUND, "key_sign: unknown key");
    } else if (done) {
        /* Once per request: a retry (even late, even re-encrypted) gets the
         * bytes already released, nothing new is signed; anything else under
         * this id is refused so an id never yields two signatures. */
        if (km_ct_equal(done->digest, digest, 32))
            err = km_buf_put(&r->body, done->result.data, done->result.len);
        else
            km_reply_fail(r, KM_ERR_DUPLICATE, "key_sign: request id already used for another request");
    } else if (check_time(req.timestamp) != KM_OK) {
        km_reply_fail(r, KM_ERR_RANGE, "key_sign: timestamp outside the %d s window", KM_KEY_TIME_WINDOW);
    } else if ((k->flags & KM_KEY_FLAG_REQUIRE_APPROVAL) && !cmd.approval_sig) {
        km_reply_fail(r, KM_ERR_VERIFY, "key_sign: this key requires an approval");
    } else if (cmd.approval_sig &&
               km_single_schnorr_verify(e->ctx, cmd.approval_sig, approval, 32, k->auth_pub) != KM_OK) {
        /* Checked whenever present: an approval that does not verify means
         * the request is not what its owner approved. */
        km_reply_fail(r, KM_ERR_VERIFY,
                      "key_sign: approval does not verify for this key, request and message");
    } else {
        err = sign_and_seal(e, k, &cmd, &req, &sealed);
        if (!err) err = remember_done(k, &cmd.request_id, digest, &sealed);
        if (!err) err = km_buf_put(&r->body, sealed.data, sealed.len);
    }
    pthread_mutex_unlock(&e->lock);
    if (err && !r->err) km_reply_fail(r, err, "key_sign: cannot sign");
    km_buf_free(&sealed);
    km_secret_free(pt);
}

void km_cmd_key_delete(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    km_key_delete_cmd cmd;
    if (km_key_delete_parse(&cmd, body, len) != KM_OK) {
        km_reply_fail(r, KM_ERR_PARSE, "key_delete: malformed body");
        return;
    }
    pthread_mutex_lock(&e->lock);
    km_key_state *k = km_sessions_find_key(e->sessions, &cmd.key_id);
    if (!k) {
        km_reply_fail(r, KM_ERR_NOT_FOUND, "key_delete: unknown key");
    } else if (check_time(cmd.timestamp) != KM_OK) {
        /* The window bounds how long a captured deletion can be replayed
         * (e.g. against a re-import of the same key). */
        km_reply_fail(r, KM_ERR_RANGE, "key_delete: timestamp outside the %d s window", KM_KEY_TIME_WINDOW);
    } else if (km_single_schnorr_verify(e->ctx, cmd.sig, cmd.digest, 32, k->auth_pub) != KM_OK) {
        km_reply_fail(r, KM_ERR_VERIFY, "key_delete: signature does not verify for this key's auth key");
    } else {
        (void)km_sessions_remove_key(e->sessions, &cmd.key_id); /* wipes the key and its cache */
    }
    pthread_mutex_unlock(&e->lock);
}
