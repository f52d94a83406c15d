/* A read-only zip reader for .pt2 archives: walks the central directory (zip64 included) of a
 * mapped file or a memory buffer and hands out pointers to stored (uncompressed) entries in place. */
#ifndef TC_IMPORT_ZIP_H
#define TC_IMPORT_ZIP_H

#include "core/error.h"

#include <stddef.h>

typedef struct tc_zip tc_zip;

/* Maps the file read-only (POSIX mmap) and reads its central directory. Every entry's offsets and
 * sizes are checked against the file size here, so later lookups cannot point outside it.
 * Errors: TC_ERR_IO (cannot open or map), TC_ERR_FORMAT (not a zip, damaged or truncated),
 * TC_ERR_UNSUPPORTED (multi-disk or encrypted archives), TC_ERR_OUT_OF_MEMORY. */
tc_status tc_zip_open_file(const char *path, tc_zip **out, tc_error *err);
/* Same over a caller's buffer, which is borrowed: it must outlive the tc_zip and the pointers that
 * tc_zip_find returns. */
tc_status tc_zip_open_memory(const void *data, size_t size, tc_zip **out, tc_error *err);
void tc_zip_close(tc_zip *z); /* NULL is a no-op; unmaps a file opened by tc_zip_open_file */

/* The top folder of the archive, taken from the first entry up to and including its first '/'
 * ("m/" for m.pt2, "archive/" for a buffer save); "" when the first entry has no '/'. */
const char *tc_zip_prefix(const tc_zip *z);
int tc_zip_num_entries(const tc_zip *z);
const char *tc_zip_entry_name(const tc_zip *z, int i); /* full name; NULL when out of range */

/* Finds entry prefix + name ("data/weights/weight_0") and points *data at its bytes inside the
 * mapping (exact, not necessarily aligned) and *size at its length. With duplicate names the last
 * entry wins. Errors: TC_ERR_NOT_FOUND (message names the entry), TC_ERR_UNSUPPORTED (the entry is
 * compressed). */
tc_status tc_zip_find(const tc_zip *z, const char *name, const void **data, size_t *size,
                      tc_error *err);

/* The whole mapped file or buffer. */
const void *tc_zip_base(const tc_zip *z);
size_t tc_zip_size(const tc_zip *z);

#endif
