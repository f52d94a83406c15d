/* Arena allocator and pointer vector. */
#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

struct tc_arena_block {
    tc_arena_block *next;
    size_t size;
    _Alignas(16) unsigned char data[];
};

void *tc_arena_alloc(tc_arena *a, size_t size) {
    size = (size + 15) & ~(size_t)15;
    if (!a->head || a->used + size > a->cap) {
        size_t cap = size > 65536 ? size : 65536;
        tc_arena_block *b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->size = cap;
        a->head = b;
        a->used = 0;
        a->cap = cap;
    }
    void *p = a->head->data + a->used;
    a->used += size;
    memset(p, 0, size);
    return p;
}

char *tc_arena_strdup(tc_arena *a, const char *s) {
    if (!s) return NULL;
    return tc_arena_memdup(a, s, strlen(s) + 1);
}

void *tc_arena_memdup(tc_arena *a, const void *p, size_t size) {
    void *q = tc_arena_alloc(a, size ? size : 1);
    if (q && size) memcpy(q, p, size);
    return q;
}

void tc_arena_free(tc_arena *a) {
    tc_arena_block *b = a->head;
    while (b) {
        tc_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used = a->cap = 0;
}

int tc_ptrvec_push(tc_ptrvec *v, void *p) {
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 16;
        void **items = realloc(v->items, (size_t)cap * sizeof *items);
        if (!items) return -1;
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = p;
    return 0;
}

void tc_ptrvec_free(tc_ptrvec *v) {
    free(v->items);
    v->items = NULL;
    v->n = v->cap = 0;
}
