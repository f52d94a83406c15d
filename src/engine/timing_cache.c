/* Timing caches (timing_cache.h): the file format, and importing into / exporting from an engine. */
#include "engine/timing_cache.h"
#ifdef TC_HAVE_CUDA
#include "backend/cuda/engine_file.h"
#include "backend/cuda/records.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tc_status tc_timing_cache_encode(const tc_timing_cache_target *t, const tc_step_record *records, uint32_t n,
                                 tc_wbuf *out, tc_error *err) {
    size_t start = out->size;
    tc_wbuf_bytes(out, TC_TIMING_CACHE_MAGIC, 8);
    tc_wbuf_u32(out, TC_TIMING_CACHE_VERSION);
    tc_wbuf_u32(out, 0);
    tc_wbuf_str(out, t->device_name);
    tc_wbuf_u32(out, (uint32_t)t->cc_major);
    tc_wbuf_u32(out, (uint32_t)t->cc_minor);
    tc_wbuf_str(out, t->cudnn_version);
    tc_wbuf_str(out, t->cublaslt_version);
    tc_wbuf_pad(out, 8);
    tc_wbuf_u32(out, n);
    tc_wbuf_u32(out, 0);
    for (uint32_t i = 0; i < n; i++) {
        tc_wbuf_u32(out, records[i].kind);
        tc_wbuf_u32(out, 0);
        tc_wbuf_u64(out, records[i].size);
        tc_wbuf_bytes(out, records[i].data, (size_t)records[i].size);
        tc_wbuf_pad(out, 8);
    }
    if (out->oom) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory writing a timing cache");
    tc_wbuf_u64(out, tc_hash64(out->data + start, out->size - start, 0));
    if (out->oom) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory writing a timing cache");
    return TC_OK;
}

static uint64_t load_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

tc_status tc_timing_cache_parse(const void *data, size_t size, tc_timing_cache_target *t, tc_step_record **records,
                                uint32_t *n, tc_error *err) {
    *records = NULL;
    *n = 0;
    memset(t, 0, sizeof *t);
    const unsigned char *p = data;
    if (size < 24 || memcmp(p, TC_TIMING_CACHE_MAGIC, 8) != 0)
        return tc_errorf(err, TC_ERR_FORMAT, "not a tensorc timing cache (bad magic)");
    if (size % 8 != 0 || load_u64(p + size - 8) != tc_hash64(p, size - 8, 0))
        return tc_errorf(err, TC_ERR_FORMAT, "the timing cache is damaged (checksum mismatch or truncated)");
    tc_rbuf r = {.p = p, .size = size - 8, .pos = 8};
    uint32_t version = tc_rbuf_u32(&r);
    if (version > TC_TIMING_CACHE_VERSION)
        return tc_errorf(err, TC_ERR_VERSION, "the timing cache has version %u; this tensorc reads up to %u",
                         version, TC_TIMING_CACHE_VERSION);
    if (version == 0 || tc_rbuf_u32(&r) != 0) return tc_errorf(err, TC_ERR_FORMAT, "the timing cache header is damaged");
    bool ok = tc_rbuf_str_copy(&r, t->device_name, sizeof t->device_name);
    uint32_t ma = tc_rbuf_u32(&r), mi = tc_rbuf_u32(&r);
    ok = tc_rbuf_str_copy(&r, t->cudnn_version, sizeof t->cudnn_version) && ok;
    ok = tc_rbuf_str_copy(&r, t->cublaslt_version, sizeof t->cublaslt_version) && ok;
    (void)tc_rbuf_bytes(&r, (8 - r.pos % 8) % 8);
    uint32_t count = tc_rbuf_u32(&r);
    if (tc_rbuf_u32(&r) != 0 || !ok || r.bad || ma > 1000 || mi > 1000 || count > tc_rbuf_room(&r, 16))
        return tc_errorf(err, TC_ERR_FORMAT, "the timing cache header is damaged");
    t->cc_major = (int)ma, t->cc_minor = (int)mi;
    tc_step_record *recs = calloc((size_t)count + 1, sizeof *recs);
    if (!recs) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "out of memory reading a timing cache");
    for (uint32_t i = 0; i < count; i++) {
        recs[i].kind = tc_rbuf_u32(&r);
        uint32_t zero = tc_rbuf_u32(&r);
        recs[i].size = tc_rbuf_u64(&r);
        recs[i].data = r.bad || zero || recs[i].size > tc_rbuf_room(&r, 1) ? NULL : tc_rbuf_bytes(&r, (size_t)recs[i].size);
        (void)tc_rbuf_bytes(&r, (8 - r.pos % 8) % 8);
        if (r.bad || zero || (!recs[i].data && recs[i].size)) {
            free(recs);
            return tc_errorf(err, TC_ERR_FORMAT, "the timing cache's record %u is damaged", i);
        }
    }
    if (r.pos != r.size) {
        free(recs);
        return tc_errorf(err, TC_ERR_FORMAT, "the timing cache has bytes left over");
    }
    *records = recs;
    *n = count;
    return TC_OK;
}

bool tc_timing_cache_matches(const tc_timing_cache_target *made, const tc_timing_cache_target *here) {
    return strcmp(made->device_name, here->device_name) == 0 && made->cc_major == here->cc_major &&
           made->cc_minor == here->cc_minor && strcmp(made->cudnn_version, here->cudnn_version) == 0 &&
           strcmp(made->cublaslt_version, here->cublaslt_version) == 0;
}

/* ---- engines ------------------------------------------------------------------------------------ */

static void copy_err(const tc_error *e, char *buf, size_t n) {
    if (buf && n) snprintf(buf, n, "%s", e->msg);
}

#ifdef TC_HAVE_CUDA
static tc_status target_here(const tc_engine_t *e, tc_timing_cache_target *t, tc_error *err) {
    tc_engine_target et;
    memset(&et, 0, sizeof et);
    TC_TRY(tc_cuda_target_of_device(tc_engine_options(e)->device, &et, err));
    memset(t, 0, sizeof *t);
    snprintf(t->device_name, sizeof t->device_name, "%s", et.device_name);
    t->cc_major = et.cc_major, t->cc_minor = et.cc_minor;
    snprintf(t->cudnn_version, sizeof t->cudnn_version, "%s", et.cudnn_version);
    snprintf(t->cublaslt_version, sizeof t->cublaslt_version, "%s", et.cublaslt_version);
    return TC_OK;
}
#endif

tc_status tc_engine_import_timing_cache(tc_engine_t *engine, const char *path, int *n_used, char *err_buf,
                                        size_t err_size) {
    tc_error err = {0};
    tc_status st = TC_OK;
    if (n_used) *n_used = 0;
    if (!engine || !path) {
        st = tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "engine or path is NULL");
        goto done;
    }
    if (tc_engine_backend(engine) != TC_BACKEND_CUDA) goto done; /* CPU engines choose nothing */
#ifdef TC_HAVE_CUDA
    unsigned char *data = NULL;
    size_t size = 0;
    st = tc_read_file(path, &data, &size, &err);
    if (st != TC_OK) goto done;
    tc_timing_cache_target made, here;
    tc_step_record *recs = NULL;
    uint32_t n = 0;
    st = tc_timing_cache_parse(data, size, &made, &recs, &n, &err);
    if (st == TC_OK) st = target_here(engine, &here, &err);
    if (st == TC_OK && !tc_timing_cache_matches(&made, &here))
        st = tc_errorf(&err, TC_ERR_VERSION,
                       "it was written for %s (compute capability %d.%d) with cuDNN %s and cuBLASLt %s; this engine "
                       "runs on %s (compute capability %d.%d) with cuDNN %s and cuBLASLt %s",
                       made.device_name, made.cc_major, made.cc_minor, made.cudnn_version, made.cublaslt_version,
                       here.device_name, here.cc_major, here.cc_minor, here.cudnn_version, here.cublaslt_version);
    if (st == TC_OK) st = tc_cuda_read_records(tc_engine_cuda(engine), recs, n, true, &err);
    if (st == TC_OK && n_used) *n_used = (int)n;
    free(recs);
    free(data);
    if (st != TC_OK) {
        char msg[sizeof err.msg];
        snprintf(msg, sizeof msg, "%s", err.msg);
        tc_errorf(&err, st, "timing cache '%s': %s", path, msg);
    }
#else
    st = tc_errorf(&err, TC_ERR_UNSUPPORTED, "this build of tensorc has no CUDA backend");
#endif
done:
    if (st != TC_OK) copy_err(&err, err_buf, err_size);
    return st;
}

tc_status tc_engine_export_timing_cache(const tc_engine_t *engine, const char *path, int *n_written, char *err_buf,
                                        size_t err_size) {
    tc_error err = {0};
    tc_status st = TC_OK;
    if (n_written) *n_written = 0;
    if (!engine || !path) {
        st = tc_errorf(&err, TC_ERR_INVALID_ARGUMENT, "engine or path is NULL");
        goto done;
    }
    if (tc_engine_backend(engine) != TC_BACKEND_CUDA) goto done;
#ifdef TC_HAVE_CUDA
    tc_timing_cache_target here;
    tc_step_record *recs = NULL;
    uint32_t n = 0;
    tc_wbuf w = {0};
    st = target_here(engine, &here, &err);
    if (st == TC_OK) st = tc_cuda_choices_snapshot(tc_engine_cuda(engine), true, &recs, &n, &err);
    uint32_t kept = 0; /* plan choices only: generated code stays in engine files */
    for (uint32_t i = 0; st == TC_OK && i < n; i++) {
        if (recs[i].kind == TC_RECORD_NVRTC_CUBIN) {
            free((void *)recs[i].data);
            continue;
        }
        recs[kept++] = recs[i];
    }
    if (st == TC_OK) n = kept;
    if (st == TC_OK) st = tc_timing_cache_encode(&here, recs, n, &w, &err);
    tc_cuda_choices_snapshot_free(recs, n);
    if (st == TC_OK) st = tc_write_file_atomic(path, w.data, w.size, &err);
    if (st == TC_OK && n_written) *n_written = (int)n;
    tc_wbuf_free(&w);
#else
    st = tc_errorf(&err, TC_ERR_UNSUPPORTED, "this build of tensorc has no CUDA backend");
#endif
done:
    if (st != TC_OK) copy_err(&err, err_buf, err_size);
    return st;
}
