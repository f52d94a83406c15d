/* Commands of the tensorc tool. Each takes (argc, argv) with argv[0] the command name and returns
 * the process exit code: 0 success, 1 failure, 2 bad usage. */
#ifndef TC_CLI_H
#define TC_CLI_H

#include "tensorc.h"

typedef struct tc_cli_command {
    const char *name;
    const char *help;
    int (*fn)(int argc, char **argv);
} tc_cli_command;

int tc_cli_version(int argc, char **argv);
int tc_cli_ops(int argc, char **argv);
int tc_cli_check(int argc, char **argv);
int tc_cli_run(int argc, char **argv);
int tc_cli_build(int argc, char **argv);
int tc_cli_bench(int argc, char **argv);
int tc_cli_inspect(int argc, char **argv);

/* Shared by run, bench and inspect (cmd_build.c). */
/* Whether path starts with the engine file magic "TCENGINE". */
bool tc_cli_is_engine_file(const char *path);
/* Opens an engine file (recognized by its magic or a .tce name), or imports a model and builds an
 * engine. device: a tc_backend_kind, or -1
 * for the engine's own backend (the CPU for a model); threads > 0 sets the CPU thread count.
 * Prints the error prefixed with "tensorc CMD: " and returns 1 on failure, else 0. */
int tc_cli_open(const char *cmd, const char *path, int device, int threads, tc_engine_t **engine);
/* Parses a decimal integer in [lo, hi]. */
bool tc_cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* CUDA engines take and return device memory; run and bench stage host tensors through these.
 * Each prints its error prefixed with "tensorc CMD: " and returns 1 on failure, else 0. */
/* The GPU ordinal a CUDA engine runs on. */
int tc_cli_engine_device(const tc_engine_t *engine);
/* *dev = host's type with data in a new device buffer of GPU `device` holding host's bytes. */
int tc_cli_to_device(const char *cmd, int device, const tc_tensor *host, tc_tensor *dev);
/* *host = dev's type with data in a new malloc'ed buffer holding dev's bytes (free() it). */
int tc_cli_to_host(const char *cmd, const tc_tensor *dev, tc_tensor *host);
/* Bytes of a tensor's data (numel x dtype size). */
size_t tc_cli_tensor_bytes(const tc_tensor *t);
/* "cuda:0 NVIDIA H100 80GB HBM3 (compute capability 9.0, 132 SMs)", or "cuda:0 (unknown: why)". */
void tc_cli_gpu_name(int device, char *buf, size_t size);

#endif
