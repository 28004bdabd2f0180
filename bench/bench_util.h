/* bench/bench_util.h — timing, checking and output helpers for the KeyMeld benchmarks.
 *
 * Header-only (static functions): CMake makes one executable of every .c file in bench/,
 * so helpers shared between benchmarks cannot live in a .c file of their own.
 *
 * How a figure is obtained (bench_run_jobs, over all figures of a program):
 *   1. Calibration, which is also the warm-up: each operation runs in batches
 *      of 1, 2, 4, ... iterations until one batch lasts at least calib_s. This
 *      pages in code and data, fills caches and lets the CPU leave its idle
 *      clock. The iteration count of a run is chosen to fill target_s.
 *   2. BENCH_RUNS passes over ALL operations, each pass timing one run of
 *      every operation. Interleaving the runs spreads the runs of one figure
 *      over the whole benchmark, so a burst of load from another process (a
 *      compiler on a shared machine) spoils one run of a figure, not all.
 *   3. The figure is the MINIMUM over the runs of (run time / iterations).
 * Why the minimum and not the mean: on a shared or virtualised machine every
 * disturbance (another tenant, an interrupt, a migration to another core) only
 * ever ADDS time, never removes it, so the fastest run is the best estimate of
 * what the operation itself costs. All runs are kept for the JSON output so
 * that the spread (the noise) stays visible.
 */
#ifndef KEYMELD_BENCH_UTIL_H
#define KEYMELD_BENCH_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/** Number of timed runs per figure; the figure is their minimum. */
#define BENCH_RUNS 3

/** Abort the benchmark when cond is false. A benchmark whose calls fail (or
 *  that signs garbage) measures nothing, so every library result is checked.
 *  exit() rather than abort() so that atexit handlers wipe the secrets. */
#define BENCH_CHECK(cond) ((cond) ? (void)0 : bench_die(__FILE__, __LINE__, #cond))

__attribute__((noreturn)) static inline void bench_die(const char *file, int line, const char *what) {
    fprintf(stderr, "bench: %s:%d: check failed: %s\n", file, line, what);
    exit(EXIT_FAILURE);
}

/** Fill buf with len bytes from getrandom(2); aborts the benchmark if the
 *  kernel cannot supply them (no fallback: weak randomness would make the
 *  nonce figures meaningless, and the real code refuses it too). */
static inline void bench_random(void *buf, size_t len) {
    unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t r = getrandom(p + done, len - done, 0);
        if (r < 0 && errno == EINTR) continue;
        BENCH_CHECK(r > 0);
        done += (size_t)r;
    }
}

/** Monotonic time in seconds. CLOCK_MONOTONIC is immune to wall-clock jumps
 *  (NTP, settimeofday) that would corrupt a measurement. */
static inline double bench_now(void) {
    struct timespec ts;
    BENCH_CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/** A timed body: performs the operation iters times (checking every result). */
typedef void (*bench_fn)(void *arg, size_t iters);

/** How long to measure. */
typedef struct bench_config {
    double calib_s;  /**< calibration/warm-up: grow batches until one lasts this long */
    double target_s; /**< duration of each timed run */
} bench_config;

/** One figure. */
typedef struct bench_result {
    double us;                 /**< min over runs, microseconds per operation; 0 = not measured */
    double run_us[BENCH_RUNS]; /**< each run's microseconds per operation */
    size_t iters;              /**< iterations per timed run */
} bench_result;

/** CPU time consumed by this thread, in seconds (user + system). */
static inline double bench_thread_cpu(void) {
    struct timespec ts;
    BENCH_CHECK(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/** Wall and CPU seconds spent in timed runs, to tell how much of the machine
 *  the benchmark actually had (see bench_cpu_share). */
static double bench_wall_total, bench_cpu_total;

static inline double bench_time_batch(bench_fn fn, void *arg, size_t iters) {
    double c0 = bench_thread_cpu();
    double t0 = bench_now();
    fn(arg, iters);
    double t = bench_now() - t0;
    bench_wall_total += t;
    bench_cpu_total += bench_thread_cpu() - c0;
    return t;
}

/** Share of the wall-clock time of the timed runs during which this thread
 *  was on a CPU, in percent. The figures are wall-clock times (what a caller
 *  waits); near 100% they are the cost of the operations, well below it they
 *  include time the scheduler gave to other processes and are inflated
 *  (the minimum of the runs removes only part of that). */
static inline double bench_cpu_share(void) {
    return bench_wall_total > 0.0 ? 100.0 * bench_cpu_total / bench_wall_total : 0.0;
}

/** Iterations per timed run for fn (step 1 above). */
static inline size_t bench_calibrate(const bench_config *cfg, bench_fn fn, void *arg) {
    size_t iters = 1;
    double t = bench_time_batch(fn, arg, iters);
    while (t < cfg->calib_s && iters < ((size_t)1 << 30)) {
        iters *= 2;
        t = bench_time_batch(fn, arg, iters);
    }
    /* t > 0 is guaranteed in practice by the clock's nanosecond resolution and
     * the call overhead; the floor keeps the division defined regardless. */
    double per_op = (t > 1e-9 ? t : 1e-9) / (double)iters;
    double want = cfg->target_s / per_op;
    return want < 1.0 ? 1 : want > 1e9 ? (size_t)1e9 : (size_t)want;
}

/** Checks the outputs a timed body left behind; aborts if they are wrong. */
typedef void (*bench_check_fn)(void *arg);

/** One figure to measure. */
typedef struct bench_job {
    const char *name;     /**< for the progress line */
    bench_fn fn;          /**< timed body */
    bench_check_fn check; /**< run after every batch; NULL when the body's own checks suffice */
    void *arg;            /**< passed to fn and check */
    bench_result *res;    /**< receives the figure */
} bench_job;

/** Measure every job as described at the top of this file. progress: print
 *  a progress line on stderr. */
static inline void bench_run_jobs(const bench_config *cfg, const bench_job *jobs, size_t n_jobs,
                                  int progress) {
    for (size_t i = 0; i < n_jobs; i++) {
        if (progress) fprintf(stderr, "\rbench: calibrating %-40s", jobs[i].name);
        memset(jobs[i].res, 0, sizeof *jobs[i].res);
        jobs[i].res->iters = bench_calibrate(cfg, jobs[i].fn, jobs[i].arg);
        if (jobs[i].check) jobs[i].check(jobs[i].arg);
    }
    for (int r = 0; r < BENCH_RUNS; r++) {
        for (size_t i = 0; i < n_jobs; i++) {
            bench_result *res = jobs[i].res;
            if (progress) fprintf(stderr, "\rbench: run %d/%d %-40s", r + 1, BENCH_RUNS, jobs[i].name);
            res->run_us[r] = bench_time_batch(jobs[i].fn, jobs[i].arg, res->iters) * 1e6 / (double)res->iters;
            if (r == 0 || res->run_us[r] < res->us) res->us = res->run_us[r];
            if (jobs[i].check) jobs[i].check(jobs[i].arg);
        }
    }
    if (progress) fprintf(stderr, "\r%-60s\r", "");
}

/** Format microseconds with precision suited to the magnitude into buf. */
static inline const char *bench_fmt_us(char *buf, size_t len, double us) {
    if (us <= 0.0)
        snprintf(buf, len, "-");
    else if (us < 10.0)
        snprintf(buf, len, "%.2f", us);
    else if (us < 1000.0)
        snprintf(buf, len, "%.1f", us);
    else
        snprintf(buf, len, "%.0f", us);
    return buf;
}

/** Write s as a JSON string literal (quotes, backslashes and control
 *  characters escaped; other bytes are passed through as UTF-8). */
static inline void bench_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", (unsigned)*p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/** Write a result as a JSON object body (without braces). */
static inline void bench_json_result(FILE *f, const bench_result *r) {
    fprintf(f, "\"us\": %.4f, \"iters\": %zu, \"runs_us\": [", r->us, r->iters);
    for (int i = 0; i < BENCH_RUNS; i++)
        fprintf(f, "%s%.4f", i ? ", " : "", r->run_us[i]);
    fputc(']', f);
}

/** Facts about the machine that a figure depends on. */
typedef struct bench_machine {
    char cpu[256];       /**< "model name" of the first CPU in /proc/cpuinfo */
    long cores;          /**< online processors */
    char kernel[400];    /**< uname sysname, release, version and machine */
    char load_start[32]; /**< 1-minute load average before measuring ... */
    char load_end[32];   /**< ... and after: how busy the machine was */
} bench_machine;

/** The 1-minute load average from /proc/loadavg, as text ("?" if unknown). */
static inline void bench_loadavg(char *buf, size_t len) {
    snprintf(buf, len, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return;
    char line[128];
    if (fgets(line, sizeof line, f)) snprintf(buf, len, "%.*s", (int)strcspn(line, " \n"), line);
    fclose(f);
}

static inline void bench_machine_info(bench_machine *m) {
    memset(m, 0, sizeof *m);
    snprintf(m->cpu, sizeof m->cpu, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) != 0) continue;
            const char *v = strchr(line, ':');
            if (!v) continue;
            v++;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t l = strcspn(v, "\n");
            snprintf(m->cpu, sizeof m->cpu, "%.*s", (int)l, v);
            break;
        }
        fclose(f);
    }
    m->cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%s %s %s %s", u.sysname, u.release, u.version, u.machine);
    else
        snprintf(m->kernel, sizeof m->kernel, "unknown");
    bench_loadavg(m->load_start, sizeof m->load_start);
    snprintf(m->load_end, sizeof m->load_end, "?");
}

#endif
