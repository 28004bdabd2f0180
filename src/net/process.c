/* process.c — see process.h. */
#include "net/process.h"

#include <malloc.h>

void km_process_tune_malloc(void) {
    /* Return free memory at the top of a heap only above 64 MiB, grow heaps
     * 16 MiB at a time, and serve blocks below 4 MiB from the heap (the
     * largest frames still get their own mapping). Failures leave glibc's
     * defaults, which are correct, only slower. */
    (void)mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    (void)mallopt(M_TOP_PAD, 16 * 1024 * 1024);
    (void)mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
}
