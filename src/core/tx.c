/* tx.c — Bitcoin transaction codec and BIP-341 signature messages (see
 * keymeld/tx.h).
 *
 * The parser is the only place raw transaction bytes become a km_tx. It
 * reads through km_cursor (bounded; no read past the end by construction)
 * and checks every count against the bytes that remain before allocating,
 * so a 10-byte input cannot ask for a gigabyte.
 */
#include <stdlib.h>
#include <string.h>

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>

#include "keymeld/hash.h"
#include "keymeld/secret.h"
#include "keymeld/tx.h"

/* Smallest serialized input: txid 32 + vout 4 + script length 1 + sequence 4. */
#define MIN_INPUT_SIZE 41
/* Smallest serialized output: amount 8 + script length 1. */
#define MIN_OUTPUT_SIZE 9

/* ---- little-endian reading and CompactSize ------------------------------ */

static km_err get_le(km_cursor *c, uint64_t *v, size_t n) {
    const unsigned char *p;
    *v = 0;
    if (km_cursor_get_view(c, &p, n) != KM_OK) return KM_ERR_PARSE;
    for (size_t i = n; i-- > 0;)
        *v = *v << 8 | p[i];
    return KM_OK;
}

static km_err get_le32(km_cursor *c, uint32_t *v) {
    uint64_t x;
    km_err e = get_le(c, &x, 4);
    *v = (uint32_t)x;
    return e;
}

/* A CompactSize in its one canonical (shortest) form. A longer spelling of
 * the same value would give a second byte string for one transaction, and
 * with it a second txid-preimage a parser elsewhere might read differently. */
static km_err get_compact(km_cursor *c, uint64_t *v) {
    uint8_t b;
    *v = 0;
    if (km_cursor_get_u8(c, &b) != KM_OK) return KM_ERR_PARSE;
    if (b < 0xfd) {
        *v = b;
        return KM_OK;
    }
    size_t n = b == 0xfd ? 2 : b == 0xfe ? 4 : 8;
    uint64_t min = b == 0xfd ? 0xfd : b == 0xfe ? 0x10000 : 0x100000000ull;
    if (get_le(c, v, n) != KM_OK) return KM_ERR_PARSE;
    if (*v < min) {
        c->failed = 1;
        *v = 0;
        return KM_ERR_PARSE;
    }
    return KM_OK;
}

/* A count of items of at least min_size bytes each, which must fit in what
 * remains; this bounds every allocation by the input length. */
static km_err get_count(km_cursor *c, size_t min_size, size_t *n) {
    uint64_t v;
    *n = 0;
    if (get_compact(c, &v) != KM_OK) return KM_ERR_PARSE;
    if (v > km_cursor_remaining(c) / min_size) {
        c->failed = 1;
        return KM_ERR_PARSE;
    }
    *n = (size_t)v;
    return KM_OK;
}

/* A length-prefixed byte string, copied into tx-owned memory. */
static km_err get_bytes(km_cursor *c, km_tx_bytes *out) {
    size_t n;
    const unsigned char *p;
    out->data = NULL;
    out->len = 0;
    if (get_count(c, 1, &n) != KM_OK || km_cursor_get_view(c, &p, n) != KM_OK) return KM_ERR_PARSE;
    if (n == 0) return KM_OK;
    out->data = malloc(n);
    if (!out->data) return KM_ERR_NOMEM;
    memcpy(out->data, p, n);
    out->len = n;
    return KM_OK;
}

/* ---- writing ------------------------------------------------------------- */

static km_err put_le(km_buf *b, uint64_t v, size_t n) {
    unsigned char t[8];
    for (size_t i = 0; i < n; i++)
        t[i] = (unsigned char)(v >> (8 * i));
    return km_buf_put(b, t, n);
}

static km_err put_compact(km_buf *b, uint64_t v) {
    if (v < 0xfd) return km_buf_put_u8(b, (uint8_t)v);
    if (v <= 0xffff) {
        (void)km_buf_put_u8(b, 0xfd); /* failure is sticky in b; reported below */
        return put_le(b, v, 2);
    }
    if (v <= 0xffffffffu) {
        (void)km_buf_put_u8(b, 0xfe);
        return put_le(b, v, 4);
    }
    (void)km_buf_put_u8(b, 0xff);
    return put_le(b, v, 8);
}

static km_err put_bytes(km_buf *b, const unsigned char *p, size_t n) {
    (void)put_compact(b, n);
    return km_buf_put(b, p, n);
}

/* ---- model --------------------------------------------------------------- */

static void bytes_free(km_tx_bytes *b) {
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

static void witness_free(km_tx_in *in) {
    for (size_t i = 0; i < in->n_witness; i++)
        bytes_free(&in->witness[i]);
    free(in->witness);
    in->witness = NULL;
    in->n_witness = 0;
}

void km_tx_init(km_tx *tx, uint32_t version, uint32_t locktime) {
    memset(tx, 0, sizeof *tx);
    tx->version = version;
    tx->locktime = locktime;
}

void km_tx_free(km_tx *tx) {
    if (!tx) return;
    for (size_t i = 0; i < tx->n_in; i++) {
        bytes_free(&tx->in[i].script_sig);
        witness_free(&tx->in[i]);
    }
    for (size_t i = 0; i < tx->n_out; i++)
        bytes_free(&tx->out[i].script_pubkey);
    free(tx->in);
    free(tx->out);
    km_tx_init(tx, 0, 0);
}

static int has_witness(const km_tx *tx) {
    for (size_t i = 0; i < tx->n_in; i++)
        if (tx->in[i].n_witness) return 1;
    return 0;
}

/* ---- parse --------------------------------------------------------------- */

static km_err parse_body(km_tx *tx, km_cursor *c) {
    uint8_t marker, flag;
    int segwit = 0;
    size_t n;
    km_err e;

    if (get_le32(c, &tx->version) != KM_OK) return KM_ERR_PARSE;
    /* BIP-144: a zero where the input count would be is the segwit marker.
     * A legacy transaction cannot have zero inputs, so this is unambiguous. */
    if (km_cursor_remaining(c) >= 1 && c->p[c->pos] == 0x00) {
        if (km_cursor_get_u8(c, &marker) != KM_OK || km_cursor_get_u8(c, &flag) != KM_OK) return KM_ERR_PARSE;
        if (flag != 0x01) return KM_ERR_PARSE;
        segwit = 1;
    }

    if (get_count(c, MIN_INPUT_SIZE, &n) != KM_OK || n == 0) return KM_ERR_PARSE;
    tx->in = calloc(n, sizeof *tx->in);
    if (!tx->in) return KM_ERR_NOMEM;
    tx->n_in = n;
    for (size_t i = 0; i < tx->n_in; i++) {
        km_tx_in *in = &tx->in[i];
        if (km_cursor_get_bytes(c, in->prev_txid, 32) != KM_OK || get_le32(c, &in->prev_vout) != KM_OK)
            return KM_ERR_PARSE;
        if ((e = get_bytes(c, &in->script_sig)) != KM_OK) return e;
        if (get_le32(c, &in->sequence) != KM_OK) return KM_ERR_PARSE;
    }

    if (get_count(c, MIN_OUTPUT_SIZE, &n) != KM_OK || n == 0) return KM_ERR_PARSE;
    tx->out = calloc(n, sizeof *tx->out);
    if (!tx->out) return KM_ERR_NOMEM;
    tx->n_out = n;
    for (size_t i = 0; i < tx->n_out; i++) {
        km_tx_out *o = &tx->out[i];
        if (get_le(c, &o->amount, 8) != KM_OK || o->amount > KM_TX_MAX_MONEY) return KM_ERR_PARSE;
        if ((e = get_bytes(c, &o->script_pubkey)) != KM_OK) return e;
    }

    if (segwit) {
        for (size_t i = 0; i < tx->n_in; i++) {
            km_tx_in *in = &tx->in[i];
            if (get_count(c, 1, &n) != KM_OK) return KM_ERR_PARSE;
            if (n == 0) continue;
            in->witness = calloc(n, sizeof *in->witness);
            if (!in->witness) return KM_ERR_NOMEM;
            in->n_witness = n;
            for (size_t j = 0; j < n; j++)
                if ((e = get_bytes(c, &in->witness[j])) != KM_OK) return e;
        }
        /* The marker promises witness data; without any, the same
         * transaction would also have a legacy spelling. */
        if (!has_witness(tx)) return KM_ERR_PARSE;
    }

    if (get_le32(c, &tx->locktime) != KM_OK) return KM_ERR_PARSE;
    return km_cursor_finish(c);
}

km_err km_tx_parse(km_tx *tx, const unsigned char *raw, size_t len) {
    km_cursor c;
    km_err e;
    km_tx_init(tx, 0, 0);
    if (len > KM_TX_MAX_SIZE) return KM_ERR_PARSE;
    km_cursor_init(&c, raw, raw ? len : 0);
    if (raw == NULL && len != 0) return KM_ERR_PARSE;
    e = parse_body(tx, &c);
    if (e != KM_OK) km_tx_free(tx);
    return e;
}

/* ---- serialize ----------------------------------------------------------- */

static km_err put_output(km_buf *b, const km_tx_out *o) {
    (void)put_le(b, o->amount, 8);
    return put_bytes(b, o->script_pubkey.data, o->script_pubkey.len);
}

km_err km_tx_serialize(const km_tx *tx, int with_witness, km_buf *out) {
    int segwit = with_witness && has_witness(tx);
    (void)put_le(out, tx->version, 4);
    if (segwit) {
        (void)km_buf_put_u8(out, 0x00);
        (void)km_buf_put_u8(out, 0x01);
    }
    (void)put_compact(out, tx->n_in);
    for (size_t i = 0; i < tx->n_in; i++) {
        const km_tx_in *in = &tx->in[i];
        (void)km_buf_put(out, in->prev_txid, 32);
        (void)put_le(out, in->prev_vout, 4);
        (void)put_bytes(out, in->script_sig.data, in->script_sig.len);
        (void)put_le(out, in->sequence, 4);
    }
    (void)put_compact(out, tx->n_out);
    for (size_t i = 0; i < tx->n_out; i++)
        (void)put_output(out, &tx->out[i]);
    if (segwit) {
        for (size_t i = 0; i < tx->n_in; i++) {
            const km_tx_in *in = &tx->in[i];
            (void)put_compact(out, in->n_witness);
            for (size_t j = 0; j < in->n_witness; j++)
                (void)put_bytes(out, in->witness[j].data, in->witness[j].len);
        }
    }
    /* km_buf failures are sticky: one check at the end covers every put. */
    return put_le(out, tx->locktime, 4);
}

km_err km_tx_txid(const km_tx *tx, unsigned char txid32[32]) {
    km_buf b;
    unsigned char h[32];
    km_buf_init(&b);
    memset(txid32, 0, 32);
    km_err e = km_tx_serialize(tx, 0, &b);
    if (e == KM_OK) {
        km_sha256(h, b.data, b.len);
        km_sha256(txid32, h, 32);
    }
    km_buf_free(&b);
    return e;
}

km_err km_tx_weight(const km_tx *tx, size_t *weight) {
    km_buf base, full;
    km_err e;
    km_buf_init(&base);
    km_buf_init(&full);
    *weight = 0;
    e = km_tx_serialize(tx, 0, &base);
    if (e == KM_OK) e = km_tx_serialize(tx, 1, &full);
    if (e == KM_OK) *weight = base.len * 3 + full.len;
    km_buf_free(&base);
    km_buf_free(&full);
    return e;
}

/* ---- building ------------------------------------------------------------ */

km_err km_tx_add_input(km_tx *tx, const unsigned char prev_txid32[32], uint32_t prev_vout,
                       uint32_t sequence) {
    km_tx_in *in = realloc(tx->in, (tx->n_in + 1) * sizeof *in);
    if (!in) return KM_ERR_NOMEM;
    tx->in = in;
    in = &tx->in[tx->n_in++];
    memset(in, 0, sizeof *in);
    memcpy(in->prev_txid, prev_txid32, 32);
    in->prev_vout = prev_vout;
    in->sequence = sequence;
    return KM_OK;
}

km_err km_tx_add_output(km_tx *tx, uint64_t amount, const unsigned char *script, size_t script_len) {
    unsigned char *copy = NULL;
    if (amount > KM_TX_MAX_MONEY || script_len > KM_TX_MAX_SIZE) return KM_ERR_RANGE;
    if (script == NULL && script_len != 0) return KM_ERR_ARG;
    if (script_len) {
        copy = malloc(script_len);
        if (!copy) return KM_ERR_NOMEM;
        memcpy(copy, script, script_len);
    }
    km_tx_out *o = realloc(tx->out, (tx->n_out + 1) * sizeof *o);
    if (!o) {
        free(copy);
        return KM_ERR_NOMEM;
    }
    tx->out = o;
    o = &tx->out[tx->n_out++];
    o->amount = amount;
    o->script_pubkey.data = copy;
    o->script_pubkey.len = script_len;
    return KM_OK;
}

static int hash_type_valid(uint8_t t) {
    return t <= 0x03 || (t >= 0x81 && t <= 0x83);
}

km_err km_tx_set_witness_sig(km_tx *tx, size_t index, const unsigned char *sig, size_t sig_len) {
    if (index >= tx->n_in) return KM_ERR_RANGE;
    /* BIP-341: a 65-byte signature whose last byte is 0x00 is invalid —
     * DEFAULT is expressed only by omitting the byte. */
    if (sig_len != 64 && !(sig_len == 65 && sig[64] != 0x00 && hash_type_valid(sig[64]))) return KM_ERR_ARG;
    km_tx_bytes *w = malloc(sizeof *w);
    unsigned char *d = malloc(sig_len);
    if (!w || !d) {
        free(w);
        free(d);
        return KM_ERR_NOMEM;
    }
    memcpy(d, sig, sig_len);
    w->data = d;
    w->len = sig_len;
    witness_free(&tx->in[index]);
    tx->in[index].witness = w;
    tx->in[index].n_witness = 1;
    return KM_OK;
}

km_err km_tx_p2tr_script(const km_ctx *ctx, unsigned char out34[34], const unsigned char xonly32[32]) {
    secp256k1_xonly_pubkey xpk;
    memset(out34, 0, 34);
    if (!secp256k1_xonly_pubkey_parse(km_ctx_secp(ctx), &xpk, xonly32)) return KM_ERR_INVALID_POINT;
    out34[0] = 0x51; /* OP_1: witness version 1 */
    out34[1] = 0x20; /* push 32 bytes */
    memcpy(out34 + 2, xonly32, 32);
    return KM_OK;
}

/* ---- BIP-341 signature message --------------------------------------------- */

static km_err check_spent(const km_tx *tx, const km_tx_spent *spent, size_t n_spent) {
    if (tx->n_in == 0 || n_spent != tx->n_in || spent == NULL) return KM_ERR_ARG;
    for (size_t i = 0; i < n_spent; i++) {
        if (spent[i].amount > KM_TX_MAX_MONEY || spent[i].script_len > KM_TX_MAX_SIZE) return KM_ERR_RANGE;
        if (spent[i].script_pubkey == NULL && spent[i].script_len != 0) return KM_ERR_ARG;
    }
    return KM_OK;
}

/* SHA-256 of the bytes a writer function appends. */
static km_err sha_of(km_buf *scratch, unsigned char out[32]) {
    if (scratch->failed) return KM_ERR_NOMEM;
    km_sha256(out, scratch->data, scratch->len);
    scratch->len = 0;
    return KM_OK;
}

km_err km_tx_taproot_hashes_compute(const km_tx *tx, const km_tx_spent *spent, size_t n_spent,
                                    km_tx_taproot_hashes *out) {
    km_buf b;
    km_err e;
    memset(out, 0, sizeof *out);
    if ((e = check_spent(tx, spent, n_spent)) != KM_OK) return e;
    km_buf_init(&b);
    for (size_t i = 0; i < tx->n_in; i++) {
        (void)km_buf_put(&b, tx->in[i].prev_txid, 32);
        (void)put_le(&b, tx->in[i].prev_vout, 4);
    }
    if ((e = sha_of(&b, out->prevouts)) != KM_OK) goto done;
    for (size_t i = 0; i < n_spent; i++)
        (void)put_le(&b, spent[i].amount, 8);
    if ((e = sha_of(&b, out->amounts)) != KM_OK) goto done;
    for (size_t i = 0; i < n_spent; i++)
        (void)put_bytes(&b, spent[i].script_pubkey, spent[i].script_len);
    if ((e = sha_of(&b, out->script_pubkeys)) != KM_OK) goto done;
    for (size_t i = 0; i < tx->n_in; i++)
        (void)put_le(&b, tx->in[i].sequence, 4);
    if ((e = sha_of(&b, out->sequences)) != KM_OK) goto done;
    for (size_t i = 0; i < tx->n_out; i++)
        (void)put_output(&b, &tx->out[i]);
    e = sha_of(&b, out->outputs);
done:
    km_buf_free(&b);
    if (e != KM_OK) memset(out, 0, sizeof *out);
    return e;
}

km_err km_tx_taproot_sigmsg(const km_tx *tx, const km_tx_spent *spent, size_t n_spent, size_t in_index,
                            uint8_t hash_type, const unsigned char *annex, size_t annex_len, km_buf *out) {
    km_tx_taproot_hashes h;
    km_buf m, scratch;
    unsigned char sha[32];
    km_err e;
    uint8_t out_type = hash_type & 0x03;
    int acp = (hash_type & KM_SIGHASH_ANYONECANPAY) != 0;

    if (!hash_type_valid(hash_type)) return KM_ERR_ARG;
    if ((e = check_spent(tx, spent, n_spent)) != KM_OK) return e;
    if (in_index >= tx->n_in || in_index > UINT32_MAX) return KM_ERR_RANGE;
    /* SINGLE without a matching output has no defined message in BIP-341
     * (unlike legacy's "1" bug): refuse rather than sign something odd. */
    if (out_type == KM_SIGHASH_SINGLE && in_index >= tx->n_out) return KM_ERR_RANGE;
    if (annex != NULL && (annex_len == 0 || annex[0] != 0x50)) return KM_ERR_ARG;
    if (annex == NULL && annex_len != 0) return KM_ERR_ARG;
    if ((e = km_tx_taproot_hashes_compute(tx, spent, n_spent, &h)) != KM_OK) return e;

    /* Built in a scratch buffer and appended at the end, so a failure leaves
     * out untouched. */
    km_buf_init(&m);
    km_buf_init(&scratch);
    (void)km_buf_put_u8(&m, 0x00); /* epoch */
    (void)km_buf_put_u8(&m, hash_type);
    (void)put_le(&m, tx->version, 4);
    (void)put_le(&m, tx->locktime, 4);
    if (!acp) {
        (void)km_buf_put(&m, h.prevouts, 32);
        (void)km_buf_put(&m, h.amounts, 32);
        (void)km_buf_put(&m, h.script_pubkeys, 32);
        (void)km_buf_put(&m, h.sequences, 32);
    }
    if (out_type != KM_SIGHASH_NONE && out_type != KM_SIGHASH_SINGLE) (void)km_buf_put(&m, h.outputs, 32);
    /* spend_type = ext_flag * 2 + annex_present; key path: ext_flag = 0. */
    (void)km_buf_put_u8(&m, annex ? 1 : 0);
    if (acp) {
        const km_tx_in *in = &tx->in[in_index];
        (void)km_buf_put(&m, in->prev_txid, 32);
        (void)put_le(&m, in->prev_vout, 4);
        (void)put_le(&m, spent[in_index].amount, 8);
        (void)put_bytes(&m, spent[in_index].script_pubkey, spent[in_index].script_len);
        (void)put_le(&m, in->sequence, 4);
    } else {
        (void)put_le(&m, in_index, 4);
    }
    if (annex) {
        (void)put_bytes(&scratch, annex, annex_len);
        if ((e = sha_of(&scratch, sha)) != KM_OK) goto done;
        (void)km_buf_put(&m, sha, 32);
    }
    if (out_type == KM_SIGHASH_SINGLE) {
        (void)put_output(&scratch, &tx->out[in_index]);
        if ((e = sha_of(&scratch, sha)) != KM_OK) goto done;
        (void)km_buf_put(&m, sha, 32);
    }
    e = m.failed ? KM_ERR_NOMEM : km_buf_put(out, m.data, m.len);
done:
    km_buf_free(&m);
    km_buf_free(&scratch);
    return e;
}

km_err km_tx_taproot_sighash(const km_tx *tx, const km_tx_spent *spent, size_t n_spent, size_t in_index,
                             uint8_t hash_type, const unsigned char *annex, size_t annex_len,
                             unsigned char sighash32[32]) {
    km_buf m;
    km_err e;
    km_buf_init(&m);
    memset(sighash32, 0, 32);
    e = km_tx_taproot_sigmsg(tx, spent, n_spent, in_index, hash_type, annex, annex_len, &m);
    if (e == KM_OK) km_tagged_hash(sighash32, "TapSighash", m.data, m.len);
    km_buf_free(&m);
    return e;
}
