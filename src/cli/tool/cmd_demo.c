/* cmd_demo.c — `keymeld demo list` and `keymeld demo NAME`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/demos/demos.h"
#include "cli/tool/tool.h"

static const char DEMO_HELP[] =
    "usage: keymeld demo list\n"
    "       keymeld demo NAME [--devnet DIR] [--out DIR] [--count N] [--threads N]\n"
    "Run a demo against a running devnet (`keymeld devnet up`). Each demo checks its own\n"
    "results independently of the SDK and exits non-zero on any mismatch. --out: where\n"
    "demos write their JSON files (default .). --count/--threads: for stress (default 100/8).\n";

int km_cmd_demo(km_tool *t, int argc, char **argv) {
    t->prog = "keymeld demo";
    if (argc < 1) return km_tool_usage(t, "demo needs list or a demo name");
    if (!strcmp(argv[0], "--help")) {
        fputs(DEMO_HELP, stdout);
        return -1;
    }
    if (!strcmp(argv[0], "list")) {
        int rc = km_tool_parse(t, argc - 1, argv + 1, NULL, DEMO_HELP, NULL, 0, NULL);
        if (rc) return rc;
        json_t *l = json_array();
        for (const km_demo *d = km_demos; d->name; d++) {
            km_tool_say(t, "  %-14s %s\n", d->name, d->summary);
            json_array_append_new(l, json_pack("{s:s, s:s}", "name", d->name, "summary", d->summary));
        }
        if (t->out)
            json_object_set_new(t->out, "demos", l);
        else
            json_decref(l);
        return 0;
    }
    const km_demo *demo = NULL;
    for (const km_demo *d = km_demos; d->name; d++)
        if (!strcmp(d->name, argv[0])) demo = d;
    if (!demo) {
        if (argv[0][0] == '-') {
            int rc = km_tool_parse(t, argc, argv, NULL, DEMO_HELP, NULL, 0, NULL);
            if (rc) return rc;
        }
        return km_tool_usage(t, "unknown demo '%s' (keymeld demo list)", argv[0]);
    }
    const char *out_dir = ".", *secrets_out = NULL;
    unsigned count = 100, threads = 8;
    /* --secrets-out FILE is for tests/cli/test_cli_secrets.c only and left
     * out of the help: it writes the demo's throwaway keys, session secrets
     * and messages (mode 0600) so the test can search every log and the
     * gateway's database for them. It changes nothing else. */
    km_opt opts[] = {{"--out", &out_dir, NULL, NULL},
                     {"--secrets-out", &secrets_out, NULL, NULL},
                     {"--count", NULL, NULL, &count},
                     {"--threads", NULL, NULL, &threads},
                     {NULL, NULL, NULL, NULL}};
    int rc = km_tool_parse(t, argc - 1, argv + 1, opts, DEMO_HELP, NULL, 0, NULL);
    if (rc) return rc;
    if (count < 1 || count > 100000) return km_tool_usage(t, "--count must be 1..100000");
    if (threads < 1 || threads > 256) return km_tool_usage(t, "--threads must be 1..256");
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return km_tool_fail(t, KM_ERR_IO, "creating the output directory", out_dir);

    km_demo_env env;
    memset(&env, 0, sizeof env);
    env.t = t;
    env.ctx = t->ctx;
    env.out_dir = out_dir;
    env.count = count;
    env.threads = threads;
    env.steps = json_array();
    env.secrets = secrets_out ? json_array() : NULL;
    env.dev = calloc(1, sizeof *env.dev);
    if (!env.dev || !env.steps || (secrets_out && !env.secrets)) {
        free(env.dev);
        json_decref(env.steps);
        json_decref(env.secrets);
        return km_tool_fail(t, KM_ERR_NOMEM, "demo", NULL);
    }
    km_tool_set_str(t, "demo", demo->name);
    if ((rc = km_tool_resolve_devnet(t, env.dev)) == 0) {
        km_tool_say(t, "== demo %s: %s\n", demo->name, demo->summary);
        double t0 = km_tool_now_ms();
        km_demo_step(&env, "verify every enclave's attestation (pinned root, PCR0)");
        size_t nv = 0;
        rc = km_tool_connect(t, &env.sdk, &nv);
        if (!rc) {
            km_demo_step_done(&env);
            km_tool_say(t, "  (%zu enclaves verified at %s)\n", nv, env.dev->gateway_url);
            rc = demo->run(&env);
        }
        double total = km_tool_now_ms() - t0;
        if (t->out) json_object_set_new(t->out, "total_ms", json_real(total));
        km_tool_say(t, rc == 0 ? "== %s: all checks passed (%.1f s)\n" : "== %s: FAILED (%.1f s)\n",
                    demo->name, total / 1000.0);
    }
    if (t->out) json_object_set(t->out, "steps", env.steps);
    if (env.secrets) {
        json_t *doc = json_pack("{s:O}", "secrets", env.secrets);
        km_err werr = doc ? km_tool_write_json(secrets_out, doc, 0600) : KM_ERR_NOMEM;
        json_decref(doc);
        json_decref(env.secrets);
        if (werr && !rc) rc = km_tool_fail(t, werr, "writing", secrets_out);
    }
    json_decref(env.steps);
    km_sdk_free(env.sdk);
    free(env.dev);
    return rc;
}
