/*
 * smol-vision/smolvlm.h — source compatibility with the original smol-vision engine's header.
 *
 * Build a program written against the original engine unchanged with
 *
 *     cc -Iinclude/smol-vision -Iinclude main.c -Ltarget/release -lsmolvlm
 *
 * (after an install: -I"$(pkg-config --variable=includedir smolvlm)/smol-vision" followed by
 * $(pkg-config --cflags --libs smolvlm)). This header adds to ../smolvlm.h only what the original
 * gave such programs and smolvlm.h does not: the context's public timing fields and the
 * verbosity global. New code should include <smolvlm.h> and read smolvlm_ctx_get_stats().
 */
#ifndef SMOLVLM_SMOL_VISION_SMOLVLM_H
#define SMOLVLM_SMOL_VISION_SMOLVLM_H

#include "../smolvlm.h"

/*
 * The original's public fields, filled by every generate call on the context (the drop-in
 * smolvlm_generate and the extended API's). Only these leading fields are declared; the rest of
 * the context is private: use it only through pointers the library returns (never sizeof,
 * allocate or copy it).
 */
struct smolvlm_ctx {
    double perf_total_ms;  /* the whole call: image decoding and tokenization included */
    int perf_tokens;       /* tokens generated */
    double perf_encode_ms; /* vision encoder and connector */
    double perf_decode_ms; /* everything after the encoder: prompt prefill and decoding */
};

#ifdef __cplusplus
extern "C" {
#endif

/* 0 silent (the default), 1 progress, 2 debug: while no smolvlm_log_set callback is installed,
 * the drop-in functions print the library's messages up to this level on stderr. */
extern int qwen_verbose;

#ifdef __cplusplus
}
#endif

#endif /* SMOLVLM_SMOL_VISION_SMOLVLM_H */
