/* Fuzz target for the zip reader: open the input as an archive and read every entry it lists.
 * Any entry handed out must lie inside the input. */
#include "import/zip.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink; /* keeps the reads of entry bytes */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tc_zip *z = NULL;
    tc_error err;
    if (tc_zip_open_memory(data, size, &z, &err) != TC_OK) return 0;
    const char *prefix = tc_zip_prefix(z);
    size_t plen = strlen(prefix);
    unsigned sum = 0;
    for (int i = 0; i < tc_zip_num_entries(z); i++) {
        const char *name = tc_zip_entry_name(z, i);
        if (!name) abort();
        if (strncmp(name, prefix, plen) != 0) continue;
        const void *d;
        size_t n;
        tc_status st = tc_zip_find(z, name + plen, &d, &n, &err);
        if (st == TC_ERR_NOT_FOUND) abort(); /* a listed entry must be found */
        if (st != TC_OK) continue;
        const uint8_t *p = d;
        if (p < data || n > size || p > data + size - n) abort();
        for (size_t k = 0; k < n; k++) sum += p[k];
    }
    const void *d;
    size_t n;
    (void)tc_zip_find(z, "archive_format", &d, &n, &err);
    tc_zip_close(z);
    sink = sum;
    return 0;
}
