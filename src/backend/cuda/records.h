/* Plan choices of a CUDA engine (records.c): what kernels look up before choosing a cuDNN plan or
 * a cuBLASLt algorithm, and their step records in engine files (docs/engine-format.md). */
#ifndef TC_BACKEND_CUDA_RECORDS_H
#define TC_BACKEND_CUDA_RECORDS_H

#include "backend/cuda/cuda.h"
#include "engine/serialize.h"

/* Runs the engine once at its opt shapes on zero inputs, so that the choices for them exist (plans
 * already chosen are reused). Does nothing when records are off (TENSORC_PLAN_RECORDS=0). */
tc_status tc_cuda_engine_prepare(tc_cuda_engine *e, tc_error *err);

/* The engine-file hooks' halves: writes one record per choice the engine used (after
 * tc_cuda_engine_prepare), and takes the records of a file or, from_cache, of a timing cache
 * (TC_ERR_FORMAT for a malformed one; kinds it does not know are skipped, so that their steps
 * choose again; choices already in the table stay). */
tc_status tc_cuda_write_records(tc_cuda_engine *e, tc_record_writer *w, tc_error *err);
tc_status tc_cuda_read_records(tc_cuda_engine *e, const tc_step_record *records, uint32_t n, bool from_cache,
                               tc_error *err);
/* Copies of the choices as records (step: the node that made it first; data: the record bytes),
 * all of them (a timing cache) or those this engine used (an engine file: a timing cache may hold
 * choices for shapes this engine never has). Free with tc_cuda_choices_snapshot_free. */
tc_status tc_cuda_choices_snapshot(tc_cuda_engine *e, bool all, tc_step_record **out, uint32_t *n, tc_error *err);
void tc_cuda_choices_snapshot_free(tc_step_record *records, uint32_t n);

/* The description of the first choice made for node (e.g. "cudnn engine 41, NHWC, 2 stages
 * fused"); false when there is none. Number of choices held. */
bool tc_cuda_choice_describe(tc_cuda_engine *e, int node, char *buf, size_t n);
int tc_cuda_choice_count(tc_cuda_engine *e);

/* How many plans this engine's contexts made from stored choices, and how many stored choices they
 * could not use (and chose again): for tests and logs. */
void tc_cuda_engine_plan_counts(tc_cuda_engine *e, uint64_t *from_records, uint64_t *rechosen);

/* Frees the table (tc_cuda_engine_free). */
void tc_cuda_choices_free(tc_cuda_engine *e);

#endif
