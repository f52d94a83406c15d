/* Fuzz target for the .pt2 importer: imports the input as an in-memory archive (zip, JSON configs,
 * model.json, weights) and, when that succeeds, verifies and prints the graph it built. */
#include "tensorc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tc_graph_t *g = NULL;
    char err[1024];
    tc_status st = tc_import_pt2_memory(data, size, &g, err, sizeof err);
    if (st == TC_OK) {
        if (!g) abort(); /* success must hand out a graph */
        (void)tc_graph_verify(g);
        FILE *sink = fopen("/dev/null", "w");
        if (sink) {
            (void)tc_graph_print(g, TC_PRINT_TEXT, sink);
            fclose(sink);
        }
        tc_graph_free(g);
    } else if (g || !err[0]) {
        abort(); /* failure must leave *out NULL and say why */
    }
    return 0;
}
