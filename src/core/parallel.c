/* The worker pool behind tc_parallel_for: pthreads that sleep on a condition variable and
 * each run one chunk of the current job; one job at a time, guarded by a caller lock. */
#define _POSIX_C_SOURCE 200809L
#include "core/parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#define TC_PARALLEL_MAX_THREADS 256

typedef struct tc_pool {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers wait here for a new generation or shutdown */
    pthread_cond_t done; /* the caller waits here for pending == 0 */
    uint64_t generation;
    bool shutdown;
    void (*fn)(void *ctx, int64_t begin, int64_t end);
    void *ctx;
    int64_t n;
    int nchunks;
    int pending;
    int nworkers; /* threads started, not counting the caller */
    pthread_t threads[TC_PARALLEL_MAX_THREADS];
} tc_pool;

typedef struct tc_worker_arg {
    tc_pool *pool;
    int index; /* 1-based: chunk 0 belongs to the caller */
} tc_worker_arg;

/* Serializes users of the pool; a caller that finds it taken runs inline rather than waiting,
 * which cannot deadlock and does not change results. */
static pthread_mutex_t g_call_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_threads; /* 0 = not resolved yet */
static tc_pool *g_pool;      /* guarded by g_call_lock */
static tc_worker_arg g_args[TC_PARALLEL_MAX_THREADS];
static _Thread_local int tl_depth;

static int64_t chunk_bound(int64_t n, int nchunks, int i)
{
    /* n * i / nchunks without overflow for any n that fits an int64 */
    return (n / nchunks) * i + ((n % nchunks) * i) / nchunks;
}

static void run_chunk(tc_pool *p, int i)
{
    int64_t b = chunk_bound(p->n, p->nchunks, i), e = chunk_bound(p->n, p->nchunks, i + 1);
    if (b < e) p->fn(p->ctx, b, e);
}

static void *worker_main(void *argp)
{
    tc_worker_arg *arg = argp;
    tc_pool *p = arg->pool;
    uint64_t seen = 0;
    tl_depth = 1;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->generation == seen && !p->shutdown) pthread_cond_wait(&p->wake, &p->mu);
        if (p->shutdown) break;
        seen = p->generation;
        if (arg->index >= p->nchunks) continue;
        pthread_mutex_unlock(&p->mu);
        run_chunk(p, arg->index);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int resolve_threads(void)
{
    int t = atomic_load(&g_threads);
    if (t > 0) return t;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    t = cores < 1 ? 1 : cores > TC_PARALLEL_MAX_THREADS ? TC_PARALLEL_MAX_THREADS : (int)cores;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&g_threads, &expected, t)) t = expected;
    return t;
}

int tc_parallel_threads(void) { return resolve_threads(); }

/* A forked child has none of the parent's workers: forget the pool (leaking it) and start over. */
static void atfork_child(void)
{
    g_pool = NULL;
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    g_call_lock = fresh;
}

static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(NULL, NULL, atfork_child); }

/* Stops and frees the pool; g_call_lock held. */
static void pool_stop(void)
{
    tc_pool *p = g_pool;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->shutdown = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p);
    g_pool = NULL;
}

/* Starts a pool with up to want-1 workers; g_call_lock held. Returns NULL if nothing could be
 * started, in which case the caller runs inline. */
static tc_pool *pool_start(int want)
{
    pthread_once(&g_atfork_once, register_atfork);
    tc_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < want - 1; i++) {
        g_args[i].pool = p;
        g_args[i].index = i + 1;
        if (pthread_create(&p->threads[i], NULL, worker_main, &g_args[i]) != 0) break;
        p->nworkers++;
    }
    if (p->nworkers == 0) {
        pthread_cond_destroy(&p->wake);
        pthread_cond_destroy(&p->done);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    return p;
}

void tc_parallel_set_threads(int n)
{
    if (n < 0) n = 0;
    if (n > TC_PARALLEL_MAX_THREADS) n = TC_PARALLEL_MAX_THREADS;
    pthread_mutex_lock(&g_call_lock);
    atomic_store(&g_threads, n);
    int t = resolve_threads();
    if (g_pool && g_pool->nworkers != t - 1) pool_stop();
    pthread_mutex_unlock(&g_call_lock);
}

void tc_parallel_for(int64_t n, int64_t grain, void (*fn)(void *ctx, int64_t begin, int64_t end),
                     void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int threads = resolve_threads();
    int64_t max_chunks = n / grain;
    int nchunks = max_chunks < threads ? (int)(max_chunks < 1 ? 1 : max_chunks) : threads;
    if (nchunks <= 1 || tl_depth > 0 || pthread_mutex_trylock(&g_call_lock) != 0) {
        tl_depth++;
        fn(ctx, 0, n);
        tl_depth--;
        return;
    }
    if (!g_pool) g_pool = pool_start(threads);
    tc_pool *p = g_pool;
    if (!p) {
        pthread_mutex_unlock(&g_call_lock);
        tl_depth++;
        fn(ctx, 0, n);
        tl_depth--;
        return;
    }
    if (nchunks > p->nworkers + 1) nchunks = p->nworkers + 1;

    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->nchunks = nchunks;
    p->pending = nchunks - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    tl_depth++;
    run_chunk(p, 0);
    tl_depth--;

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&g_call_lock);
}
