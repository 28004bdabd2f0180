/* flows.c — see flows.h. Each wrapper reports the library's failure detail
 * before failing the test, so a failing test says which step broke. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "tests/enclave/flows.h"

static void expect_ok(flow_world *w, km_err err) {
    if (err != KM_OK)
        fprintf(stderr, "  rounds: %s: %s\n", km_err_name(err), w->detail ? w->detail : "(no detail)");
    assert_int_equal(err, KM_OK);
}

void flow_put_vbytes(km_buf *b, const unsigned char *p, size_t n) {
    assert_int_equal(km_rounds_put_vbytes(b, p, n), KM_OK);
}

km_err flow_call(flow_world *w, int i, uint16_t cmd, const km_buf *body, km_buf *out) {
    km_err status = KM_ERR_STATE;
    expect_ok(w, km_rounds_call(w, i, cmd, body, out, &status));
    return status;
}

int flow_start(flow_world *w, int n_enclaves, int n_users) {
    km_err err = km_rounds_start(w, KM_ENCLAVE_BIN, n_enclaves, n_users);
    if (err != KM_OK) fprintf(stderr, "  flow_start: %s: %s\n", km_err_name(err), w->detail);
    return err == KM_OK ? 0 : -1;
}

void flow_stop(flow_world *w) {
    km_rounds_stop(w);
}

void flow_note_R(flow_world *w, const unsigned char r32[32]) {
    expect_ok(w, km_rounds_note_R(w, r32));
}

void flow_assert_logs_clean(flow_world *w) {
    expect_ok(w, km_rounds_logs_clean(w));
}

int flow_keygen(flow_world *w) {
    expect_ok(w, km_rounds_keygen(w));
    return 0;
}

void flow_sign_init_body(flow_world *w, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                         km_buf *body) {
    expect_ok(w, km_rounds_sign_init_body(w, signing_id, items, n, body));
}

void flow_approval(flow_world *w, int u, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                   unsigned char sig[64]) {
    expect_ok(w, km_rounds_approval(w, u, signing_id, items, n, sig));
}

void flow_records_add(flow_records *r, const km_buf *resp) {
    assert_int_equal(km_rounds_records_add(r, resp), KM_OK);
}

void flow_records_body(const km_uuid *signing_id, const flow_records *r, km_buf *body) {
    assert_int_equal(km_rounds_records_body(signing_id, r, body), KM_OK);
}

km_err flow_open_result(flow_world *w, const km_uuid *signing_id, const km_buf *sealed, km_buf *pt) {
    return km_rounds_open_result(w, signing_id, sealed, pt);
}

void flow_expected_key(flow_world *w, const km_sign_item *it, unsigned char out32[32]) {
    expect_ok(w, km_rounds_expected_key(w, it, out32));
}

void flow_check_result(flow_world *w, const km_sign_item *items, const flow_secrets *secrets, size_t n,
                       const km_buf *result) {
    expect_ok(w, km_rounds_check_result(w, items, secrets, n, result));
}

km_err flow_sign(flow_world *w, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                 km_buf *result) {
    km_err status = KM_ERR_STATE;
    expect_ok(w, km_rounds_sign(w, signing_id, items, n, result, &status));
    return status;
}
