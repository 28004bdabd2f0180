/* attest.c — the development CA, self-measurement and the ATTEST command. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "enclave/attest.h"
#include "keymeld/attestation.h"

#define DEV_CA_VALIDITY (10ull * 365 * 24 * 3600)
#define CA_FILE_MAX     16384

static int write_file(const char *dir, const char *name, const km_buf *b, mode_t mode) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        fprintf(stderr, "keymeld-enclave: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    int ok = write(fd, b->data, b->len) == (ssize_t)b->len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    return ok ? 0 : -1;
}

int km_dev_ca_init(const char *dir) {
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "keymeld-enclave: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    uint64_t now = (uint64_t)time(NULL), nb = now - 24 * 3600, na = now + DEV_CA_VALIDITY;
    km_attest_dev_cert root, leaf;
    memset(&root, 0, sizeof root);
    memset(&leaf, 0, sizeof leaf);
    int rc = -1;
    if (km_attest_dev_root_create("KeyMeld development root", nb, na, &root) == KM_OK &&
        km_attest_dev_leaf_create(root.cert_der.data, root.cert_der.len, root.key_pem.data, root.key_pem.len,
                                  "KeyMeld development enclave", nb, na, &leaf) == KM_OK) {
        /* The root key is not kept: no one can issue more leaves later. */
        rc = write_file(dir, "root.pem", &root.cert_pem, 0644) == 0 &&
                     write_file(dir, "leaf.pem", &leaf.cert_pem, 0644) == 0 &&
                     write_file(dir, "leaf.key", &leaf.key_pem, 0600) == 0
                 ? 0
                 : -1;
    } else {
        fprintf(stderr, "keymeld-enclave: cannot create the development CA\n");
    }
    km_attest_dev_cert_free(&root);
    km_attest_dev_cert_free(&leaf);
    return rc;
}

static int read_file(const char *dir, const char *name, km_buf *out, int secret) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -1;
    struct stat st;
    unsigned char buf[CA_FILE_MAX];
    int rc = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size < CA_FILE_MAX &&
        (!secret || !(st.st_mode & 077))) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == st.st_size && km_buf_put(out, buf, (size_t)n) == KM_OK) rc = 0;
    }
    close(fd);
    km_wipe(buf, sizeof buf);
    return rc;
}

int km_dev_ca_load(km_enclave *e, const char *dir) {
    km_buf key;
    km_buf_init(&key);
    km_buf_init(&e->dev_root);
    km_buf_init(&e->dev_leaf);
    int rc = -1;
    if (read_file(dir, "root.pem", &e->dev_root, 0) == 0 &&
        read_file(dir, "leaf.pem", &e->dev_leaf, 0) == 0 && read_file(dir, "leaf.key", &key, 1) == 0 &&
        km_secret_from(e->ctx, key.data, key.len, &e->dev_key) == KM_OK)
        rc = 0;
    else
        fprintf(stderr,
                "keymeld-enclave: cannot load the development CA from %s (leaf.key must be mode 600)\n", dir);
    km_buf_free(&key);
    return rc;
}

int km_self_measure(unsigned char out48[48]) {
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha384(), NULL) == 1;
    unsigned char buf[65536];
    ssize_t n;
    while (ok && (n = read(fd, buf, sizeof buf)) > 0)
        ok = EVP_DigestUpdate(md, buf, (size_t)n) == 1;
    ok = ok && EVP_DigestFinal_ex(md, out48, NULL) == 1;
    EVP_MD_CTX_free(md);
    close(fd);
    return ok ? 0 : -1;
}

/* ATTEST body: u16 nonce_len (1..64) | nonce. Response: the document. */
void km_cmd_attest(km_enclave *e, const unsigned char *body, size_t len, km_reply *r) {
    km_cursor c;
    uint16_t n;
    const unsigned char *nonce;
    km_cursor_init(&c, body, len);
    if (km_cursor_get_u16(&c, &n) || n < 1 || n > 64 || km_cursor_get_view(&c, &nonce, n) ||
        km_cursor_finish(&c)) {
        km_reply_fail(r, KM_ERR_PARSE, "attest: body must be u16 length (1..64) and the nonce");
        return;
    }
    if (!e->dev_key) {
        km_reply_fail(r, KM_ERR_UNSUPPORTED, "attest: no attestation source configured (--dev-ca)");
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    km_attest_pcr pcr0 = {.index = 0, .len = 48};
    memcpy(pcr0.value, e->pcr0, 48);
    km_attest_dev_params p = {
        .leaf_key_pem = km_secret_cdata(e->dev_key),
        .leaf_key_pem_len = km_secret_len(e->dev_key),
        .leaf_cert = e->dev_leaf.data,
        .leaf_cert_len = e->dev_leaf.len,
        .root_cert = e->dev_root.data,
        .root_cert_len = e->dev_root.len,
        .module_id = "keymeld-dev-enclave",
        .timestamp_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u,
        .pcrs = &pcr0,
        .pcr_count = 1,
        .public_key = e->pub,
        .public_key_len = 33,
        .user_data = e->fingerprint,
        .user_data_len = 32,
        .nonce = nonce,
        .nonce_len = n,
    };
    km_err err = km_attest_dev_issue(&p, &r->body);
    if (err) km_reply_fail(r, err, "attest: cannot issue the document");
}
