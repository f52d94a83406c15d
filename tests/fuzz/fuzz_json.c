/* Fuzz target for the JSON parser: parse the input, then walk the whole tree through every
 * accessor. Every key of an object must be found again by lookup. */
#include "import/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const tc_json *v, int depth) {
    if (depth > TC_JSON_MAX_DEPTH + 1) abort(); /* the parser let too deep a tree through */
    double d;
    int64_t i;
    bool b;
    (void)tc_json_number(v, &d);
    (void)tc_json_int(v, &i);
    (void)tc_json_bool(v, &b);
    (void)tc_json_is_null(v);
    const char *s = tc_json_string(v);
    if (s && s[tc_json_string_len(v)] != '\0') abort();
    switch (tc_json_type_of(v)) {
    case TC_JSON_ARRAY:
        for (size_t k = 0; k < tc_json_len(v); k++) walk(tc_json_at(v, k), depth + 1);
        if (tc_json_at(v, tc_json_len(v)) != NULL) abort();
        break;
    case TC_JSON_OBJECT:
        for (size_t k = 0; k < tc_json_len(v); k++) {
            const char *key = tc_json_key_at(v, k);
            const tc_json *val = tc_json_value_at(v, k);
            if (!key || !val) abort();
            /* Keys holding U+0000 cannot be asked for by C string. */
            if (strlen(key) == tc_json_key_len_at(v, k)) {
                const tc_json *found = tc_json_get(v, key);
                if (!found) abort();
                /* With duplicates the last one wins, so found is this value or a later one. */
                if (found < val) abort();
            }
            walk(val, depth + 1);
        }
        break;
    case TC_JSON_NULL:
    case TC_JSON_BOOL:
    case TC_JSON_NUMBER:
    case TC_JSON_STRING:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tc_json_doc *doc = NULL;
    tc_error err;
    if (tc_json_parse((const char *)data, size, &doc, &err) != TC_OK) {
        if (doc || strncmp(err.msg, "json: ", 6) != 0) abort();
        return 0;
    }
    walk(tc_json_root(doc), 0);
    tc_json_free(doc);
    return 0;
}
