/* cmd_sign.c — SIGN_INIT, SIGN_APPROVE, SIGN_PARTIAL, SIGN_FINALIZE.
 *
 * Trust rules enforced here (DESIGN.md §3):
 * - items come sealed under the session data key: only holders of the session
 *   secret can ask for signatures, and the gateway never sees a message;
 * - every nonce or partial signature that crosses the gateway is sealed under
 *   the session key AND signed by the enclave that made it, so neither the
 *   gateway nor a participant can inject or swap one;
 * - each enclave aggregates the nonces itself and checks its own are there
 *   unchanged (an untrusted coordinator cannot frame honest signers);
 * - a participant registered with require_approval gets no partial signature
 *   without its approval over the digest of exactly these items;
 * - a secret nonce signs once: a retry with the same aggregate nonces returns
 *   the cached partial signatures, anything else is KM_ERR_NONCE_REUSE;
 * - every partial signature is verified before aggregation (a bad one names
 *   its signer) and the final signature is verified before release.
 */
#include <stdlib.h>
#include <string.h>

#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "enclave/enclave.h"
#include "enclave/records.h"
#include "enclave/signing.h"
#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"

/* ---- state management ---------------------------------------------------- */

static void state_free(km_signing_state *st) {
    if (!st) return;
    for (size_t i = 0; st->secnonces && i < st->n_units * st->n_local; i++)
        km_secret_free(st->secnonces[i]);
    free(st->secnonces);
    free(st->pubnonces);
    free(st->approved);
    free(st->local);
    free(st->units);
    free(st->pool);
    free(st->all_signers);
    if (st->items) km_wipe(st->items, st->n_items * sizeof *st->items); /* messages are confidential */
    free(st->items);
    km_buf_free(&st->init_response);
    km_buf_free(&st->partial_response);
    km_buf_free(&st->result);
    km_wipe(st, sizeof *st);
    free(st);
}

km_signing_state *km_signing_find(km_enclave_sessions *s, const km_uuid *id) {
    return km_id_index_get(&s->signing_index, id->b);
}

/* Index first: it is the only step that can fail, and the session is not
 * visible until it succeeded. */
km_err km_signing_add(km_enclave_sessions *s, km_signing_state *st) {
    km_err err = km_id_index_add(&s->signing_index, st);
    if (err) return err;
    st->next = s->signings;
    if (st->next) st->next->pprev = &st->next;
    st->pprev = &s->signings;
    s->signings = st;
    s->counts.signings++;
    st->keygen->n_signings++;
    return KM_OK;
}

void km_signing_remove_entry(km_enclave_sessions *s, km_signing_state *st) {
    (void)km_id_index_del(&s->signing_index, st->id.b);
    *st->pprev = st->next;
    if (st->next) st->next->pprev = st->pprev;
    st->keygen->n_signings--;
    state_free(st);
    s->counts.signings--;
}

/* Walks the signing list, but only while the keygen still has sessions: an
 * unfinalised keygen (the ones that expire) has none and costs nothing. */
void km_signing_remove_for_keygen(km_enclave_sessions *s, const km_keygen_state *k) {
    for (km_signing_state *st = s->signings; st && k->n_signings;) {
        km_signing_state *next = st->next;
        if (st->keygen == k) km_signing_remove_entry(s, st);
        st = next;
    }
}

int km_signing_remove(km_enclave_sessions *s, const km_uuid *id) {
    km_signing_state *st = km_signing_find(s, id);
    if (!st) return 0;
    km_signing_remove_entry(s, st);
    return 1;
}

/* Before the keygens go (sessions point into them); the index is emptied in
 * one step, not entry by entry. */
void km_signing_free_all(km_enclave_sessions *s) {
    while (s->signings) {
        km_signing_state *next = s->signings->next;
        s->signings->keygen->n_signings--;
        state_free(s->signings);
        s->signings = next;
    }
    km_id_index_free(&s->signing_index);
    s->counts.signings = 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static int is_signer(const km_sign_unit *u, uint16_t p) {
    for (uint16_t i = 0; i < u->n_signers; i++)
        if (u->signers[i] == p) return 1;
    return 0;
}

/* Units in which participant p signs. */
static size_t units_of(const km_signing_state *st, uint16_t p) {
    size_t n = 0;
    for (size_t u = 0; u < st->n_units; u++)
        n += is_signer(&st->units[u], p);
    return n;
}

/* Appends one signed, sealed record (nonces or partials of one local signer). */
static km_err put_record(km_enclave *e, km_signing_state *st, km_buf *out, const char *purpose,
                         const char *tag, uint16_t p, const unsigned char *pt, size_t pt_len) {
    km_keygen_state *k = st->keygen;
    km_ad ad;
    km_buf sealed, rec;
    km_buf_init(&sealed);
    km_buf_init(&rec);
    unsigned char digest[32], sig[64];
    km_err err = km_ad_build(&ad, purpose, &st->id, k->init.user_ids[p].b, 16);
    if (!err) err = km_session_seal(k->session, ad.bytes, ad.len, pt, pt_len, &sealed);
    if (!err)
        err = km_sign_record_begin(&rec, digest, tag, &st->id, &k->init.user_ids[p], (uint16_t)k->my_index,
                                   sealed.data, sealed.len);
    if (!err) err = km_enclave_sign(e, digest, sig);
    if (!err) err = km_buf_put(&rec, sig, 64);
    if (!err) err = km_buf_put_u32(out, (uint32_t)rec.len);
    if (!err) err = km_buf_put(out, rec.data, rec.len);
    km_buf_free(&sealed);
    km_buf_free(&rec);
    return err;
}

/* One participant's record as received (a view into the request body) and
 * decoded, for the signature checks gather may leave to its caller. */
struct gathered_record {
    const unsigned char *raw;
    size_t len;
    km_sign_record dec;
};

/* Per-participant elements gathered from records: data[p] holds units_of(p)
 * elements of elem bytes, in unit order (NULL if p signs nothing). */
typedef struct {
    unsigned char **data;
    size_t *cursor;
    uint16_t n;
    struct gathered_record *rec;      /* per participant */
    unsigned char section_digest[32]; /* SHA-256 of the whole record list */
} gathered;

static void gathered_free(gathered *g) {
    for (uint16_t i = 0; g->data && i < g->n; i++) {
        if (g->data[i]) free(g->data[i]);
    }
    free(g->data);
    free(g->cursor);
    free(g->rec);
    memset(g, 0, sizeof *g);
}

/* 1 if rec (len bytes) is byte for byte one of the records in list
 * ("u16 n | vbytes record * n", as this enclave produced it). */
static int in_record_list(const km_buf *list, const unsigned char *rec, size_t len) {
    km_cursor c;
    uint16_t n;
    km_cursor_init(&c, list->data, list->len);
    if (km_cursor_get_u16(&c, &n)) return 0;
    for (uint16_t i = 0; i < n; i++) {
        const unsigned char *p;
        size_t plen;
        if (!km_get_vbytes(&c, &p, &plen, 1u << 24)) return 0;
        /* Constant time: the enclave's copy of its own (public) records is
         * derived from secrets, and the constant-time check treats it so. */
        if (plen == len && km_ct_equal(p, rec, len)) return 1;
    }
    return 0;
}

/* Checks the enclave signature of participant p's record. own: the list
 * this enclave produced for this round (its init or partial response) or
 * NULL; a record found there byte for byte is this enclave's own and needs
 * no check (BIP-340 verifications are most of a round's cost). */
static km_err check_record(km_enclave *e, const km_keygen_state *k, int p, const struct gathered_record *g,
                           const km_buf *own, const char *tag, km_reply *r) {
    if (own && in_record_list(own, g->raw, g->len)) return KM_OK;
    if (km_record_signed_by(e, k, p, g->dec.enclave_index, g->dec.sig, g->dec.digest)) return KM_OK;
    km_reply_fail(r, KM_ERR_VERIFY, "%s: record of participant %d is not signed by its enclave", tag, p);
    return r->err;
}

/* check_record for every gathered record. */
static km_err check_records(km_enclave *e, km_signing_state *st, const gathered *g, const km_buf *own,
                            const char *tag, km_reply *r) {
    km_err err = KM_OK;
    for (uint16_t p = 0; !err && p < g->n; p++)
        if (g->data[p]) err = check_record(e, st->keygen, p, &g->rec[p], own, tag, r);
    return err;
}

/* Reads u16 n | vbytes record * n and opens each record; requires exactly one
 * record per participant who signs anything. With check, each record's
 * enclave signature is checked before it is opened (check_records, own:
 * as there); without, the caller calls check_records before it relies on
 * who made a record. */
static km_err gather(km_enclave *e, km_signing_state *st, km_cursor *c, const char *purpose, const char *tag,
                     size_t elem, int check, const km_buf *own, gathered *g, km_reply *r) {
    km_keygen_state *k = st->keygen;
    uint16_t n;
    size_t start = c->pos;
    g->n = k->init.n_participants;
    g->data = calloc(g->n, sizeof *g->data);
    g->cursor = calloc(g->n, sizeof *g->cursor);
    g->rec = calloc(g->n, sizeof *g->rec);
    if (!g->data || !g->cursor || !g->rec) return KM_ERR_NOMEM;
    if (km_cursor_get_u16(c, &n) || n > k->init.n_participants) {
        km_reply_fail(r, KM_ERR_PARSE, "%s: malformed record list", tag);
        return r->err;
    }
    for (uint16_t i = 0; i < n; i++) {
        const unsigned char *p;
        size_t len;
        km_sign_record rec;
        if (!km_get_vbytes(c, &p, &len, 1u << 24) || km_sign_record_decode(&rec, tag, &st->id, p, len)) {
            km_reply_fail(r, KM_ERR_PARSE, "%s: malformed record", tag);
            return r->err;
        }
        int idx = km_keygen_init_find(&k->init, &rec.user_id);
        if (idx < 0) {
            km_reply_fail(r, KM_ERR_NOT_FOUND, "%s: record of an unknown participant", tag);
            return r->err;
        }
        if (g->data[idx]) {
            km_reply_fail(r, KM_ERR_DUPLICATE, "%s: two records for participant %d", tag, idx);
            return r->err;
        }
        g->rec[idx] = (struct gathered_record){p, len, rec};
        if (check && check_record(e, k, idx, &g->rec[idx], own, tag, r)) return r->err;
        size_t want = units_of(st, (uint16_t)idx) * elem, got = 0;
        unsigned char *buf = malloc(want ? want : 1);
        if (!buf) return KM_ERR_NOMEM;
        km_ad ad;
        km_err err = km_ad_build(&ad, purpose, &st->id, rec.user_id.b, 16);
        if (!err)
            err = km_session_open(k->session, ad.bytes, ad.len, rec.sealed, rec.sealed_len, buf, want, &got);
        if (err || got != want || want == 0) {
            free(buf);
            km_reply_fail(r, err ? err : KM_ERR_PARSE,
                          "%s: record of participant %d does not open or has %zu bytes", tag, idx, got);
            return r->err;
        }
        g->data[idx] = buf;
    }
    for (uint16_t p = 0; p < g->n; p++) {
        if (!g->data[p] && units_of(st, p) > 0) {
            km_reply_fail(r, KM_ERR_STATE, "%s: no record for participant %u", tag, p);
            return r->err;
        }
    }
    km_sha256(g->section_digest, c->p + start, c->pos - start);
    return KM_OK;
}

/* The aggregate nonce of unit u (computed here, never taken from outside),
 * with the adaptor point folded in. Advances the nonce cursors. */
static km_err unit_aggnonce(km_enclave *e, const km_sign_unit *u, gathered *nonces, unsigned char agg66[66],
                            unsigned char (*pubs)[66]) {
    for (uint16_t i = 0; i < u->n_signers; i++) {
        uint16_t p = u->signers[i];
        memcpy(pubs[i], nonces->data[p] + nonces->cursor[p] * 66, 66);
        nonces->cursor[p]++;
    }
    size_t bad;
    km_err err = km_musig_nonce_agg(e->ctx, agg66, &pubs[0][0], u->n_signers, &bad);
    if (!err && u->has_T) {
        unsigned char folded[66];
        err = km_adaptor_fold_aggnonce(e->ctx, folded, agg66, u->T);
        memcpy(agg66, folded, 66);
    }
    return err;
}

/* ---- SIGN_INIT ------------------------------------------------------------- */

/* The key aggregation an item signs under: the keygen's (full set or subset,
 * default tweak), or a fresh one when the item names its own tweak. */
static km_err item_keyagg(km_enclave *e, km_signing_state *st, const km_sign_item *it, int subset,
                          const km_musig_keyagg **out) {
    km_keygen_state *k = st->keygen;
    if (!it->own_tweak) {
        *out = subset < 0 ? &k->keyagg : &k->subset_keyaggs[subset];
        return KM_OK;
    }
    /* Reuse an identical earlier aggregation (batches often share a tweak). */
    for (size_t i = st->n_pool; i-- > 0 && st->n_pool - i <= 8;) {
        km_musig_keyagg *ka = &st->pool[i];
        if (ka->n_keys == (subset < 0 ? k->init.n_participants : k->init.subsets[subset].n) &&
            ka->tweak.mode == it->tweak.mode && memcmp(ka->tweak.data, it->tweak.data, 32) == 0 &&
            memcmp(ka->agg_xonly, (subset < 0 ? &k->keyagg : &k->subset_keyaggs[subset])->agg_xonly, 32) ==
                0) {
            *out = ka;
            return KM_OK;
        }
    }
    km_musig_keyagg *ka = &st->pool[st->n_pool];
    const km_musig_keyagg *base = subset < 0 ? &k->keyagg : &k->subset_keyaggs[subset];
    size_t n = base->n_keys, bad;
    unsigned char(*keys)[33] = malloc(n * 33);
    if (!keys) return KM_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        memcpy(keys[i], k->pubkeys[subset < 0 ? i : k->init.subsets[subset].members[i]], 33);
    km_err err = km_musig_key_agg(e->ctx, ka, &keys[0][0], n, &bad);
    free(keys);
    if (!err) err = km_musig_keyagg_tweak(e->ctx, ka, &it->tweak);
    if (!err) {
        st->n_pool++;
        *out = ka;
    }
    return err;
}

/* Lays out units and their signer sets; validates subsets and adaptor points. */
static km_err build_units(km_enclave *e, km_signing_state *st, km_reply *r) {
    km_keygen_state *k = st->keygen;
    size_t n_units = 0;
    for (size_t i = 0; i < st->n_items; i++)
        n_units += km_sign_item_units(&st->items[i]);
    st->units = calloc(n_units, sizeof *st->units);
    st->pool = calloc(st->n_items, sizeof *st->pool);
    st->all_signers = calloc(k->init.n_participants, sizeof *st->all_signers);
    if (!st->units || !st->pool || !st->all_signers) return KM_ERR_NOMEM;
    for (uint16_t p = 0; p < k->init.n_participants; p++)
        st->all_signers[p] = p;
    size_t u = 0;
    for (size_t i = 0; i < st->n_items; i++) {
        const km_sign_item *it = &st->items[i];
        int subset = -1;
        if (it->has_subset) {
            for (uint16_t s = 0; s < k->init.n_subsets; s++)
                if (memcmp(k->init.subsets[s].id.b, it->subset_id.b, 16) == 0) subset = s;
            if (subset < 0) {
                km_reply_fail(r, KM_ERR_NOT_FOUND, "sign_init: item %zu names an unknown subset", i);
                return r->err;
            }
        }
        for (uint16_t p = 0; p < it->n_points; p++) {
            if (km_musig_pubkey_check(e->ctx, it->points[p]) != KM_OK) {
                km_reply_fail(r, KM_ERR_INVALID_POINT, "sign_init: item %zu adaptor point %u is invalid", i,
                              p);
                return r->err;
            }
        }
        const km_musig_keyagg *ka;
        km_err err = item_keyagg(e, st, it, subset, &ka);
        if (err) {
            km_reply_fail(r, err, "sign_init: item %zu: key aggregation with its tweak failed", i);
            return r->err;
        }
        unsigned char and_T[33];
        if (it->adaptor == KM_ADAPTOR_AND) {
            const unsigned char *pts[KM_MAX_ADAPTOR_POINTS];
            for (uint16_t p = 0; p < it->n_points; p++)
                pts[p] = it->points[p];
            if (km_adaptor_point_sum(e->ctx, and_T, pts, it->n_points) != KM_OK) {
                km_reply_fail(r, KM_ERR_INVALID_POINT, "sign_init: item %zu: And points sum to infinity", i);
                return r->err;
            }
        }
        for (unsigned v = 0; v < km_sign_item_units(it); v++, u++) {
            km_sign_unit *un = &st->units[u];
            un->item = (uint32_t)i;
            un->variant = (uint16_t)v;
            un->keyagg = ka;
            un->n_signers = subset < 0 ? k->init.n_participants : k->init.subsets[subset].n;
            un->signers = subset < 0 ? st->all_signers : k->init.subsets[subset].members;
            un->has_T = it->adaptor != KM_ADAPTOR_NONE;
            if (it->adaptor == KM_ADAPTOR_AND)
                memcpy(un->T, and_T, 33);
            else if (un->has_T)
                memcpy(un->T, it->points[it->adaptor == KM_ADAPTOR_OR ? v : 0], 33);
        }
    }
    st->n_units = n_units;
    return KM_OK;
}

/* Generates the local signers' nonces and builds the nonce records. */
static km_err make_nonces(km_enclave *e, km_signing_state *st, km_reply *r) {
    km_keygen_state *k = st->keygen;
    st->local = calloc(k->init.n_participants, sizeof *st->local);
    if (!st->local) return KM_ERR_NOMEM;
    for (uint16_t p = 0; p < k->init.n_participants; p++)
        if (k->locals[p]) st->local[st->n_local++] = p;
    size_t slots = st->n_units * st->n_local;
    st->secnonces = calloc(slots ? slots : 1, sizeof *st->secnonces);
    st->pubnonces = calloc(slots ? slots : 1, 66);
    st->approved = calloc(st->n_local ? st->n_local : 1, 1);
    if (!st->secnonces || !st->pubnonces || !st->approved) return KM_ERR_NOMEM;
    km_err err = KM_OK;
    for (size_t u = 0; !err && u < st->n_units; u++) {
        const km_sign_unit *un = &st->units[u];
        const km_sign_item *it = &st->items[un->item];
        for (uint16_t l = 0; !err && l < st->n_local; l++) {
            uint16_t p = st->local[l];
            if (!is_signer(un, p)) continue;
            /* Extra input binds the nonce to this session, unit and signer, on
             * top of the fresh randomness libsecp256k1 requires. */
            unsigned char extra[32], ubuf[4] = {(unsigned char)(u >> 24), (unsigned char)(u >> 16),
                                                (unsigned char)(u >> 8), (unsigned char)u};
            const void *parts[4] = {st->id.b, it->id.b, ubuf, k->init.user_ids[p].b};
            size_t lens[4] = {16, 16, 4, 16};
            km_sha256_parts(extra, parts, lens, 4);
            km_local_participant *lp = k->locals[p];
            err = km_musig_nonce_gen(e->ctx, &st->secnonces[u * st->n_local + l],
                                     st->pubnonces[u * st->n_local + l], km_secret_cdata(lp->seckey),
                                     lp->pubkey, it->msg, un->keyagg, extra);
        }
    }
    if (err) {
        km_reply_fail(r, err, "sign_init: nonce generation failed");
        return err;
    }
    /* One record per local signer: its public nonces in unit order. */
    uint16_t n_records = 0;
    for (uint16_t l = 0; l < st->n_local; l++)
        n_records += units_of(st, st->local[l]) > 0;
    (void)km_buf_put_u16(&st->init_response, n_records);
    km_buf pt;
    km_buf_init(&pt);
    for (uint16_t l = 0; !err && l < st->n_local; l++) {
        pt.len = 0;
        for (size_t u = 0; u < st->n_units; u++)
            if (is_signer(&st->units[u], st->local[l]))
                (void)km_buf_put(&pt, st->pubnonces[u * st->n_local + l], 66);
        if (pt.failed) err = KM_ERR_NOMEM;
        if (!err && pt.len)
            err = put_record(e, st, &st->init_response, KM_AD_NONCES, KM_TAG_NONCE_RECORD, st->local[l],
                             pt.data, pt.len);
    }
    km_buf_free(&pt);
    return err;
}

void km_cmd_sign_init(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    km_cursor c;
    km_uuid keygen_id, signing_id;
    const unsigned char *blob;
    size_t blob_len;
    km_cursor_init(&c, body, len);
    if (km_cursor_get_bytes(&c, keygen_id.b, 16) || km_cursor_get_bytes(&c, signing_id.b, 16) ||
        !km_get_vbytes(&c, &blob, &blob_len, 1u << 24) || km_cursor_finish(&c)) {
        km_reply_fail(r, KM_ERR_PARSE, "sign_init: malformed body");
        return;
    }
    unsigned char digest[32];
    km_sha256(digest, body, len);
    pthread_mutex_lock(&e->lock);
    km_signing_state *old = km_signing_find(e->sessions, &signing_id);
    km_keygen_state *k = km_sessions_find_keygen(e->sessions, &keygen_id);
    if (old) {
        if (km_ct_equal(old->init_digest, digest, 32)) {
            if (km_buf_put(&r->body, old->init_response.data, old->init_response.len))
                km_reply_fail(r, KM_ERR_NOMEM, "out of memory");
        } else {
            km_reply_fail(r, KM_ERR_DUPLICATE, "sign_init: signing session exists with other content");
        }
        pthread_mutex_unlock(&e->lock);
        return;
    }
    if (e->sessions->counts.signings >= e->max_signings) {
        km_reply_fail(r, KM_ERR_RANGE, "sign_init: enclave holds its maximum of %u signing sessions",
                      e->max_signings);
        pthread_mutex_unlock(&e->lock);
        return;
    }
    if (!k || !k->finalized) {
        km_reply_fail(r, k ? KM_ERR_STATE : KM_ERR_NOT_FOUND, "sign_init: keygen %s",
                      k ? "not finalised" : "unknown");
        pthread_mutex_unlock(&e->lock);
        return;
    }
    km_signing_state *st = calloc(1, sizeof *st);
    unsigned char *pt = malloc(blob_len ? blob_len : 1);
    size_t pt_len = 0;
    km_err err = st && pt ? KM_OK : KM_ERR_NOMEM;
    if (!err) {
        st->id = signing_id;
        st->keygen_id = keygen_id;
        st->keygen = k;
        st->created_at = km_enclave_now();
        memcpy(st->init_digest, digest, 32);
        km_buf_init(&st->init_response);
        km_buf_init(&st->partial_response);
        km_buf_init(&st->result);
        km_ad ad;
        err = km_ad_build(&ad, KM_AD_SIGNING_ITEMS, &signing_id, keygen_id.b, 16);
        if (!err) err = km_session_open(k->session, ad.bytes, ad.len, blob, blob_len, pt, blob_len, &pt_len);
        if (err) km_reply_fail(r, err, "sign_init: items do not open under this keygen's session key");
    }
    if (!err) {
        err = km_sign_items_decode(&st->items, &st->n_items, pt, pt_len);
        if (err) km_reply_fail(r, err, "sign_init: invalid items");
    }
    if (!err) {
        km_sign_approval_digest(st->approval_digest, &signing_id, &keygen_id, pt, pt_len);
        err = build_units(e, st, r);
    }
    if (!err) err = make_nonces(e, st, r);
    if (pt) km_wipe(pt, blob_len);
    free(pt);
    if (!err) err = km_buf_put(&r->body, st->init_response.data, st->init_response.len);
    /* Last: once linked the session is visible; if it cannot be, the reply is
     * an error and its nonces are freed unseen. */
    if (!err) err = km_signing_add(e->sessions, st);
    if (err) {
        if (!r->err) km_reply_fail(r, err, "sign_init: failed");
        state_free(st);
    }
    pthread_mutex_unlock(&e->lock);
}

/* ---- SIGN_APPROVE ---------------------------------------------------------- */

static int local_slot(const km_signing_state *st, uint16_t p) {
    for (uint16_t l = 0; l < st->n_local; l++)
        if (st->local[l] == p) return l;
    return -1;
}

void km_cmd_sign_approve(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    const secp256k1_context *secp = km_ctx_secp(e->ctx);
    km_cursor c;
    km_uuid signing_id, user;
    const unsigned char *sig;
    km_cursor_init(&c, body, len);
    if (km_cursor_get_bytes(&c, signing_id.b, 16) || km_cursor_get_bytes(&c, user.b, 16) ||
        km_cursor_get_view(&c, &sig, 64) || km_cursor_finish(&c)) {
        km_reply_fail(r, KM_ERR_PARSE, "sign_approve: malformed body");
        return;
    }
    pthread_mutex_lock(&e->lock);
    km_signing_state *st = km_signing_find(e->sessions, &signing_id);
    int p = st ? km_keygen_init_find(&st->keygen->init, &user) : -1;
    int l = p >= 0 ? local_slot(st, (uint16_t)p) : -1;
    secp256k1_xonly_pubkey auth;
    if (!st) {
        km_reply_fail(r, KM_ERR_NOT_FOUND, "sign_approve: unknown signing session");
    } else if (l < 0) {
        km_reply_fail(r, KM_ERR_NOT_FOUND, "sign_approve: not a participant on this enclave");
    } else if (!secp256k1_xonly_pubkey_parse(secp, &auth, st->keygen->locals[p]->auth_pub) ||
               !secp256k1_schnorrsig_verify(secp, sig, st->approval_digest, 32, &auth)) {
        km_reply_fail(r, KM_ERR_VERIFY, "sign_approve: approval signature does not verify for these items");
    } else {
        st->approved[l] = 1;
    }
    pthread_mutex_unlock(&e->lock);
}

/* Our own nonces must come back unchanged: a record list with other nonces
 * for a local participant is a tampered one, or one of an earlier run of
 * this signing id (before a SESSION_CLEAR), whose nonces are gone. */
static km_err own_nonces_unchanged(const km_signing_state *st, const gathered *nonces, const char *who,
                                   km_reply *r) {
    for (uint16_t l = 0; l < st->n_local; l++) {
        uint16_t p = st->local[l];
        size_t j = 0;
        for (size_t u = 0; u < st->n_units; u++) {
            if (!is_signer(&st->units[u], p)) continue;
            if (memcmp(nonces->data[p] + 66 * j++, st->pubnonces[u * st->n_local + l], 66) != 0) {
                km_reply_fail(r, KM_ERR_VERIFY, "%s: our own nonce for participant %u was altered", who, p);
                return r->err;
            }
        }
    }
    return KM_OK;
}

/* ---- SIGN_PARTIAL ---------------------------------------------------------- */

void km_cmd_sign_partial(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    km_cursor c;
    km_uuid signing_id;
    km_cursor_init(&c, body, len);
    if (km_cursor_get_bytes(&c, signing_id.b, 16)) {
        km_reply_fail(r, KM_ERR_PARSE, "sign_partial: malformed body");
        return;
    }
    pthread_mutex_lock(&e->lock);
    km_signing_state *st = km_signing_find(e->sessions, &signing_id);
    gathered nonces;
    memset(&nonces, 0, sizeof nonces);
    km_musig_session *sessions = NULL;
    unsigned char(*pubs)[66] = NULL;
    km_err err = KM_OK;
    if (!st) {
        km_reply_fail(r, KM_ERR_NOT_FOUND, "sign_partial: unknown signing session");
        goto out;
    }
    err = gather(e, st, &c, KM_AD_NONCES, KM_TAG_NONCE_RECORD, 66, 1, &st->init_response, &nonces, r);
    if (!err && km_cursor_finish(&c)) {
        km_reply_fail(r, KM_ERR_PARSE, "sign_partial: trailing bytes");
        err = r->err;
    }
    if (!err) err = own_nonces_unchanged(st, &nonces, "sign_partial", r);
    if (err) goto out;
    sessions = calloc(st->n_units, sizeof *sessions);
    pubs = calloc(st->keygen->init.n_participants, 66);
    if (!sessions || !pubs) {
        err = KM_ERR_NOMEM;
        goto out;
    }
    unsigned char nd[32];
    {
        km_buf aggs;
        km_buf_init(&aggs);
        for (size_t u = 0; !err && u < st->n_units; u++) {
            unsigned char agg[66];
            const km_sign_unit *un = &st->units[u];
            err = unit_aggnonce(e, un, &nonces, agg, pubs);
            if (!err)
                err = km_musig_session_init(e->ctx, &sessions[u], agg, st->items[un->item].msg, un->keyagg);
            if (!err) err = km_buf_put(&aggs, agg, 66);
        }
        km_sha256(nd, aggs.data, aggs.len);
        km_buf_free(&aggs);
    }
    if (err) {
        km_reply_fail(r, err, "sign_partial: nonce aggregation failed");
        goto out;
    }
    if (st->partial_done) {
        /* A nonce signs once. The same aggregate nonces get the same answer;
         * different ones would make us sign twice with one nonce. A round that
         * failed half-way has spent its nonces: it cannot be answered again. */
        if (st->partial_failed) {
            km_reply_fail(r, KM_ERR_STATE, "sign_partial: this round failed; start a new signing session");
            err = r->err;
        } else if (km_ct_equal(st->nonce_digest, nd, 32)) {
            err = km_buf_put(&r->body, st->partial_response.data, st->partial_response.len);
        } else {
            km_reply_fail(r, KM_ERR_NONCE_REUSE,
                          "sign_partial: nonces already used with other aggregate nonces");
            err = r->err;
        }
        goto out;
    }
    /* Every approval first: nothing is signed unless everything may be. */
    for (uint16_t l = 0; l < st->n_local; l++) {
        uint16_t p = st->local[l];
        if ((st->keygen->locals[p]->flags & KM_FLAG_REQUIRE_APPROVAL) && !st->approved[l] &&
            units_of(st, p)) {
            km_reply_fail(r, KM_ERR_VERIFY, "sign_partial: participant %u requires an approval", p);
            err = r->err;
            goto out;
        }
    }
    {
        (void)km_buf_put_u16(&st->partial_response, 0); /* record count patched below */
        uint16_t n_records = 0;
        km_buf pt;
        km_buf_init(&pt);
        for (uint16_t l = 0; !err && l < st->n_local; l++) {
            uint16_t p = st->local[l];
            pt.len = 0;
            for (size_t u = 0; !err && u < st->n_units; u++) {
                km_secret **sn = &st->secnonces[u * st->n_local + l];
                if (!*sn) continue;
                unsigned char psig[32];
                err = km_musig_partial_sign(e->ctx, psig, *sn, km_secret_cdata(st->keygen->locals[p]->seckey),
                                            &sessions[u]);
                km_secret_free(*sn); /* consumed either way */
                *sn = NULL;
                if (!err) err = km_buf_put(&pt, psig, 32);
            }
            if (!err && pt.len) {
                err = put_record(e, st, &st->partial_response, KM_AD_PARTIALS, KM_TAG_PARTIAL_RECORD, p,
                                 pt.data, pt.len);
                n_records++;
            }
        }
        km_buf_free(&pt);
        /* Even on failure the nonces used so far are gone: the session is spent. */
        st->partial_done = 1;
        memcpy(st->nonce_digest, nd, 32);
        memcpy(st->nonce_records_digest, nonces.section_digest, 32);
        if (!err) {
            st->partial_response.data[0] = (unsigned char)(n_records >> 8);
            st->partial_response.data[1] = (unsigned char)n_records;
            err = km_buf_put(&r->body, st->partial_response.data, st->partial_response.len);
        } else {
            km_buf_free(&st->partial_response);
            st->partial_failed = 1;
            km_reply_fail(r, err, "sign_partial: signing failed; the session must restart with new nonces");
        }
    }
out:
    if (err && !r->err) km_reply_fail(r, err, "sign_partial: failed");
    gathered_free(&nonces);
    free(sessions);
    free(pubs);
    pthread_mutex_unlock(&e->lock);
}

/* ---- SIGN_FINALIZE --------------------------------------------------------- */

void km_cmd_sign_finalize(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    km_cursor c;
    km_uuid signing_id;
    km_cursor_init(&c, body, len);
    if (km_cursor_get_bytes(&c, signing_id.b, 16)) {
        km_reply_fail(r, KM_ERR_PARSE, "sign_finalize: malformed body");
        return;
    }
    pthread_mutex_lock(&e->lock);
    km_signing_state *st = km_signing_find(e->sessions, &signing_id);
    gathered nonces, partials;
    memset(&nonces, 0, sizeof nonces);
    memset(&partials, 0, sizeof partials);
    unsigned char(*pubs)[66] = NULL;
    unsigned char(*psigs)[32] = NULL;
    km_buf pt;
    km_buf_init(&pt);
    km_err err = KM_OK;
    if (!st) {
        km_reply_fail(r, KM_ERR_NOT_FOUND, "sign_finalize: unknown signing session");
        goto out;
    }
    if (st->finalized) {
        err = km_buf_put(&r->body, st->result.data, st->result.len);
        goto out;
    }
    /* The nonce records: checked already if they are the list this enclave's
     * SIGN_PARTIAL checked and signed over. The partial records: their
     * signatures only say who made each partial signature, which matters
     * when the aggregate does not verify (below); a valid aggregate cannot
     * be made without every honest signer's partial signature. */
    err = gather(e, st, &c, KM_AD_NONCES, KM_TAG_NONCE_RECORD, 66, 0, NULL, &nonces, r);
    if (!err && !(st->partial_done && !st->partial_failed &&
                  km_ct_equal(nonces.section_digest, st->nonce_records_digest, 32))) {
        err = check_records(e, st, &nonces, &st->init_response, KM_TAG_NONCE_RECORD, r);
        /* Authentic records of an earlier run of this id are refused here:
         * they carry that run's nonces (fuzz_enclave found them accepted). */
        if (!err) err = own_nonces_unchanged(st, &nonces, "sign_finalize", r);
    }
    if (!err) err = gather(e, st, &c, KM_AD_PARTIALS, KM_TAG_PARTIAL_RECORD, 32, 0, NULL, &partials, r);
    if (!err && km_cursor_finish(&c)) {
        km_reply_fail(r, KM_ERR_PARSE, "sign_finalize: trailing bytes");
        err = r->err;
    }
    if (err) goto out;
    km_keygen_state *k = st->keygen;
    pubs = calloc(k->init.n_participants, 66);
    psigs = calloc(k->init.n_participants, 32);
    if (!pubs || !psigs) {
        err = KM_ERR_NOMEM;
        goto out;
    }
    (void)km_buf_put_u32(&pt, (uint32_t)st->n_items);
    for (size_t u = 0; !err && u < st->n_units; u++) {
        const km_sign_unit *un = &st->units[u];
        const km_sign_item *it = &st->items[un->item];
        if (un->variant == 0) {
            (void)km_buf_put(&pt, it->id.b, 16);
            (void)km_buf_put_u8(&pt, (uint8_t)it->adaptor);
            (void)km_buf_put_u16(&pt, (uint16_t)km_sign_item_units(it));
        }
        unsigned char agg[66], sig[64];
        km_musig_session ms;
        err = unit_aggnonce(e, un, &nonces, agg, pubs);
        if (!err) err = km_musig_session_init(e->ctx, &ms, agg, it->msg, un->keyagg);
        if (err) {
            km_reply_fail(r, err, "sign_finalize: unit %zu: nonce aggregation failed", u);
            break;
        }
        for (uint16_t i = 0; i < un->n_signers; i++) {
            uint16_t p = un->signers[i];
            memcpy(psigs[i], partials.data[p] + 32 * partials.cursor[p]++, 32);
        }
        size_t bad;
        err = km_musig_partial_agg(e->ctx, sig, &ms, &psigs[0][0], un->n_signers, &bad);
        /* Nothing leaves the enclave unverified: the aggregate is verified.
         * The partial signatures are checked one by one only when it does not
         * verify, to name the participant at fault (a valid aggregate implies
         * nothing to blame, and this saves n verifications per unit). */
        if (!err)
            err = un->has_T ? km_adaptor_presig_verify(e->ctx, sig, un->T, un->keyagg->output_xonly, it->msg)
                            : km_musig_verify_final(e->ctx, sig, it->msg, un->keyagg);
        /* Blame: a forged record first, then an invalid partial signature. */
        if (err && !r->err)
            (void)check_records(e, st, &partials, &st->partial_response, KM_TAG_PARTIAL_RECORD, r);
        for (uint16_t i = 0; err && !r->err && i < un->n_signers; i++) {
            uint16_t p = un->signers[i];
            if (km_musig_partial_verify(e->ctx, &ms, psigs[i], pubs[i], k->pubkeys[p]) != KM_OK) {
                char uid[37];
                km_uuid_format(uid, &k->init.user_ids[p]);
                km_reply_fail(r, KM_ERR_VERIFY,
                              "sign_finalize: invalid partial signature from participant %s", uid);
                err = r->err;
            }
        }
        if (err && !r->err)
            km_reply_fail(r, err, "sign_finalize: unit %zu: aggregate signature does not verify", u);
        static const unsigned char none[33];
        (void)km_buf_put(&pt, sig, 64);
        (void)km_buf_put(&pt, un->has_T ? un->T : none, 33);
    }
    if (!err && pt.failed) err = KM_ERR_NOMEM;
    if (!err) {
        km_ad ad;
        err = km_ad_build(&ad, KM_AD_SIGNING_RESULT, &st->id, NULL, 0);
        if (!err) err = km_session_seal(k->session, ad.bytes, ad.len, pt.data, pt.len, &st->result);
    }
    if (!err) err = km_buf_put(&r->body, st->result.data, st->result.len);
    if (!err) st->finalized = 1;
out:
    if (err && !r->err) km_reply_fail(r, err, "sign_finalize: failed");
    gathered_free(&nonces);
    gathered_free(&partials);
    free(pubs);
    free(psigs);
    km_buf_free(&pt);
    pthread_mutex_unlock(&e->lock);
}
