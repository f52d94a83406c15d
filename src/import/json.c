/* JSON DOM parser: recursive descent bounded by TC_JSON_MAX_DEPTH; nodes and decoded strings live
 * in the document's arena. Children are gathered on one scratch stack and copied into the arena
 * when their container closes, so every container ends up as one contiguous array. */
#include "import/json.h"

#include "core/arena.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Objects with more members than this get a sorted key index; smaller ones are scanned. */
#define JSON_LINEAR_LOOKUP_MAX 8

typedef struct json_key {
    const char *s;
    size_t len;
    size_t idx; /* position in document order */
} json_key;

struct tc_json {
    tc_json_type type;
    bool b;
    bool is_int; /* number written as an integer literal that fits int64 */
    size_t n;    /* string bytes, array elements or object members */
    union {
        struct {
            double d;
            int64_t i;
        } num;
        const char *s;
        tc_json *items;
        struct {
            tc_json *vals;
            json_key *keys;   /* document order */
            json_key *sorted; /* by (key, idx); NULL for small objects */
        } obj;
    } u;
};

struct tc_json_doc {
    tc_arena arena;
    tc_json root;
};

typedef struct json_parser {
    const char *start, *p, *end;
    tc_arena *arena;
    tc_error *err;
    tc_json *stack; /* values of the containers being parsed */
    size_t nstack, capstack;
    json_key *kstack; /* keys of the objects being parsed */
    size_t nkeys, capkeys;
} json_parser;

static tc_status json_fail(json_parser *P, const char *at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static tc_status json_fail(json_parser *P, const char *at, const char *fmt, ...) {
    size_t line = 1;
    const char *line_start = P->start;
    for (const char *c = P->start; c < at; c++) {
        if (*c == '\n') {
            line++;
            line_start = c + 1;
        }
    }
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return tc_errorf(P->err, TC_ERR_FORMAT, "json: %s at line %zu, column %zu", what, line,
                     (size_t)(at - line_start) + 1);
}

static tc_status json_oom(json_parser *P) {
    return tc_errorf(P->err, TC_ERR_OUT_OF_MEMORY, "json: out of memory");
}

static tc_json *json_push(json_parser *P) {
    if (P->nstack == P->capstack) {
        size_t cap = P->capstack ? P->capstack * 2 : 256;
        tc_json *s = realloc(P->stack, cap * sizeof *s);
        if (!s) return NULL;
        P->stack = s;
        P->capstack = cap;
    }
    tc_json *v = &P->stack[P->nstack++];
    memset(v, 0, sizeof *v);
    return v;
}

static void json_skip_ws(json_parser *P) {
    while (P->p < P->end && (*P->p == ' ' || *P->p == '\t' || *P->p == '\n' || *P->p == '\r')) P->p++;
}

static tc_status json_unexpected(json_parser *P, const char *expected) {
    if (P->p >= P->end) return json_fail(P, P->p, "unexpected end of input, expected %s", expected);
    unsigned char c = (unsigned char)*P->p;
    if (c >= 0x20 && c < 0x7f) return json_fail(P, P->p, "unexpected '%c', expected %s", c, expected);
    return json_fail(P, P->p, "unexpected byte 0x%02x, expected %s", c, expected);
}

/* Length of the valid UTF-8 sequence at s (which is not ASCII), or 0 if it is invalid. */
static size_t utf8_seq_len(const unsigned char *s, const unsigned char *end) {
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;       /* overlong */
        else if (c == 0xed) hi = 0x9f;  /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;       /* overlong */
        else if (c == 0xf4) hi = 0x8f;  /* above U+10FFFF */
    } else return 0;
    if ((size_t)(end - s) < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < n; k++)
        if (s[k] < 0x80 || s[k] > 0xbf) return 0;
    return n;
}

static size_t utf8_encode(unsigned cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static bool hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return false;
    }
    *out = v;
    return true;
}

/* P->p is at the opening quote. Decodes into the arena; the result is never longer than the raw
 * text, since every escape is at least as long as the UTF-8 it stands for. */
static tc_status json_parse_string(json_parser *P, const char **out, size_t *out_len) {
    const char *open = P->p;
    const char *q = open + 1;
    for (;;) {
        if (q >= P->end) return json_fail(P, open, "unterminated string");
        unsigned char c = (unsigned char)*q;
        if (c == '"') break;
        if (c == '\\') {
            if (P->end - q < 2) return json_fail(P, open, "unterminated string");
            q += 2;
            continue;
        }
        if (c < 0x20)
            return json_fail(P, q, "control character 0x%02x in a string (it must be escaped)", c);
        q++;
    }
    size_t raw = (size_t)(q - open - 1);
    char *dst = tc_arena_alloc(P->arena, raw + 1);
    if (!dst) return json_oom(P);
    size_t o = 0;
    const char *s = open + 1;
    while (s < q) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\') {
            char e = s[1];
            switch (e) {
            case '"': dst[o++] = '"'; s += 2; break;
            case '\\': dst[o++] = '\\'; s += 2; break;
            case '/': dst[o++] = '/'; s += 2; break;
            case 'b': dst[o++] = '\b'; s += 2; break;
            case 'f': dst[o++] = '\f'; s += 2; break;
            case 'n': dst[o++] = '\n'; s += 2; break;
            case 'r': dst[o++] = '\r'; s += 2; break;
            case 't': dst[o++] = '\t'; s += 2; break;
            case 'u': {
                unsigned cp, lo;
                if (q - s < 6 || !hex4(s + 2, &cp))
                    return json_fail(P, s, "invalid \\u escape (needs 4 hex digits)");
                s += 6;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (q - s >= 6 && s[0] == '\\' && s[1] == 'u' && hex4(s + 2, &lo) && lo >= 0xdc00 &&
                        lo <= 0xdfff) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        s += 6;
                    } else {
                        cp = 0xfffd;
                    }
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    cp = 0xfffd;
                }
                o += utf8_encode(cp, dst + o);
                break;
            }
            default:
                if ((unsigned char)e >= 0x20 && (unsigned char)e < 0x7f)
                    return json_fail(P, s, "invalid escape '\\%c'", e);
                return json_fail(P, s, "invalid escape (backslash before byte 0x%02x)", (unsigned char)e);
            }
        } else if (c < 0x80) {
            dst[o++] = (char)c;
            s++;
        } else {
            size_t k = utf8_seq_len((const unsigned char *)s, (const unsigned char *)q);
            if (!k) return json_fail(P, s, "invalid UTF-8 byte 0x%02x in a string", c);
            memcpy(dst + o, s, k);
            o += k;
            s += k;
        }
    }
    dst[o] = '\0';
    *out = dst;
    *out_len = o;
    P->p = q + 1;
    return TC_OK;
}

/* strtod on a copy, since the text is not NUL-terminated; retried with the locale's decimal point
 * because strtod follows LC_NUMERIC, which a host program may have changed. */
static tc_status json_strtod(json_parser *P, const char *s, size_t n, double *out) {
    char small[128];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) return json_oom(P);
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *endp;
    *out = strtod(buf, &endp);
    if (endp != buf + n) {
        const char *dp = localeconv()->decimal_point;
        char *dot = memchr(buf, '.', n);
        if (dot && dp && dp[0] && !dp[1]) {
            *dot = dp[0];
            *out = strtod(buf, &endp);
        }
    }
    bool ok = endp == buf + n;
    if (buf != small) free(buf);
    if (!ok) return json_fail(P, s, "number '%.*s' could not be converted", (int)(n < 64 ? n : 64), s);
    return TC_OK;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static tc_status json_parse_number(json_parser *P) {
    const char *s = P->p, *q = s;
    bool neg = false, integral = true;
    if (q < P->end && *q == '-') {
        neg = true;
        q++;
    }
    if (q >= P->end || !is_digit(*q)) return json_fail(P, s, "invalid number (a digit must follow '-')");
    if (*q == '0') {
        q++;
        if (q < P->end && is_digit(*q)) return json_fail(P, s, "invalid number (leading zero)");
    } else {
        while (q < P->end && is_digit(*q)) q++;
    }
    if (q < P->end && *q == '.') {
        integral = false;
        q++;
        if (q >= P->end || !is_digit(*q)) return json_fail(P, q, "invalid number (a digit must follow '.')");
        while (q < P->end && is_digit(*q)) q++;
    }
    if (q < P->end && (*q == 'e' || *q == 'E')) {
        integral = false;
        q++;
        if (q < P->end && (*q == '+' || *q == '-')) q++;
        if (q >= P->end || !is_digit(*q)) return json_fail(P, q, "invalid number (a digit must follow the exponent)");
        while (q < P->end && is_digit(*q)) q++;
    }
    tc_json *v = json_push(P);
    if (!v) return json_oom(P);
    v->type = TC_JSON_NUMBER;
    if (integral) {
        /* Exact int64 when it fits: magnitudes up to 2^63 (only for negatives). */
        uint64_t mag = 0, limit = neg ? (uint64_t)1 << 63 : ((uint64_t)1 << 63) - 1;
        bool fits = true;
        for (const char *d = s + neg; d < q; d++) {
            uint64_t digit = (uint64_t)(*d - '0');
            if (mag > (limit - digit) / 10) {
                fits = false;
                break;
            }
            mag = mag * 10 + digit;
        }
        if (fits) {
            v->is_int = true;
            v->u.num.i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
            v->u.num.d = (double)v->u.num.i;
            P->p = q;
            return TC_OK;
        }
    }
    double d = 0;
    tc_status st = json_strtod(P, s, (size_t)(q - s), &d);
    if (st != TC_OK) return st;
    /* json_strtod does not push, so v is still valid. */
    v->u.num.d = d;
    P->p = q;
    return TC_OK;
}

static tc_status json_parse_literal(json_parser *P, const char *word, tc_json_type type, bool b) {
    size_t n = strlen(word);
    if ((size_t)(P->end - P->p) < n || memcmp(P->p, word, n) != 0) return json_unexpected(P, "a JSON value");
    tc_json *v = json_push(P);
    if (!v) return json_oom(P);
    v->type = type;
    v->b = b;
    P->p += n;
    return TC_OK;
}

static int json_key_cmp(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

static int json_sorted_cmp(const void *pa, const void *pb) {
    const json_key *a = pa, *b = pb;
    int c = json_key_cmp(a->s, a->len, b->s, b->len);
    if (c) return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static tc_status json_parse_value(json_parser *P, int depth);

static tc_status json_parse_array(json_parser *P, int depth) {
    size_t base = P->nstack;
    P->p++; /* '[' */
    json_skip_ws(P);
    if (P->p < P->end && *P->p == ']') {
        P->p++;
    } else {
        for (;;) {
            TC_TRY(json_parse_value(P, depth + 1));
            json_skip_ws(P);
            if (P->p < P->end && *P->p == ',') {
                P->p++;
                continue;
            }
            if (P->p < P->end && *P->p == ']') {
                P->p++;
                break;
            }
            return json_unexpected(P, "',' or ']' in an array");
        }
    }
    size_t n = P->nstack - base;
    tc_json *items = NULL;
    if (n) {
        items = tc_arena_alloc(P->arena, n * sizeof *items);
        if (!items) return json_oom(P);
        memcpy(items, P->stack + base, n * sizeof *items);
    }
    P->nstack = base;
    tc_json *v = json_push(P);
    if (!v) return json_oom(P);
    v->type = TC_JSON_ARRAY;
    v->n = n;
    v->u.items = items;
    return TC_OK;
}

static tc_status json_parse_object(json_parser *P, int depth) {
    size_t base = P->nstack, kbase = P->nkeys;
    P->p++; /* '{' */
    json_skip_ws(P);
    if (P->p < P->end && *P->p == '}') {
        P->p++;
    } else {
        for (;;) {
            json_skip_ws(P);
            if (P->p >= P->end || *P->p != '"') return json_unexpected(P, "a string key in an object");
            if (P->nkeys == P->capkeys) {
                size_t cap = P->capkeys ? P->capkeys * 2 : 64;
                json_key *k = realloc(P->kstack, cap * sizeof *k);
                if (!k) return json_oom(P);
                P->kstack = k;
                P->capkeys = cap;
            }
            json_key *key = &P->kstack[P->nkeys];
            TC_TRY(json_parse_string(P, &key->s, &key->len));
            key->idx = P->nkeys - kbase;
            P->nkeys++;
            json_skip_ws(P);
            if (P->p >= P->end || *P->p != ':') return json_unexpected(P, "':' after an object key");
            P->p++;
            TC_TRY(json_parse_value(P, depth + 1));
            json_skip_ws(P);
            if (P->p < P->end && *P->p == ',') {
                P->p++;
                continue;
            }
            if (P->p < P->end && *P->p == '}') {
                P->p++;
                break;
            }
            return json_unexpected(P, "',' or '}' in an object");
        }
    }
    size_t n = P->nstack - base;
    TC_ASSERT(n == P->nkeys - kbase);
    tc_json *vals = NULL;
    json_key *keys = NULL, *sorted = NULL;
    if (n) {
        vals = tc_arena_alloc(P->arena, n * sizeof *vals);
        keys = tc_arena_alloc(P->arena, n * sizeof *keys);
        if (!vals || !keys) return json_oom(P);
        memcpy(vals, P->stack + base, n * sizeof *vals);
        memcpy(keys, P->kstack + kbase, n * sizeof *keys);
        if (n > JSON_LINEAR_LOOKUP_MAX) {
            sorted = tc_arena_alloc(P->arena, n * sizeof *sorted);
            if (!sorted) return json_oom(P);
            memcpy(sorted, keys, n * sizeof *sorted);
            qsort(sorted, n, sizeof *sorted, json_sorted_cmp);
        }
    }
    P->nstack = base;
    P->nkeys = kbase;
    tc_json *v = json_push(P);
    if (!v) return json_oom(P);
    v->type = TC_JSON_OBJECT;
    v->n = n;
    v->u.obj.vals = vals;
    v->u.obj.keys = keys;
    v->u.obj.sorted = sorted;
    return TC_OK;
}

static tc_status json_parse_value(json_parser *P, int depth) {
    json_skip_ws(P);
    if (P->p >= P->end) return json_unexpected(P, "a JSON value");
    switch (*P->p) {
    case '{':
    case '[':
        if (depth >= TC_JSON_MAX_DEPTH)
            return json_fail(P, P->p, "arrays and objects nested deeper than %d levels", TC_JSON_MAX_DEPTH);
        return *P->p == '{' ? json_parse_object(P, depth) : json_parse_array(P, depth);
    case '"': {
        const char *s;
        size_t n;
        TC_TRY(json_parse_string(P, &s, &n));
        tc_json *v = json_push(P);
        if (!v) return json_oom(P);
        v->type = TC_JSON_STRING;
        v->n = n;
        v->u.s = s;
        return TC_OK;
    }
    case 't': return json_parse_literal(P, "true", TC_JSON_BOOL, true);
    case 'f': return json_parse_literal(P, "false", TC_JSON_BOOL, false);
    case 'n': return json_parse_literal(P, "null", TC_JSON_NULL, false);
    default:
        if (*P->p == '-' || is_digit(*P->p)) return json_parse_number(P);
        return json_unexpected(P, "a JSON value");
    }
}

tc_status tc_json_parse(const char *text, size_t len, tc_json_doc **out, tc_error *err) {
    if (!out) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "json: out is NULL");
    *out = NULL;
    if (!text && len) return tc_errorf(err, TC_ERR_INVALID_ARGUMENT, "json: text is NULL");
    tc_json_doc *doc = calloc(1, sizeof *doc);
    if (!doc) return tc_errorf(err, TC_ERR_OUT_OF_MEMORY, "json: out of memory");
    const char *begin = text ? text : "";
    json_parser P = {.start = begin, .p = begin, .end = begin + len, .arena = &doc->arena, .err = err};
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) P.p += 3;
    tc_status st = json_parse_value(&P, 0);
    if (st == TC_OK) {
        json_skip_ws(&P);
        if (P.p < P.end) st = json_fail(&P, P.p, "unexpected content after the JSON value");
    }
    if (st == TC_OK) {
        TC_ASSERT(P.nstack == 1 && P.nkeys == 0);
        doc->root = P.stack[0];
    }
    free(P.stack);
    free(P.kstack);
    if (st != TC_OK) {
        tc_json_free(doc);
        return st;
    }
    *out = doc;
    return TC_OK;
}

void tc_json_free(tc_json_doc *doc) {
    if (!doc) return;
    tc_arena_free(&doc->arena);
    free(doc);
}

const tc_json *tc_json_root(const tc_json_doc *doc) { return doc ? &doc->root : NULL; }

tc_json_type tc_json_type_of(const tc_json *v) { return v ? v->type : TC_JSON_NULL; }

const tc_json *tc_json_get(const tc_json *obj, const char *key) {
    if (!obj || obj->type != TC_JSON_OBJECT || !key) return NULL;
    size_t klen = strlen(key), n = obj->n;
    if (!obj->u.obj.sorted) {
        for (size_t i = n; i-- > 0;) {
            const json_key *k = &obj->u.obj.keys[i];
            if (k->len == klen && memcmp(k->s, key, klen) == 0) return &obj->u.obj.vals[i];
        }
        return NULL;
    }
    /* Upper bound of key; with equal keys ordered by position, the one before it is the last. */
    const json_key *sorted = obj->u.obj.sorted;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (json_key_cmp(sorted[mid].s, sorted[mid].len, key, klen) <= 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo > 0 && json_key_cmp(sorted[lo - 1].s, sorted[lo - 1].len, key, klen) == 0)
        return &obj->u.obj.vals[sorted[lo - 1].idx];
    return NULL;
}

size_t tc_json_len(const tc_json *v) {
    if (!v || (v->type != TC_JSON_ARRAY && v->type != TC_JSON_OBJECT)) return 0;
    return v->n;
}

const tc_json *tc_json_at(const tc_json *arr, size_t i) {
    if (!arr || arr->type != TC_JSON_ARRAY || i >= arr->n) return NULL;
    return &arr->u.items[i];
}

const char *tc_json_key_at(const tc_json *obj, size_t i) {
    if (!obj || obj->type != TC_JSON_OBJECT || i >= obj->n) return NULL;
    return obj->u.obj.keys[i].s;
}

size_t tc_json_key_len_at(const tc_json *obj, size_t i) {
    if (!obj || obj->type != TC_JSON_OBJECT || i >= obj->n) return 0;
    return obj->u.obj.keys[i].len;
}

const tc_json *tc_json_value_at(const tc_json *obj, size_t i) {
    if (!obj || obj->type != TC_JSON_OBJECT || i >= obj->n) return NULL;
    return &obj->u.obj.vals[i];
}

bool tc_json_number(const tc_json *v, double *out) {
    if (!v) return false;
    if (v->type == TC_JSON_NUMBER) {
        *out = v->u.num.d;
        return true;
    }
    if (v->type == TC_JSON_STRING) {
        if (strcmp(v->u.s, "Infinity") == 0) *out = INFINITY;
        else if (strcmp(v->u.s, "-Infinity") == 0) *out = -INFINITY;
        else if (strcmp(v->u.s, "NaN") == 0) *out = NAN;
        else return false;
        return true;
    }
    return false;
}

bool tc_json_int(const tc_json *v, int64_t *out) {
    if (!v || v->type != TC_JSON_NUMBER) return false;
    if (v->is_int) {
        *out = v->u.num.i;
        return true;
    }
    double d = v->u.num.d;
    /* -2^63 is exact as a double; 2^63 is the first value out of range. */
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d)) return false;
    *out = (int64_t)d;
    return true;
}

bool tc_json_bool(const tc_json *v, bool *out) {
    if (!v || v->type != TC_JSON_BOOL) return false;
    *out = v->b;
    return true;
}

const char *tc_json_string(const tc_json *v) {
    return v && v->type == TC_JSON_STRING ? v->u.s : NULL;
}

size_t tc_json_string_len(const tc_json *v) {
    return v && v->type == TC_JSON_STRING ? v->n : 0;
}

bool tc_json_is_null(const tc_json *v) { return v && v->type == TC_JSON_NULL; }
