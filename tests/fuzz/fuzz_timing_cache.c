/* Fuzz target for the timing-cache reader: parse the input; whatever parses must encode and parse
 * back to the same target and records. Also feeds the bytes with a freshly computed checksum, so
 * that mutations reach the header and records behind it. */
#include "engine/timing_cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *data, size_t size) {
    tc_timing_cache_target t, t2;
    tc_step_record *r = NULL, *r2 = NULL;
    uint32_t n = 0, n2 = 0;
    tc_error err;
    if (tc_timing_cache_parse(data, size, &t, &r, &n, &err) != TC_OK) {
        if (r || n) abort();
        return;
    }
    tc_wbuf w = {0};
    if (tc_timing_cache_encode(&t, r, n, &w, &err) != TC_OK) abort();
    if (tc_timing_cache_parse(w.data, w.size, &t2, &r2, &n2, &err) != TC_OK) abort();
    if (n2 != n || !tc_timing_cache_matches(&t, &t2)) abort();
    for (uint32_t i = 0; i < n; i++)
        if (r2[i].kind != r[i].kind || r2[i].size != r[i].size || memcmp(r2[i].data, r[i].data, r[i].size) != 0)
            abort();
    free(r2);
    free(r);
    tc_wbuf_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one(data, size);
    if (size >= 24 && size % 8 == 0 && memcmp(data, TC_TIMING_CACHE_MAGIC, 8) == 0) {
        uint8_t *fixed = malloc(size);
        if (!fixed) return 0;
        memcpy(fixed, data, size);
        uint64_t h = tc_hash64(fixed, size - 8, 0);
        for (int i = 0; i < 8; i++) fixed[size - 8 + i] = (uint8_t)(h >> (8 * i));
        one(fixed, size);
        free(fixed);
    }
    return 0;
}
