/* fuzz/fuzz_tx.c — Bitcoin transaction parsing (src/core/tx.c): km_tx_parse,
 * then everything a caller does with a parsed transaction (serialise, txid,
 * weight, taproot sighash of every input against made-up spent outputs).
 *
 * A parsed transaction must serialise back to exactly the input bytes (the
 * parser refuses every non-canonical form). */
#include <stdlib.h>
#include <string.h>

#include "fz_util.h"
#include "keymeld/tx.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    km_tx tx;
    km_tx_init(&tx, 0, 0);
    if (km_tx_parse(&tx, data, size) != KM_OK) return 0;
    km_buf b;
    km_buf_init(&b);
    if (km_tx_serialize(&tx, 1, &b) != KM_OK) abort();
    if (b.len != size || memcmp(b.data, data, size)) abort();
    km_buf_free(&b);
    unsigned char txid[32];
    size_t weight;
    if (km_tx_txid(&tx, txid) != KM_OK || km_tx_weight(&tx, &weight) != KM_OK) abort();
    /* Spent outputs: one P2TR script per input, amounts from the txid. */
    size_t n = tx.n_in;
    if (n > 0 && n <= 64) {
        km_tx_spent *spent = calloc(n, sizeof *spent);
        unsigned char(*scripts)[34] = calloc(n, sizeof *scripts);
        if (!spent || !scripts) abort();
        for (size_t i = 0; i < n; i++) {
            scripts[i][0] = 0x51;
            scripts[i][1] = 0x20;
            memcpy(scripts[i] + 2, txid, 32);
            spent[i].amount = txid[i % 32];
            spent[i].script_pubkey = scripts[i];
            spent[i].script_len = 34;
        }
        unsigned char h[32];
        for (size_t i = 0; i < n; i++)
            (void)km_tx_taproot_sighash(&tx, spent, n, i, (uint8_t)(txid[i % 32] & 0x83), NULL, 0, h);
        free(spent);
        free(scripts);
    }
    km_tx_free(&tx);
    return 0;
}
