/* .npy reader and writer (format versions 1.0, 2.0 and 3.0) for the CLI's inputs and outputs and
 * for test fixtures. Only C-order, little-endian arrays of the dtypes below are read.
 *
 *   descr                      tc_dtype
 *   '<f4'                      TC_F32
 *   '<f2'                      TC_F16
 *   '<f8'                      TC_F32  (converted on read: inputs and outputs are f32 at most)
 *   '<i8' '<i4' '|i1' '|u1'    TC_I64, TC_I32, TC_I8, TC_U8
 *   '|b1'                      TC_BOOL (bytes normalized to 0/1)
 *   '|V2' '<V2' 'bfloat16'     TC_BF16 (raw 2-byte bfloat16, as numpy stores ml_dtypes.bfloat16)
 */
#ifndef TC_IMPORT_NPY_H
#define TC_IMPORT_NPY_H

#include "core/error.h"

#include <stddef.h>

/* Fills *out (dtype, rank, dims, data). out->data is malloc'ed (at least 1 byte, even for an
 * empty array) and the caller frees it with free(); on error out->data is NULL. Rejects
 * Fortran-order, object, structured and big-endian arrays, ranks above TC_MAX_RANK and truncated
 * data with TC_ERR_FORMAT / TC_ERR_DTYPE / TC_ERR_UNSUPPORTED and a message saying what to do.
 * Bytes after the array data are ignored, as numpy does. */
tc_status tc_npy_read_file(const char *path, tc_tensor *out, tc_error *err);
tc_status tc_npy_read_memory(const void *data, size_t size, tc_tensor *out, tc_error *err);

/* Writes t as .npy version 1.0 (2.0 if the header would not fit). TC_BF16 is written as '<V2',
 * TC_F64 as '<f8'; TC_F8E4M3 has no numpy descr and is rejected with TC_ERR_DTYPE. */
tc_status tc_npy_write_file(const char *path, const tc_tensor *t, tc_error *err);
/* *data is malloc'ed; the caller frees it with free(). */
tc_status tc_npy_write_memory(const tc_tensor *t, void **data, size_t *size, tc_error *err);

#endif
