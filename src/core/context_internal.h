/* context_internal.h — the secret pool behind km_secret (private to src/core). */
#ifndef KM_CORE_CONTEXT_INTERNAL_H
#define KM_CORE_CONTEXT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/context.h"

#define KM_POOL_CHUNK_SIZE 65536u
#define KM_POOL_SLOT_SIZE  256u
#define KM_POOL_SLOTS      (KM_POOL_CHUNK_SIZE / KM_POOL_SLOT_SIZE)

typedef struct km_pool_chunk {
    struct km_pool_chunk *next;
    unsigned char *mem; /* KM_POOL_CHUNK_SIZE locked bytes */
    uint64_t bitmap[KM_POOL_SLOTS / 64];
    unsigned used;
} km_pool_chunk;

/* A locked, non-dumpable anonymous mapping of len bytes (page multiple), or NULL. */
void *km_locked_map(size_t len);
/* Wipe, unlock and unmap a mapping from km_locked_map. */
void km_locked_unmap(void *p, size_t len);
/* Take one zeroed slot of KM_POOL_SLOT_SIZE bytes; NULL if memory cannot be locked. */
unsigned char *km_pool_take(km_ctx *ctx, km_pool_chunk **chunk_out, unsigned *slot_out);
/* Wipe and return a slot. */
void km_pool_give(km_ctx *ctx, km_pool_chunk *c, unsigned slot);

#endif
