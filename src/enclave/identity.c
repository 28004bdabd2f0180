/* identity.c — generation, sealing and reloading of the enclave key.
 *
 * The sealing backend is an interface (keymeld/seal.h): locally a key file the
 * operator provides; on Nitro an AWS KMS unsealer bound to the attestation
 * slots in without changing this file. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enclave/identity.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"

#define IDENTITY_FILE  "enclave-key.sealed"
#define IDENTITY_LABEL "keymeld/enclave-key/v1"
#define KEY_FILE_MAX   128

static km_err read_small_file(const char *path, unsigned char *buf, size_t cap, size_t *len,
                              int require_private) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? KM_ERR_NOT_FOUND : KM_ERR_IO;
    struct stat st;
    km_err err = KM_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        err = KM_ERR_IO;
    else if (require_private && (st.st_mode & 077))
        err = KM_ERR_STATE; /* a secret file readable by others is refused */
    else if ((size_t)st.st_size > cap)
        err = KM_ERR_RANGE;
    size_t got = 0;
    while (!err && got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) err = KM_ERR_IO;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    *len = err ? 0 : got;
    if (err) km_wipe(buf, cap);
    return err;
}

km_err km_read_key_file(km_ctx *ctx, const char *path, km_secret **out, const char **detail) {
    unsigned char buf[KEY_FILE_MAX], key[32];
    size_t len;
    *out = NULL;
    km_err err = read_small_file(path, buf, sizeof buf, &len, 1);
    if (err) {
        *detail = err == KM_ERR_STATE   ? "key file is readable by group or others (chmod 600)"
                  : err == KM_ERR_RANGE ? "key file too large"
                                        : "cannot read key file";
        return err;
    }
    if (len > 0 && buf[len - 1] == '\n') len--;
    if (len == 32)
        memcpy(key, buf, 32);
    else if (len != 64 || km_hex_decode(key, 32, (const char *)buf, 64) != KM_OK)
        err = KM_ERR_PARSE;
    km_wipe(buf, sizeof buf);
    if (!err) err = km_secret_from(ctx, key, 32, out);
    km_wipe(key, sizeof key);
    if (err) *detail = "key file must hold 32 bytes or 64 lowercase hex digits";
    return err;
}

/* Write-to-temp, fsync, rename, fsync dir: the sealed key is either the old
 * file or the complete new one, never half-written. */
static km_err write_atomic(const char *dir, const char *name, const unsigned char *p, size_t len) {
    char path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= (int)sizeof tmp)
        return KM_ERR_RANGE;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return KM_ERR_IO;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    int ok = done == len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (ok) ok = rename(tmp, path) == 0;
    if (!ok) {
        unlink(tmp);
        return KM_ERR_IO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return KM_OK;
}

static km_err set_public(km_enclave *e) {
    const secp256k1_context *secp = km_ctx_secp(e->ctx);
    secp256k1_pubkey pk;
    size_t len = 33;
    if (!secp256k1_ec_pubkey_create(secp, &pk, km_secret_cdata(e->key))) return KM_ERR_INVALID_KEY;
    secp256k1_ec_pubkey_serialize(secp, e->pub, &len, &pk, SECP256K1_EC_COMPRESSED);
    km_sha256(e->fingerprint, e->pub, 33);
    return KM_OK;
}

km_err km_identity_load_or_create(km_enclave *e, const km_sealer *sealer, const char *state_dir,
                                  const char **detail) {
    char path[PATH_MAX];
    unsigned char blob[1024];
    size_t len;
    if (snprintf(path, sizeof path, "%s/%s", state_dir, IDENTITY_FILE) >= (int)sizeof path) {
        *detail = "state directory path too long";
        return KM_ERR_RANGE;
    }
    km_err err = read_small_file(path, blob, sizeof blob, &len, 0);
    if (err == KM_OK) {
        err = km_unseal(sealer, IDENTITY_LABEL, blob, len, &e->key);
        if (err || km_secret_len(e->key) != 32) {
            *detail = "sealed enclave key does not unseal with this sealing key";
            km_secret_free(e->key);
            e->key = NULL;
            return err ? err : KM_ERR_PARSE;
        }
        err = set_public(e);
        if (err) *detail = "sealed enclave key is not a valid secp256k1 key";
        return err;
    }
    if (err != KM_ERR_NOT_FOUND) {
        *detail = "cannot read the sealed enclave key";
        return err;
    }
    /* First start: make the key inside the process, persist it only sealed. */
    err = km_secret_new(e->ctx, 32, &e->key);
    for (int i = 0; !err && i < 16; i++) {
        err = km_random_bytes(km_secret_data(e->key), 32);
        if (!err && set_public(e) == KM_OK) break;
        if (!err && i == 15) err = KM_ERR_RANDOM;
    }
    km_buf sealed;
    km_buf_init(&sealed);
    if (!err) err = km_seal(sealer, IDENTITY_LABEL, km_secret_cdata(e->key), 32, &sealed);
    if (!err) err = write_atomic(state_dir, IDENTITY_FILE, sealed.data, sealed.len);
    km_buf_free(&sealed);
    if (err) {
        *detail = "cannot create the sealed enclave key";
        km_secret_free(e->key);
        e->key = NULL;
    }
    return err;
}
