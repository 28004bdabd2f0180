/* id_index.c — open-addressing index of entries by 16-byte id (id_index.h). */
#include <stdlib.h>
#include <string.h>

#include "enclave/id_index.h"
#include "keymeld/aead.h"

/* Smallest table allocated: a handful of sessions fits without regrowing. */
#define KM_ID_INDEX_MIN_CAP 16

/* Used only if getrandom fails: correct, but predictable. */
#define KM_ID_INDEX_FALLBACK_K0 0x243f6a8885a308d3u
#define KM_ID_INDEX_FALLBACK_K1 0x13198a2e03707344u

static uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* A bijective 64-bit finaliser (xorshift-multiply, constants of
 * splitmix64): every input bit reaches every output bit. */
static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x;
}

/* Keyed hash of an id: both halves pass through the finaliser with a key
 * half each, chained so that neither half alone decides the slot. Without
 * the key the gateway cannot tell which ids share a probe chain. */
static size_t id_hash(const km_id_index *idx, const unsigned char id[16]) {
    uint64_t h = mix64(load64(id) ^ idx->k0);
    h = mix64(h ^ load64(id + 8) ^ idx->k1);
    return (size_t)h;
}

static const unsigned char *entry_id(const km_id_index *idx, const void *entry) {
    return (const unsigned char *)entry + idx->id_offset;
}

void km_id_index_init(km_id_index *idx, size_t id_offset) {
    memset(idx, 0, sizeof *idx);
    idx->id_offset = id_offset;
    uint64_t key[2];
    if (km_random_bytes(key, sizeof key) == KM_OK) {
        idx->k0 = key[0];
        idx->k1 = key[1];
    } else {
        idx->k0 = KM_ID_INDEX_FALLBACK_K0;
        idx->k1 = KM_ID_INDEX_FALLBACK_K1;
    }
}

void km_id_index_free(km_id_index *idx) {
    if (!idx) return;
    free(idx->slots);
    idx->slots = NULL;
    idx->cap = 0;
    idx->n = 0;
}

/* Slot of an entry known not to be in slots (cap a power of two, a free slot
 * exists). */
static size_t free_slot(const km_id_index *idx, void **slots, size_t cap, const unsigned char id[16]) {
    size_t mask = cap - 1, i = id_hash(idx, id) & mask;
    while (slots[i])
        i = (i + 1) & mask;
    return i;
}

km_err km_id_index_reserve(km_id_index *idx, size_t n) {
    if (n <= idx->cap / 2) return KM_OK;
    /* Load at most 1/2: the new capacity is a power of two >= 2n. */
    if (n > SIZE_MAX / 4 / sizeof(void *)) return KM_ERR_NOMEM;
    size_t cap = idx->cap ? idx->cap : KM_ID_INDEX_MIN_CAP;
    while (cap / 2 < n)
        cap *= 2;
    void **slots = calloc(cap, sizeof *slots);
    if (!slots) return KM_ERR_NOMEM;
    for (size_t i = 0; i < idx->cap; i++)
        if (idx->slots[i]) slots[free_slot(idx, slots, cap, entry_id(idx, idx->slots[i]))] = idx->slots[i];
    free(idx->slots);
    idx->slots = slots;
    idx->cap = cap;
    return KM_OK;
}

/* Slot holding id, or cap if absent. */
static size_t find_slot(const km_id_index *idx, const unsigned char id[16]) {
    if (!idx->cap) return 0; /* == cap: absent */
    size_t mask = idx->cap - 1;
    for (size_t i = id_hash(idx, id) & mask; idx->slots[i]; i = (i + 1) & mask)
        if (memcmp(entry_id(idx, idx->slots[i]), id, 16) == 0) return i;
    return idx->cap;
}

void *km_id_index_get(const km_id_index *idx, const unsigned char id[16]) {
    size_t i = find_slot(idx, id);
    return i < idx->cap ? idx->slots[i] : NULL;
}

km_err km_id_index_put(km_id_index *idx, void *entry) {
    const unsigned char *id = entry_id(idx, entry);
    if (idx->n + 1 > idx->cap / 2) return KM_ERR_STATE; /* no room reserved */
    if (find_slot(idx, id) < idx->cap) return KM_ERR_DUPLICATE;
    idx->slots[free_slot(idx, idx->slots, idx->cap, id)] = entry;
    idx->n++;
    return KM_OK;
}

km_err km_id_index_add(km_id_index *idx, void *entry) {
    km_err err = km_id_index_reserve(idx, idx->n + 1);
    return err ? err : km_id_index_put(idx, entry);
}

void *km_id_index_del(km_id_index *idx, const unsigned char id[16]) {
    size_t hole = find_slot(idx, id);
    if (hole >= idx->cap) return NULL;
    void *gone = idx->slots[hole];
    /* Backward shift: walk the rest of the probe run and move back into the
     * hole every entry whose home slot does not lie cyclically after the
     * hole (it would become unreachable across the new empty slot). The run
     * ends at an empty slot, which exists because the load is at most 1/2. */
    size_t mask = idx->cap - 1;
    for (size_t j = (hole + 1) & mask; idx->slots[j]; j = (j + 1) & mask) {
        size_t home = id_hash(idx, entry_id(idx, idx->slots[j])) & mask;
        /* Movable iff the hole is no further back from j than its home. */
        if (((j - hole) & mask) <= ((j - home) & mask)) {
            idx->slots[hole] = idx->slots[j];
            hole = j;
        }
    }
    idx->slots[hole] = NULL;
    idx->n--;
    return gone;
}
