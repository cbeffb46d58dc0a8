/* load → generate → free, three times: run under valgrind to prove no leaks or bad accesses. */
#include "smolvlm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sink(const char *piece, void *ud) {
    (void)piece;
    ++*(int *)ud;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    for (int i = 0; i < 3; i++) {
        int pieces = 0;
        smolvlm_ctx_t *ctx = smolvlm_load(argv[1]);
        if (!ctx) { fprintf(stderr, "%s\n", smolvlm_last_error()); return 1; }
        smolvlm_set_token_callback(ctx, sink, &pieces);
        char *text = smolvlm_generate(ctx, argv[2], "What is this?", NULL, 4);
        if (!text) { fprintf(stderr, "%s\n", smolvlm_last_error()); smolvlm_free(ctx); return 1; }
        printf("run %d: %d pieces, %zu bytes\n", i, pieces, strlen(text));
        free(text);
        smolvlm_free(ctx);
    }
    return 0;
}
