/* Read-only zip reader: finds the end-of-central-directory record (and its zip64 form), walks the
 * central directory, and resolves each entry's data offset through its local header. The local
 * header's sizes are not trusted (torch writes zeros there and the real ones after the data). */
#define _POSIX_C_SOURCE 200809L

#include "import/zip.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP_EOCD_SIZE 22u
#define ZIP_EOCD_MAX_COMMENT 65535u
#define ZIP64_LOCATOR_SIG 0x07064b50u
#define ZIP64_LOCATOR_SIZE 20u
#define ZIP64_EOCD_SIG 0x06064b50u
#define ZIP64_EOCD_SIZE 56u
#define ZIP_CDIR_SIG 0x02014b50u
#define ZIP_CDIR_SIZE 46u
#define ZIP_LOCAL_SIG 0x04034b50u
#define ZIP_LOCAL_SIZE 30u
#define ZIP64_EXTRA_ID 0x0001u

typedef struct zip_entry {
    const char *name; /* full name, NUL-terminated, in tc_zip.names */
    uint64_t data_off;
    uint64_t size;      /* uncompressed */
    uint64_t comp_size; /* bytes stored in the file */
    uint16_t method;
    uint16_t flags;
} zip_entry;

typedef struct zip_sorted {
    const char *name;
    int idx;
} zip_sorted;

struct tc_zip {
    const unsigned char *base;
    size_t size;
    bool mapped;
    char *names;
    zip_entry *entries;
    zip_sorted *sorted; /* by (name, idx) for lookups */
    int n;
    char *prefix;
};

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* Whether [off, off + len) lies inside a file of `size` bytes, without overflow. */
static bool in_file(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

static int zip_sorted_cmp(const void *pa, const void *pb) {
    const zip_sorted *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    if (c) return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* strcmp(full, prefix + name) without building the concatenation. */
static int cmp_prefixed(const char *full, const char *prefix, size_t plen, const char *name) {
    int c = strncmp(full, prefix, plen);
    if (c) return c;
    return strcmp(full + plen, name);
}

/* Reads the zip64 extended-information extra field: only the fields whose 32-bit (or 16-bit)
 * central-directory values are saturated are present, in this fixed order. */
static tc_status zip64_extra(const unsigned char *extra, size_t extra_len, uint64_t *size,
                             uint64_t *comp_size, uint64_t *local_off, uint32_t *disk,
                             const char *name, tc_error *err) {
    bool need_size = *size == 0xffffffffu, need_comp = *comp_size == 0xffffffffu;
    bool need_off = *local_off == 0xffffffffu, need_disk = *disk == 0xffffu;
    if (!need_size && !need_comp && !need_off && !need_disk) return TC_OK;
    size_t pos = 0;
    while (extra_len - pos >= 4) {
        uint16_t id = rd16(extra + pos), len = rd16(extra + pos + 2);
        pos += 4;
        if (len > extra_len - pos) break;
        if (id == ZIP64_EXTRA_ID) {
            const unsigned char *f = extra + pos;
            size_t left = len;
            if (need_size) {
                if (left < 8) goto short_field;
                *size = rd64(f), f += 8, left -= 8;
            }
            if (need_comp) {
                if (left < 8) goto short_field;
                *comp_size = rd64(f), f += 8, left -= 8;
            }
            if (need_off) {
                if (left < 8) goto short_field;
                *local_off = rd64(f), f += 8, left -= 8;
            }
            if (need_disk) {
                if (left < 4) goto short_field;
                *disk = rd32(f);
            }
            return TC_OK;
        }
        pos += len;
    }
    return tc_errorf(err, TC_ERR_FORMAT, "zip: entry '%s' needs a zip64 extra field but has none", name);
short_field:
    return tc_errorf(err, TC_ERR_FORMAT, "zip: entry '%s' has a zip64 extra field that is too short", name);
}

/* Finds the central directory: returns its offset, size and entry count. */
static tc_status zip_find_cdir(const unsigned char *b, uint64_t size, uint64_t *cd_off,
                               uint64_t *cd_size, uint64_t *count, tc_error *err) {
    if (size < ZIP_EOCD_SIZE)
        return tc_errorf(err, TC_ERR_FORMAT,
                         "zip: file of %llu bytes is too small to be a zip archive (truncated?)",
                         (unsigned long long)size);
    uint64_t lowest = size - ZIP_EOCD_SIZE > ZIP_EOCD_MAX_COMMENT ? size - ZIP_EOCD_SIZE - ZIP_EOCD_MAX_COMMENT : 0;
    uint64_t eocd = UINT64_MAX;
    for (uint64_t pos = size - ZIP_EOCD_SIZE + 1; pos-- > lowest;) {
        /* A comment that runs past the end means these 4 bytes are not the record. */
        if (rd32(b + pos) == ZIP_EOCD_SIG && rd16(b + pos + 20) <= size - pos - ZIP_EOCD_SIZE) {
            eocd = pos;
            break;
        }
    }
    if (eocd == UINT64_MAX)
        return tc_errorf(err, TC_ERR_FORMAT,
                         "zip: end of central directory not found in %llu bytes: the file is "
                         "truncated or not a zip archive",
                         (unsigned long long)size);
    const unsigned char *e = b + eocd;
    uint32_t disk = rd16(e + 4), cd_disk = rd16(e + 6);
    *count = rd16(e + 10);
    *cd_size = rd32(e + 12);
    *cd_off = rd32(e + 16);
    uint64_t cd_end_limit = eocd;
    if (eocd >= ZIP64_LOCATOR_SIZE && rd32(e - ZIP64_LOCATOR_SIZE) == ZIP64_LOCATOR_SIG) {
        const unsigned char *loc = e - ZIP64_LOCATOR_SIZE;
        uint64_t rec = rd64(loc + 8);
        uint32_t disks = rd32(loc + 16);
        if (rd32(loc + 4) != 0 || disks > 1)
            return tc_errorf(err, TC_ERR_UNSUPPORTED, "zip: multi-disk archives are not supported");
        if (!in_file(rec, ZIP64_EOCD_SIZE, eocd - ZIP64_LOCATOR_SIZE) || rd32(b + rec) != ZIP64_EOCD_SIG)
            return tc_errorf(err, TC_ERR_FORMAT,
                             "zip: zip64 end of central directory record at offset %llu is missing "
                             "or truncated",
                             (unsigned long long)rec);
        const unsigned char *r = b + rec;
        disk = rd32(r + 16);
        cd_disk = rd32(r + 20);
        *count = rd64(r + 32);
        *cd_size = rd64(r + 40);
        *cd_off = rd64(r + 48);
        cd_end_limit = rec;
    }
    if (disk != 0 || cd_disk != 0)
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "zip: multi-disk archives are not supported");
    if (!in_file(*cd_off, *cd_size, cd_end_limit))
        return tc_errorf(err, TC_ERR_FORMAT,
                         "zip: central directory (offset %llu, %llu bytes) runs past its end record "
                         "at %llu: the file is truncated or damaged",
                         (unsigned long long)*cd_off, (unsigned long long)*cd_size,
                         (unsigned long long)cd_end_limit);
    if (*count > *cd_size / ZIP_CDIR_SIZE || *count > INT_MAX)
        return tc_errorf(err, TC_ERR_FORMAT,
                         "zip: %llu entries cannot fit in a central directory of %llu bytes "
                         "(truncated or damaged)",
                         (unsigned long long)*count, (unsigned long long)*cd_size);
    return TC_OK;
}

static tc_status zip_read_entries(tc_zip *z, uint64_t cd_off, uint64_t cd_size, uint64_t count,
                                  tc_error *err) {
    const unsigned char *b = z->base;
    uint64_t size = z->size;
    z->entries = calloc(count ? count : 1, sizeof *z->entries);
    z->sorted = calloc(count ? count : 1, sizeof *z->sorted);
    z->names = malloc(cd_size + 1); /* names are a subset of the directory's bytes */
    if (!z->entries || !z->sorted || !z->names) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "zip: out of memory");
    size_t names_used = 0;
    uint64_t pos = cd_off, cd_end = cd_off + cd_size;
    for (uint64_t i = 0; i < count; i++) {
        if (cd_end - pos < ZIP_CDIR_SIZE || rd32(b + pos) != ZIP_CDIR_SIG)
            return tc_errorf(err, TC_ERR_FORMAT,
                             "zip: central directory entry %llu of %llu at offset %llu is damaged "
                             "or truncated",
                             (unsigned long long)i, (unsigned long long)count, (unsigned long long)pos);
        const unsigned char *c = b + pos;
        uint16_t flags = rd16(c + 8), method = rd16(c + 10);
        uint64_t comp_size = rd32(c + 20), usize = rd32(c + 24);
        uint16_t name_len = rd16(c + 28), extra_len = rd16(c + 30), comment_len = rd16(c + 32);
        uint32_t disk = rd16(c + 34);
        uint64_t local = rd32(c + 42);
        uint64_t var_len = (uint64_t)name_len + extra_len + comment_len;
        if (cd_end - pos - ZIP_CDIR_SIZE < var_len)
            return tc_errorf(err, TC_ERR_FORMAT,
                             "zip: central directory entry %llu runs past the directory: truncated or damaged",
                             (unsigned long long)i);
        const unsigned char *name = c + ZIP_CDIR_SIZE;
        if (memchr(name, 0, name_len))
            return tc_errorf(err, TC_ERR_FORMAT, "zip: entry %llu has a NUL byte in its name",
                             (unsigned long long)i);
        char *nm = z->names + names_used;
        memcpy(nm, name, name_len);
        nm[name_len] = '\0';
        names_used += (size_t)name_len + 1;
        TC_TRY(zip64_extra(name + name_len, extra_len, &usize, &comp_size, &local, &disk, nm, err));
        if (disk != 0)
            return tc_errorf(err, TC_ERR_UNSUPPORTED, "zip: entry '%s' is on another disk; multi-disk archives are not supported", nm);
        if (!in_file(local, ZIP_LOCAL_SIZE, size) || rd32(b + local) != ZIP_LOCAL_SIG)
            return tc_errorf(err, TC_ERR_FORMAT,
                             "zip: local header of entry '%s' at offset %llu is missing or truncated",
                             nm, (unsigned long long)local);
        uint64_t data = local + ZIP_LOCAL_SIZE + rd16(b + local + 26) + rd16(b + local + 28);
        if (!in_file(data, comp_size, size))
            return tc_errorf(err, TC_ERR_FORMAT,
                             "zip: data of entry '%s' (offset %llu, %llu bytes) runs past the end of "
                             "the file (%llu bytes): the file is truncated",
                             nm, (unsigned long long)data, (unsigned long long)comp_size,
                             (unsigned long long)size);
        if (method == 0 && comp_size != usize)
            return tc_errorf(err, TC_ERR_FORMAT,
                             "zip: stored entry '%s' has different stored (%llu) and real (%llu) sizes",
                             nm, (unsigned long long)comp_size, (unsigned long long)usize);
        z->entries[i] = (zip_entry){nm, data, usize, comp_size, method, flags};
        z->sorted[i] = (zip_sorted){nm, (int)i};
        pos += ZIP_CDIR_SIZE + var_len;
    }
    z->n = (int)count;
    qsort(z->sorted, count, sizeof *z->sorted, zip_sorted_cmp);
    const char *first = count ? z->entries[0].name : "";
    const char *slash = strchr(first, '/');
    size_t plen = slash ? (size_t)(slash - first) + 1 : 0;
    z->prefix = malloc(plen + 1);
    if (!z->prefix) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "zip: out of memory");
    memcpy(z->prefix, first, plen);
    z->prefix[plen] = '\0';
    return TC_OK;
}

static tc_status zip_init(tc_zip *z, tc_error *err) {
    uint64_t cd_off = 0, cd_size = 0, count = 0;
    TC_TRY(zip_find_cdir(z->base, z->size, &cd_off, &cd_size, &count, err));
    return zip_read_entries(z, cd_off, cd_size, count, err);
}

tc_status tc_zip_open_memory(const void *data, size_t size, tc_zip **out, tc_error *err) {
    if (!out) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "zip: out is NULL");
    *out = NULL;
    if (!data && size) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "zip: data is NULL");
    tc_zip *z = calloc(1, sizeof *z);
    if (!z) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "zip: out of memory");
    z->base = data ? data : (const unsigned char *)"";
    z->size = size;
    tc_status st = zip_init(z, err);
    if (st != TC_OK) {
        tc_zip_close(z);
        return st;
    }
    *out = z;
    return TC_OK;
}

tc_status tc_zip_open_file(const char *path, tc_zip **out, tc_error *err) {
    if (!out) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "zip: out is NULL");
    *out = NULL;
    if (!path) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "zip: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tc_errorf(err, TC_ERR_IO, "zip: cannot open '%s': %s", path, strerror(errno));
    struct stat stbuf;
    if (fstat(fd, &stbuf) != 0) {
        int e = errno;
        close(fd);
        return tc_errorf(err, TC_ERR_IO, "zip: cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(stbuf.st_mode)) {
        close(fd);
        return tc_errorf(err, TC_ERR_IO, "zip: '%s' is not a regular file", path);
    }
    if (stbuf.st_size == 0) {
        close(fd);
        return tc_errorf(err, TC_ERR_FORMAT, "zip: '%s' is empty (0 bytes): truncated or not a zip archive", path);
    }
    if ((uint64_t)stbuf.st_size > SIZE_MAX) {
        close(fd);
        return tc_errorf(err, TC_ERR_IO, "zip: '%s' is too large to map on this machine", path);
    }
    size_t size = (size_t)stbuf.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) return tc_errorf(err, TC_ERR_IO, "zip: cannot map '%s': %s", path, strerror(map_errno));
    tc_zip *z = calloc(1, sizeof *z);
    if (!z) {
        munmap(map, size);
        return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "zip: out of memory");
    }
    z->base = map;
    z->size = size;
    z->mapped = true;
    tc_status st = zip_init(z, err);
    if (st != TC_OK) {
        /* Name the file: the message from zip_init only describes the damage. */
        if (err) {
            char msg[sizeof err->msg];
            memcpy(msg, err->msg, sizeof msg);
            tc_errorf(err, st, "%s (in '%s')", msg, path);
        }
        tc_zip_close(z);
        return st;
    }
    *out = z;
    return TC_OK;
}

void tc_zip_close(tc_zip *z) {
    if (!z) return;
    if (z->mapped) munmap((void *)z->base, z->size);
    free(z->names);
    free(z->entries);
    free(z->sorted);
    free(z->prefix);
    free(z);
}

const char *tc_zip_prefix(const tc_zip *z) { return z ? z->prefix : ""; }
int tc_zip_num_entries(const tc_zip *z) { return z ? z->n : 0; }

const char *tc_zip_entry_name(const tc_zip *z, int i) {
    if (!z || i < 0 || i >= z->n) return NULL;
    return z->entries[i].name;
}

tc_status tc_zip_find(const tc_zip *z, const char *name, const void **data, size_t *size, tc_error *err) {
    if (!z || !name || !data || !size) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "zip: NULL argument to tc_zip_find");
    *data = NULL;
    *size = 0;
    size_t plen = strlen(z->prefix);
    size_t lo = 0, hi = (size_t)z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_prefixed(z->sorted[mid].name, z->prefix, plen, name) <= 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0 || cmp_prefixed(z->sorted[lo - 1].name, z->prefix, plen, name) != 0)
        return tc_errorf(err, TC_ERR_NOT_FOUND, "zip: archive has no entry '%s%s'", z->prefix, name);
    const zip_entry *e = &z->entries[z->sorted[lo - 1].idx];
    if (e->flags & 1)
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "zip: entry '%s' is encrypted", e->name);
    if (e->method != 0)
        return tc_errorf(err, TC_ERR_UNSUPPORTED,
                         "zip: entry '%s' is compressed (method %u); only stored entries are read, "
                         "as torch.export.save writes them",
                         e->name, (unsigned)e->method);
    *data = z->base + e->data_off;
    *size = (size_t)e->size;
    return TC_OK;
}

const void *tc_zip_base(const tc_zip *z) { return z ? z->base : NULL; }
size_t tc_zip_size(const tc_zip *z) { return z ? z->size : 0; }
