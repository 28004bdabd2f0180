/* store_schema.c — the versioned migrations of the gateway store.
 *
 * Migrations are append-only: a released migration is never edited, a change
 * is a new entry. km_store_open applies the missing ones in order inside one
 * transaction and records each in schema_version.
 *
 * The schema encodes the invariants the gateway relies on, so that a bug in
 * the code above cannot write an impossible row (CHECKs, foreign keys,
 * immutability triggers). All tables are STRICT: a wrongly typed bind fails
 * instead of being silently coerced.
 */
#include "gateway/store_internal.h"

static const char *const MIGRATION_1[] = {
    /* Enclaves and their pinned keys: a key change must be an operator decision,
     * never something an unauthenticated peer can cause. */
    "CREATE TABLE enclaves("
    "  id INTEGER PRIMARY KEY CHECK(id BETWEEN 0 AND 4294967295),"
    "  address TEXT NOT NULL CHECK(length(address) BETWEEN 1 AND 255),"
    "  pubkey BLOB NOT NULL CHECK(length(pubkey) = 33),"
    "  fingerprint BLOB NOT NULL CHECK(length(fingerprint) = 32)"
    ") STRICT;",

    /* Keygens. Completed keygens are wallets: no expiry, kept until deleted
     * (the original deleted them at timeout: its bug 18). */
    "CREATE TABLE keygen_sessions("
    "  id BLOB PRIMARY KEY CHECK(length(id) = 16),"
    "  state TEXT NOT NULL CHECK(state IN ('collecting','finalizing','completed','failed')),"
    "  reason TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER,"
    "  updated_at INTEGER NOT NULL,"
    "  content_hash BLOB NOT NULL CHECK(length(content_hash) = 32),"
    "  result BLOB,"
    "  claimed_by TEXT,"
    "  lease_until INTEGER,"
    "  CHECK((state = 'completed') = (result IS NOT NULL)),"
    "  CHECK((state = 'completed') = (expires_at IS NULL)),"
    "  CHECK((state = 'failed') = (reason IS NOT NULL))"
    ") STRICT;",
    "CREATE INDEX keygen_sessions_active ON keygen_sessions(state, expires_at);",

    "CREATE TABLE keygen_inits("
    "  keygen_id BLOB NOT NULL REFERENCES keygen_sessions(id) ON DELETE CASCADE,"
    "  enclave_id INTEGER NOT NULL REFERENCES enclaves(id),"
    "  blob BLOB NOT NULL,"
    "  PRIMARY KEY(keygen_id, enclave_id)"
    ") STRICT, WITHOUT ROWID;",

    /* user -> enclave, persisted once at creation (the original kept this in
     * memory and lost it on restart: its bug 26). */
    "CREATE TABLE keygen_assignments("
    "  keygen_id BLOB NOT NULL REFERENCES keygen_sessions(id) ON DELETE CASCADE,"
    "  user_id BLOB NOT NULL CHECK(length(user_id) = 16),"
    "  enclave_id INTEGER NOT NULL,"
    "  PRIMARY KEY(keygen_id, user_id),"
    "  FOREIGN KEY(keygen_id, enclave_id) REFERENCES keygen_inits(keygen_id, enclave_id) ON DELETE CASCADE"
    ") STRICT, WITHOUT ROWID;",
    "CREATE TRIGGER keygen_inits_immutable BEFORE UPDATE ON keygen_inits"
    "  BEGIN SELECT RAISE(ABORT, 'keygen init blobs are immutable'); END;",
    "CREATE TRIGGER keygen_assignments_immutable BEFORE UPDATE ON keygen_assignments"
    "  BEGIN SELECT RAISE(ABORT, 'keygen assignments are immutable'); END;",

    "CREATE TABLE registrations("
    "  keygen_id BLOB NOT NULL,"
    "  user_id BLOB NOT NULL,"
    "  blob BLOB NOT NULL,"
    "  record BLOB,"
    "  registered_at INTEGER NOT NULL,"
    "  PRIMARY KEY(keygen_id, user_id),"
    "  FOREIGN KEY(keygen_id, user_id) REFERENCES keygen_assignments(keygen_id, user_id) ON DELETE CASCADE"
    ") STRICT, WITHOUT ROWID;",

    "CREATE TABLE signing_sessions("
    "  id BLOB PRIMARY KEY CHECK(length(id) = 16),"
    "  keygen_id BLOB NOT NULL REFERENCES keygen_sessions(id) ON DELETE CASCADE,"
    "  state TEXT NOT NULL CHECK(state IN ('collecting_approvals','nonces','partials','finalizing',"
    "                                      'completed','failed')),"
    "  reason TEXT,"
    "  items BLOB NOT NULL,"
    "  result BLOB,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER,"
    "  updated_at INTEGER NOT NULL,"
    "  content_hash BLOB NOT NULL CHECK(length(content_hash) = 32),"
    "  claimed_by TEXT,"
    "  lease_until INTEGER,"
    "  CHECK((state = 'completed') = (result IS NOT NULL)),"
    "  CHECK((state = 'completed') = (expires_at IS NULL)),"
    "  CHECK((state = 'failed') = (reason IS NOT NULL))"
    ") STRICT;",
    "CREATE INDEX signing_sessions_active ON signing_sessions(state, expires_at);",
    "CREATE INDEX signing_sessions_keygen ON signing_sessions(keygen_id);",

    "CREATE TABLE signing_records("
    "  signing_id BLOB NOT NULL REFERENCES signing_sessions(id) ON DELETE CASCADE,"
    "  kind INTEGER NOT NULL CHECK(kind IN (1, 2)),"
    "  user_id BLOB NOT NULL CHECK(length(user_id) = 16),"
    "  blob BLOB NOT NULL,"
    "  PRIMARY KEY(signing_id, kind, user_id)"
    ") STRICT, WITHOUT ROWID;",

    "CREATE TABLE approvals("
    "  signing_id BLOB NOT NULL REFERENCES signing_sessions(id) ON DELETE CASCADE,"
    "  user_id BLOB NOT NULL CHECK(length(user_id) = 16),"
    "  signature BLOB NOT NULL,"
    "  approved_at INTEGER NOT NULL,"
    "  PRIMARY KEY(signing_id, user_id)"
    ") STRICT, WITHOUT ROWID;",

    "CREATE TABLE keys("
    "  key_id BLOB PRIMARY KEY CHECK(length(key_id) = 16),"
    "  user_id BLOB NOT NULL CHECK(length(user_id) = 16),"
    "  enclave_id INTEGER NOT NULL REFERENCES enclaves(id),"
    "  import_blob BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") STRICT;",
    "CREATE INDEX keys_user ON keys(user_id);",

    "CREATE TABLE key_sign_requests("
    "  id BLOB PRIMARY KEY CHECK(length(id) = 16),"
    "  key_id BLOB NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,"
    "  state TEXT NOT NULL CHECK(state IN ('pending','completed','failed')),"
    "  reason TEXT,"
    "  request BLOB NOT NULL,"
    "  result BLOB,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER,"
    "  updated_at INTEGER NOT NULL,"
    "  content_hash BLOB NOT NULL CHECK(length(content_hash) = 32),"
    "  claimed_by TEXT,"
    "  lease_until INTEGER,"
    "  CHECK((state = 'completed') = (result IS NOT NULL)),"
    "  CHECK((state = 'completed') = (expires_at IS NULL)),"
    "  CHECK((state = 'failed') = (reason IS NOT NULL))"
    ") STRICT;",
    "CREATE INDEX key_sign_requests_active ON key_sign_requests(state, expires_at);",

    /* Replay cache: the primary key is the replay check. */
    "CREATE TABLE replay_cache("
    "  auth_pubkey BLOB NOT NULL CHECK(length(auth_pubkey) = 33),"
    "  nonce BLOB NOT NULL CHECK(length(nonce) BETWEEN 1 AND 64),"
    "  seen_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  PRIMARY KEY(auth_pubkey, nonce)"
    ") STRICT, WITHOUT ROWID;",
    "CREATE INDEX replay_cache_expiry ON replay_cache(expires_at);",
    NULL,
};

const km_store_migration km_store_migrations[] = {
    {1, MIGRATION_1},
};
const size_t km_store_n_migrations = sizeof km_store_migrations / sizeof km_store_migrations[0];
