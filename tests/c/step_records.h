/* For the C tests of engine files: how many step records of one kind an engine file holds, read
 * straight from the bytes (section table at offset 32, 24 bytes per entry; docs/engine-format.md),
 * independently of src/engine/serialize.c. -1 when the file has no step table. */
#ifndef TC_TEST_STEP_RECORDS_H
#define TC_TEST_STEP_RECORDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static int count_step_records(const void *data, size_t size, uint32_t kind) {
    const unsigned char *p = data;
    if (size < 32) return -1;
    uint32_t nsec;
    memcpy(&nsec, p + 24, 4);
    for (uint32_t i = 0; i < nsec && 32 + 24 * (size_t)(i + 1) <= size; i++) {
        uint32_t k;
        uint64_t off, sz;
        memcpy(&k, p + 32 + 24 * i, 4);
        memcpy(&off, p + 32 + 24 * i + 8, 8);
        memcpy(&sz, p + 32 + 24 * i + 16, 8);
        if (k != 4 /* TC_SECTION_STEPS */ || off > size || sz > size - off || sz < 4) continue;
        uint32_t n;
        memcpy(&n, p + off, 4);
        size_t pos = off + 4;
        int found = 0;
        for (uint32_t r = 0; r < n && pos + 16 <= off + sz; r++) {
            uint32_t rk;
            uint64_t rs;
            memcpy(&rk, p + pos + 4, 4);
            memcpy(&rs, p + pos + 8, 8);
            found += rk == kind;
            pos += 16 + (size_t)(rs + 7) / 8 * 8;
        }
        return found;
    }
    return -1;
}

#endif
