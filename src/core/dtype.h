/* Data type helpers: sizes, names and host-side conversions between f32 and the 16/8-bit floats.
 * Conversions are ours (cuda_fp16.h is C++-only on the host) and round to nearest even. */
#ifndef TC_CORE_DTYPE_H
#define TC_CORE_DTYPE_H

#include "tensorc.h"
#include <string.h>

float tc_f16_to_f32(uint16_t h);
uint16_t tc_f32_to_f16(float f);
float tc_f8e4m3_to_f32(uint8_t v);
uint8_t tc_f32_to_f8e4m3(float f);

static inline float tc_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t tc_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline bool tc_dtype_is_float(tc_dtype t) {
    return t == TC_F32 || t == TC_F16 || t == TC_BF16 || t == TC_F8E4M3 || t == TC_F64;
}
static inline bool tc_dtype_is_int(tc_dtype t) {
    return t == TC_I64 || t == TC_I32 || t == TC_I8 || t == TC_U8;
}

/* Element i of a buffer of dtype t, read as double / written from double (with rounding). */
double tc_load_f64(const void *p, tc_dtype t, int64_t i);
void tc_store_f64(void *p, tc_dtype t, int64_t i, double v);
/* Same through int64 for exact integer paths. */
int64_t tc_load_i64(const void *p, tc_dtype t, int64_t i);
void tc_store_i64(void *p, tc_dtype t, int64_t i, int64_t v);

/* Converts n elements between dtypes following PyTorch's casting (float→int truncates toward zero,
 * anything→bool is != 0). */
void tc_convert(const void *src, tc_dtype st, void *dst, tc_dtype dt, int64_t n);

/* Reads n elements as f32 into dst (f32 is copied); writes n f32 into dtype t with rounding. */
void tc_to_f32(const void *src, tc_dtype st, float *dst, int64_t n);
void tc_from_f32(const float *src, void *dst, tc_dtype dt, int64_t n);

#endif
