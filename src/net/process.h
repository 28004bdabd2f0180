/* process.h — settings every KeyMeld server process (gateway, enclave)
 * applies at start. */
#ifndef KM_NET_PROCESS_H
#define KM_NET_PROCESS_H

/** Keep freed heap memory in the process instead of handing it back to the
 *  kernel after each request.
 *
 *  glibc's defaults return memory above 128 KiB at the top of a heap at once
 *  and serve blocks from 128 KiB up with mmap; a server that allocates and
 *  frees a few hundred KiB per request (SQLite's page cache refilled after
 *  another connection's commit, request and response buffers) then pays
 *  fresh page faults every request. With keymeld-bench-gateway this was about
 *  1 ms of a 5 ms three-party signing session (2026-11-26, perf: page faults
 *  under sysmalloc and madvise). The price is that a process keeps up to
 *  64 MiB of freed memory per heap: the gateway's peak in that benchmark's
 *  1,000-session phase rose from 128 to 147 MB.
 *
 *  Call once, first thing in main, before threads exist. Never call it from
 *  a library: it changes the whole process. */
void km_process_tune_malloc(void);

#endif
