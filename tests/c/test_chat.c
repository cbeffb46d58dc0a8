/*
 * A conversation through smolvlm_ctx_generate_chat on one context (prompt cache on, the
 * default): every turn equals a fresh context's answer to the same messages with the cache off,
 * turns 2-3 encode no tile and reuse at least the previous turn's prompt, and
 * smolvlm_ctx_reset makes the next call start from nothing; a state saved after turn 2 and
 * restored into a third context continues there as in the first.
 *
 * usage: test_chat <model_dir> <image>
 */
#include "check.h"
#include <stdlib.h>
#include <string.h>

/* Appends s to buf as a JSON string literal (RFC 8259 escapes). */
static void append_json_string(char *buf, size_t cap, const char *s) {
    size_t n = strlen(buf);
    if (n + 1 < cap) buf[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 8 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)*p;
        } else if (*p < 0x20) {
            n += (size_t)snprintf(buf + n, cap - n, "\\u%04x", *p);
        } else {
            buf[n++] = (char)*p;
        }
    }
    if (n + 1 < cap) buf[n++] = '"';
    buf[n] = 0;
}

/* The reply as a caller sends it back: without leading or trailing white space. */
static void trim(char *s) {
    size_t len = strlen(s), start = 0;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\n' || s[len - 1] == '\t' || s[len - 1] == '\r')) s[--len] = 0;
    while (s[start] == ' ' || s[start] == '\n' || s[start] == '\t' || s[start] == '\r') start++;
    memmove(s, s + start, len - start + 1);
}

static smolvlm_status turn(smolvlm_ctx_t *ctx, const char *json, const smolvlm_image_t *img, int cache, char **text,
                           smolvlm_stats *st) {
    smolvlm_generate_params p;
    smolvlm_generate_params_default(&p);
    p.max_tokens = 8;
    p.prompt_cache = cache;
    const smolvlm_image_t *imgs[1] = {img};
    smolvlm_status rc = smolvlm_ctx_generate_chat(ctx, json, imgs, 1, &p, text);
    memset(st, 0, sizeof *st);
    st->size = sizeof *st;
    if (rc == SMOLVLM_STATUS_OK) rc = smolvlm_ctx_get_stats(ctx, st);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s <model_dir> <image>\n", argv[0]);
        return 2;
    }
    smolvlm_model_t *model = NULL;
    smolvlm_ctx_t *ctx = NULL, *fresh = NULL;
    smolvlm_image_t *img = NULL;
    CHECK(smolvlm_model_load(argv[1], NULL, &model) == SMOLVLM_STATUS_OK, "load %s", argv[1]);
    CHECK(smolvlm_image_from_file(argv[2], &img) == SMOLVLM_STATUS_OK, "image %s", argv[2]);
    CHECK(smolvlm_ctx_new(model, &ctx) == SMOLVLM_STATUS_OK && smolvlm_ctx_new(model, &fresh) == SMOLVLM_STATUS_OK,
          "contexts");
    if (failed) return 1;

    const char *questions[3] = {"What is this?", "What colors are in it?", "Is there any text?"};
    smolvlm_ctx_t *restored = NULL;
    CHECK(smolvlm_ctx_new(model, &restored) == SMOLVLM_STATUS_OK, "third context");
    char json[16384] = "[";
    int prev_prompt = 0;
    for (int t = 0; t < 3; t++) {
        if (t > 0) strcat(json, ",");
        strcat(json, t == 0 ? "{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"text\", \"text\": "
                            : "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": ");
        append_json_string(json, sizeof json, questions[t]);
        strcat(json, "}]}]");
        char *a = NULL, *b = NULL, *c = NULL;
        smolvlm_stats sa, sb;
        if (t == 2) {
            /* The state after turn 2, restored into the third context. */
            size_t size = 0, written = 0;
            CHECK(smolvlm_ctx_state_save(ctx, NULL, 0, &size) == SMOLVLM_STATUS_OK && size > 64, "state size %zu", size);
            unsigned char *state = malloc(size);
            CHECK(smolvlm_ctx_state_save(ctx, state, size - 1, &written) == SMOLVLM_STATUS_INVALID_ARG,
                  "a buffer one byte short");
            CHECK(smolvlm_ctx_state_save(ctx, state, size, &written) == SMOLVLM_STATUS_OK && written == size, "save");
            CHECK(smolvlm_ctx_state_load(restored, state, size - 1) == SMOLVLM_STATUS_INVALID_ARG &&
                      strstr(smolvlm_last_error(), "session state") != NULL,
                  "a truncated state is refused");
            CHECK(smolvlm_ctx_state_load(restored, NULL, 0) == SMOLVLM_STATUS_NULL_ARG, "load(NULL)");
            CHECK(smolvlm_ctx_state_load(restored, state, size) == SMOLVLM_STATUS_OK, "load");
            free(state);
            smolvlm_stats sc;
            smolvlm_status rc = turn(restored, json, img, 1, &c, &sc);
            CHECK(rc == SMOLVLM_STATUS_OK && sc.tiles == 0 && sc.reused_tokens >= prev_prompt,
                  "restored context: %s, %d tiles, %d reused", smolvlm_status_str(rc), sc.tiles, sc.reused_tokens);
            if (rc != SMOLVLM_STATUS_OK) c = NULL;
        }
        smolvlm_status ra = turn(ctx, json, img, 1, &a, &sa), rb = turn(fresh, json, img, 0, &b, &sb);
        CHECK(ra == SMOLVLM_STATUS_OK && rb == SMOLVLM_STATUS_OK && strcmp(a, b) == 0,
              "turn %d: cached \"%s\" vs fresh \"%s\" (%s, %s)", t + 1, a ? a : "", b ? b : "", smolvlm_status_str(ra),
              smolvlm_status_str(rb));
        if (t == 2) {
            CHECK(c && a && strcmp(a, c) == 0, "restored \"%s\" vs in memory \"%s\"", c ? c : "", a ? a : "");
            if (c) smolvlm_string_free(c);
        }
        int prompt = sa.prefill_tokens + sa.reused_tokens;
        CHECK(prompt == sb.prefill_tokens && sb.reused_tokens == 0, "turn %d: %d prompt positions, fresh %d", t + 1,
              prompt, sb.prefill_tokens);
        if (t == 0) {
            CHECK(sa.tiles > 0 && sa.reused_tokens == 0, "turn 1: %d tiles, %d reused", sa.tiles, sa.reused_tokens);
        } else {
            CHECK(sa.tiles == 0 && sa.reused_tokens >= prev_prompt,
                  "turn %d: %d tiles encoded, %d positions reused (previous prompt %d)", t + 1, sa.tiles,
                  sa.reused_tokens, prev_prompt);
        }
        prev_prompt = prompt;
        /* The reply joins the conversation: drop "]", add the assistant turn. */
        json[strlen(json) - 1] = 0;
        strcat(json, ",{\"role\": \"assistant\", \"content\": [{\"type\": \"text\", \"text\": ");
        if (a) trim(a);
        append_json_string(json, sizeof json, a ? a : "");
        strcat(json, "}]}");
        if (ra == SMOLVLM_STATUS_OK) smolvlm_string_free(a);
        if (rb == SMOLVLM_STATUS_OK) smolvlm_string_free(b);
    }
    strcat(json, "]");
    /* After a reset the whole prompt is computed and the image encoded again. */
    CHECK(smolvlm_ctx_reset(ctx) == SMOLVLM_STATUS_OK, "reset");
    CHECK(smolvlm_ctx_reset(NULL) == SMOLVLM_STATUS_NULL_ARG, "reset(NULL)");
    char *a = NULL;
    smolvlm_stats sa;
    smolvlm_status ra = turn(ctx, json, img, 1, &a, &sa);
    CHECK(ra == SMOLVLM_STATUS_OK && sa.reused_tokens == 0 && sa.tiles > 0, "after reset: %d reused, %d tiles",
          sa.reused_tokens, sa.tiles);
    if (ra == SMOLVLM_STATUS_OK) smolvlm_string_free(a);
    /* prompt_cache takes 0 or 1. */
    smolvlm_generate_params p;
    smolvlm_generate_params_default(&p);
    CHECK(p.prompt_cache == 1, "prompt cache on by default");
    p.prompt_cache = 2;
    CHECK(smolvlm_ctx_generate(ctx, "hi", NULL, NULL, 0, &p, NULL) == SMOLVLM_STATUS_INVALID_ARG, "prompt_cache = 2");

    smolvlm_free(ctx);
    smolvlm_free(fresh);
    smolvlm_free(restored);
    smolvlm_image_free(img);
    smolvlm_model_free(model);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
