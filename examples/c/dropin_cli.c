/*
 * A program written against the original smol-vision API only (smolvlm_load,
 * smolvlm_set_token_callback, smolvlm_generate, smolvlm_free): it streams the answer to stdout
 * exactly as the original CLI does.
 *
 *   cc -std=c99 dropin_cli.c -I include -L target/release -lsmolvlm -o dropin_cli
 *   ./dropin_cli <model_dir> <image|-> [prompt] [max_tokens] [system_prompt]
 */
#include "smolvlm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void stream_token(const char *piece, void *userdata) {
    (void)userdata;
    fputs(piece, stdout);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s <model_dir> <image|-> [prompt] [max_tokens] [system_prompt]\n", argv[0]);
        return 2;
    }
    const char *image = strcmp(argv[2], "-") == 0 ? NULL : argv[2];
    const char *prompt = argc > 3 ? argv[3] : "Describe this image.";
    int max_tokens = argc > 4 ? atoi(argv[4]) : 256;
    const char *system_prompt = argc > 5 ? argv[5] : NULL;

    smolvlm_ctx_t *ctx = smolvlm_load(argv[1]);
    if (!ctx) {
        fprintf(stderr, "Failed to load model from %s: %s\n", argv[1], smolvlm_last_error());
        return 1;
    }
    smolvlm_set_token_callback(ctx, stream_token, NULL);
    char *text = smolvlm_generate(ctx, image, prompt, system_prompt, max_tokens);
    if (!text) {
        fprintf(stderr, "Generation failed: %s\n", smolvlm_last_error());
        smolvlm_free(ctx);
        return 1;
    }
    printf("\n");
    free(text);
    smolvlm_free(ctx);
    return 0;
}
