/* A JSON (RFC 8259) DOM parser for the model.json and config files of .pt2 archives.
 * A document owns all its nodes and strings in one arena; freeing the document frees them. */
#ifndef TC_IMPORT_JSON_H
#define TC_IMPORT_JSON_H

#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tc_json_type {
    TC_JSON_NULL,
    TC_JSON_BOOL,
    TC_JSON_NUMBER,
    TC_JSON_STRING,
    TC_JSON_ARRAY,
    TC_JSON_OBJECT
} tc_json_type;

typedef struct tc_json tc_json;         /* a node, owned by its document */
typedef struct tc_json_doc tc_json_doc; /* a parsed document */

/* Deepest nesting of arrays and objects accepted; deeper input is rejected, never recursed into. */
#define TC_JSON_MAX_DEPTH 512

/* Parses len bytes of UTF-8 text (need not be NUL-terminated). Rejects invalid UTF-8, trailing
 * content after the value, nesting deeper than TC_JSON_MAX_DEPTH, and anything RFC 8259 does not
 * allow (comments, NaN/Infinity literals, trailing commas, leading zeros). A leading UTF-8 BOM is
 * skipped. Error messages give line and column (1-based, columns count bytes). Escaped lone
 * surrogates (\uD800 without its pair) decode to U+FFFD, as no valid UTF-8 can carry them. */
tc_status tc_json_parse(const char *text, size_t len, tc_json_doc **out, tc_error *err);
void tc_json_free(tc_json_doc *doc); /* NULL is a no-op */
const tc_json *tc_json_root(const tc_json_doc *doc);

/* All accessors accept NULL nodes and then return NULL / 0 / false, so lookups can be chained:
 * tc_json_int(tc_json_get(tc_json_get(root, "schema_version"), "major"), &v). */
tc_json_type tc_json_type_of(const tc_json *v); /* TC_JSON_NULL for a NULL node */

/* Member `key` of an object; NULL if absent or v is not an object. With duplicate keys the last
 * one wins (as in Python's json). O(log n) for big objects. */
const tc_json *tc_json_get(const tc_json *obj, const char *key);
size_t tc_json_len(const tc_json *arr_or_obj); /* elements or members; 0 for other types */
const tc_json *tc_json_at(const tc_json *arr, size_t i);       /* NULL if out of range */
const char *tc_json_key_at(const tc_json *obj, size_t i);      /* document order */
size_t tc_json_key_len_at(const tc_json *obj, size_t i);       /* bytes; keys may hold U+0000 */
const tc_json *tc_json_value_at(const tc_json *obj, size_t i); /* document order */

/* A number as a double. Also accepts the strings "Infinity", "-Infinity" and "NaN", which is how
 * torch.export writes non-finite floats. */
bool tc_json_number(const tc_json *v, double *out);
/* An integer exactly: integer literals within int64 are kept exact (9007199254740993 survives);
 * other numbers are accepted when integral and within int64. */
bool tc_json_int(const tc_json *v, int64_t *out);
bool tc_json_bool(const tc_json *v, bool *out);
/* Decoded UTF-8, NUL-terminated; NULL if not a string. */
const char *tc_json_string(const tc_json *v);
size_t tc_json_string_len(const tc_json *v); /* bytes, without the terminator; 0 if not a string */
bool tc_json_is_null(const tc_json *v);      /* true only for a JSON null node */

#endif
