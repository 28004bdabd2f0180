/* main.c — `keymeld`: the command-line tool of KeyMeld. Starts a local
 * development network, runs keygens and signing sessions through a gateway
 * with the client SDK (which verifies attestations and results), and runs
 * the demos. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/tool/tool.h"

static const char HELP[] =
    "usage: keymeld COMMAND [ARGS] [--json] [--help]\n"
    "\n"
    "Commands:\n"
    "  devnet up|status|down   local enclaves + gateway for development\n"
    "  enclaves [--verify]     list the gateway's enclaves, verify their attestation\n"
    "  key new --out FILE      make a participant key file (secret key + auth key, mode 0600)\n"
    "  keygen create|join|wait a distributed MuSig2 key\n"
    "  sign create|approve|wait  sign with a keygen's key\n"
    "  single import|sign|delete  single-signer keys held by an enclave\n"
    "  demo list | demo NAME   run a demo (quickstart, taproot-spend, adaptors, batch, dlc,\n"
    "                          single-signer, stress)\n"
    "\n"
    "Every command takes --help. Readable output by default; --json prints one JSON\n"
    "object on stdout. Progress goes to stderr, and only when it is a terminal.\n"
    "\n"
    "Exit codes: 0 ok, 1 failure or refusal, 2 usage, 3 verification failure (attestation,\n"
    "a result that does not verify), 4 timeout, 5 gateway or enclave unreachable.\n";

int main(int argc, char **argv) {
    /* A closed pipe on stdout must become a write error, not a silent death
     * in the middle of a session (the daemons of a devnet are unaffected). */
    signal(SIGPIPE, SIG_IGN);
    km_tool t;
    memset(&t, 0, sizeof t);
    t.prog = "keymeld";
    t.timeout_s = KM_TOOL_DEFAULT_WAIT;
    if (argc < 2) {
        fputs(HELP, stderr);
        return KM_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(HELP, stdout);
        return 0;
    }
    /* --json anywhere: the result object must exist from the start so that
     * a usage error is reported in JSON as well. */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--json")) t.json = 1;
    t.out = json_object();
    if (!t.out) return KM_EXIT_FAIL;
    km_err err = km_ctx_create(&t.ctx);
    if (err) {
        fprintf(stderr, "keymeld: cannot create a context: %s\n", km_strerror(err));
        json_decref(t.out);
        return KM_EXIT_FAIL;
    }
    int (*fn)(km_tool *, int, char **) = NULL;
    if (!strcmp(cmd, "devnet")) fn = km_cmd_devnet;
    if (!strcmp(cmd, "enclaves")) fn = km_cmd_enclaves;
    if (!strcmp(cmd, "key")) fn = km_cmd_key;
    if (!strcmp(cmd, "keygen")) fn = km_cmd_keygen;
    if (!strcmp(cmd, "sign")) fn = km_cmd_sign;
    if (!strcmp(cmd, "single")) fn = km_cmd_single;
    if (!strcmp(cmd, "demo")) fn = km_cmd_demo;
    int rc;
    if (!fn) {
        t.prog = "keymeld";
        rc = km_tool_usage(&t, "unknown command '%s'", cmd);
    } else {
        json_object_set_new(t.out, "command", json_string(cmd));
        rc = fn(&t, argc - 2, argv + 2);
    }
    if (rc < 0) { /* --help was printed: nothing else on stdout */
        rc = 0;
        t.json = 0;
    }
    rc = km_tool_finish(&t, rc);
    km_ctx_destroy(t.ctx);
    return rc;
}
