/* gateway/ratelimit.h — per-key request rate limits: one token bucket per
 * authenticated key, in a table of bounded size.
 *
 * Who is counted. Only keys that produced a valid request signature: the
 * gateway calls km_ratelimit_take after the BIP-340 signature verified and
 * before it writes the nonce to the replay cache. An attacker therefore
 * cannot make the gateway remember an id of its choosing without doing a
 * signature with that key, and cannot spend another key's tokens at all.
 *
 * Memory. The table holds at most max_keys buckets, allocated once. When it
 * is full, the least recently used bucket is reused for the new key. A
 * bucket that was idle for burst/rate seconds is full again and carries no
 * information, so evicting it changes nothing; evicting a busier one (only
 * possible when more than max_keys keys are active within that time) gives
 * that key a full bucket again: under such churn the limit becomes more
 * lenient, it never refuses a key that did not spend its own tokens.
 *
 * Keys are stored as a 64-bit hash keyed with a random secret drawn at
 * creation (SHA-256 of secret and key), so nobody can choose keys that
 * collide in the table.
 *
 * Threads: every function is thread-safe (one mutex per table).
 */
#ifndef KM_GATEWAY_RATELIMIT_H
#define KM_GATEWAY_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/error.h"

typedef struct km_ratelimit km_ratelimit;

/** Make a table.
 *
 *  Returns: KM_OK; KM_ERR_ARG (burst < 1 or max_keys < 1 while rate_per_s > 0,
 *           or max_keys above 2^24); KM_ERR_NOMEM; KM_ERR_RANDOM.
 *  Out:     out: the table (free with km_ratelimit_free); NULL on failure.
 *  In:      rate_per_s: tokens added per second to each bucket; 0 disables
 *           limiting (km_ratelimit_take then always allows, nothing is stored,
 *           but km_ratelimit_owner still works).
 *           burst: bucket size, the most requests a key may make at once.
 *           max_keys: most buckets kept (each about 48 bytes).
 */
KM_WARN_UNUSED km_err km_ratelimit_new(km_ratelimit **out, unsigned rate_per_s, unsigned burst,
                                       size_t max_keys) KM_NONNULL(1);

/** Free a table. rl may be NULL. */
void km_ratelimit_free(km_ratelimit *rl);

/** Spend one token of key's bucket.
 *
 *  A key seen for the first time gets a full bucket. Tokens accrue at
 *  rate_per_s up to burst, measured on now_ms.
 *  Returns: 1 if the request may go on (a token was spent, or limiting is
 *           disabled); 0 if the bucket is empty (nothing was spent).
 *  Out:     retry_after_s: on 0, whole seconds until a token is back (>= 1);
 *           may be NULL.
 *  In:      key: the 32-byte x-only key whose signature verified.
 *           now_ms: a monotonic clock in milliseconds (never going back).
 */
int km_ratelimit_take(km_ratelimit *rl, const unsigned char key[32], uint64_t now_ms, unsigned *retry_after_s)
    KM_NONNULL(1, 2);

/** A stable, non-zero 64-bit id for key (the keyed hash the table uses), to
 *  count other things per key (e.g. parked long polls) without storing keys.
 *  Returns: the id; different keys collide with probability 2^-64. */
uint64_t km_ratelimit_owner(const km_ratelimit *rl, const unsigned char key[32]) KM_NONNULL(1, 2);

/** Number of buckets in use (for tests and metrics). */
size_t km_ratelimit_size(km_ratelimit *rl) KM_NONNULL(1);

#endif
