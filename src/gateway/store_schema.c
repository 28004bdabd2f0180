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

/* Version 2: auth keys (session, participant, key owner), registration flags,
 * the signing quota, and the indexes of the restart and listing queries.
 *
 * Rows written under v1 get an all-zero auth key: not a valid x-only key, so
 * nothing can authenticate against such a row. An old session fails closed
 * rather than becoming open to anyone. */
#define ZERO_KEY "X'0000000000000000000000000000000000000000000000000000000000000000'"
static const char *const MIGRATION_2[] = {
    "ALTER TABLE keygen_sessions ADD COLUMN session_auth_key BLOB NOT NULL DEFAULT " ZERO_KEY
    "  CHECK(length(session_auth_key) = 32);",
    "ALTER TABLE keygen_sessions ADD COLUMN max_signings INTEGER NOT NULL DEFAULT 0"
    "  CHECK(max_signings BETWEEN 0 AND 4294967295);",
    /* A counter, not count(*): the quota must not come back if signing rows
     * are ever purged. Seeded from the rows that exist. */
    "ALTER TABLE keygen_sessions ADD COLUMN signings_created INTEGER NOT NULL DEFAULT 0"
    "  CHECK(signings_created >= 0);",
    "UPDATE keygen_sessions SET signings_created ="
    "  (SELECT count(*) FROM signing_sessions WHERE signing_sessions.keygen_id = keygen_sessions.id);",
    /* Who may speak for a session, and how much it may sign, are fixed at
     * creation: a bug (or an injected statement) must not be able to swap the
     * key or lift the quota. */
    "CREATE TRIGGER keygen_sessions_auth_immutable BEFORE UPDATE OF session_auth_key, max_signings"
    "  ON keygen_sessions WHEN NEW.session_auth_key IS NOT OLD.session_auth_key"
    "  OR NEW.max_signings IS NOT OLD.max_signings"
    "  BEGIN SELECT RAISE(ABORT, 'keygen auth key and quota are immutable'); END;",
    "CREATE TRIGGER keygen_sessions_quota_monotonic BEFORE UPDATE OF signings_created ON keygen_sessions"
    "  WHEN NEW.signings_created < OLD.signings_created"
    "  BEGIN SELECT RAISE(ABORT, 'the signing counter never decreases'); END;",
    "CREATE INDEX keygen_sessions_created ON keygen_sessions(created_at, id);",
    "CREATE INDEX keygen_inits_enclave ON keygen_inits(enclave_id);",

    "ALTER TABLE registrations ADD COLUMN auth_key BLOB NOT NULL DEFAULT " ZERO_KEY
    "  CHECK(length(auth_key) = 32);",
    "ALTER TABLE registrations ADD COLUMN flags INTEGER NOT NULL DEFAULT 0 CHECK(flags BETWEEN 0 AND 255);",
    "CREATE TRIGGER registrations_auth_immutable BEFORE UPDATE OF auth_key, flags ON registrations"
    "  WHEN NEW.auth_key IS NOT OLD.auth_key OR NEW.flags IS NOT OLD.flags"
    "  BEGIN SELECT RAISE(ABORT, 'registration auth key and flags are immutable'); END;",

    /* The origin is provenance, deliberately not a foreign key: a key imported
     * from a wallet outlives the wallet's deletion. */
    "ALTER TABLE keys ADD COLUMN auth_key BLOB NOT NULL DEFAULT " ZERO_KEY " CHECK(length(auth_key) = 32);",
    "ALTER TABLE keys ADD COLUMN origin_keygen BLOB CHECK(origin_keygen IS NULL OR length(origin_keygen) = "
    "16);",
    "CREATE TRIGGER keys_immutable BEFORE UPDATE ON keys"
    "  BEGIN SELECT RAISE(ABORT, 'keys are immutable'); END;",
    "DROP INDEX keys_user;",
    "CREATE INDEX keys_user ON keys(user_id, created_at, key_id);",
    "CREATE INDEX keys_enclave ON keys(enclave_id, created_at, key_id);",
    NULL,
};
#undef ZERO_KEY

/* Version 3: one row that km_store_sync bumps in a durable commit (a commit
 * that writes nothing does not sync the log; this one always changes a page,
 * so it puts every earlier relaxed commit on disk); and the active signing
 * sessions of a keygen, for the gateway's cap on them
 * (max_active_sessions_per_keygen), counted without reading the keygen's
 * finished sessions. */
static const char *const MIGRATION_3[] = {
    "CREATE TABLE sync_marks("
    "  id INTEGER PRIMARY KEY CHECK(id = 0),"
    "  seq INTEGER NOT NULL CHECK(seq >= 0)"
    ") STRICT;",
    "INSERT INTO sync_marks(id, seq) VALUES (0, 0);",
    "CREATE INDEX signing_sessions_keygen_active ON signing_sessions(keygen_id)"
    "  WHERE state IN ('collecting_approvals','nonces','partials','finalizing');",
    NULL,
};

const km_store_migration km_store_migrations[] = {
    {1, MIGRATION_1},
    {2, MIGRATION_2},
    {3, MIGRATION_3},
};
const size_t km_store_n_migrations = sizeof km_store_migrations / sizeof km_store_migrations[0];
