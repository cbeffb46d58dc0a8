/*
 * load → generate → free, three times, with the drop-in API (run under valgrind by
 * scripts/c-tests.sh to prove no leaks or bad accesses):
 *   dropin_repeat <model_dir> <image>
 * Each run must return text, the pieces streamed to the token callback must concatenate to
 * exactly that text, and the three runs must give the same text. Exits 1 otherwise.
 */
#include "smolvlm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUNS 3

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

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s <model_dir> <image>\n", argv[0]); return 2; }
    char *texts[RUNS] = {NULL};
    int failed = 0;
    for (int i = 0; i < RUNS; i++) {
        collected c = {0, NULL, 0, 0};
        smolvlm_ctx_t *ctx = smolvlm_load(argv[1]);
        if (!ctx) { fprintf(stderr, "run %d: load: %s\n", i, smolvlm_last_error()); failed = 1; break; }
        smolvlm_set_token_callback(ctx, collect, &c);
        texts[i] = smolvlm_generate(ctx, argv[2], "What is this?", NULL, 4);
        if (!texts[i]) {
            fprintf(stderr, "run %d: generate returned NULL: %s\n", i, smolvlm_last_error());
            failed = 1;
        } else if (c.oom || strcmp(c.buf ? c.buf : "", texts[i]) != 0) {
            fprintf(stderr, "run %d: the %d pieces make \"%s\", the returned text is \"%s\"\n", i, c.pieces,
                    c.buf ? c.buf : "", texts[i]);
            failed = 1;
        } else if (i > 0 && texts[0] && strcmp(texts[i], texts[0]) != 0) {
            fprintf(stderr, "run %d: \"%s\" differs from run 0: \"%s\"\n", i, texts[i], texts[0]);
            failed = 1;
        }
        printf("run %d: %d pieces, %zu bytes\n", i, c.pieces, texts[i] ? strlen(texts[i]) : 0);
        free(c.buf);
        smolvlm_free(ctx);
    }
    for (int i = 0; i < RUNS; i++) free(texts[i]);
    printf("dropin_repeat: %s\n", failed ? "FAILED" : "3 runs, same text, pieces = text");
    return failed;
}
