#!/usr/bin/env python3
"""The machine's floors for the harness: streaming read bandwidth and the float32 GEMM peak, at
the harness's thread count. One JSON object on stdout.

    python3 scripts/bench/floors.py --threads 2 [--build-dir target/bench]

Read bandwidth: a small C program (its source is below; compiled on the fly with the system's
`cc -O3 -march=native -pthread` into --build-dir) sums a 1 GiB buffer of 64-bit integers from
THREADS threads; each thread splits its share into S streams read side by side (S = 1, 2, 4, 8,
16: one core needs several concurrent streams to reach the memory system's rate). Best pass of
five per S; the figure reported is the best S. Without a C compiler it falls back to numpy
(one `sum` per thread, numpy releases the GIL), which is lower.

GEMM peak: numpy float32 matmul 4096 x 4096 x 4096 with OPENBLAS_NUM_THREADS (and the OMP/MKL
equivalents) = THREADS, best of three after a warm-up; 2 n^3 flops per product.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MEMBW_C = r"""
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { const uint64_t *base; size_t words; int streams; uint64_t sum; } job_t;

static void *reader(void *p) {
    job_t *j = (job_t *)p;
    size_t per = j->words / (size_t)j->streams;
    uint64_t acc[16] = {0};
    /* the streams advance together, 64 bytes (one line) each per step */
    for (size_t i = 0; i + 8 <= per; i += 8)
        for (int s = 0; s < j->streams; s++) {
            const uint64_t *q = j->base + (size_t)s * per + i;
            acc[s] += q[0] + q[1] + q[2] + q[3] + q[4] + q[5] + q[6] + q[7];
        }
    uint64_t t = 0;
    for (int s = 0; s < 16; s++) t += acc[s];
    j->sum = t;
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    size_t bytes = (argc > 2 ? (size_t)atol(argv[2]) : 1024) << 20;
    int passes = argc > 3 ? atoi(argv[3]) : 5;
    size_t words = bytes / 8;
    uint64_t *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, bytes)) return 1;
    for (size_t i = 0; i < words; i++) buf[i] = i;  /* touch every page: no zero-page reads */
    static const int streams[] = {1, 2, 4, 8, 16};
    pthread_t tid[256];
    job_t jobs[256];
    if (threads < 1 || threads > 256) return 1;
    uint64_t check = 0;
    printf("{");
    for (int k = 0; k < 5; k++) {
        double best = 0;
        for (int p = 0; p < passes; p++) {
            double t0 = now();
            for (int t = 0; t < threads; t++) {
                jobs[t].base = buf + words / threads * t;
                jobs[t].words = words / threads;
                jobs[t].streams = streams[k];
                pthread_create(&tid[t], NULL, reader, &jobs[t]);
            }
            for (int t = 0; t < threads; t++) { pthread_join(tid[t], NULL); check += jobs[t].sum; }
            double gbs = bytes / (now() - t0) / 1e9;
            if (gbs > best) best = gbs;
        }
        printf("%s\"%d\": %.2f", k ? ", " : "", streams[k], best);
    }
    printf("}\n");
    fprintf(stderr, "checksum %llu\n", (unsigned long long)check);
    free(buf);
    return 0;
}
"""


def bandwidth_c(threads, build_dir):
    os.makedirs(build_dir, exist_ok=True)
    exe = os.path.join(build_dir, "membw")
    src = exe + ".c"
    if not (os.path.exists(exe) and os.path.exists(src) and open(src).read() == MEMBW_C):
        with open(src, "w") as f:
            f.write(MEMBW_C)
        subprocess.run(["cc", "-O3", "-march=native", "-pthread", "-o", exe, src], check=True,
                       capture_output=True, text=True)
    out = subprocess.run([exe, str(threads), "1024", "5"], check=True, capture_output=True, text=True)
    per_streams = json.loads(out.stdout)
    best = max(per_streams, key=per_streams.get)
    return {"read_gb_s": per_streams[best], "streams_per_thread": int(best), "by_streams": per_streams,
            "method": "C, 1 GiB, uint64 sums"}


def bandwidth_numpy(threads):
    import threading

    import numpy as np
    buf = np.arange((1 << 30) // 8, dtype=np.uint64)
    parts = np.array_split(buf, threads)
    best = 0.0
    for _ in range(5):
        ts = [threading.Thread(target=p.sum) for p in parts]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        best = max(best, buf.nbytes / (time.perf_counter() - t0) / 1e9)
    return {"read_gb_s": best, "method": "numpy sum per thread, 1 GiB"}


def sgemm(threads):
    code = r"""
import json, time
import numpy as np
n = 4096
a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
a @ b
best = 0.0
for _ in range(3):
    t = time.perf_counter(); a @ b; best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
blas = "?"
try:
    cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    blas = f"{cfg.get('name', '?')} {cfg.get('version', '')}".strip()
except Exception:
    pass
print(json.dumps({"sgemm_gflops": best, "blas": "numpy " + np.__version__ + ", " + blas}))
"""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build-dir", default=os.path.join(tempfile.gettempdir(), "smolvlm-bench"))
    a = ap.parse_args()
    res = {"threads": a.threads}
    try:
        res.update(bandwidth_c(a.threads, a.build_dir))
    except (OSError, subprocess.CalledProcessError) as e:
        res.update(bandwidth_numpy(a.threads))
        res["note"] = f"no C bandwidth test ({e.__class__.__name__})"
    res.update(sgemm(a.threads))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
