/*
 * load → generate → free, RUNS times (default 3), with the drop-in API (run natively, under
 * valgrind and under AddressSanitizer + UBSan by scripts/c-tests.sh to prove no leaks, no bad
 * accesses and no growth):
 *   dropin_repeat <model_dir> <image> [runs]
 * Each run must return text, the pieces streamed to the token callback must concatenate to
 * exactly that text, and every run must give the first run's text. From 40 runs on, the
 * resident memory after the last run must be within 5 % of that after run 20 (pass --no-rss
 * where a tool's own memory counts, as under valgrind). Run 20, not run 1: glibc keeps memory
 * freed by the first cycles (per-thread arenas of the contexts' worker threads, cached thread
 * stacks), a one-time step of 15-25 MB here over the first 2-15 cycles, flat afterwards
 * (53.7-54.5 MB from run 10 to run 200 in one measurement); valgrind shows the same bytes in use
 * at exit after 1 run as after 100.
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

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s <model_dir> <image> [runs] [--no-rss]\n", argv[0]); return 2; }
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    int check_rss = !(argc > 4 && strcmp(argv[4], "--no-rss") == 0);
    if (runs < 1) runs = 1;
#ifdef __GLIBC__
    /* As in test_cycles.c: large blocks get their own mappings and free memory at the top of the
     * heap is returned, so RSS follows what is in use rather than what glibc keeps. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
#endif
    char *first = NULL;
    int failed = 0;
    long rss_first = 0, rss_warm = 0, rss_last = 0;
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
        rss_last = resident_kib();
        if (i == 0) rss_first = rss_last;
        if (i == 19) rss_warm = rss_last;
    }
    free(first);
    if (!failed && check_rss && runs >= 40 && rss_warm > 0 && rss_last > rss_warm * 105 / 100) {
        fprintf(stderr, "resident memory grew from %ld KiB after run 20 to %ld KiB after run %d (> 5 %%)\n",
                rss_warm, rss_last, runs);
        failed = 1;
    }
    if (failed) printf("dropin_repeat: FAILED\n");
    else
        printf("dropin_repeat: %d runs, same text, pieces = text; RSS %ld KiB after run 1, %ld after run 20, "
               "%ld after run %d\n", runs, rss_first, rss_warm, rss_last, runs);
    return failed;
}
