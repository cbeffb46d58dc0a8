/*
 * Tests of the extended C API against a fixture model.
 *   test_api <model_dir> <image.ppm> <corrupt_model_dir>
 *            <image_chat.json> <its CLI output> <text_chat.json> <its CLI output>
 * The CLI outputs are `smolvlm --silent -d <model_dir> [-i <image.ppm>] --messages <chat.json>
 * --max-tokens 12` (scripts/c-tests.sh makes them). Prints "N passed, M failed" and exits
 * non-zero on any failure.
 */
#include "smolvlm.h"
#include "check.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *MODEL_DIR;
static smolvlm_model_t *MODEL;

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Binary PPM (P6, maxval 255, no comments): returns the RGB pixels. */
static unsigned char *read_ppm(const char *path, unsigned *w, unsigned *h) {
    size_t len;
    unsigned char *buf = read_file(path, &len);
    if (!buf) return NULL;
    int off = 0, maxv = 0;
    if (sscanf((char *)buf, "P6 %u %u %d%n", w, h, &maxv, &off) != 3 || maxv != 255) { free(buf); return NULL; }
    off += 1;
    unsigned char *px = malloc((size_t)*w * *h * 3);
    memcpy(px, buf + off, (size_t)*w * *h * 3);
    free(buf);
    return px;
}

/* A text file as a NUL-terminated string without its one trailing newline (the CLI adds it). */
static char *read_text(const char *path) {
    size_t len = 0;
    unsigned char *buf = read_file(path, &len);
    if (!buf) return NULL;
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, buf, len);
        if (len > 0 && s[len - 1] == '\n') len--;
        s[len] = 0;
    }
    free(buf);
    return s;
}

static smolvlm_status get_stats(smolvlm_ctx_t *ctx, smolvlm_stats *s) {
    memset(s, 0, sizeof *s);
    s->size = sizeof *s;
    return smolvlm_ctx_get_stats(ctx, s);
}

/* The checks below read each call's stats as a fresh run's (tiles encoded, prompt computed), so
 * their helpers turn the prompt cache off; tests/c/test_chat.c tests it. */
static char *generate(smolvlm_ctx_t *ctx, const char *prompt, const smolvlm_image_t *img, int max_tokens) {
    smolvlm_generate_params p;
    smolvlm_generate_params_default(&p);
    p.max_tokens = max_tokens;
    p.prompt_cache = 0;
    char *text = NULL;
    const smolvlm_image_t *imgs[1] = {img};
    smolvlm_status st = smolvlm_ctx_generate(ctx, prompt, NULL, img ? imgs : NULL, img ? 1 : 0, &p, &text);
    CHECK(st == SMOLVLM_STATUS_OK, "generate: %s", smolvlm_status_str(st));
    return text;
}

/*
 * The statistics of the call that just returned `text` for `max_tokens` (a greedy run of `prompt`
 * about `img`, or text-only when img is NULL). Checks what the library fills: its own time
 * counters are positive and fit inside total_ms; decode_tokens is max_tokens, or fewer only when
 * generation stopped at EOS, which a rerun with more tokens allowed shows (same text, same count).
 * Reruns, so the context's stats change afterwards.
 */
static void check_stats(const char *label, smolvlm_ctx_t *ctx, const char *prompt, const smolvlm_image_t *img,
                        int max_tokens, const char *text) {
    smolvlm_stats st;
    smolvlm_status rc = get_stats(ctx, &st);
    CHECK(rc == SMOLVLM_STATUS_OK, "%s: get_stats: %s", label, smolvlm_status_str(rc));
    CHECK(st.size == sizeof st, "%s: size %zu", label, st.size);
    CHECK(st.load_ms > 0, "%s: load_ms %f", label, st.load_ms);
    if (img) {
        CHECK(st.tiles > 0 && st.encode_ms > 0, "%s: tiles %d, encode_ms %f", label, st.tiles, st.encode_ms);
        /* Every tile puts at least one <image> token into the prompt. */
        CHECK(st.prefill_tokens > st.tiles, "%s: prefill_tokens %d, tiles %d", label, st.prefill_tokens, st.tiles);
    } else {
        CHECK(st.tiles == 0, "%s: tiles %d for a text-only prompt", label, st.tiles);
    }
    CHECK(st.prefill_tokens > 0 && st.prefill_ms > 0, "%s: prefill %d tokens in %f ms", label, st.prefill_tokens,
          st.prefill_ms);
    CHECK(st.decode_tokens >= 0 && st.decode_tokens <= max_tokens, "%s: decode_tokens %d of %d", label,
          st.decode_tokens, max_tokens);
    if (st.decode_tokens > 0) {
        double tps = st.decode_tokens * 1e3 / st.decode_ms;
        CHECK(st.decode_ms > 0 && st.decode_tokens_per_s > 0 && fabs(st.decode_tokens_per_s - tps) <= 1e-9 * tps,
              "%s: %d tokens in %f ms but %f tokens/s", label, st.decode_tokens, st.decode_ms, st.decode_tokens_per_s);
    }
    /* Encoding, prefill and decoding are disjoint intervals inside the call (1 ns of rounding slack). */
    CHECK(st.total_ms + 1e-6 >= st.encode_ms + st.prefill_ms + st.decode_ms,
          "%s: total_ms %f < encode %f + prefill %f + decode %f", label, st.total_ms, st.encode_ms, st.prefill_ms,
          st.decode_ms);
    printf("%s stats: %d tiles, encode %.2f ms, prefill %d tokens %.2f ms, decode %d/%d tokens %.2f ms, total %.2f ms\n",
           label, st.tiles, st.encode_ms, st.prefill_tokens, st.prefill_ms, st.decode_tokens, max_tokens, st.decode_ms,
           st.total_ms);
    if (st.decode_tokens < max_tokens) {
        /* Fewer tokens than asked: only EOS may have stopped it, so more room changes nothing. */
        char *again = generate(ctx, prompt, img, max_tokens + 8);
        smolvlm_stats st2;
        CHECK(get_stats(ctx, &st2) == SMOLVLM_STATUS_OK && st2.decode_tokens == st.decode_tokens && again && text &&
                  strcmp(again, text) == 0,
              "%s: stopped after %d of %d tokens, but with %d allowed it gives %d tokens", label, st.decode_tokens,
              max_tokens, max_tokens + 8, st2.decode_tokens);
        smolvlm_string_free(again);
    }
}

/* smolvlm_ctx_generate_chat with default params but max_tokens; *text is NULL unless OK. */
static smolvlm_status chat(smolvlm_ctx_t *ctx, const char *json, const smolvlm_image_t *img, size_t n_images,
                           int max_tokens, char **text) {
    smolvlm_generate_params p;
    smolvlm_generate_params_default(&p);
    p.max_tokens = max_tokens;
    p.prompt_cache = 0;
    const smolvlm_image_t *imgs[2] = {img, img}; /* n_images <= 2 */
    *text = (char *)1; /* the library must set it to NULL when the call fails */
    return smolvlm_ctx_generate_chat(ctx, json, n_images ? imgs : NULL, n_images, &p, text);
}

typedef struct { int pieces; int stop_after; int cancel_after; char buf[4096]; size_t len; } stream_state;

static bool on_piece(const char *piece, size_t len, int32_t token, void *ud) {
    stream_state *s = ud;
    (void)token;
    s->pieces++;
    if (s->len + len < sizeof s->buf) { memcpy(s->buf + s->len, piece, len); s->len += len; s->buf[s->len] = 0; }
    return !(s->stop_after && s->pieces >= s->stop_after);
}

static bool should_abort(void *ud) {
    stream_state *s = ud;
    return s->cancel_after && s->pieces >= s->cancel_after;
}

static bool cancel_load(float fraction, void *ud) {
    (void)fraction;
    ++*(int *)ud;
    return false;
}

static int log_lines;
static void on_log(smolvlm_log_level level, const char *msg, void *ud) {
    (void)level; (void)ud;
    if (msg && *msg) log_lines++;
}

typedef struct { const char *prompt; char *text; } thread_job;
static void *thread_main(void *arg) {
    thread_job *job = arg;
    smolvlm_ctx_t *ctx = NULL;
    if (smolvlm_ctx_new(MODEL, &ctx) == SMOLVLM_STATUS_OK) {
        job->text = generate(ctx, job->prompt, NULL, 12);
        smolvlm_free(ctx);
    }
    return NULL;
}

static smolvlm_ctx_t *BUSY_CTX;
static smolvlm_status busy_status = SMOLVLM_STATUS_OK;
static bool reenter(const char *piece, size_t len, int32_t token, void *ud) {
    (void)piece; (void)len; (void)token; (void)ud;
    char *t = NULL;
    busy_status = smolvlm_ctx_generate(BUSY_CTX, "again", NULL, NULL, 0, NULL, &t);
    return false;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s <model_dir> <image.ppm> <corrupt_model_dir> <image_chat.json> <its CLI output> "
                        "<text_chat.json> <its CLI output>\n", argv[0]);
        return 2;
    }
    MODEL_DIR = argv[1];

    /* Version, status strings, system info. */
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", SMOLVLM_VERSION_MAJOR, SMOLVLM_VERSION_MINOR, SMOLVLM_VERSION_PATCH);
    CHECK(strcmp(v, smolvlm_version()) == 0, "header %s vs library %s", v, smolvlm_version());
    CHECK(strcmp(SMOLVLM_VERSION_STRING, smolvlm_version()) == 0, "version string");
    CHECK(strlen(smolvlm_status_str(SMOLVLM_STATUS_BUSY)) > 0 && strlen(smolvlm_status_str(12345)) > 0, "status_str");
    CHECK(strstr(smolvlm_system_info(), "simd") != NULL, "system info: %s", smolvlm_system_info());

    /* Error paths: NULL arguments, missing directory, corrupt safetensors. */
    smolvlm_model_t *m = NULL;
    CHECK(smolvlm_load(NULL) == NULL && strlen(smolvlm_last_error()) > 0, "load(NULL)");
    CHECK(smolvlm_model_load(NULL, NULL, &m) == SMOLVLM_STATUS_NULL_ARG && m == NULL, "model_load(NULL)");
    CHECK(smolvlm_model_load(MODEL_DIR, NULL, NULL) == SMOLVLM_STATUS_NULL_ARG, "model_load(out NULL)");
    CHECK(smolvlm_model_load("/nonexistent/model", NULL, &m) == SMOLVLM_STATUS_IO, "missing dir");
    CHECK(strstr(smolvlm_last_error(), "/nonexistent/model") != NULL, "message names the dir: %s", smolvlm_last_error());
    CHECK(smolvlm_load("/nonexistent/model") == NULL, "drop-in load of a missing dir");
    CHECK(smolvlm_model_load(argv[3], NULL, &m) == SMOLVLM_STATUS_BAD_MODEL && m == NULL, "corrupt safetensors");
    CHECK(strstr(smolvlm_last_error(), "safetensors") != NULL, "names safetensors: %s", smolvlm_last_error());
    CHECK(smolvlm_generate(NULL, NULL, "hi", NULL, 4) == NULL, "generate(NULL ctx)");
    CHECK(smolvlm_ctx_generate(NULL, "hi", NULL, NULL, 0, NULL, NULL) == SMOLVLM_STATUS_NULL_ARG, "ctx_generate(NULL)");
    smolvlm_free(NULL);
    smolvlm_model_free(NULL);
    smolvlm_image_free(NULL);
    smolvlm_string_free(NULL);
    smolvlm_set_token_callback(NULL, NULL, NULL);
    smolvlm_image_t *img = NULL;
    unsigned char px[12] = {0};
    CHECK(smolvlm_image_from_pixels(NULL, 2, 2, 6, SMOLVLM_PIXEL_FORMAT_RGB8, &img) == SMOLVLM_STATUS_NULL_ARG, "pixels NULL");
    CHECK(smolvlm_image_from_pixels(px, 2, 2, 5, SMOLVLM_PIXEL_FORMAT_RGB8, &img) == SMOLVLM_STATUS_INVALID_ARG, "stride < w*3");
    CHECK(smolvlm_image_from_pixels(px, 0, 2, 6, SMOLVLM_PIXEL_FORMAT_RGB8, &img) == SMOLVLM_STATUS_BAD_IMAGE, "zero width");
    CHECK(smolvlm_image_from_pixels(px, 2, 2, 6, 7, &img) == SMOLVLM_STATUS_INVALID_ARG, "bad format");
    CHECK(smolvlm_image_from_bytes((const uint8_t *)"nope", 4, &img) == SMOLVLM_STATUS_BAD_IMAGE && img == NULL, "bad bytes");
    CHECK(smolvlm_image_from_file("/nonexistent.png", &img) == SMOLVLM_STATUS_IO, "missing image file");

    /* Load with a progress callback that cancels. */
    int calls = 0;
    smolvlm_model_params mp;
    smolvlm_model_params_default(&mp);
    mp.progress = cancel_load;
    mp.user_data = &calls;
    CHECK(smolvlm_model_load(MODEL_DIR, &mp, &m) == SMOLVLM_STATUS_CANCELLED && m == NULL && calls == 1,
          "cancel during load (calls=%d)", calls);

    /* Quantization at load: unknown values refused; a struct from an older header (ending at
       user_data) loads as stored; Q8_0 loads and generates. */
    smolvlm_model_params_default(&mp);
    CHECK(mp.quantize == SMOLVLM_QUANTIZE_NONE, "default quantize");
    mp.quantize = 9;
    CHECK(smolvlm_model_load(MODEL_DIR, &mp, &m) == SMOLVLM_STATUS_INVALID_ARG && m == NULL, "unknown quantize");
    CHECK(strstr(smolvlm_last_error(), "quantize") != NULL, "quantize error names the field: %s", smolvlm_last_error());
    mp.size = offsetof(smolvlm_model_params, quantize);
    CHECK(smolvlm_model_load(MODEL_DIR, &mp, &m) == SMOLVLM_STATUS_OK && m, "older params struct ignores quantize");
    smolvlm_model_free(m);
    m = NULL;
    smolvlm_model_params_default(&mp);
    mp.quantize = SMOLVLM_QUANTIZE_Q8_0;
    CHECK(smolvlm_model_load(MODEL_DIR, &mp, &m) == SMOLVLM_STATUS_OK && m, "load with Q8_0");
    if (m) {
        smolvlm_ctx_t *qc = NULL;
        char *qt = NULL;
        CHECK(smolvlm_ctx_new(m, &qc) == SMOLVLM_STATUS_OK, "ctx on a Q8_0 model");
        CHECK(smolvlm_ctx_generate(qc, "hi", NULL, NULL, 0, NULL, &qt) == SMOLVLM_STATUS_OK && qt, "Q8_0 generate");
        smolvlm_string_free(qt);
        smolvlm_free(qc);
        smolvlm_model_free(m);
        m = NULL;
    }

    /* Load for real, with a log callback. */
    smolvlm_log_set(on_log, NULL);
    CHECK(smolvlm_model_load(MODEL_DIR, NULL, &MODEL) == SMOLVLM_STATUS_OK, "model_load");
    smolvlm_log_set(NULL, NULL);
    CHECK(log_lines > 0, "log callback got %d lines", log_lines);
    if (!MODEL) { printf("%d passed, %d failed\n", passed, failed + 1); return 1; }
    smolvlm_ctx_t *ctx = NULL;
    CHECK(smolvlm_ctx_new(MODEL, &ctx) == SMOLVLM_STATUS_OK, "ctx_new");
    smolvlm_generate_params bad;
    smolvlm_generate_params_default(&bad);
    bad.max_tokens = -5;
    CHECK(smolvlm_ctx_generate(ctx, "hi", NULL, NULL, 0, &bad, NULL) == SMOLVLM_STATUS_INVALID_ARG, "negative max_tokens");
    bad.max_tokens = 2000000000;
    CHECK(smolvlm_ctx_generate(ctx, "hi", NULL, NULL, 0, &bad, NULL) == SMOLVLM_STATUS_INVALID_ARG, "absurd max_tokens");
    bad.max_tokens = 4;
    bad.size = 0;
    CHECK(smolvlm_ctx_generate(ctx, "hi", NULL, NULL, 0, &bad, NULL) == SMOLVLM_STATUS_INVALID_ARG, "size 0");
    CHECK(smolvlm_ctx_generate(ctx, "\xff\xfe", NULL, NULL, 0, NULL, NULL) == SMOLVLM_STATUS_INVALID_ARG, "invalid UTF-8");
    CHECK(smolvlm_ctx_generate(ctx, "   ", NULL, NULL, 0, NULL, NULL) == SMOLVLM_STATUS_INVALID_ARG, "empty prompt");
    bad.size = sizeof bad;
    bad.precision = 7;
    CHECK(smolvlm_ctx_generate(ctx, "hi", NULL, NULL, 0, &bad, NULL) == SMOLVLM_STATUS_INVALID_ARG, "unknown precision");
    /* Each explicit mode runs as asked and says so in the stats. */
    for (int mode = SMOLVLM_PRECISION_F32; mode <= SMOLVLM_PRECISION_BF16; mode++) {
        smolvlm_generate_params pp;
        smolvlm_generate_params_default(&pp);
        CHECK(pp.precision == SMOLVLM_PRECISION_AUTO, "default precision");
        pp.precision = mode;
        pp.max_tokens = 2;
        char *t = NULL;
        CHECK(smolvlm_ctx_generate(ctx, "hi", NULL, NULL, 0, &pp, &t) == SMOLVLM_STATUS_OK && t, "precision %d", mode);
        smolvlm_string_free(t);
        smolvlm_stats ps;
        CHECK(get_stats(ctx, &ps) == SMOLVLM_STATUS_OK && ps.precision == mode, "stats precision %d vs %d",
              ps.precision, mode);
    }

    /* Text-only. */
    char *serial = generate(ctx, "Tell me a story.", NULL, 12);
    CHECK(serial && strlen(serial) > 0, "text-only output");
    smolvlm_stats stats;
    check_stats("text-only", ctx, "Tell me a story.", NULL, 12, serial);
    /* The size field: 0 is refused; a smaller (older) struct gets only its own bytes written. */
    memset(&stats, 0, sizeof stats);
    CHECK(smolvlm_ctx_get_stats(ctx, &stats) == SMOLVLM_STATUS_INVALID_ARG, "stats with size 0");
    CHECK(smolvlm_ctx_get_stats(ctx, NULL) == SMOLVLM_STATUS_NULL_ARG, "stats into NULL");
    memset(&stats, 0xAB, sizeof stats);
    stats.size = offsetof(smolvlm_stats, encode_ms);
    CHECK(smolvlm_ctx_get_stats(ctx, &stats) == SMOLVLM_STATUS_OK && stats.load_ms > 0 && stats.tiles == 0,
          "short stats struct: load_ms %f, tiles %d", stats.load_ms, stats.tiles);
    {
        const unsigned char *tail = (const unsigned char *)&stats + offsetof(smolvlm_stats, encode_ms);
        size_t n = sizeof stats - offsetof(smolvlm_stats, encode_ms), untouched = 0;
        for (size_t i = 0; i < n; i++) untouched += tail[i] == 0xAB;
        CHECK(untouched == n, "short stats struct: %zu of %zu bytes past its size were written", n - untouched, n);
    }

    /* Same image from a file, from raw pixels, from encoded bytes. */
    smolvlm_image_t *from_file = NULL, *from_px = NULL, *from_bytes = NULL;
    unsigned w = 0, h = 0;
    unsigned char *rgb = read_ppm(argv[2], &w, &h);
    size_t blen = 0;
    unsigned char *bytes = read_file(argv[2], &blen);
    CHECK(rgb && bytes, "read %s", argv[2]);
    CHECK(smolvlm_image_from_file(argv[2], &from_file) == SMOLVLM_STATUS_OK, "image_from_file");
    CHECK(smolvlm_image_from_pixels(rgb, w, h, (size_t)w * 3, SMOLVLM_PIXEL_FORMAT_RGB8, &from_px) == SMOLVLM_STATUS_OK, "from_pixels");
    CHECK(smolvlm_image_from_bytes(bytes, blen, &from_bytes) == SMOLVLM_STATUS_OK, "from_bytes");
    /* The pixel limit is read from the header: below the image's count the file is refused. */
    {
        smolvlm_image_t *limited = NULL;
        CHECK(smolvlm_set_max_image_pixels((uint64_t)w * h - 1) == SMOLVLM_DEFAULT_MAX_IMAGE_PIXELS, "default limit");
        CHECK(smolvlm_image_from_file(argv[2], &limited) == SMOLVLM_STATUS_BAD_IMAGE && !limited &&
                  strstr(smolvlm_last_error(), "exceeds the limit"), "limit: %s", smolvlm_last_error());
        CHECK(smolvlm_image_from_bytes(bytes, blen, &limited) == SMOLVLM_STATUS_BAD_IMAGE, "limit (bytes)");
        CHECK(smolvlm_set_max_image_pixels(0) == (uint64_t)w * h - 1, "previous limit");
        CHECK(smolvlm_image_from_file(argv[2], &limited) == SMOLVLM_STATUS_OK, "default limit restored");
        smolvlm_image_free(limited);
    }
    char *t_file = generate(ctx, "What is this?", from_file, 10);
    char *t_px = generate(ctx, "What is this?", from_px, 10);
    char *t_bytes = generate(ctx, "What is this?", from_bytes, 10);
    CHECK(t_file && t_px && t_bytes && strcmp(t_file, t_px) == 0 && strcmp(t_file, t_bytes) == 0, "same image, same text");
    check_stats("image", ctx, "What is this?", from_bytes, 10, t_bytes);
    /* JSON chats. One user turn (an image, then text) gives what the simple prompt gives. */
    char *c = NULL;
    smolvlm_status cst = chat(ctx, "[{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, "
                                   "{\"type\": \"text\", \"text\": \"What is this?\"}]}]",
                              from_file, 1, 10, &c);
    CHECK(cst == SMOLVLM_STATUS_OK && c && t_file && strcmp(c, t_file) == 0,
          "one-turn image chat: %s \"%s\", simple prompt \"%s\"", smolvlm_status_str(cst), cst == SMOLVLM_STATUS_OK && c ? c : "",
          t_file ? t_file : "");
    smolvlm_stats one_turn;
    CHECK(get_stats(ctx, &one_turn) == SMOLVLM_STATUS_OK && one_turn.tiles > 0, "one-turn chat stats: %d tiles",
          one_turn.tiles);
    if (cst == SMOLVLM_STATUS_OK) smolvlm_string_free(c);
    /* Text-only, with a system turn (content as a string and as a list of parts). */
    char *simple_sys = NULL;
    {
        smolvlm_generate_params sp;
        smolvlm_generate_params_default(&sp);
        sp.max_tokens = 12;
        CHECK(smolvlm_ctx_generate(ctx, "Tell me a story.", "Be brief.", NULL, 0, &sp, &simple_sys) == SMOLVLM_STATUS_OK,
              "simple prompt with a system prompt");
    }
    cst = chat(ctx, "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": "
                    "[{\"type\": \"text\", \"text\": \"Tell me a story.\"}]}]",
               NULL, 0, 12, &c);
    CHECK(cst == SMOLVLM_STATUS_OK && c && simple_sys && strcmp(c, simple_sys) == 0,
          "text-only chat: %s \"%s\", simple prompt \"%s\"", smolvlm_status_str(cst), cst == SMOLVLM_STATUS_OK && c ? c : "",
          simple_sys ? simple_sys : "");
    if (cst == SMOLVLM_STATUS_OK) smolvlm_string_free(c);
    smolvlm_string_free(simple_sys);
    /* Multi-turn chats give what the CLI gives for the same --messages file (12 tokens). */
    for (int k = 0; k < 2; k++) {
        const char *json_path = argv[4 + 2 * k], *want_path = argv[5 + 2 * k];
        char *json = read_text(json_path), *want = read_text(want_path);
        CHECK(json && want, "read %s and %s", json_path, want_path);
        cst = chat(ctx, json ? json : "", from_file, k == 0 ? 1 : 0, 12, &c);
        CHECK(cst == SMOLVLM_STATUS_OK && c && want && strcmp(c, want) == 0, "%s: %s \"%s\", CLI \"%s\"", json_path,
              smolvlm_status_str(cst), cst == SMOLVLM_STATUS_OK && c ? c : "", want ? want : "");
        if (k == 0) {
            /* The earlier turns are in the prompt: more prefill tokens than the one-turn chat's. */
            CHECK(get_stats(ctx, &stats) == SMOLVLM_STATUS_OK && stats.tiles == one_turn.tiles &&
                      stats.prefill_tokens > one_turn.prefill_tokens,
                  "multi-turn image chat: %d tiles, %d prompt tokens (one turn: %d, %d)", stats.tiles,
                  stats.prefill_tokens, one_turn.tiles, one_turn.prefill_tokens);
        }
        if (cst == SMOLVLM_STATUS_OK) smolvlm_string_free(c);
        free(json);
        free(want);
    }
    /* Malformed JSON, a non-array, and image counts that do not match the image entries. */
    cst = chat(ctx, "[{\"role\": \"user\", \"content\": ", NULL, 0, 4, &c);
    CHECK(cst == SMOLVLM_STATUS_INVALID_ARG && c == NULL && strstr(smolvlm_last_error(), "JSON") != NULL,
          "malformed JSON: %s", smolvlm_status_str(cst));
    cst = chat(ctx, "{\"role\": \"user\", \"content\": \"hi\"}", NULL, 0, 4, &c);
    CHECK(cst == SMOLVLM_STATUS_INVALID_ARG && c == NULL, "a JSON object, not an array: %s", smolvlm_status_str(cst));
    const char *one_image = "[{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, "
                            "{\"type\": \"text\", \"text\": \"What is this?\"}]}]";
    for (size_t n = 0; n <= 2; n += 2) {
        cst = chat(ctx, one_image, from_file, n, 4, &c);
        CHECK(cst == SMOLVLM_STATUS_INVALID_ARG && c == NULL && strstr(smolvlm_last_error(), "image") != NULL,
              "1 image entry, %zu images given: %s", n, smolvlm_status_str(cst));
    }

    /* RGBA pixels with opaque alpha give the same answer as RGB. */
    unsigned char *rgba = malloc((size_t)w * h * 4);
    for (size_t i = 0; i < (size_t)w * h; i++) {
        memcpy(rgba + 4 * i, rgb + 3 * i, 3);
        rgba[4 * i + 3] = 255;
    }
    smolvlm_image_t *from_rgba = NULL;
    CHECK(smolvlm_image_from_pixels(rgba, w, h, (size_t)w * 4, SMOLVLM_PIXEL_FORMAT_RGBA8, &from_rgba) == SMOLVLM_STATUS_OK, "rgba");
    char *t_rgba = generate(ctx, "What is this?", from_rgba, 10);
    CHECK(t_rgba && t_file && strcmp(t_rgba, t_file) == 0, "RGBA with opaque alpha = RGB");

    /* Streaming: pieces concatenate to the text; stop from the callback; cancel after 3 pieces. */
    stream_state s = {0};
    smolvlm_generate_params p;
    smolvlm_generate_params_default(&p);
    p.max_tokens = 12;
    p.on_piece = on_piece;
    p.user_data = &s;
    char *t = NULL;
    CHECK(smolvlm_ctx_generate(ctx, "Tell me a story.", NULL, NULL, 0, &p, &t) == SMOLVLM_STATUS_OK, "streamed");
    CHECK(t && strcmp(t, s.buf) == 0 && serial && strcmp(t, serial) == 0, "pieces = text = serial text");
    /* Each of these 12 tokens completes a UTF-8 piece, so below, N pieces are N tokens. */
    CHECK(get_stats(ctx, &stats) == SMOLVLM_STATUS_OK && stats.decode_tokens == 12 && s.pieces == 12,
          "streamed: %d pieces, %d tokens", s.pieces, stats.decode_tokens);
    smolvlm_string_free(t);
    memset(&s, 0, sizeof s);
    s.stop_after = 2;
    CHECK(smolvlm_ctx_generate(ctx, "Tell me a story.", NULL, NULL, 0, &p, &t) == SMOLVLM_STATUS_OK && s.pieces == 2,
          "stop from callback (pieces=%d)", s.pieces);
    CHECK(t && strcmp(t, s.buf) == 0, "stopped text = pieces");
    /* Fewer tokens than max_tokens, for a reason: the callback stopped it. */
    smolvlm_stats stopped;
    CHECK(get_stats(ctx, &stopped) == SMOLVLM_STATUS_OK && stopped.decode_tokens == 2,
          "stopped after 2 pieces: decode_tokens %d", stopped.decode_tokens);
    smolvlm_string_free(t);
    memset(&s, 0, sizeof s);
    s.cancel_after = 3;
    p.should_abort = should_abort;
    t = (char *)1;
    CHECK(smolvlm_ctx_generate(ctx, "Tell me a story.", NULL, NULL, 0, &p, &t) == SMOLVLM_STATUS_CANCELLED && s.pieces == 3 && t == NULL,
          "cancel after 3 (pieces=%d)", s.pieces);
    /* A cancelled call leaves the stats of the last successful one. */
    CHECK(get_stats(ctx, &stats) == SMOLVLM_STATUS_OK && stats.decode_tokens == stopped.decode_tokens &&
              stats.total_ms == stopped.total_ms,
          "stats after cancel: %d tokens, total %f ms (last success: %d, %f)", stats.decode_tokens, stats.total_ms,
          stopped.decode_tokens, stopped.total_ms);

    /* A context entered again while busy says BUSY. */
    BUSY_CTX = ctx;
    smolvlm_generate_params_default(&p);
    p.max_tokens = 3;
    p.on_piece = reenter;
    CHECK(smolvlm_ctx_generate(ctx, "Tell me a story.", NULL, NULL, 0, &p, NULL) == SMOLVLM_STATUS_OK, "outer call");
    CHECK(busy_status == SMOLVLM_STATUS_BUSY, "re-entered context: %s", smolvlm_status_str(busy_status));

    /* One model, two contexts, two threads: same tokens as serial. */
    pthread_t th[2];
    thread_job jobs[2] = {{"Tell me a story.", NULL}, {"Tell me a story.", NULL}};
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, thread_main, &jobs[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++)
        CHECK(jobs[i].text && serial && strcmp(jobs[i].text, serial) == 0, "thread %d text equals serial", i);

    /* The drop-in API on the same model directory gives the same answer. */
    smolvlm_ctx_t *legacy = smolvlm_load(MODEL_DIR);
    CHECK(legacy != NULL, "drop-in load");
    char *lt = smolvlm_generate(legacy, NULL, "Tell me a story.", NULL, 12);
    CHECK(lt && serial && strcmp(lt, serial) == 0, "drop-in text equals extended");
    CHECK(smolvlm_generate(legacy, NULL, "hi", NULL, -1) == NULL, "drop-in negative max_tokens");
    free(lt);
    smolvlm_free(legacy);

    for (int i = 0; i < 2; i++) smolvlm_string_free(jobs[i].text);
    smolvlm_string_free(serial);
    smolvlm_string_free(t_file);
    smolvlm_string_free(t_px);
    smolvlm_string_free(t_bytes);
    smolvlm_string_free(t_rgba);
    smolvlm_image_free(from_file);
    smolvlm_image_free(from_px);
    smolvlm_image_free(from_bytes);
    smolvlm_image_free(from_rgba);
    free(rgb);
    free(rgba);
    free(bytes);
    smolvlm_free(ctx);
    smolvlm_model_free(MODEL);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
