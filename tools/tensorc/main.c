/* The tensorc command-line tool: one function per command, dispatched by name. */
#include "tensorc.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const tc_cli_command commands[] = {
    {"version", "print the version and the backends compiled in", tc_cli_version},
    {"ops", "list every op of the op table and the backends that run it", tc_cli_ops},
    {"check", "report which nodes of a .pt2 model each backend can run", tc_cli_check},
    {"build", "build an engine file (.tce) from a .pt2 model", tc_cli_build},
    {"run", "run an engine (.tce) or a .pt2 model on inputs from .npy files (or random ones)", tc_cli_run},
    {"bench", "measure the latency and throughput of an engine or a model", tc_cli_bench},
    {"inspect", "show an engine file's target, I/O, steps and memory", tc_cli_inspect},
};

static void usage(FILE *f) {
    fprintf(f, "usage: tensorc <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`tensorc <command> --help` describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) return tc_cli_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tensorc: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
