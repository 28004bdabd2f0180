/* sessions.c — the enclave's session tables (linked lists: a handful of
 * keygens per enclave is the common case; lookups are not the hot path next
 * to the curve operations of every request). */
#include <stdlib.h>
#include <string.h>

#include "enclave/sessions.h"
#include "enclave/signing.h"

km_enclave_sessions *km_sessions_new(void) {
    return calloc(1, sizeof(km_enclave_sessions));
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
    free(s);
}

void km_sessions_count(const km_enclave_sessions *s, km_enclave_counts *out) {
    *out = s->counts;
}

km_keygen_state *km_sessions_find_keygen(km_enclave_sessions *s, const km_uuid *id) {
    for (km_keygen_state *k = s->keygens; k; k = k->next)
        if (memcmp(k->id.b, id->b, 16) == 0) return k;
    return NULL;
}

void km_sessions_add_keygen(km_enclave_sessions *s, km_keygen_state *k) {
    k->next = s->keygens;
    s->keygens = k;
    s->counts.keygens++;
}

int km_sessions_remove_keygen(km_enclave_sessions *s, const km_uuid *id) {
    for (km_keygen_state **pp = &s->keygens; *pp; pp = &(*pp)->next) {
        if (memcmp((*pp)->id.b, id->b, 16) == 0) {
            km_keygen_state *k = *pp;
            km_signing_remove_for_keygen(s, k);
            *pp = k->next;
            km_keygen_state_free(k);
            s->counts.keygens--;
            return 1;
        }
    }
    return 0;
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
    for (km_key_state *k = s->keys; k; k = k->next)
        if (memcmp(k->id.b, id->b, 16) == 0) return k;
    return NULL;
}

void km_sessions_add_key(km_enclave_sessions *s, km_key_state *k) {
    k->next = s->keys;
    s->keys = k;
    s->counts.keys++;
}

int km_sessions_remove_key(km_enclave_sessions *s, const km_uuid *id) {
    for (km_key_state **pp = &s->keys; *pp; pp = &(*pp)->next) {
        if (memcmp((*pp)->id.b, id->b, 16) == 0) {
            km_key_state *k = *pp;
            *pp = k->next;
            km_key_state_free(k);
            s->counts.keys--;
            return 1;
        }
    }
    return 0;
}
