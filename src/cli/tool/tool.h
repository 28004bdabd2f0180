/* tool.h — shared parts of the `keymeld` command-line tool: option parsing,
 * output (readable or one JSON object), exit codes, secret files, the
 * devnet description and connecting an SDK handle with pinned trust.
 *
 * Exit codes (documented in `keymeld --help`):
 *   0 ok; 1 failure or refusal; 2 usage; 3 verification failure (attestation,
 *   a result that does not verify); 4 timeout; 5 gateway or enclave unreachable.
 */
#ifndef KM_CLI_TOOL_H
#define KM_CLI_TOOL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keymeld/client.h"
#include "keymeld/context.h"
#include "keymeld/error.h"

enum {
    KM_EXIT_OK = 0,
    KM_EXIT_FAIL = 1,
    KM_EXIT_USAGE = 2,
    KM_EXIT_VERIFY = 3,
    KM_EXIT_TIMEOUT = 4,
    KM_EXIT_UNREACHABLE = 5
};

#define KM_TOOL_MAX_ROOTS    64
#define KM_TOOL_DEFAULT_DIR  ".keymeld-devnet"
#define KM_TOOL_DEFAULT_WAIT 120

typedef struct km_tool km_tool;

/** A subcommand: its name, its full name for messages ("keymeld keygen
 *  create") and what runs it. */
typedef struct km_tool_sub {
    const char *name;
    const char *prog;
    int (*run)(km_tool *t, int argc, char **argv);
} km_tool_sub;

/** State of one invocation: the common options and the JSON result. */
struct km_tool {
    const char *prog; /* "keymeld keygen create" etc., for messages */
    int json;         /* --json: one JSON object on stdout, nothing else there */
    const char *devnet_dir;
    const char *gateway_url;
    const char *root_spec[KM_TOOL_MAX_ROOTS]; /* --ca-root [ID=]FILE */
    size_t n_roots;
    const char *pcr0_hex;
    unsigned timeout_s;
    km_ctx *ctx;
    json_t *out; /* the result object (--json) */
};

/** An option of a subcommand. Exactly one of str / flag / uint is set. */
typedef struct km_opt {
    const char *name; /* "--out" */
    const char **str; /* takes an argument */
    int *flag;        /* no argument: set to 1 */
    unsigned *uint;   /* takes a decimal argument */
} km_opt;

/** Parse argv (after the subcommand words) into opts plus the common
 *  options (--json, --devnet, --gateway, --ca-root, --pcr0, --timeout,
 *  --help). Positionals go to pos (up to max_pos).
 *  Returns: 0 ok; KM_EXIT_USAGE (message printed); -1 if --help was printed
 *  (the caller exits 0). */
int km_tool_parse(km_tool *t, int argc, char **argv, const km_opt *opts, const char *help, const char **pos,
                  size_t max_pos, size_t *n_pos);

/** Print a readable line to stdout (suppressed with --json). */
void km_tool_say(const km_tool *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Report a failure: stderr in words; in JSON mode the result object gets
 *  "ok": false and "error". Returns the exit code for err. */
int km_tool_fail(km_tool *t, km_err err, const char *what, const char *detail);
/** The same for a failed call to the gateway (through the SDK or HTTP):
 *  KM_ERR_IO means unreachable (exit 5); with wait set, KM_ERR_RANGE means
 *  the wait timed out (exit 4). */
int km_tool_fail_remote(km_tool *t, km_err err, const char *what, const char *detail, int wait);
/** Report a usage error. Returns KM_EXIT_USAGE. */
int km_tool_usage(km_tool *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** The exit code of a local failure: 3 for verification errors, else 1. */
int km_tool_exit_code(km_err err);
/** Finish: in JSON mode print t->out (with "ok") on stdout; free it.
 *  Returns rc. */
int km_tool_finish(km_tool *t, int rc);

/** Set a string / hex / integer member of the result object. */
void km_tool_set_str(km_tool *t, const char *key, const char *value);
void km_tool_set_hex(km_tool *t, const char *key, const unsigned char *p, size_t n);
void km_tool_set_int(km_tool *t, const char *key, long long v);
/** Hex of p into a static-free caller buffer (out must hold 2n+1). */
void km_tool_hex(char *out, const unsigned char *p, size_t n);
/** Strict hex of exactly n bytes. Returns KM_OK or KM_ERR_PARSE. */
KM_WARN_UNUSED km_err km_tool_unhex(unsigned char *out, size_t n, const char *hex);
/** Current time in ms (monotonic) and unix ms. */
double km_tool_now_ms(void);
uint64_t km_tool_unix_ms(void);

/** A progress spinner on stderr while waiting (only if stderr is a TTY and
 *  not --json). */
typedef struct km_spinner km_spinner;
km_spinner *km_spinner_start(const km_tool *t, const char *label);
void km_spinner_update(km_spinner *s, const char *label);
void km_spinner_stop(km_spinner *s);

/* ---- files ---- */
/** Read a whole file (at most max bytes) as a NUL-terminated string.
 *  Returns KM_OK; KM_ERR_IO; KM_ERR_RANGE; KM_ERR_NOMEM. *out malloc'ed. */
KM_WARN_UNUSED km_err km_tool_read_file(const char *path, size_t max, char **out, size_t *len);
/** Write a file created fresh with mode (O_CREAT|O_EXCL after removing an
 *  old one, then fchmod, so an existing wider mode never survives).
 *  Returns KM_OK or KM_ERR_IO. */
KM_WARN_UNUSED km_err km_tool_write_file(const char *path, const void *data, size_t len, unsigned mode);
/** Write a JSON value (indented, newline) to a file with mode. */
KM_WARN_UNUSED km_err km_tool_write_json(const char *path, const json_t *v, unsigned mode);
/** Load a JSON object from a file. Returns NULL (message on stderr) on failure. */
json_t *km_tool_load_json(const char *path);

/* ---- key files (keymeld key new) ---- */
typedef struct km_tool_key {
    unsigned char sec[32], auth_sec[32];
    unsigned char pub33[33], auth_x[32];
    km_uuid user_id;
} km_tool_key;
/** Make a fresh key file content. */
KM_WARN_UNUSED km_err km_tool_key_generate(km_ctx *ctx, km_tool_key *k);
/** Load and check a key file (refuses a file readable by group/others). */
KM_WARN_UNUSED km_err km_tool_key_load(km_ctx *ctx, const char *path, km_tool_key *k);
/** Write a key file, mode 0600. */
KM_WARN_UNUSED km_err km_tool_key_save(const km_tool_key *k, const char *path);

/* ---- devnet description (DIR/devnet.json) and connecting ---- */
typedef struct km_tool_enclave {
    uint32_t id; /* UINT32_MAX: a root trusted for every enclave (--ca-root FILE) */
    int has_pub; /* pub33 known (from devnet.json) */
    unsigned char pub33[33];
    char ca_root[512];
    unsigned char pcr0[48];
    char address[512];
} km_tool_enclave;

typedef struct km_tool_devnet {
    char dir[512];
    char gateway_url[128];
    size_t n_enclaves;
    km_tool_enclave enc[64];
    int has_pcr0;
    unsigned char pcr0[48]; /* pinned in every document */
} km_tool_devnet;

/** Load DIR/devnet.json. Returns KM_OK; KM_ERR_IO (missing); KM_ERR_PARSE. */
KM_WARN_UNUSED km_err km_tool_devnet_load(const char *dir, km_tool_devnet *d);

/** Make an SDK handle from the common options (--devnet DIR or --gateway
 *  URL + --ca-root + --pcr0; default ./.keymeld-devnet) with the roots and
 *  PCR0 pinned, and verify every enclave's attestation.
 *  Returns an exit code (0 ok); on failure everything is reported. */
int km_tool_connect(km_tool *t, km_sdk **out, size_t *n_verified);
/** Like km_tool_connect, but with an already created context/URL and trust,
 *  for demo threads: a new handle trusting what d describes. */
KM_WARN_UNUSED km_err km_tool_sdk_from_devnet(km_ctx *ctx, const km_tool_devnet *d, km_sdk **out);
/** The devnet (or explicit trust) the common options describe. */
int km_tool_resolve_devnet(km_tool *t, km_tool_devnet *d);

/** Parse a tweak mode name and its data (64 hex, for bip341/plain/xonly).
 *  Returns 0 or KM_EXIT_USAGE (reported). */
int km_tool_parse_tweak(km_tool *t, const char *mode, const char *data, km_tweak *tw);
/** Print and record (JSON) a checked keygen result. */
void km_tool_show_keygen(km_tool *t, const km_sdk_keygen_result *r);

/** Signing items as JSON: {"items": [{"id", "message_hex", "tweak",
 *  "tweak_data_hex", "subset_id", "adaptor", "points_hex": [...]}]} (only
 *  message_hex is required; id made when absent). Returns NULL on error
 *  (reported to stderr). *n set. */
km_sign_item *km_tool_items_from_json(const json_t *v, size_t *n);
/** The JSON form of items (every field, ids included). */
json_t *km_tool_items_to_json(const km_sign_item *items, size_t n);
/** The JSON form of a checked signing result. */
json_t *km_tool_sign_result_json(const km_sdk_sign_result *r);

/* ---- subcommands ---- */
int km_cmd_devnet(km_tool *t, int argc, char **argv);
int km_cmd_enclaves(km_tool *t, int argc, char **argv);
int km_cmd_key(km_tool *t, int argc, char **argv);
int km_cmd_keygen(km_tool *t, int argc, char **argv);
int km_cmd_sign(km_tool *t, int argc, char **argv);
int km_cmd_single(km_tool *t, int argc, char **argv);
int km_cmd_demo(km_tool *t, int argc, char **argv);

/** Run the subcommand named by argv[0] among subs (n of them) of `group`
 *  ("keygen"); `--help` prints help. Returns what the subcommand returns, -1
 *  after --help, or the usage exit code for a missing or unknown name. */
int km_tool_dispatch(km_tool *t, const char *group, const char *help, const km_tool_sub *subs, size_t n,
                     int argc, char **argv);

#endif
