/* seeded_rng.h — replayable randomness for the randomized adaptor tests.
 *
 * Every random value is SHA-256(seed || counter): a failing run prints its
 * seed, and KM_TEST_SEED=<hex> replays it exactly. Static functions and
 * globals: include in one test file each, after cmocka.h. */
#ifndef KM_TESTS_SEEDED_RNG_H
#define KM_TESTS_SEEDED_RNG_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <secp256k1.h>

#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"

static km_ctx *g_ctx;
static const secp256k1_context *g_secp;
static unsigned char g_seed[32];
static uint64_t g_counter;

static void rnd(unsigned char *out, size_t len) {
    while (len) {
        unsigned char buf[40], h[32];
        memcpy(buf, g_seed, 32);
        for (int i = 0; i < 8; i++)
            buf[32 + i] = (unsigned char)(g_counter >> (8 * i));
        g_counter++;
        km_sha256(h, buf, sizeof buf);
        size_t n = len < 32 ? len : 32;
        memcpy(out, h, n);
        out += n;
        len -= n;
    }
}

static void rnd_scalar(unsigned char out32[32]) {
    do
        rnd(out32, 32);
    while (!secp256k1_ec_seckey_verify(g_secp, out32));
}

/* An adaptor secret t and its point T = t·G. */
static void rnd_adaptor(unsigned char t32[32], unsigned char T33[33]) {
    rnd_scalar(t32);
    assert_int_equal(km_adaptor_point_from_secret(g_ctx, T33, t32), KM_OK);
}

/* Creates g_ctx and the seed (from KM_TEST_SEED or fresh), printing it under
 * the test's name. Returns 0 or -1, as a cmocka group setup. */
static int seeded_setup(const char *name) {
    if (km_ctx_create(&g_ctx) != KM_OK) return -1;
    g_secp = km_ctx_secp(g_ctx);
    const char *env = getenv("KM_TEST_SEED");
    if (env) {
        if (km_hex_decode(g_seed, 32, env, strlen(env)) != KM_OK) return -1;
    } else if (km_random_bytes(g_seed, 32) != KM_OK) {
        return -1;
    }
    char hex[65];
    if (km_hex_encode(hex, sizeof hex, g_seed, 32) != KM_OK) return -1;
    printf("%s seed (replay with KM_TEST_SEED=...): %s\n", name, hex);
    return 0;
}

static int seeded_teardown(void **state) {
    (void)state;
    km_ctx_destroy(g_ctx);
    return 0;
}

#endif
