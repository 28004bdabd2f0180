/* store_internal.h — shared between the store's translation units only. */
#ifndef KEYMELD_GATEWAY_STORE_INTERNAL_H
#define KEYMELD_GATEWAY_STORE_INTERNAL_H

#include <stddef.h>

typedef struct km_store_migration {
    int version; /**< strictly increasing from 1 */
    const char *const
        *sql; /**< constant DDL statements, NULL-terminated, run inside the migration transaction */
} km_store_migration;

extern const km_store_migration km_store_migrations[];
extern const size_t km_store_n_migrations;

#endif
