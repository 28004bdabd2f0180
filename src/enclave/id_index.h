/* id_index.h — an index of entries by their 16-byte id (a km_uuid inside the
 * entry), for the enclave's session tables.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones, so a table that sees many insertions and deletions does not
 * fill up with dead slots). The index stores pointers only: entries belong to
 * the caller, and each entry's id is read at a fixed offset given at init.
 * At most half of the slots are used, so a probe always ends at an empty
 * slot.
 *
 * Ids are chosen by the gateway, which the enclave does not trust: the hash
 * is keyed with 128 random bits per index, so the gateway cannot choose ids
 * that pile up in one probe chain without knowing the key. It is a mixing
 * function, not a cryptographic PRF; the worst case (every id colliding) is
 * a linear scan, which is what the linked lists did before.
 *
 * Not thread-safe: the caller serialises access (km_enclave.lock). */
#ifndef KM_ENCLAVE_ID_INDEX_H
#define KM_ENCLAVE_ID_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/error.h"

typedef struct km_id_index {
    void **slots;     /* cap pointers, NULL = empty; NULL while cap is 0 */
    size_t cap;       /* 0 or a power of two */
    size_t n;         /* entries stored; n <= cap / 2 */
    size_t id_offset; /* where the 16-byte id is inside each entry */
    uint64_t k0, k1;  /* hash key */
} km_id_index;

/** Set up an empty index (no allocation) with a fresh random hash key.
 *
 *  If no randomness can be had the key falls back to a fixed value: the index
 *  still works, only its resistance to chosen colliding ids is lost.
 *
 *  Out:  idx: the index (not NULL); any previous content is overwritten
 *             without being freed.
 *  In:   id_offset: offsetof(entry type, id field); the field holds 16 bytes.
 */
void km_id_index_init(km_id_index *idx, size_t id_offset) KM_NONNULL(1);

/** Free the slot array (not the entries, which the caller owns) and leave
 *  the index empty but usable, with the same key and id offset.
 *  In/Out: idx: an initialised index, or NULL (ignored). */
void km_id_index_free(km_id_index *idx);

/** Make room for n entries in total, so that the next n - idx->n calls of
 *  km_id_index_put cannot run out of room.
 *
 *  Returns: KM_OK; KM_ERR_NOMEM if the larger slot array cannot be allocated
 *           (or n is absurdly large) — then the index is unchanged.
 *  In/Out:  idx: an initialised index (not NULL).
 *  In:      n: the number of entries to make room for (never shrinks).
 */
KM_WARN_UNUSED km_err km_id_index_reserve(km_id_index *idx, size_t n) KM_NONNULL(1);

/** Look an id up.
 *
 *  Returns: the entry whose id equals id, or NULL.
 *  In:      idx: an initialised index (not NULL); id: 16 bytes (not NULL).
 */
void *km_id_index_get(const km_id_index *idx, const unsigned char id[16]) KM_NONNULL(1, 2);

/** Add an entry, keyed by the id at id_offset inside it.
 *
 *  The caller MUST have made room with km_id_index_reserve; without room the
 *  call changes nothing and fails (it never grows the table itself, so an
 *  insertion cannot fail after the caller made its new state visible). The
 *  entry's id MUST NOT change while it is in the index.
 *
 *  Returns: KM_OK; KM_ERR_STATE if no room was reserved; KM_ERR_DUPLICATE if
 *           an entry with the same id is present. The index is unchanged on
 *           failure.
 *  In/Out:  idx: an initialised index (not NULL).
 *  In:      entry: the entry (not NULL); the index keeps the pointer, the
 *           caller keeps ownership and must delete it before freeing it.
 */
KM_WARN_UNUSED km_err km_id_index_put(km_id_index *idx, void *entry) KM_NONNULL(1, 2);

/** km_id_index_reserve for one more entry, then km_id_index_put: the usual
 *  way to insert, as the first step of making an entry visible (the only
 *  step that can fail).
 *
 *  Returns: KM_OK; KM_ERR_NOMEM, KM_ERR_DUPLICATE as those two. The index is
 *           unchanged on failure (a grown slot array holds the same entries).
 *  In/Out:  idx: an initialised index (not NULL).
 *  In:      entry: as km_id_index_put.
 */
KM_WARN_UNUSED km_err km_id_index_add(km_id_index *idx, void *entry) KM_NONNULL(1, 2);

/** Remove the entry with this id, if present (the entry itself is not
 *  touched: the caller frees it). Never allocates.
 *
 *  Returns: the entry removed, or NULL if there was none.
 *  In/Out:  idx: an initialised index (not NULL).
 *  In:      id: 16 bytes (not NULL); it may point into the entry itself.
 */
void *km_id_index_del(km_id_index *idx, const unsigned char id[16]) KM_NONNULL(1, 2);

#endif
