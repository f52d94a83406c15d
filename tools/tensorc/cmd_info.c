/* `tensorc version` and `tensorc ops`. */
#include "tensorc.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

int tc_cli_version(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: tensorc version\n\nPrints the tensorc version and the backends compiled in.\n");
            return 0;
        }
        fprintf(stderr, "tensorc version: unknown option '%s'\n", argv[i]);
        return 2;
    }
    printf("tensorc %s\n", tc_version_string());
    return 0;
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

int tc_cli_ops(int argc, char **argv) {
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = true;
        else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: tensorc ops [--json]\n\nLists every op overload in the op table with the backends "
                   "that run it.\n  --json   one JSON object for machines\n");
            return 0;
        } else {
            fprintf(stderr, "tensorc ops: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    int n = tc_op_count();
    int count[TC_BACKEND_COUNT] = {0};
    for (int i = 0; i < n; i++)
        for (int b = 0; b < TC_BACKEND_COUNT; b++) count[b] += tc_op_supported(i, (tc_backend_kind)b);
    if (json) {
        printf("{\"count\": %d, \"cpu\": %d, \"cuda\": %d, \"ops\": [", n, count[0], count[1]);
        for (int i = 0; i < n; i++) {
            printf("%s\n  {\"name\": ", i ? "," : "");
            json_string(tc_op_name(i));
            printf(", \"schema\": ");
            json_string(tc_op_schema(i));
            printf(", \"cpu\": %s, \"cuda\": %s}", tc_op_supported(i, TC_BACKEND_CPU) ? "true" : "false",
                   tc_op_supported(i, TC_BACKEND_CUDA) ? "true" : "false");
        }
        printf("\n]}\n");
        return 0;
    }
    printf("%-44s %-4s %-4s\n", "op", "cpu", "cuda");
    for (int i = 0; i < n; i++)
        printf("%-44s %-4s %-4s\n", tc_op_name(i), tc_op_supported(i, TC_BACKEND_CPU) ? "yes" : "-",
               tc_op_supported(i, TC_BACKEND_CUDA) ? "yes" : "-");
    printf("\n%d ops: %d run on cpu, %d on cuda\n", n, count[0], count[1]);
    return 0;
}
