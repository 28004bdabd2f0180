/* keymeld/tx.h — a minimal Bitcoin transaction model and the BIP-341
 * signature message for taproot key-path spends.
 *
 * Enough of a transaction to know exactly what a key-path signature commits
 * to: parse (legacy or segwit serialization), serialize, txid, build a
 * simple transaction, put a signature into a witness, and compute the
 * BIP-341 SigMsg / sighash for every hash type. Scripts are opaque bytes;
 * nothing here executes or interprets them.
 *
 * Parsing is strict because its output decides what gets signed: every
 * CompactSize must be canonical (shortest form), counts and lengths are
 * bounded by the bytes actually present before anything is allocated, a
 * segwit marker must carry flag 1 and at least one non-empty witness, and
 * trailing bytes are an error. One byte string, one transaction.
 *
 * Integers are little-endian on the wire, as Bitcoin defines them; hashes
 * (txids, prevout txids) are kept in their internal byte order, i.e. the
 * reverse of the hex that block explorers display.
 */
#ifndef KEYMELD_TX_H
#define KEYMELD_TX_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest serialized transaction accepted: the maximum block weight, which
 *  no transaction can exceed. */
#define KM_TX_MAX_SIZE 4000000u
/** Largest amount, in satoshis (21 million BTC); larger values are invalid. */
#define KM_TX_MAX_MONEY 2100000000000000ull

/** BIP-341 hash types. DEFAULT commits like ALL but omits the byte from the
 *  signature (64-byte signature); the others make it 65 bytes. */
#define KM_SIGHASH_DEFAULT      0x00
#define KM_SIGHASH_ALL          0x01
#define KM_SIGHASH_NONE         0x02
#define KM_SIGHASH_SINGLE       0x03
#define KM_SIGHASH_ANYONECANPAY 0x80

/** A byte string owned by the transaction that holds it. */
typedef struct km_tx_bytes {
    unsigned char *data; /**< NULL when len is 0 */
    size_t len;
} km_tx_bytes;

typedef struct km_tx_in {
    unsigned char prev_txid[32]; /**< internal byte order */
    uint32_t prev_vout;
    km_tx_bytes script_sig;
    uint32_t sequence;
    size_t n_witness;     /**< witness stack items */
    km_tx_bytes *witness; /**< n_witness items, NULL when 0 */
} km_tx_in;

typedef struct km_tx_out {
    uint64_t amount; /**< satoshis, <= KM_TX_MAX_MONEY */
    km_tx_bytes script_pubkey;
} km_tx_out;

/** A transaction. Fields may be read directly; change it only through the
 *  km_tx_* functions, which keep the allocations consistent. Every
 *  allocation is owned by the km_tx and released by km_tx_free. */
typedef struct km_tx {
    uint32_t version;
    uint32_t locktime;
    size_t n_in;
    km_tx_in *in;
    size_t n_out;
    km_tx_out *out;
} km_tx;

/** An output being spent, as BIP-341 signatures commit to all of them. The
 *  script is borrowed, not copied. */
typedef struct km_tx_spent {
    uint64_t amount;                    /**< satoshis, <= KM_TX_MAX_MONEY */
    const unsigned char *script_pubkey; /**< NULL allowed when script_len is 0 */
    size_t script_len;
} km_tx_spent;

/** The BIP-341 intermediary hashes (single SHA-256 each) shared by every
 *  input's signature message. */
typedef struct km_tx_taproot_hashes {
    unsigned char prevouts[32];       /**< sha_prevouts */
    unsigned char amounts[32];        /**< sha_amounts */
    unsigned char script_pubkeys[32]; /**< sha_scriptpubkeys */
    unsigned char sequences[32];      /**< sha_sequences */
    unsigned char outputs[32];        /**< sha_outputs */
} km_tx_taproot_hashes;

/** Make an empty transaction (no inputs, no outputs).
 *  Out: tx: initialised; owns nothing yet. In: version, locktime. */
void km_tx_init(km_tx *tx, uint32_t version, uint32_t locktime) KM_NONNULL(1);

/** Release everything tx owns and leave it empty (as km_tx_init(tx, 0, 0)).
 *  NULL is accepted and ignored. */
void km_tx_free(km_tx *tx);

/** Parse a serialized transaction, legacy or segwit (BIP-144) form.
 *
 *  Rejected as KM_ERR_PARSE: truncation, trailing bytes, a non-canonical
 *  CompactSize, a count or length larger than the remaining bytes could
 *  hold, zero inputs or zero outputs, a segwit flag other than 1, a segwit
 *  serialization whose witnesses are all empty, an output amount above
 *  KM_TX_MAX_MONEY, or more than KM_TX_MAX_SIZE bytes.
 *
 *  Returns: KM_OK; KM_ERR_PARSE; KM_ERR_NOMEM. On failure tx is empty.
 *  Out:     tx: the transaction, owned by the caller (km_tx_free). Any
 *           previous content is NOT freed: pass an empty or fresh km_tx.
 *  In:      raw: len bytes (NULL allowed when len is 0).
 */
KM_WARN_UNUSED km_err km_tx_parse(km_tx *tx, const unsigned char *raw, size_t len) KM_NONNULL(1);

/** Serialize a transaction. The segwit form is used when with_witness is
 *  non-zero and at least one input has a witness; otherwise the legacy form.
 *
 *  Returns: KM_OK; KM_ERR_NOMEM.
 *  In/Out:  out: bytes are appended.
 *  In:      tx; with_witness: 0 for the form that txids hash.
 */
KM_WARN_UNUSED km_err km_tx_serialize(const km_tx *tx, int with_witness, km_buf *out) KM_NONNULL(1, 3);

/** The txid: double SHA-256 of the legacy serialization, internal order.
 *  Returns: KM_OK; KM_ERR_NOMEM (txid32 zeroed). */
KM_WARN_UNUSED km_err km_tx_txid(const km_tx *tx, unsigned char txid32[32]) KM_NONNULL(1, 2);

/** The transaction weight (BIP-141): 3 x legacy size + full size. vsize is
 *  (weight + 3) / 4. Returns: KM_OK; KM_ERR_NOMEM (*weight = 0). */
KM_WARN_UNUSED km_err km_tx_weight(const km_tx *tx, size_t *weight) KM_NONNULL(1, 2);

/** Append an input with an empty scriptSig and witness.
 *  Returns: KM_OK; KM_ERR_NOMEM (tx unchanged).
 *  In: prev_txid32: internal byte order; prev_vout; sequence. */
KM_WARN_UNUSED km_err km_tx_add_input(km_tx *tx, const unsigned char prev_txid32[32], uint32_t prev_vout,
                                      uint32_t sequence) KM_NONNULL(1, 2);

/** Append an output.
 *  Returns: KM_OK; KM_ERR_RANGE if amount > KM_TX_MAX_MONEY or script_len >
 *           KM_TX_MAX_SIZE; KM_ERR_NOMEM. tx unchanged on failure.
 *  In: amount; script: script_len bytes, copied (NULL allowed when 0). */
KM_WARN_UNUSED km_err km_tx_add_output(km_tx *tx, uint64_t amount, const unsigned char *script,
                                       size_t script_len) KM_NONNULL(1);

/** Make the witness of input index exactly one item: a BIP-340 key-path
 *  signature, 64 bytes (SIGHASH_DEFAULT) or 65 bytes ending in its hash
 *  type. A 65-byte signature with hash type 0x00 is invalid by BIP-341 and
 *  refused, as is any undefined hash type.
 *
 *  Returns: KM_OK; KM_ERR_RANGE if index >= n_in; KM_ERR_ARG for a bad
 *           length or hash type; KM_ERR_NOMEM. The old witness is replaced
 *           only on success.
 */
KM_WARN_UNUSED km_err km_tx_set_witness_sig(km_tx *tx, size_t index, const unsigned char *sig, size_t sig_len)
    KM_NONNULL(1, 3);

/** The P2TR scriptPubKey of an x-only output key: OP_1 0x20 <key>.
 *  Returns: KM_OK; KM_ERR_INVALID_POINT if xonly32 is not a valid x-only key
 *           (such an output could never be spent); out34 zeroed then.
 *  Args: ctx. Out: out34: 34 bytes. In: xonly32: the (tweaked) output key. */
KM_WARN_UNUSED km_err km_tx_p2tr_script(const km_ctx *ctx, unsigned char out34[34],
                                        const unsigned char xonly32[32]) KM_NONNULL(1, 2, 3);

/** The BIP-341 intermediary hashes of tx and the outputs it spends.
 *
 *  Returns: KM_OK; KM_ERR_ARG if n_spent != tx->n_in or tx has no input;
 *           KM_ERR_RANGE for an amount above KM_TX_MAX_MONEY or an oversized
 *           script; KM_ERR_NOMEM. out zeroed on failure.
 *  In:      spent: n_spent outputs, spent[i] spent by tx->in[i].
 */
KM_WARN_UNUSED km_err km_tx_taproot_hashes_compute(const km_tx *tx, const km_tx_spent *spent, size_t n_spent,
                                                   km_tx_taproot_hashes *out) KM_NONNULL(1, 4);

/** The BIP-341 signature message for a key-path spend (ext_flag 0) of input
 *  in_index, prefixed with the epoch byte 0x00: exactly the bytes that
 *  km_tx_taproot_sighash tagged-hashes, and the "sigMsg" of the BIP-341
 *  wallet test vectors.
 *
 *  A signer MUST obtain the spent outputs from a source it trusts (or that
 *  the signature binds, as it does here): their amounts and scripts are what
 *  protect against fee-lying attacks.
 *
 *  Returns: KM_OK; KM_ERR_ARG for an undefined hash_type, n_spent !=
 *           tx->n_in, or an annex that is empty or does not start with 0x50;
 *           KM_ERR_RANGE if in_index >= n_in, for SIGHASH_SINGLE without
 *           a matching output, or for an out-of-range amount; KM_ERR_NOMEM.
 *           Nothing is appended on failure.
 *  In/Out:  out: the message is appended.
 *  In:      tx; spent, n_spent: as km_tx_taproot_hashes_compute;
 *           in_index; hash_type: one of 0x00-0x03, 0x81-0x83;
 *           annex: annex_len bytes including its 0x50 prefix, or NULL.
 */
KM_WARN_UNUSED km_err km_tx_taproot_sigmsg(const km_tx *tx, const km_tx_spent *spent, size_t n_spent,
                                           size_t in_index, uint8_t hash_type, const unsigned char *annex,
                                           size_t annex_len, km_buf *out) KM_NONNULL(1, 8);

/** The BIP-341 sighash: hash_TapSighash(0x00 || SigMsg). The 32 bytes to
 *  sign with BIP-340 under the output key.
 *
 *  Returns: as km_tx_taproot_sigmsg; sighash32 zeroed on failure.
 *  Out:     sighash32: 32 bytes.
 */
KM_WARN_UNUSED km_err km_tx_taproot_sighash(const km_tx *tx, const km_tx_spent *spent, size_t n_spent,
                                            size_t in_index, uint8_t hash_type, const unsigned char *annex,
                                            size_t annex_len, unsigned char sighash32[32]) KM_NONNULL(1, 8);

#ifdef __cplusplus
}
#endif
#endif
