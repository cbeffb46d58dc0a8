/*
 * A program written for the original smol-vision engine, as its users wrote them: the four
 * functions, the thread and verbosity controls of common_kernels.h and the context's public
 * timing fields. It builds unchanged against this library through the compat headers:
 *
 *   cc -Iinclude/smol-vision -Iinclude smol_vision_cli.c -Ltarget/release -lsmolvlm -o smol_vision_cli
 *   ./smol_vision_cli -d <model_dir> -i <image> [-p <prompt>] [-t <n>] [--max-tokens <n>]
 *                     [--system-prompt <text>] [--debug | --silent]
 */
#include "smolvlm.h"
#include "common_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_piece(const char *piece, void *userdata) {
    (void)userdata;
    fputs(piece, stdout);
    fflush(stdout);
}

static int usage(const char *prog) {
    fprintf(stderr,
            "usage: %s -d <model_dir> -i <image> [-p <prompt>] [--system-prompt <text>]\n"
            "       [-t <threads>] [--max-tokens <n>] [--debug | --silent]\n",
            prog);
    return 1;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *image = NULL, *system_prompt = NULL;
    const char *prompt = "Describe this image.";
    int threads = 0, max_tokens = 256, verbosity = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "-d") && has_value) dir = argv[++i];
        else if (!strcmp(a, "-i") && has_value) image = argv[++i];
        else if (!strcmp(a, "-p") && has_value) prompt = argv[++i];
        else if (!strcmp(a, "--system-prompt") && has_value) system_prompt = argv[++i];
        else if (!strcmp(a, "-t") && has_value) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--max-tokens") && has_value) max_tokens = atoi(argv[++i]);
        else if (!strcmp(a, "--debug")) verbosity = 2;
        else if (!strcmp(a, "--silent")) verbosity = 0;
        else return usage(argv[0]);
    }
    if (!dir || !image) return usage(argv[0]);

    qwen_verbose = verbosity;
    qwen_set_threads(threads > 0 ? threads : qwen_get_num_cpus());

    smolvlm_ctx_t *ctx = smolvlm_load(dir);
    if (!ctx) {
        fprintf(stderr, "Failed to load model from %s\n", dir);
        return 1;
    }
    if (verbosity > 0) smolvlm_set_token_callback(ctx, on_piece, NULL);

    char *text = smolvlm_generate(ctx, image, prompt, system_prompt, max_tokens);
    if (!text) {
        fprintf(stderr, "Generation failed\n");
        smolvlm_free(ctx);
        return 1;
    }
    if (verbosity > 0) printf("\n");
    else printf("%s\n", text);
    free(text);

    if (verbosity >= 1) {
        double tok_s = ctx->perf_total_ms > 0 ? 1000.0 * ctx->perf_tokens / ctx->perf_total_ms : 0.0;
        fprintf(stderr, "Inference: %.0f ms, %d tokens (%.2f tok/s, encoding: %.0fms, decoding: %.0fms)\n",
                ctx->perf_total_ms, ctx->perf_tokens, tok_s, ctx->perf_encode_ms, ctx->perf_decode_ms);
    }
    smolvlm_free(ctx);
    return 0;
}
