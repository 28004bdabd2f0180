/* test_ratelimit.c — the per-key token buckets (src/gateway/ratelimit.c) on a
 * clock the test controls: burst, refill, Retry-After, independence of keys,
 * the table staying at max_keys under a flood of new keys (least recently
 * used reused, busy keys kept), owner ids, and the disabled mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "gateway/ratelimit.h"

static void key_of(unsigned i, unsigned char key[32]) {
    memset(key, 0, 32);
    for (int b = 0; b < 4; b++)
        key[b] = (unsigned char)(i >> (8 * b));
    key[31] = 0x5a;
}

static void test_burst_and_refill(void **state) {
    (void)state;
    km_ratelimit *rl = NULL;
    assert_int_equal(km_ratelimit_new(&rl, 10, 5, 16), KM_OK);
    unsigned char a[32], b[32];
    key_of(1, a);
    key_of(2, b);
    uint64_t t = 1000000;
    unsigned retry = 99;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(km_ratelimit_take(rl, a, t, &retry), 1);
        assert_int_equal(retry, 0);
    }
    assert_int_equal(km_ratelimit_take(rl, a, t, &retry), 0);
    assert_int_equal(retry, 1);
    /* Another key has its own bucket. */
    assert_int_equal(km_ratelimit_take(rl, b, t, NULL), 1);
    /* 10 per second: one token per 100 ms, not before. */
    assert_int_equal(km_ratelimit_take(rl, a, t + 99, NULL), 0);
    assert_int_equal(km_ratelimit_take(rl, a, t + 100, NULL), 1);
    assert_int_equal(km_ratelimit_take(rl, a, t + 100, NULL), 0);
    /* A long idle time refills to the burst, no further (and no overflow). */
    t += (uint64_t)1 << 50;
    for (int i = 0; i < 5; i++)
        assert_int_equal(km_ratelimit_take(rl, a, t, NULL), 1);
    assert_int_equal(km_ratelimit_take(rl, a, t, NULL), 0);
    /* A clock that does not move adds nothing. */
    assert_int_equal(km_ratelimit_take(rl, a, t, NULL), 0);
    assert_int_equal(km_ratelimit_size(rl), 2);
    km_ratelimit_free(rl);
}

static void test_bounded_table(void **state) {
    (void)state;
    km_ratelimit *rl = NULL;
    assert_int_equal(km_ratelimit_new(&rl, 1, 3, 64), KM_OK);
    unsigned char busy[32], k[32];
    key_of(0xffffff, busy);
    uint64_t t = 5000;
    /* busy spends its burst, then 100,000 other keys appear, busy being
     * refused (and so used) every 32 keys: the table never grows past 64 and
     * busy, always recently used, is never evicted, so it stays limited. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(km_ratelimit_take(rl, busy, t, NULL), 1);
    for (unsigned i = 0; i < 100000; i++) {
        key_of(i, k);
        assert_int_equal(km_ratelimit_take(rl, k, t, NULL), 1);
        assert_true(km_ratelimit_size(rl) <= 64);
        if (i % 32 == 0) assert_int_equal(km_ratelimit_take(rl, busy, t, NULL), 0);
    }
    assert_int_equal(km_ratelimit_size(rl), 64);
    /* An evicted key comes back with a full bucket (lenient, never wrong). */
    key_of(0, k);
    for (int i = 0; i < 3; i++)
        assert_int_equal(km_ratelimit_take(rl, k, t, NULL), 1);
    assert_int_equal(km_ratelimit_take(rl, k, t, NULL), 0);
    km_ratelimit_free(rl);
}

static void test_owner_and_disabled(void **state) {
    (void)state;
    km_ratelimit *rl = NULL, *other = NULL;
    assert_int_equal(km_ratelimit_new(&rl, 0, 0, 0), KM_OK); /* disabled: no table */
    assert_int_equal(km_ratelimit_new(&other, 0, 0, 0), KM_OK);
    unsigned char a[32], b[32];
    key_of(7, a);
    key_of(8, b);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(km_ratelimit_take(rl, a, 1, NULL), 1);
    assert_int_equal(km_ratelimit_size(rl), 0);
    /* Owner ids: stable, non-zero, distinct per key, and keyed per table
     * (an outsider cannot compute them to make collisions). */
    uint64_t oa = km_ratelimit_owner(rl, a);
    assert_true(oa != 0);
    assert_true(oa == km_ratelimit_owner(rl, a));
    assert_true(oa != km_ratelimit_owner(rl, b));
    assert_true(oa != km_ratelimit_owner(other, a));
    km_ratelimit_free(rl);
    km_ratelimit_free(other);
    km_ratelimit_free(NULL);
    /* Enabled needs a burst and a table. */
    assert_int_equal(km_ratelimit_new(&rl, 1, 0, 16), KM_ERR_ARG);
    assert_null(rl);
    assert_int_equal(km_ratelimit_new(&rl, 1, 1, 0), KM_ERR_ARG);
    assert_int_equal(km_ratelimit_new(&rl, 1, 1, (size_t)1 << 25), KM_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_and_refill),
        cmocka_unit_test(test_bounded_table),
        cmocka_unit_test(test_owner_and_disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
