/* test_cli_support.h — run the built `keymeld` tool (KM_KEYMELD_BIN) from tests:
 * capture its stdout, parse the --json object, and keep one devnet in a
 * temporary directory that is always brought down (also from atexit and on
 * SIGTERM/SIGINT/SIGABRT, so a failing test leaves no daemon behind).
 * Header-only: each tests/cli/test_*.c is its own program. */
#ifndef KM_TESTS_CLI_SUPPORT_H
#define KM_TESTS_CLI_SUPPORT_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#ifndef KM_KEYMELD_BIN
#error "KM_KEYMELD_BIN must name the keymeld binary"
#endif

static char cli_devnet_dir[256];
static int cli_devnet_up;

/* Run keymeld with argv (NULL-terminated, without the program name) in cwd
 * (NULL: ours); stdout captured into *out (malloc'ed, may be NULL).
 * Returns the exit status, or -1. */
static int cli_run_in(const char *cwd, char **out, const char *const *args) {
    const char *argv[64];
    size_t n = 0;
    argv[n++] = KM_KEYMELD_BIN;
    for (size_t i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int p[2];
    if (pipe(p) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        if (cwd && chdir(cwd) != 0) _exit(126);
        execv(KM_KEYMELD_BIN, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t r = read(p[0], buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(p[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            free(buf);
            return -1;
        }
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Run with --json and parse stdout: exactly one JSON object. */
static int cli_json_in(const char *cwd, json_t **obj, const char *const *args) {
    char *out = NULL;
    int rc = cli_run_in(cwd, &out, args);
    json_error_t je;
    *obj = out ? json_loads(out, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!json_is_object(*obj)) {
        fprintf(stderr, "cli: stdout is not one JSON object: %s\n---\n%s\n---\n", out ? je.text : "",
                out ? out : "");
        json_decref(*obj);
        *obj = NULL;
    }
    free(out);
    return rc;
}

static __attribute__((unused)) const char *cli_str(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

static __attribute__((unused)) int cli_mode(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (int)(st.st_mode & 0777);
}

static int cli_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cli_rm_rf(const char *dir) {
    if (dir && *dir && strncmp(dir, "/tmp/km-cli", 11) == 0) nftw(dir, cli_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Bring the devnet down (idempotent). */
static void cli_devnet_down(void) {
    if (!cli_devnet_up) return;
    cli_devnet_up = 0;
    const char *args[] = {"devnet", "down", "--dir", cli_devnet_dir, "--purge", NULL};
    if (cli_run_in(NULL, NULL, args) != 0)
        fprintf(stderr, "cli: devnet down failed for %s\n", cli_devnet_dir);
    cli_rm_rf(cli_devnet_dir);
}

static void cli_on_signal(int sig) {
    cli_devnet_down();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Make a temporary directory /tmp/km-cli-XXXXXX. */
static int cli_mkdtemp(char *out, size_t cap) {
    snprintf(out, cap, "/tmp/km-cli-XXXXXX");
    return mkdtemp(out) ? 0 : -1;
}

/* Start a devnet in a fresh temporary directory. Returns the parsed
 * `devnet up --json` answer (caller frees) or NULL. */
static __attribute__((unused)) json_t *cli_devnet_start(void) {
    if (cli_mkdtemp(cli_devnet_dir, sizeof cli_devnet_dir) != 0) return NULL;
    atexit(cli_devnet_down);
    signal(SIGTERM, cli_on_signal);
    signal(SIGINT, cli_on_signal);
    signal(SIGABRT, cli_on_signal);
    cli_devnet_up = 1; /* from here on, down must run whatever happens */
    json_t *o = NULL;
    const char *args[] = {"devnet", "up", "--dir", cli_devnet_dir, "--json", NULL};
    int rc = cli_json_in(NULL, &o, args);
    if (rc != 0 || !o) {
        fprintf(stderr, "cli: devnet up failed (%d)\n", rc);
        json_decref(o);
        return NULL;
    }
    return o;
}

#endif
