/* cmd_keygen.c — KEYGEN_INIT, KEYGEN_REGISTER, KEYGEN_FINALIZE.
 *
 * Trust rules enforced here (DESIGN.md §3):
 * - the init comes ECIES-encrypted to this enclave's attested key, bound by its
 *   associated data to the keygen id and this enclave;
 * - a registration is accepted only if it carries the keygen's session secret,
 *   so the gateway (which never learns the secret) cannot register a key of its
 *   own; only a listed participant assigned to this enclave may register;
 * - participant records are sealed under the session data key (the gateway
 *   learns no public key) and signed with this enclave's key, so neither the
 *   gateway nor a participant who knows the session secret can substitute
 *   another participant's key at finalisation.
 */
#include <stdlib.h>
#include <string.h>

#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "enclave/enclave.h"
#include "enclave/records.h"
#include "enclave/sessions.h"
#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "keymeld/hash.h"
#include "keymeld/proto_keygen.h"

/* Reads "id[16] | ..." prefixes and a trailing vbytes. */
static int get_id(km_cursor *c, km_uuid *id) {
    return km_cursor_get_bytes(c, id->b, 16) == KM_OK;
}

static km_err ad_for(km_ad *ad, const char *purpose, const km_uuid *id, const void *item, size_t item_len) {
    return km_ad_build(ad, purpose, id, item, item_len);
}

void km_cmd_keygen_init(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    km_cursor c;
    km_uuid id;
    const unsigned char *blob;
    size_t blob_len;
    km_cursor_init(&c, body, len);
    if (!get_id(&c, &id) || !km_get_vbytes(&c, &blob, &blob_len, 1u << 20) || km_cursor_finish(&c)) {
        km_reply_fail(r, KM_ERR_PARSE, "keygen_init: malformed body");
        return;
    }
    km_ad ad;
    km_secret *pt = NULL;
    km_keygen_init init;
    memset(&init, 0, sizeof init);
    km_err err = ad_for(&ad, KM_AD_KEYGEN_INIT, &id, e->pub, 33);
    if (!err)
        err = km_ecies_open_secret(e->ctx, km_secret_cdata(e->key), ad.bytes, ad.len, blob, blob_len, &pt);
    if (err) {
        km_reply_fail(r, err, "keygen_init: init blob does not open for this enclave and keygen");
        return;
    }
    unsigned char digest[32];
    km_sha256(digest, km_secret_cdata(pt), km_secret_len(pt));
    err = km_keygen_init_decode(&init, km_secret_cdata(pt), km_secret_len(pt));
    km_secret_free(pt);
    if (err) {
        km_reply_fail(r, err, "keygen_init: invalid init");
        return;
    }
    int mine = -1;
    for (uint16_t i = 0; i < init.n_enclaves; i++) {
        if (km_musig_pubkey_check(e->ctx, init.enclave_pubs[i]) != KM_OK) {
            km_reply_fail(r, KM_ERR_INVALID_POINT, "keygen_init: enclave key %u is not a valid point", i);
            km_keygen_init_free(&init);
            return;
        }
        if (memcmp(init.enclave_pubs[i], e->pub, 33) == 0) mine = i;
    }
    if (mine < 0) {
        km_reply_fail(r, KM_ERR_STATE, "keygen_init: this enclave is not part of the keygen");
        km_keygen_init_free(&init);
        return;
    }
    km_keygen_state *k = calloc(1, sizeof *k);
    if (!k) {
        km_reply_fail(r, KM_ERR_NOMEM, "out of memory");
        km_keygen_init_free(&init);
        return;
    }
    k->id = id;
    k->created_at = km_enclave_now();
    memcpy(k->init_digest, digest, 32);
    k->init = init; /* ownership moves to k */
    k->my_index = mine;
    err = km_secret_from(e->ctx, init.session_secret, 32, &k->secret);
    km_wipe(k->init.session_secret, 32);
    km_wipe(init.session_secret, 32);
    if (!err) err = km_session_derive(e->ctx, km_secret_cdata(k->secret), &k->session);
    if (!err) {
        k->locals = calloc(k->init.n_participants, sizeof *k->locals);
        if (!k->locals) err = KM_ERR_NOMEM;
    }
    if (err) {
        km_reply_fail(r, err, "keygen_init: cannot set up the session");
        km_keygen_state_free(k);
        return;
    }
    pthread_mutex_lock(&e->lock);
    km_keygen_state *old = km_sessions_find_keygen(e->sessions, &id);
    if (old) {
        /* Idempotent: the same init again is fine; a different one is refused
         * so nobody can swap the participants or the secret of a keygen. */
        if (!km_ct_equal(old->init_digest, digest, 32))
            km_reply_fail(r, KM_ERR_DUPLICATE, "keygen_init: keygen exists with a different init");
        km_keygen_state_free(k);
    } else if (e->sessions->counts.keygens >= e->max_keygens) {
        km_reply_fail(r, KM_ERR_RANGE, "keygen_init: enclave holds its maximum of %u keygens",
                      e->max_keygens);
        km_keygen_state_free(k);
    } else {
        km_err aerr = km_sessions_add_keygen(e->sessions, k);
        if (aerr) {
            km_reply_fail(r, aerr, "keygen_init: cannot store the keygen");
            km_keygen_state_free(k);
        }
    }
    pthread_mutex_unlock(&e->lock);
}

/* Builds this enclave's record for a registered participant. */
static km_err build_record(km_enclave *e, km_keygen_state *k, const km_uuid *user, km_local_participant *l) {
    unsigned char info[KM_PARTICIPANT_INFO_LEN];
    memcpy(info, l->pubkey, 33);
    memcpy(info + 33, l->auth_pub, 32);
    info[65] = l->flags;
    km_ad ad;
    km_buf sealed;
    km_buf_init(&sealed);
    km_err err = ad_for(&ad, KM_AD_PARTICIPANT, &k->id, user->b, 16);
    if (!err) err = km_session_seal(k->session, ad.bytes, ad.len, info, sizeof info, &sealed);
    km_buf *rec = &l->record;
    if (!err) {
        (void)km_buf_put(rec, k->id.b, 16);
        (void)km_buf_put(rec, user->b, 16);
        (void)km_buf_put_u16(rec, (uint16_t)k->my_index);
        (void)km_buf_put_u32(rec, (uint32_t)sealed.len);
        err = km_buf_put(rec, sealed.data, sealed.len);
    }
    unsigned char digest[32], sig[64];
    if (!err) {
        km_tagged_hash(digest, KM_TAG_PARTICIPANT_RECORD, rec->data, rec->len);
        err = km_enclave_sign(e, digest, sig);
    }
    if (!err) err = km_buf_put(rec, sig, 64);
    km_buf_free(&sealed);
    if (err) km_buf_free(rec);
    return err;
}

void km_cmd_keygen_register(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    const secp256k1_context *secp = km_ctx_secp(e->ctx);
    km_cursor c;
    km_uuid id, user;
    const unsigned char *blob;
    size_t blob_len;
    km_cursor_init(&c, body, len);
    if (!get_id(&c, &id) || !get_id(&c, &user) || !km_get_vbytes(&c, &blob, &blob_len, 4096) ||
        km_cursor_finish(&c)) {
        km_reply_fail(r, KM_ERR_PARSE, "keygen_register: malformed body");
        return;
    }
    km_ad ad;
    km_secret *pt = NULL, *reg_secret = NULL;
    km_err err = ad_for(&ad, KM_AD_REGISTER, &id, user.b, 16);
    if (!err)
        err = km_ecies_open_secret(e->ctx, km_secret_cdata(e->key), ad.bytes, ad.len, blob, blob_len, &pt);
    if (err) {
        km_reply_fail(r, err,
                      "keygen_register: registration does not open for this enclave, keygen and user");
        return;
    }
    /* Decode straight into locked memory: the struct holds the secret key. */
    err = km_secret_new(e->ctx, sizeof(km_registration), &reg_secret);
    km_registration *reg = err ? NULL : (km_registration *)(void *)km_secret_data(reg_secret);
    unsigned char reg_digest[32];
    if (!err) {
        km_sha256(reg_digest, km_secret_cdata(pt), km_secret_len(pt));
        err = km_registration_decode(reg, km_secret_cdata(pt), km_secret_len(pt));
    }
    km_secret_free(pt);
    secp256k1_pubkey pk;
    secp256k1_xonly_pubkey auth;
    unsigned char pub33[33];
    size_t publen = 33;
    if (err) {
        km_reply_fail(r, err, "keygen_register: invalid registration");
    } else if (!secp256k1_ec_pubkey_create(secp, &pk, reg->seckey)) {
        km_reply_fail(r, KM_ERR_INVALID_KEY, "keygen_register: invalid secret key");
    } else if (!secp256k1_xonly_pubkey_parse(secp, &auth, reg->auth_pub)) {
        km_reply_fail(r, KM_ERR_INVALID_POINT, "keygen_register: invalid auth key");
    } else {
        secp256k1_ec_pubkey_serialize(secp, pub33, &publen, &pk, SECP256K1_EC_COMPRESSED);
    }
    if (r->err) {
        km_secret_free(reg_secret);
        return;
    }
    pthread_mutex_lock(&e->lock);
    km_keygen_state *k = km_sessions_find_keygen(e->sessions, &id);
    int idx = k ? km_keygen_init_find(&k->init, &user) : -1;
    if (!k) {
        km_reply_fail(r, KM_ERR_NOT_FOUND, "keygen_register: unknown keygen");
    } else if (idx < 0) {
        km_reply_fail(r, KM_ERR_NOT_FOUND, "keygen_register: user is not a participant");
    } else if (k->init.enclave_index[idx] != k->my_index) {
        km_reply_fail(r, KM_ERR_STATE, "keygen_register: user is assigned to another enclave");
    } else if (!km_ct_equal(reg->session_secret, km_secret_cdata(k->secret), 32)) {
        km_reply_fail(r, KM_ERR_VERIFY, "keygen_register: session secret does not match the keygen's");
    } else if (k->locals[idx]) {
        /* Retry of the same registration: same record. Anything else is refused:
         * a registered key is never replaced. */
        if (km_ct_equal(k->locals[idx]->reg_digest, reg_digest, 32))
            err = km_buf_put(&r->body, k->locals[idx]->record.data, k->locals[idx]->record.len);
        else
            km_reply_fail(r, KM_ERR_DUPLICATE, "keygen_register: user already registered with other data");
    } else if (k->finalized) {
        km_reply_fail(r, KM_ERR_STATE, "keygen_register: keygen already finalised");
    } else {
        km_local_participant *l = calloc(1, sizeof *l);
        err = l ? km_secret_from(e->ctx, reg->seckey, 32, &l->seckey) : KM_ERR_NOMEM;
        if (!err) {
            memcpy(l->pubkey, pub33, 33);
            memcpy(l->auth_pub, reg->auth_pub, 32);
            l->flags = reg->flags;
            memcpy(l->reg_digest, reg_digest, 32);
            km_buf_init(&l->record);
            err = build_record(e, k, &user, l);
        }
        if (!err) err = km_buf_put(&r->body, l->record.data, l->record.len);
        if (!err) {
            k->locals[idx] = l;
        } else if (l) {
            km_secret_free(l->seckey);
            km_buf_free(&l->record);
            free(l);
        }
    }
    pthread_mutex_unlock(&e->lock);
    if (err && !r->err) km_reply_fail(r, err, "keygen_register: cannot build the participant record");
    km_secret_free(reg_secret);
}

/* Checks one record and extracts the participant's public data into k. */
static km_err accept_record(km_enclave *e, km_keygen_state *k, const unsigned char *p, size_t len,
                            uint8_t *seen, km_reply *r) {
    const secp256k1_context *secp = km_ctx_secp(e->ctx);
    km_participant_record rec;
    if (km_participant_record_decode(&rec, p, len) != KM_OK) {
        km_reply_fail(r, KM_ERR_PARSE, "keygen_finalize: malformed participant record");
        return r->err;
    }
    int idx = km_keygen_init_find(&k->init, &rec.user_id);
    if (memcmp(rec.keygen_id.b, k->id.b, 16) != 0 || idx < 0) {
        km_reply_fail(r, KM_ERR_NOT_FOUND, "keygen_finalize: record for another keygen or user");
        return r->err;
    }
    if (seen[idx]) {
        km_reply_fail(r, KM_ERR_DUPLICATE, "keygen_finalize: participant %d appears twice", idx);
        return r->err;
    }
    seen[idx] = 1;
    /* The record must come from the enclave the participant was assigned to. */
    uint16_t ei = k->init.enclave_index[idx];
    if (!km_record_signed_by(e, k, idx, rec.enclave_index, rec.sig, rec.digest)) {
        km_reply_fail(r, KM_ERR_VERIFY,
                      "keygen_finalize: record of participant %d is not signed by its enclave", idx);
        return r->err;
    }
    km_ad ad;
    unsigned char info[KM_PARTICIPANT_INFO_LEN];
    size_t info_len = 0;
    km_err err = ad_for(&ad, KM_AD_PARTICIPANT, &k->id, rec.user_id.b, 16);
    if (!err)
        err = km_session_open(k->session, ad.bytes, ad.len, rec.sealed, rec.sealed_len, info, sizeof info,
                              &info_len);
    if (err || info_len != sizeof info) {
        km_reply_fail(r, err ? err : KM_ERR_PARSE, "keygen_finalize: record of participant %d does not open",
                      idx);
        return r->err;
    }
    secp256k1_xonly_pubkey ax;
    if (km_musig_pubkey_check(e->ctx, info) != KM_OK || !secp256k1_xonly_pubkey_parse(secp, &ax, info + 33) ||
        (info[65] & ~KM_FLAG_REQUIRE_APPROVAL)) {
        km_reply_fail(r, KM_ERR_INVALID_POINT, "keygen_finalize: record of participant %d holds invalid keys",
                      idx);
        return r->err;
    }
    /* Our own participants must match what they registered here. */
    if (ei == k->my_index && (!k->locals[idx] || memcmp(k->locals[idx]->pubkey, info, 33) != 0)) {
        km_reply_fail(r, KM_ERR_VERIFY, "keygen_finalize: record of local participant %d does not match",
                      idx);
        return r->err;
    }
    memcpy(k->pubkeys[idx], info, 33);
    memcpy(k->auth_pubs[idx], info + 33, 32);
    k->flags[idx] = info[65];
    return KM_OK;
}

/* Aggregates the full set and every subset, then seals the result. */
static km_err aggregate_and_seal(km_enclave *e, km_keygen_state *k, km_reply *r) {
    size_t n = k->init.n_participants, bad = 0;
    km_err err = km_musig_key_agg(e->ctx, &k->keyagg, &k->pubkeys[0][0], n, &bad);
    if (!err) err = km_musig_keyagg_tweak(e->ctx, &k->keyagg, &k->init.tweak);
    if (err) {
        km_reply_fail(r, err, "keygen_finalize: key aggregation failed");
        return err;
    }
    if (k->init.n_subsets) {
        k->subset_keyaggs = calloc(k->init.n_subsets, sizeof *k->subset_keyaggs);
        if (!k->subset_keyaggs) return KM_ERR_NOMEM;
    }
    unsigned char(*keys)[33] = calloc(n, 33);
    if (!keys) return KM_ERR_NOMEM;
    for (uint16_t s = 0; !err && s < k->init.n_subsets; s++) {
        const km_subset_def *d = &k->init.subsets[s];
        for (uint16_t i = 0; i < d->n; i++)
            memcpy(keys[i], k->pubkeys[d->members[i]], 33);
        err = km_musig_key_agg(e->ctx, &k->subset_keyaggs[s], &keys[0][0], d->n, &bad);
        if (!err) err = km_musig_keyagg_tweak(e->ctx, &k->subset_keyaggs[s], &k->init.tweak);
    }
    free(keys);
    if (err) {
        km_reply_fail(r, err, "keygen_finalize: subset aggregation failed");
        return err;
    }
    km_buf pt;
    km_buf_init(&pt);
    (void)km_buf_put(&pt, k->keyagg.agg_xonly, 32);
    (void)km_buf_put(&pt, k->keyagg.output_xonly, 32);
    (void)km_buf_put_u8(&pt, (uint8_t)k->keyagg.output_parity);
    (void)km_buf_put_u8(&pt, (uint8_t)k->init.tweak.mode);
    (void)km_buf_put(&pt, k->init.tweak.data, 32);
    (void)km_buf_put_u16(&pt, (uint16_t)n);
    (void)km_buf_put(&pt, k->pubkeys, n * 33);
    (void)km_buf_put_u16(&pt, k->init.n_subsets);
    for (uint16_t s = 0; s < k->init.n_subsets; s++) {
        (void)km_buf_put(&pt, k->init.subsets[s].id.b, 16);
        (void)km_buf_put(&pt, k->subset_keyaggs[s].agg_xonly, 32);
        (void)km_buf_put(&pt, k->subset_keyaggs[s].output_xonly, 32);
    }
    km_ad ad;
    err = pt.failed ? KM_ERR_NOMEM : ad_for(&ad, KM_AD_KEYGEN_RESULT, &k->id, NULL, 0);
    if (!err) err = km_session_seal(k->session, ad.bytes, ad.len, pt.data, pt.len, &k->result);
    km_buf_free(&pt);
    return err;
}

void km_cmd_keygen_finalize(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    km_cursor c;
    km_uuid id;
    uint16_t n;
    km_cursor_init(&c, body, len);
    if (!get_id(&c, &id) || km_cursor_get_u16(&c, &n) || n < 1 || n > KM_MAX_PARTICIPANTS) {
        km_reply_fail(r, KM_ERR_PARSE, "keygen_finalize: malformed body");
        return;
    }
    pthread_mutex_lock(&e->lock);
    km_keygen_state *k = km_sessions_find_keygen(e->sessions, &id);
    if (!k) {
        km_reply_fail(r, KM_ERR_NOT_FOUND, "keygen_finalize: unknown keygen");
    } else if (k->finalized) {
        /* The aggregate is fixed once computed; a retry gets the same result. */
        if (km_buf_put(&r->body, k->result.data, k->result.len))
            km_reply_fail(r, KM_ERR_NOMEM, "out of memory");
    } else if (n != k->init.n_participants) {
        km_reply_fail(r, KM_ERR_STATE, "keygen_finalize: %u records for %u participants", n,
                      k->init.n_participants);
    } else {
        uint8_t *seen = calloc(n, 1);
        k->pubkeys = calloc(n, 33);
        k->auth_pubs = calloc(n, 32);
        k->flags = calloc(n, 1);
        km_err err = (seen && k->pubkeys && k->auth_pubs && k->flags) ? KM_OK : KM_ERR_NOMEM;
        for (uint16_t i = 0; !err && i < n; i++) {
            const unsigned char *rec;
            size_t rec_len;
            if (!km_get_vbytes(&c, &rec, &rec_len, 8192)) {
                km_reply_fail(r, KM_ERR_PARSE, "keygen_finalize: malformed record list");
                err = r->err;
            } else {
                err = accept_record(e, k, rec, rec_len, seen, r);
            }
        }
        if (!err && km_cursor_finish(&c)) {
            km_reply_fail(r, KM_ERR_PARSE, "keygen_finalize: trailing bytes");
            err = r->err;
        }
        if (!err) err = aggregate_and_seal(e, k, r);
        if (!err) err = km_buf_put(&r->body, k->result.data, k->result.len);
        if (!err) {
            k->finalized = 1;
        } else {
            /* Nothing half-done survives a refused finalisation. */
            if (!r->err) km_reply_fail(r, err, "keygen_finalize: failed");
            free(k->pubkeys);
            free(k->auth_pubs);
            free(k->flags);
            free(k->subset_keyaggs);
            k->pubkeys = NULL;
            k->auth_pubs = NULL;
            k->flags = NULL;
            k->subset_keyaggs = NULL;
            km_buf_free(&k->result);
            memset(&k->keyagg, 0, sizeof k->keyagg);
        }
        free(seen);
    }
    pthread_mutex_unlock(&e->lock);
}
