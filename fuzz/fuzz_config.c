/* fuzz/fuzz_config.c — the gateway configuration file parser
 * (src/gateway/config.c): the JSON file, then the final validation, then the
 * listen address parser on its own.
 *
 * Input: the file's bytes. The real loader reads a path, so the input is
 * put in an anonymous memory file and loaded through /proc/self/fd (no
 * refactoring, nothing on disk). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fz_util.h"
#include "gateway/config.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    int fd = memfd_create("km-fuzz-config", MFD_CLOEXEC);
    if (fd < 0) abort();
    if (size && write(fd, data, size) != (ssize_t)size) abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    km_gw_config cfg;
    km_gw_config_defaults(&cfg);
    char msg[256];
    msg[0] = '\0';
    if (km_gw_config_load_file(&cfg, path, msg, sizeof msg) == KM_OK) {
        if (cfg.n_enclaves > KM_GW_MAX_ENCLAVES) abort();
        (void)km_gw_config_validate(&cfg, msg, sizeof msg);
    } else if (strnlen(msg, sizeof msg) == sizeof msg) {
        abort(); /* the message must be NUL-terminated */
    }
    close(fd);
    /* The listen parser on its own, on the input as a string. */
    char *s = fz_strndup(data, size < 300 ? size : 300);
    km_gw_config_defaults(&cfg);
    (void)km_gw_config_set_listen(&cfg, s);
    free(s);
    return 0;
}
