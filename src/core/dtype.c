/* Data type names, sizes and conversions. */
#include "core/dtype.h"
#include "core/error.h"

#include <math.h>
#include <strings.h>

static const struct {
    const char *name;
    size_t size;
} dtype_info[] = {
    [TC_F32] = {"f32", 4}, [TC_F16] = {"f16", 2},   [TC_BF16] = {"bf16", 2},
    [TC_F8E4M3] = {"f8e4m3", 1}, [TC_I64] = {"i64", 8}, [TC_I32] = {"i32", 4},
    [TC_I8] = {"i8", 1},   [TC_U8] = {"u8", 1},     [TC_BOOL] = {"bool", 1},
    [TC_F64] = {"f64", 8},
};
_Static_assert(sizeof dtype_info / sizeof dtype_info[0] == TC_DTYPE_COUNT, "dtype table size");

const char *tc_dtype_name(tc_dtype t) {
    return (unsigned)t < TC_DTYPE_COUNT ? dtype_info[t].name : "?";
}

size_t tc_dtype_size(tc_dtype t) { return (unsigned)t < TC_DTYPE_COUNT ? dtype_info[t].size : 0; }

bool tc_dtype_from_name(const char *name, tc_dtype *out) {
    static const struct {
        const char *name;
        tc_dtype t;
    } aliases[] = {
        {"f32", TC_F32},       {"float32", TC_F32}, {"float", TC_F32},      {"fp32", TC_F32},
        {"f16", TC_F16},       {"float16", TC_F16}, {"half", TC_F16},       {"fp16", TC_F16},
        {"bf16", TC_BF16},     {"bfloat16", TC_BF16}, {"f8e4m3", TC_F8E4M3}, {"float8_e4m3fn", TC_F8E4M3},
        {"fp8", TC_F8E4M3},    {"i64", TC_I64},     {"int64", TC_I64},      {"long", TC_I64},
        {"i32", TC_I32},       {"int32", TC_I32},   {"int", TC_I32},        {"i8", TC_I8},
        {"int8", TC_I8},       {"u8", TC_U8},       {"uint8", TC_U8},       {"bool", TC_BOOL},
        {"f64", TC_F64},       {"float64", TC_F64}, {"double", TC_F64},
    };
    if (!name) return false;
    if (strncmp(name, "torch.", 6) == 0) name += 6;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcasecmp(name, aliases[i].name) == 0) {
            *out = aliases[i].t;
            return true;
        }
    }
    return false;
}

float tc_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400) == 0);
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t tc_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00; /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00; /* rounds to inf */
    if (a < 0x38800000u) {
        /* subnormal or zero in f16: value = a * 2^24 rounded to integer */
        if (a < 0x33000000u) return sign; /* below half of the smallest subnormal */
        uint32_t exp = a >> 23;
        uint32_t man = (a & 0x7fffff) | 0x800000;
        int shift = 126 - (int)exp; /* 14 + (113 - exp) */
        uint32_t r = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = a - 0x38000000u; /* rebias 127 -> 15 */
    uint32_t low = r & 0x1fff;
    r >>= 13;
    if (low > 0x1000 || (low == 0x1000 && (r & 1))) r++;
    return sign | (uint16_t)r;
}

float tc_f8e4m3_to_f32(uint8_t v) {
    uint32_t sign = v >> 7, exp = (v >> 3) & 0xf, man = v & 7;
    float r;
    if (exp == 15 && man == 7) return NAN;
    if (exp == 0) r = ldexpf((float)man, -9);
    else r = ldexpf((float)(8 + man), (int)exp - 10);
    return sign ? -r : r;
}

uint8_t tc_f32_to_f8e4m3(float f) {
    if (isnan(f)) return 0x7f;
    uint8_t sign = signbit(f) ? 0x80 : 0;
    float a = fabsf(f);
    if (a >= 464.0f) return sign | 0x7e; /* saturate to 448 (e4m3fn has no inf) */
    /* find the representable neighbours by brute force over the 127 finite magnitudes */
    uint8_t best = 0;
    float bd = INFINITY;
    for (uint8_t c = 0; c < 0x7f; c++) {
        float d = fabsf(tc_f8e4m3_to_f32(c) - a);
        if (d < bd || (d == bd && (c & 1) == 0)) {
            bd = d;
            best = c;
        }
    }
    return sign | best;
}

double tc_load_f64(const void *p, tc_dtype t, int64_t i) {
    switch (t) {
    case TC_F32: return ((const float *)p)[i];
    case TC_F16: return tc_f16_to_f32(((const uint16_t *)p)[i]);
    case TC_BF16: return tc_bf16_to_f32(((const uint16_t *)p)[i]);
    case TC_F8E4M3: return tc_f8e4m3_to_f32(((const uint8_t *)p)[i]);
    case TC_I64: return (double)((const int64_t *)p)[i];
    case TC_I32: return ((const int32_t *)p)[i];
    case TC_I8: return ((const int8_t *)p)[i];
    case TC_U8: return ((const uint8_t *)p)[i];
    case TC_BOOL: return ((const uint8_t *)p)[i] != 0;
    case TC_F64: return ((const double *)p)[i];
    case TC_DTYPE_COUNT: break;
    }
    TC_ASSERT(0 && "bad dtype");
    return 0;
}

static int64_t float_to_int(double v) {
    if (isnan(v)) return INT64_MIN;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v; /* truncation toward zero, as PyTorch casts */
}

void tc_store_f64(void *p, tc_dtype t, int64_t i, double v) {
    switch (t) {
    case TC_F32: ((float *)p)[i] = (float)v; return;
    case TC_F16: ((uint16_t *)p)[i] = tc_f32_to_f16((float)v); return;
    case TC_BF16: ((uint16_t *)p)[i] = tc_f32_to_bf16((float)v); return;
    case TC_F8E4M3: ((uint8_t *)p)[i] = tc_f32_to_f8e4m3((float)v); return;
    case TC_I64: ((int64_t *)p)[i] = float_to_int(v); return;
    case TC_I32: ((int32_t *)p)[i] = (int32_t)float_to_int(v); return;
    case TC_I8: ((int8_t *)p)[i] = (int8_t)float_to_int(v); return;
    case TC_U8: ((uint8_t *)p)[i] = (uint8_t)float_to_int(v); return;
    case TC_BOOL: ((uint8_t *)p)[i] = v != 0; return;
    case TC_F64: ((double *)p)[i] = v; return;
    case TC_DTYPE_COUNT: break;
    }
    TC_ASSERT(0 && "bad dtype");
}

int64_t tc_load_i64(const void *p, tc_dtype t, int64_t i) {
    switch (t) {
    case TC_I64: return ((const int64_t *)p)[i];
    case TC_I32: return ((const int32_t *)p)[i];
    case TC_I8: return ((const int8_t *)p)[i];
    case TC_U8: return ((const uint8_t *)p)[i];
    case TC_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return float_to_int(tc_load_f64(p, t, i));
    }
}

void tc_store_i64(void *p, tc_dtype t, int64_t i, int64_t v) {
    switch (t) {
    case TC_I64: ((int64_t *)p)[i] = v; return;
    case TC_I32: ((int32_t *)p)[i] = (int32_t)v; return;
    case TC_I8: ((int8_t *)p)[i] = (int8_t)v; return;
    case TC_U8: ((uint8_t *)p)[i] = (uint8_t)v; return;
    case TC_BOOL: ((uint8_t *)p)[i] = v != 0; return;
    default: tc_store_f64(p, t, i, (double)v); return;
    }
}

void tc_convert(const void *src, tc_dtype st, void *dst, tc_dtype dt, int64_t n) {
    if (st == dt) {
        memcpy(dst, src, (size_t)n * tc_dtype_size(st));
        return;
    }
    if (dt == TC_F32 && st != TC_F64 && !tc_dtype_is_int(st) && st != TC_BOOL) {
        tc_to_f32(src, st, dst, n);
        return;
    }
    if (st == TC_F32 && (dt == TC_F16 || dt == TC_BF16)) {
        tc_from_f32(src, dst, dt, n);
        return;
    }
    bool exact_int = (tc_dtype_is_int(st) || st == TC_BOOL) && (tc_dtype_is_int(dt) || dt == TC_BOOL);
    for (int64_t i = 0; i < n; i++) {
        if (exact_int) tc_store_i64(dst, dt, i, tc_load_i64(src, st, i));
        else if (tc_dtype_is_int(st)) tc_store_f64(dst, dt, i, (double)tc_load_i64(src, st, i));
        else tc_store_f64(dst, dt, i, tc_load_f64(src, st, i));
    }
}

void tc_to_f32(const void *src, tc_dtype st, float *dst, int64_t n) {
    switch (st) {
    case TC_F32: memmove(dst, src, (size_t)n * 4); return;
    case TC_F16: for (int64_t i = 0; i < n; i++) dst[i] = tc_f16_to_f32(((const uint16_t *)src)[i]); return;
    case TC_BF16: for (int64_t i = 0; i < n; i++) dst[i] = tc_bf16_to_f32(((const uint16_t *)src)[i]); return;
    default: for (int64_t i = 0; i < n; i++) dst[i] = (float)tc_load_f64(src, st, i); return;
    }
}

void tc_from_f32(const float *src, void *dst, tc_dtype dt, int64_t n) {
    switch (dt) {
    case TC_F32: memmove(dst, src, (size_t)n * 4); return;
    case TC_F16: for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = tc_f32_to_f16(src[i]); return;
    case TC_BF16: for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = tc_f32_to_bf16(src[i]); return;
    default: for (int64_t i = 0; i < n; i++) tc_store_f64(dst, dt, i, src[i]); return;
    }
}
