/* .npy reader and writer. The header is a Python dict literal; this parses the exact subset numpy
 * writes ({'descr': str, 'fortran_order': bool, 'shape': tuple}) and rejects anything else. */
#include "import/npy.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c copies little-endian array data as is; port it before building for a big-endian host"
#endif

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

typedef struct npy_header {
    char descr[64];
    int fortran; /* -1 until seen */
    int rank;    /* -1 until seen; may exceed TC_MAX_RANK (dims beyond it are not stored) */
    int64_t dims[TC_MAX_RANK];
} npy_header;

typedef struct npy_cursor {
    const char *p, *end;
} npy_cursor;

static void npy_skip_ws(npy_cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static bool npy_eat(npy_cursor *c, char ch) {
    npy_skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool npy_string(npy_cursor *c, char *buf, size_t cap) {
    npy_skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return false;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end) return false;
    c->p++;
    buf[n] = '\0';
    return true;
}

static bool npy_word(npy_cursor *c, const char *w) {
    npy_skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return false;
    c->p += n;
    return true;
}

static tc_status npy_bad_header(tc_error *err, const char *what) {
    return tc_errorf(err, TC_ERR_FORMAT, "npy: malformed header: %s", what);
}

static tc_status npy_parse_shape(npy_cursor *c, npy_header *h, tc_error *err) {
    npy_skip_ws(c);
    char close;
    if (npy_eat(c, '(')) close = ')';
    else if (npy_eat(c, '[')) close = ']';
    else return npy_bad_header(err, "'shape' is not a tuple");
    h->rank = 0;
    for (;;) {
        if (npy_eat(c, close)) return TC_OK;
        npy_skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return npy_bad_header(err, "'shape' must hold non-negative integers");
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            int d = *c->p++ - '0';
            if (v > (INT64_MAX - d) / 10) return npy_bad_header(err, "a 'shape' entry is too large");
            v = v * 10 + d;
        }
        if (c->p < c->end && (*c->p == 'L' || *c->p == 'l')) c->p++; /* Python 2 longs */
        if (h->rank < TC_MAX_RANK) h->dims[h->rank] = v;
        if (h->rank < 1000000) h->rank++;
        if (!npy_eat(c, ',')) {
            if (npy_eat(c, close)) return TC_OK;
            return npy_bad_header(err, "expected ',' or the end of 'shape'");
        }
    }
}

static tc_status npy_parse_header(const char *text, size_t len, npy_header *h, tc_error *err) {
    npy_cursor c = {text, text + len};
    h->descr[0] = '\0';
    h->fortran = -1;
    h->rank = -1;
    bool have_descr = false;
    if (!npy_eat(&c, '{')) return npy_bad_header(err, "it does not start with '{'");
    for (;;) {
        if (npy_eat(&c, '}')) break;
        char key[32];
        if (!npy_string(&c, key, sizeof key)) return npy_bad_header(err, "expected a quoted key");
        if (!npy_eat(&c, ':')) return npy_bad_header(err, "expected ':' after a key");
        if (strcmp(key, "descr") == 0) {
            npy_skip_ws(&c);
            if (c.p < c.end && *c.p == '[')
                return tc_errorf(err, TC_ERR_UNSUPPORTED,
                                 "npy: structured arrays (a list as descr) are not supported");
            if (!npy_string(&c, h->descr, sizeof h->descr)) return npy_bad_header(err, "'descr' is not a short string");
            have_descr = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (npy_word(&c, "True")) h->fortran = 1;
            else if (npy_word(&c, "False")) h->fortran = 0;
            else return npy_bad_header(err, "'fortran_order' is not True or False");
        } else if (strcmp(key, "shape") == 0) {
            TC_TRY(npy_parse_shape(&c, h, err));
        } else {
            return tc_errorf(err, TC_ERR_FORMAT, "npy: malformed header: unexpected key '%s'", key);
        }
        if (!npy_eat(&c, ',')) {
            if (npy_eat(&c, '}')) break;
            return npy_bad_header(err, "expected ',' or '}'");
        }
    }
    npy_skip_ws(&c);
    if (c.p != c.end) return npy_bad_header(err, "unexpected text after '}'");
    if (!have_descr || h->fortran < 0 || h->rank < 0)
        return npy_bad_header(err, "it needs 'descr', 'fortran_order' and 'shape'");
    return TC_OK;
}

/* Maps a descr to a dtype and the element size in the file. */
static tc_status npy_dtype_of(const char *descr, tc_dtype *dtype, size_t *file_size, tc_error *err) {
    if (strcmp(descr, "bfloat16") == 0) {
        *dtype = TC_BF16;
        *file_size = 2;
        return TC_OK;
    }
    char order = descr[0];
    if (!order || !strchr("<>|=", order) || !descr[1])
        return tc_errorf(err, TC_ERR_FORMAT, "npy: malformed descr '%s'", descr);
    char kind = descr[1];
    if (kind == 'O')
        return tc_errorf(err, TC_ERR_UNSUPPORTED,
                         "npy: object arrays ('%s') are not supported: they hold pickled Python "
                         "objects, not numbers",
                         descr);
    const char *digits = descr + 2;
    long size = 0;
    if (!*digits) return tc_errorf(err, TC_ERR_FORMAT, "npy: malformed descr '%s'", descr);
    for (const char *d = digits; *d; d++) {
        if (*d < '0' || *d > '9' || size > 1000000)
            return tc_errorf(err, TC_ERR_DTYPE, "npy: dtype '%s' is not supported", descr);
        size = size * 10 + (*d - '0');
    }
    if (size > 1 && kind != 'V' && order == '>')
        return tc_errorf(err, TC_ERR_UNSUPPORTED,
                         "npy: big-endian arrays ('%s') are not supported; convert with "
                         "a.astype(a.dtype.newbyteorder('<'))",
                         descr);
    if (size > 1 && kind != 'V' && order == '|')
        return tc_errorf(err, TC_ERR_FORMAT, "npy: malformed descr '%s' (no byte order)", descr);
    tc_dtype t;
    if (kind == 'f' && size == 4) t = TC_F32;
    else if (kind == 'f' && size == 2) t = TC_F16;
    else if (kind == 'f' && size == 8) t = TC_F32; /* converted */
    else if (kind == 'i' && size == 8) t = TC_I64;
    else if (kind == 'i' && size == 4) t = TC_I32;
    else if (kind == 'i' && size == 1) t = TC_I8;
    else if (kind == 'u' && size == 1) t = TC_U8;
    else if (kind == 'b' && size == 1) t = TC_BOOL;
    else if (kind == 'V' && size == 2) t = TC_BF16;
    else
        return tc_errorf(err, TC_ERR_DTYPE,
                         "npy: dtype '%s' is not supported (supported: <f4 <f2 <f8 <i8 <i4 |i1 |u1 "
                         "|b1, and bfloat16 as <V2)",
                         descr);
    *dtype = t;
    *file_size = (size_t)size;
    return TC_OK;
}

tc_status tc_npy_read_memory(const void *data, size_t size, tc_tensor *out, tc_error *err) {
    if (!out) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "npy: out is NULL");
    memset(out, 0, sizeof *out);
    if (!data && size) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "npy: data is NULL");
    const unsigned char *b = data ? (const unsigned char *)data : (const unsigned char *)"";
    size_t magic_n = size < sizeof npy_magic ? size : sizeof npy_magic;
    if (memcmp(b, npy_magic, magic_n) != 0) return tc_errorf(err, TC_ERR_FORMAT, "npy: not a .npy file (bad magic)");
    if (size < 10) return tc_errorf(err, TC_ERR_FORMAT, "npy: file of %zu bytes is truncated inside its header", size);
    int major = b[6], minor = b[7];
    size_t hstart, hlen;
    if (major == 1 && minor == 0) {
        hstart = 10;
        hlen = (size_t)b[8] | ((size_t)b[9] << 8);
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (size < 12) return tc_errorf(err, TC_ERR_FORMAT, "npy: file of %zu bytes is truncated inside its header", size);
        hstart = 12;
        hlen = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
    } else {
        return tc_errorf(err, TC_ERR_VERSION, "npy: format version %d.%d is not supported (1.0, 2.0 and 3.0 are)",
                         major, minor);
    }
    if (hlen > size - hstart)
        return tc_errorf(err, TC_ERR_FORMAT, "npy: header of %zu bytes runs past the end of the file (%zu bytes): truncated",
                         hlen, size);
    npy_header h;
    TC_TRY(npy_parse_header((const char *)b + hstart, hlen, &h, err));
    tc_dtype dtype = TC_F32;
    size_t fsize = 1;
    TC_TRY(npy_dtype_of(h.descr, &dtype, &fsize, err));
    if (h.fortran)
        return tc_errorf(err, TC_ERR_UNSUPPORTED,
                         "npy: Fortran-order arrays are not supported; save with np.ascontiguousarray");
    if (h.rank > TC_MAX_RANK)
        return tc_errorf(err, TC_ERR_UNSUPPORTED, "npy: arrays of rank %d are not supported (at most %d)",
                         h.rank, TC_MAX_RANK);
    uint64_t count = 1;
    bool overflow = false;
    for (int i = 0; i < h.rank; i++)
        if (h.dims[i] == 0) count = 0;
    for (int i = 0; i < h.rank && count; i++) {
        uint64_t d = (uint64_t)h.dims[i];
        if (count > UINT64_MAX / d) {
            overflow = true;
            break;
        }
        count *= d;
    }
    size_t avail = size - hstart - hlen;
    if (overflow || count > avail / fsize)
        return tc_errorf(err, TC_ERR_FORMAT,
                         "npy: truncated data: shape needs %s%llu elements of %zu bytes but only %zu bytes follow the header",
                         overflow ? "more than " : "", (unsigned long long)count, fsize, avail);
    size_t n = (size_t)count;
    size_t out_elem = tc_dtype_size(dtype);
    void *dst = malloc(n ? n * out_elem : 1);
    if (!dst) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "npy: out of memory for %zu elements", n);
    const unsigned char *src = b + hstart + hlen;
    if (dtype == TC_F32 && fsize == 8) {
        float *f = dst;
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + i * 8, 8);
            f[i] = (float)d;
        }
    } else if (dtype == TC_BOOL) {
        unsigned char *o = dst;
        for (size_t i = 0; i < n; i++) o[i] = src[i] != 0;
    } else {
        memcpy(dst, src, n * out_elem);
    }
    out->dtype = dtype;
    out->rank = h.rank;
    for (int i = 0; i < h.rank; i++) out->dims[i] = h.dims[i];
    out->data = dst;
    return TC_OK;
}

/* Appends " (in 'path')" to the message in err. */
static tc_status npy_name_file(tc_error *err, tc_status st, const char *path) {
    if (err) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        tc_errorf(err, st, "%s (in '%s')", msg, path);
    }
    return st;
}

tc_status tc_npy_read_file(const char *path, tc_tensor *out, tc_error *err) {
    if (!out) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "npy: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "npy: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return tc_errorf(err, TC_ERR_IO, "npy: cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "npy: out of memory reading '%s'", path);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        unsigned char *grown = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!grown) free(buf);
        buf = grown;
        cap *= 2;
    }
    bool failed = ferror(f) != 0;
    int e = errno;
    fclose(f);
    if (failed) {
        free(buf);
        return tc_errorf(err, TC_ERR_IO, "npy: cannot read '%s': %s", path, strerror(e));
    }
    tc_status st = tc_npy_read_memory(buf, n, out, err);
    free(buf);
    return st == TC_OK ? TC_OK : npy_name_file(err, st, path);
}

static const char *npy_descr_of(tc_dtype t) {
    switch (t) {
    case TC_F32: return "<f4";
    case TC_F16: return "<f2";
    case TC_BF16: return "<V2";
    case TC_F8E4M3: return NULL;
    case TC_I64: return "<i8";
    case TC_I32: return "<i4";
    case TC_I8: return "|i1";
    case TC_U8: return "|u1";
    case TC_BOOL: return "|b1";
    case TC_F64: return "<f8";
    case TC_DTYPE_COUNT: break;
    }
    return NULL;
}

tc_status tc_npy_write_memory(const tc_tensor *t, void **data, size_t *size, tc_error *err) {
    if (!t || !data || !size) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "npy: NULL argument");
    *data = NULL;
    *size = 0;
    if ((unsigned)t->dtype >= TC_DTYPE_COUNT)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "npy: invalid dtype %d", (int)t->dtype);
    const char *descr = npy_descr_of(t->dtype);
    if (!descr)
        return tc_errorf(err, TC_ERR_DTYPE, "npy: dtype %s has no .npy descr; convert it first",
                         tc_dtype_name(t->dtype));
    if (t->rank < 0 || t->rank > TC_MAX_RANK)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "npy: rank %d is outside 0..%d", t->rank, TC_MAX_RANK);
    size_t elem = tc_dtype_size(t->dtype), count = 1;
    bool zero = false, overflow = false;
    char shape[TC_MAX_RANK * 22 + 8];
    size_t sl = 0;
    shape[sl++] = '(';
    for (int i = 0; i < t->rank; i++) {
        int64_t d = t->dims[i];
        if (d < 0)
            return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "npy: dim %d is %lld; only concrete sizes can be written",
                             i, (long long)d);
        if (d == 0) zero = true;
        else if (count > SIZE_MAX / (uint64_t)d) overflow = true;
        else count *= (size_t)d;
        sl += (size_t)snprintf(shape + sl, sizeof shape - sl, i ? ", %lld" : "%lld", (long long)d);
    }
    if (t->rank == 1) shape[sl++] = ',';
    shape[sl++] = ')';
    shape[sl] = '\0';
    if (zero) count = 0, overflow = false;
    if (overflow || count > (SIZE_MAX - 4096) / elem)
        return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "npy: tensor is too large");
    size_t nbytes = count * elem;
    if (nbytes && !t->data) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "npy: tensor data is NULL");
    char dict[256];
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    TC_ASSERT(dl > 0 && (size_t)dl < sizeof dict);
    /* The header (magic, version, length, dict, padding, '\n') is padded to 64 bytes so the data
     * that follows is aligned, as numpy does. */
    size_t pre = 10, total = pre + (size_t)dl + 1;
    total = (total + 63) / 64 * 64;
    if (total - pre > 65535) {
        pre = 12;
        total = (pre + (size_t)dl + 1 + 63) / 64 * 64;
    }
    size_t hlen = total - pre;
    unsigned char *buf = malloc(total + nbytes);
    if (!buf) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "npy: out of memory");
    memcpy(buf, npy_magic, sizeof npy_magic);
    buf[6] = pre == 10 ? 1 : 2;
    buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + pre, dict, (size_t)dl);
    memset(buf + pre + dl, ' ', total - pre - (size_t)dl - 1);
    buf[total - 1] = '\n';
    if (t->dtype == TC_BOOL) {
        const unsigned char *s = t->data;
        for (size_t i = 0; i < count; i++) buf[total + i] = s[i] != 0;
    } else if (nbytes) {
        memcpy(buf + total, t->data, nbytes);
    }
    *data = buf;
    *size = total + nbytes;
    return TC_OK;
}

tc_status tc_npy_write_file(const char *path, const tc_tensor *t, tc_error *err) {
    if (!path) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "npy: path is NULL");
    void *buf;
    size_t size;
    TC_TRY(tc_npy_write_memory(t, &buf, &size, err));
    FILE *f = fopen(path, "wb");
    if (!f) {
        int e = errno;
        free(buf);
        return tc_errorf(err, TC_ERR_IO, "npy: cannot create '%s': %s", path, strerror(e));
    }
    bool ok = fwrite(buf, 1, size, f) == size;
    int e = errno;
    ok = (fclose(f) == 0) && ok;
    if (!ok && !e) e = errno;
    free(buf);
    if (!ok) return tc_errorf(err, TC_ERR_IO, "npy: cannot write '%s': %s", path, strerror(e));
    return TC_OK;
}
