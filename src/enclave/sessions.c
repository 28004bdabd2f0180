/* sessions.c — the enclave's session tables: linked lists for iteration,
 * id indexes for lookups. Keygens are wallets and are never expired, so an
 * enclave may hold thousands; every signing command looks one up. */
#include <stddef.h>
#include <stdlib.h>

#include "enclave/sessions.h"
#include "enclave/signing.h"

km_enclave_sessions *km_sessions_new(void) {
    km_enclave_sessions *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    km_id_index_init(&s->keygen_index, offsetof(km_keygen_state, id));
    km_id_index_init(&s->signing_index, offsetof(km_signing_state, id));
    km_id_index_init(&s->key_index, offsetof(km_key_state, id));
    return s;
}

void km_keygen_state_free(km_keygen_state *k) {
    if (!k) return;
    for (uint16_t i = 0; k->locals && i < k->init.n_participants; i++) {
        km_local_participant *l = k->locals[i];
        if (!l) continue;
        km_secret_free(l->seckey);
        km_buf_free(&l->record);
        km_wipe(l, sizeof *l);
        free(l);
    }
    free(k->locals);
    free(k->pubkeys);
    free(k->auth_pubs);
    free(k->flags);
    free(k->subset_keyaggs);
    km_buf_free(&k->result);
    km_session_free(k->session);
    km_secret_free(k->secret);
    km_keygen_init_free(&k->init);
    km_wipe(k, sizeof *k);
    free(k);
}

void km_sessions_free(km_enclave_sessions *s) {
    if (!s) return;
    km_signing_free_all(s); /* signings point into keygens: free them first */
    while (s->keygens) {
        km_keygen_state *next = s->keygens->next;
        km_keygen_state_free(s->keygens);
        s->keygens = next;
    }
    while (s->keys) { /* imported keys */
        km_key_state *next = s->keys->next;
        km_key_state_free(s->keys);
        s->keys = next;
    }
    /* The entries are gone: drop the slot arrays without deleting one by one. */
    km_id_index_free(&s->keygen_index);
    km_id_index_free(&s->signing_index);
    km_id_index_free(&s->key_index);
    free(s);
}

void km_sessions_count(const km_enclave_sessions *s, km_enclave_counts *out) {
    *out = s->counts;
}

km_keygen_state *km_sessions_find_keygen(km_enclave_sessions *s, const km_uuid *id) {
    return km_id_index_get(&s->keygen_index, id->b);
}

/* Index first: it is the only step that can fail, and nothing is visible
 * until it succeeded. */
km_err km_sessions_add_keygen(km_enclave_sessions *s, km_keygen_state *k) {
    km_err err = km_id_index_add(&s->keygen_index, k);
    if (err) return err;
    k->next = s->keygens;
    if (k->next) k->next->pprev = &k->next;
    k->pprev = &s->keygens;
    s->keygens = k;
    s->counts.keygens++;
    return KM_OK;
}

void km_sessions_remove_keygen_entry(km_enclave_sessions *s, km_keygen_state *k) {
    km_signing_remove_for_keygen(s, k);
    (void)km_id_index_del(&s->keygen_index, k->id.b);
    *k->pprev = k->next;
    if (k->next) k->next->pprev = k->pprev;
    km_keygen_state_free(k);
    s->counts.keygens--;
}

int km_sessions_remove_keygen(km_enclave_sessions *s, const km_uuid *id) {
    km_keygen_state *k = km_sessions_find_keygen(s, id);
    if (!k) return 0;
    km_sessions_remove_keygen_entry(s, k);
    return 1;
}

/* ---- imported single-signer keys ---- */

void km_key_state_free(km_key_state *k) {
    if (!k) return;
    for (size_t i = 0; k->done && i < k->n_done; i++)
        km_buf_free(&k->done[i].result);
    free(k->done);
    km_secret_free(k->seckey);
    km_wipe(k, sizeof *k);
    free(k);
}

km_key_state *km_sessions_find_key(km_enclave_sessions *s, const km_uuid *id) {
    return km_id_index_get(&s->key_index, id->b);
}

km_err km_sessions_add_key(km_enclave_sessions *s, km_key_state *k) {
    km_err err = km_id_index_add(&s->key_index, k);
    if (err) return err;
    k->next = s->keys;
    if (k->next) k->next->pprev = &k->next;
    k->pprev = &s->keys;
    s->keys = k;
    s->counts.keys++;
    return KM_OK;
}

int km_sessions_remove_key(km_enclave_sessions *s, const km_uuid *id) {
    km_key_state *k = km_id_index_del(&s->key_index, id->b);
    if (!k) return 0;
    *k->pprev = k->next;
    if (k->next) k->next->pprev = k->pprev;
    km_key_state_free(k);
    s->counts.keys--;
    return 1;
}
