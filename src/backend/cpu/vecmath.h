/* Vectorizable f32 helpers shared by the CPU softmax-like kernels (softmax, log_softmax, attention):
 * a fast exp for non-positive arguments, and row max / shifted-exp sums in eight fixed lanes so
 * results do not depend on how the loops are split. */
#ifndef TC_BACKEND_CPU_VECMATH_H
#define TC_BACKEND_CPU_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp for softmax arguments (x <= 0; x above 88 is taken as 88): Cody-Waite reduction and a
 * degree-6 polynomial, within about 2 ulp of expf. Below -87.3 it gives 0, and NaN stays NaN.
 * The range tests look at the bits rather than compare floats, so that loops over it vectorize
 * under the default -ftrapping-math. */
static inline float exp_f32(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t a = u & 0x7fffffffu, neg = u >> 31;
    uint32_t m_nan = 0u - (uint32_t)(a > 0x7f800000u);
    uint32_t m_tiny = 0u - (neg & (uint32_t)(a > 0x42ae999au)); /* x < -87.3 */
    uint32_t m_big = 0u - ((neg ^ 1u) & (uint32_t)(a > 0x42b00000u)); /* x > 88 */
    uint32_t xb = (u & ~(m_nan | m_tiny | m_big)) | (0x42b00000u & m_big);
    float xc;
    memcpy(&xc, &xb, sizeof xc);
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t sb = (uint32_t)((int32_t)n + 127) << 23;
    float scale, e;
    memcpy(&scale, &sb, sizeof scale);
    e = p * scale;
    uint32_t eb;
    memcpy(&eb, &e, sizeof eb);
    eb = (eb & ~(m_tiny | m_nan)) | (u & m_nan);
    memcpy(&e, &eb, sizeof e);
    return e;
}

/* Largest of n values in eight independent lanes (NaN is ignored here; it reaches the result
 * through the exponentials). */
static inline float row_max(const float *p, int64_t n) {
    float m[8];
    for (int j = 0; j < 8; j++) m[j] = -INFINITY;
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) m[j] = p[k + j] > m[j] ? p[k + j] : m[j];
    for (; k < n; k++) m[0] = p[k] > m[0] ? p[k] : m[0];
    for (int j = 1; j < 8; j++) m[0] = m[j] > m[0] ? m[j] : m[0];
    return m[0];
}

/* y[k] = exp(x[k] - shift); returns the sum of the y in eight independent lanes. */
static inline float exp_shifted(const float *x, float *y, int64_t n, float shift) {
    for (int64_t k = 0; k < n; k++) y[k] = exp_f32(x[k] - shift);
    float a[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) a[j] += y[k + j];
    float t = 0;
    for (; k < n; k++) t += y[k];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])) + t;
}

#endif
