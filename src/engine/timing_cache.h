/* Timing caches: the plan choices of CUDA engines (cuDNN plans, cuBLASLt algorithms) in a file of
 * their own, so that building the same model again, or another with the same layer shapes, skips
 * the heuristics and the timing. The format (docs/engine-format.md, "Timing caches"):
 *
 *   "TCTCACHE", u32 version, u32 0, target (str device name, u32 cc major, u32 cc minor,
 *   str cuDNN version, str cuBLASLt version), u32 n, n x { u32 kind, u32 0, u64 size, size bytes,
 *   zero padding to 8 }, u64 checksum (tc_hash64 of everything before it)
 *
 * where each record's bytes are those of a CUDA plan record in an engine file. */
#ifndef TC_ENGINE_TIMING_CACHE_H
#define TC_ENGINE_TIMING_CACHE_H

#include "engine/serialize.h"

#define TC_TIMING_CACHE_MAGIC "TCTCACHE"
#define TC_TIMING_CACHE_VERSION 1u

typedef struct tc_timing_cache_target {
    char device_name[256];
    int cc_major, cc_minor;
    char cudnn_version[32], cublaslt_version[32];
} tc_timing_cache_target;

/* Appends the cache (target, records: their kind and bytes; step is not stored) to out. */
tc_status tc_timing_cache_encode(const tc_timing_cache_target *t, const tc_step_record *records, uint32_t n,
                                 tc_wbuf *out, tc_error *err);

/* Checks a cache (magic, version, checksum, every bound) and lists its records, whose data point
 * into data (*records is malloc'd; free it). TC_ERR_FORMAT for anything damaged, TC_ERR_VERSION for
 * a newer version. Never reads outside [data, data + size). */
tc_status tc_timing_cache_parse(const void *data, size_t size, tc_timing_cache_target *t, tc_step_record **records,
                                uint32_t *n, tc_error *err);

/* Whether choices made for `made` may be used on `here`: the same GPU model and compute
 * capability, and the same cuDNN and cuBLASLt versions. */
bool tc_timing_cache_matches(const tc_timing_cache_target *made, const tc_timing_cache_target *here);

#endif
