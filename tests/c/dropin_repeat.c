/*
 * load → generate → free, RUNS times (default 3), with the drop-in API (run natively, under
 * valgrind and under AddressSanitizer + UBSan by scripts/c-tests.sh to prove no leaks, no bad
 * accesses and no growth):
 *   dropin_repeat <model_dir> <image> [runs]
 * Each run must return text, the pieces streamed to the token callback must concatenate to
 * exactly that text, and every run must give the first run's text. From 40 runs on, memory must
 * not keep growing (pass --no-rss where a tool's own allocator or memory counts, as under valgrind
 * and ASan). Each point is the lowest of the 5 runs ending at run 20 and at the last run:
 *  - the allocator's bytes in use (glibc's mallinfo2: all arenas plus its own mappings) may grow
 *    by at most 512 KiB, which a steady leak of 6.4 KiB per cycle over 100 runs exceeds. Measured
 *    clean: +47 to +55 KiB over 100 runs, and a band of 238-332 KiB in use over 300 runs, which
 *    leaves a margin of almost 4x. Why not RSS alone: a leak fills the holes that the first
 *    cycles leave in the heap, so RSS grew by only 1.0 MB in the second half of a run that kept
 *    64 KiB per cycle (2.5 MB), while a clean run has shown a one-time step of 3 MB;
 *  - resident memory may grow by at most 12 % (mappings that are never unmapped, which the
 *    allocator does not see; the one-time step above was 6 %).
 * DROPIN_TRACE=1 prints both after every run. --leak-kib N keeps N KiB per cycle on purpose, so
 * that scripts/c-tests.sh can show the check fails on a leak.
 * Exits 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include "smolvlm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

typedef struct { int pieces; char *buf; size_t len; int oom; } collected;

static void collect(const char *piece, void *ud) {
    collected *c = ud;
    size_t n = strlen(piece);
    char *grown = realloc(c->buf, c->len + n + 1);
    c->pieces++;
    if (!grown) { c->oom = 1; return; }
    memcpy(grown + c->len, piece, n + 1);
    c->buf = grown;
    c->len += n;
}

/* Resident set size in KiB (Linux), 0 where unknown. */
static long resident_kib(void) {
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
    return resident * 4;
}

static long long floor_bytes(const long long *v, int upto) {
    long long low = v[upto - 1];
    for (int i = upto - 5; i < upto; i++)
        if (i >= 0 && v[i] < low) low = v[i];
    return low;
}

/* Bytes the allocator has handed out and not had back (all arenas and its own mappings), -1
 * where unknown: unlike RSS, a leak shows up here byte for byte, however the heap is fragmented. */
static long long in_use_bytes(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 m = mallinfo2();
    return (long long)(m.uordblks + m.hblkhd);
#else
    return -1;
#endif
}

/* The lowest resident size of the 5 runs ending at run `upto` (1-based): a floor, so that one
 * run's transient peak does not count as growth. */
static long floor_kib(const long *rss, int upto) {
    long low = rss[upto - 1];
    for (int i = upto - 5; i < upto; i++)
        if (i >= 0 && rss[i] < low) low = rss[i];
    return low;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s <model_dir> <image> [runs] [--no-rss] [--leak-kib N]\n", argv[0]);
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    int check_rss = 1;
    long leak_kib = 0;
    for (int a = 4; a < argc; a++) {
        if (strcmp(argv[a], "--no-rss") == 0) check_rss = 0;
        else if (strcmp(argv[a], "--leak-kib") == 0 && a + 1 < argc) leak_kib = atol(argv[++a]);
        else { fprintf(stderr, "unknown option %s\n", argv[a]); return 2; }
    }
    if (runs < 1) runs = 1;
    long *rss = calloc((size_t)runs, sizeof *rss);
    long long *used = calloc((size_t)runs, sizeof *used);
    char **kept = calloc((size_t)runs, sizeof *kept);
    if (!rss || !used || !kept) { fprintf(stderr, "out of memory\n"); return 1; }
#ifdef __GLIBC__
    /* As in test_cycles.c: large blocks get their own mappings and free memory at the top of the
     * heap is returned, so RSS follows what is in use rather than what glibc keeps. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
#endif
    char *first = NULL;
    int failed = 0;
    for (int i = 0; i < runs && !failed; i++) {
        collected c = {0, NULL, 0, 0};
        smolvlm_ctx_t *ctx = smolvlm_load(argv[1]);
        if (!ctx) { fprintf(stderr, "run %d: load: %s\n", i, smolvlm_last_error()); failed = 1; break; }
        smolvlm_set_token_callback(ctx, collect, &c);
        char *text = smolvlm_generate(ctx, argv[2], "What is this?", NULL, 4);
        if (!text) {
            fprintf(stderr, "run %d: generate returned NULL: %s\n", i, smolvlm_last_error());
            failed = 1;
        } else if (c.oom || strcmp(c.buf ? c.buf : "", text) != 0) {
            fprintf(stderr, "run %d: the %d pieces make \"%s\", the returned text is \"%s\"\n", i, c.pieces,
                    c.buf ? c.buf : "", text);
            failed = 1;
        } else if (first && strcmp(text, first) != 0) {
            fprintf(stderr, "run %d: \"%s\" differs from run 0: \"%s\"\n", i, text, first);
            failed = 1;
        }
        if (runs <= 3) printf("run %d: %d pieces, %zu bytes\n", i, c.pieces, text ? strlen(text) : 0);
        free(c.buf);
        smolvlm_free(ctx);
        if (!first) first = text;
        else free(text);
        if (leak_kib > 0 && (kept[i] = malloc((size_t)leak_kib * 1024))) memset(kept[i], 1, (size_t)leak_kib * 1024);
        rss[i] = resident_kib();
        used[i] = in_use_bytes();
        if (getenv("DROPIN_TRACE")) printf("trace %d %ld %lld\n", i + 1, rss[i], used[i]);
    }
    free(first);
    long warm = 0, last = 0;
    long long used_warm = -1, used_last = -1;
    if (!failed && runs >= 40) {
        warm = floor_kib(rss, 20);
        last = floor_kib(rss, runs);
        used_warm = floor_bytes(used, 20);
        used_last = floor_bytes(used, runs);
    }
    if (check_rss && used_warm >= 0 && used_last - used_warm > 512 * 1024) {
        fprintf(stderr, "allocator bytes in use grew: %lld at run 20, %lld at run %d (> 512 KiB)\n", used_warm,
                used_last, runs);
        failed = 1;
    }
    if (check_rss && warm > 0 && last - warm > warm * 12 / 100) {
        fprintf(stderr, "resident memory grew: %ld KiB at run 20, %ld at run %d (> 12 %%)\n", warm, last, runs);
        failed = 1;
    }
    if (failed) printf("dropin_repeat: FAILED\n");
    else if (warm > 0)
        printf("dropin_repeat: %d runs, same text, pieces = text; lowest of 5 runs at run 20 and run %d: RSS %ld and "
               "%ld KiB, allocator bytes in use %lld and %lld\n", runs, runs, warm, last, used_warm, used_last);
    else
        printf("dropin_repeat: %d runs, same text, pieces = text\n", runs);
    for (int i = 0; i < runs; i++) free(kept[i]);
    free(kept);
    free(rss);
    free(used);
    return failed;
}
