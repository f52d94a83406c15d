/* Arena allocator: many small allocations freed together, and a growable pointer vector. */
#ifndef TC_CORE_ARENA_H
#define TC_CORE_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct tc_arena_block tc_arena_block;
typedef struct tc_arena {
    tc_arena_block *head;
    size_t used, cap;
} tc_arena;

/* Returns zeroed, 16-byte aligned memory, or NULL when out of memory. */
void *tc_arena_alloc(tc_arena *a, size_t size);
char *tc_arena_strdup(tc_arena *a, const char *s);
void *tc_arena_memdup(tc_arena *a, const void *p, size_t size);
void tc_arena_free(tc_arena *a);

/* A growable array of pointers (malloc-backed). */
typedef struct tc_ptrvec {
    void **items;
    int n, cap;
} tc_ptrvec;

int tc_ptrvec_push(tc_ptrvec *v, void *p); /* 0 on success, -1 when out of memory */
void tc_ptrvec_free(tc_ptrvec *v);

#endif
