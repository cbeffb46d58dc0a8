/*
 * Describes an image, streaming the answer, then prints the call's statistics (the extended API:
 * a shared model, a context, an image object, generate params). Every language's example does
 * the same; see examples/README.md.
 *
 *   cc -std=c99 describe.c $(pkg-config --cflags --libs smolvlm) -o describe
 *   ./describe <model_dir> <image> ["prompt"]
 */
#include "smolvlm.h"
#include <stdio.h>

static bool print_piece(const char *piece, size_t len, int32_t token, void *user_data) {
    (void)token;
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true;
}

static int fail(const char *what) {
    fprintf(stderr, "%s: %s\n", what, smolvlm_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s <model_dir> <image> [prompt]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 3 ? argv[3] : "Describe this image.";
    smolvlm_model_t *model = NULL;
    smolvlm_ctx_t *ctx = NULL;
    smolvlm_image_t *image = NULL;
    int rc = 1;
    if (smolvlm_model_load(argv[1], NULL, &model) != SMOLVLM_STATUS_OK) return fail("load");
    if (smolvlm_ctx_new(model, &ctx) != SMOLVLM_STATUS_OK) { rc = fail("context"); goto done; }
    if (smolvlm_image_from_file(argv[2], &image) != SMOLVLM_STATUS_OK) { rc = fail("image"); goto done; }

    smolvlm_generate_params params;
    smolvlm_generate_params_default(&params);
    params.max_tokens = 256;
    params.on_piece = print_piece;
    const smolvlm_image_t *images[] = {image};
    if (smolvlm_ctx_generate(ctx, prompt, NULL, images, 1, &params, NULL) != SMOLVLM_STATUS_OK) {
        rc = fail("generate");
        goto done;
    }
    printf("\n");

    smolvlm_stats s;
    s.size = sizeof s;
    smolvlm_ctx_get_stats(ctx, &s);
    fprintf(stderr, "%d tokens, %.1f tok/s; vision %.0f ms, prompt %d tokens %.0f ms, total %.0f ms\n",
            s.decode_tokens, s.decode_tokens_per_s, s.encode_ms, s.prefill_tokens, s.prefill_ms, s.total_ms);
    rc = 0;
done:
    smolvlm_image_free(image);
    smolvlm_free(ctx);
    smolvlm_model_free(model);
    return rc;
}
