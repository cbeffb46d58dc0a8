/*
 * smol-vision/common_kernels.h — the original smol-vision engine's thread and verbosity controls,
 * for programs written against it (see smol-vision/smolvlm.h). Its kernels are not part of
 * this library; only these three names are.
 */
#ifndef SMOLVLM_SMOL_VISION_COMMON_KERNELS_H
#define SMOLVLM_SMOL_VISION_COMMON_KERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Threads smolvlm_generate uses from now on, clamped to 1..1024 (default: all CPUs). The
 * extended API takes its count from smolvlm_generate_params.n_threads instead. */
void qwen_set_threads(int n);

/* CPUs this process may run on (affinity mask and CPU quota counted), at least 1. */
int qwen_get_num_cpus(void);

/* See smol-vision/smolvlm.h. */
extern int qwen_verbose;

#ifdef __cplusplus
}
#endif

#endif /* SMOLVLM_SMOL_VISION_COMMON_KERNELS_H */
