/* Fuzz target for the .npy reader: read the input; whatever reads must write back and read back
 * to the same tensor. */
#include "import/npy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tc_tensor t;
    tc_error err;
    if (tc_npy_read_memory(data, size, &t, &err) != TC_OK) {
        if (t.data) abort();
        return 0;
    }
    size_t n = tc_dtype_size(t.dtype);
    for (int i = 0; i < t.rank; i++) n *= (size_t)t.dims[i];
    void *out = NULL;
    size_t out_size = 0;
    if (tc_npy_write_memory(&t, &out, &out_size, &err) != TC_OK) abort();
    tc_tensor back;
    if (tc_npy_read_memory(out, out_size, &back, &err) != TC_OK) abort();
    if (back.dtype != t.dtype || back.rank != t.rank || memcmp(back.dims, t.dims, sizeof t.dims) != 0 ||
        memcmp(back.data, t.data, n) != 0)
        abort();
    free(back.data);
    free(out);
    free(t.data);
    return 0;
}
