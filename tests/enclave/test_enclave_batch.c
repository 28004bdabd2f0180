/* test_enclave_batch.c — happy paths over several shapes: 2 to 5
 * participants spread over 1 to 3 enclave processes, each signing a 100-item
 * batch that mixes regular items, every taproot mode as an item's own tweak,
 * subsets, and Single/And/Or adaptors. Every signature is checked with
 * libsecp256k1, every pre-signature completed and its secret extracted, and
 * no nonce point repeats anywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "tests/enclave/flows.h"

#define N_ITEMS 100

static void random_secret(flow_world *w, unsigned char t[32], unsigned char T[33]) {
    do
        assert_int_equal(km_random_bytes(t, 32), KM_OK);
    while (km_adaptor_point_from_secret(w->ctx, T, t) != KM_OK);
}

/* Item i of the mixed batch: cycles through 10 shapes. */
static void make_item(flow_world *w, int i, km_sign_item *it, flow_secrets *sec) {
    memset(it, 0, sizeof *it);
    assert_int_equal(km_uuid_v7(&it->id, 1000 + (uint64_t)i), KM_OK);
    char msg[32];
    snprintf(msg, sizeof msg, "batch item %d", i);
    km_sha256(it->msg, msg, strlen(msg));
    unsigned char data[32];
    km_sha256(data, &i, sizeof i);
    switch (i % 10) {
    case 0:
        break; /* regular, keygen default */
    case 1:
        it->own_tweak = 1, km_tweak_none(&it->tweak);
        break;
    case 2:
        it->own_tweak = 1, km_tweak_bip86(&it->tweak);
        break;
    case 3:
        it->own_tweak = 1, km_tweak_bip341(&it->tweak, data);
        break;
    case 4:
        it->own_tweak = 1, km_tweak_plain(&it->tweak, data);
        break;
    case 5:
        it->own_tweak = 1, km_tweak_xonly(&it->tweak, data);
        break;
    case 6:
        it->adaptor = KM_ADAPTOR_SINGLE;
        it->n_points = 1;
        break;
    case 7:
        it->adaptor = KM_ADAPTOR_AND;
        it->n_points = 3;
        break;
    case 8:
        it->adaptor = KM_ADAPTOR_OR;
        it->n_points = 2;
        break;
    default:
        break; /* 9: subset, below */
    }
    if (w->n_subsets && (i % 10 == 9 || i % 20 == 8)) { /* a subset, with and without an adaptor */
        it->has_subset = 1;
        it->subset_id = w->subsets[0].id;
    }
    for (uint16_t p = 0; p < it->n_points; p++)
        random_secret(w, sec->t[p], it->points[p]);
}

static void run_shape(int n_enclaves, int n_users, int with_subset) {
    static flow_world w;
    assert_int_equal(flow_start(&w, n_enclaves, n_users), 0);
    if (with_subset) {
        w.n_subsets = 1;
        w.subsets[0].n = 2;
        w.subset_members[0][0] = 0;
        w.subset_members[0][1] = (uint16_t)(n_users - 1);
        w.subsets[0].members = w.subset_members[0];
        assert_int_equal(km_uuid_v7(&w.subsets[0].id, 5), KM_OK);
    }
    w.flags[0] = KM_FLAG_REQUIRE_APPROVAL;
    assert_int_equal(flow_keygen(&w), 0);
    km_sign_item *items = calloc(N_ITEMS, sizeof *items);
    flow_secrets *secrets = calloc(N_ITEMS, sizeof *secrets);
    assert_non_null(items);
    assert_non_null(secrets);
    for (int i = 0; i < N_ITEMS; i++)
        make_item(&w, i, &items[i], &secrets[i]);
    for (int round = 0; round < 2; round++) { /* two sessions: no R may repeat across them */
        km_uuid sid;
        assert_int_equal(km_uuid_v7(&sid, 9000 + (uint64_t)round), KM_OK);
        km_buf res;
        assert_int_equal(flow_sign(&w, &sid, items, N_ITEMS, &res), KM_OK);
        flow_check_result(&w, items, secrets, N_ITEMS, &res);
        km_buf_free(&res);
    }
    printf("  %d participants on %d enclave(s): %zu nonce points, all distinct\n", n_users, n_enclaves,
           w.n_seen_R);
    flow_assert_logs_clean(&w);
    free(items);
    free(secrets);
    flow_stop(&w);
}

static void test_2_users_1_enclave(void **state) {
    (void)state;
    run_shape(1, 2, 1);
}

static void test_3_users_2_enclaves(void **state) {
    (void)state;
    run_shape(2, 3, 1);
}

static void test_5_users_3_enclaves(void **state) {
    (void)state;
    run_shape(3, 5, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_2_users_1_enclave),
        cmocka_unit_test(test_3_users_2_enclaves),
        cmocka_unit_test(test_5_users_3_enclaves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
