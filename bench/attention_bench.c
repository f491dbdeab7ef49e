/* Attention alone: dt_attention_forward and dt_attention_backward over the
 * layers of a shape, as one training step runs them (each layer its own
 * q|k|v activations, so they come from memory as in a step), fp32 or bf16
 * products, on this process's threads.
 *
 *   build/dt_attention_bench [T] [H] [HD] [LAYERS] [REPS] [bf16]
 *
 * Defaults: GPT-2 small at seq 512 (T 512, 12 heads of 64, 12 layers),
 * 5 repetitions; prints each repetition's forward and backward time in
 * milliseconds for all layers, then the best of each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attention.h"
#include "error.h"
#include "gemm_bf16.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *filled(size_t n, unsigned seed) {
  float *v = malloc(sizeof(float) * n);
  if (!v) {
    fprintf(stderr, "dt_attention_bench: out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < n; i++) v[i] = (float)((i * 2654435761u + seed) % 1000u) / 1000.0f - 0.5f;
  return v;
}

int main(int argc, char **argv) {
  const int T = argc > 1 ? atoi(argv[1]) : 512, H = argc > 2 ? atoi(argv[2]) : 12;
  const int hd = argc > 3 ? atoi(argv[3]) : 64, L = argc > 4 ? atoi(argv[4]) : 12;
  const int reps = argc > 5 ? atoi(argv[5]) : 5, bf16 = argc > 6 && !strcmp(argv[6], "bf16");
  if (T < 1 || H < 1 || hd < 1 || L < 1 || reps < 1) {
    fprintf(stderr, "usage: dt_attention_bench [T] [H] [HD] [LAYERS] [REPS] [bf16]\n");
    return 2;
  }
  dt_attn_dims d = {0};
  d.B = 1, d.T = T, d.H = H, d.KV = H, d.hd = hd, d.PH = H, d.bf16 = bf16;
  const size_t ld = 3 * (size_t)H * hd, qd = (size_t)H * hd;
  float **qkv = malloc(sizeof(float *) * L), **att = malloc(sizeof(float *) * L);
  float **lse = malloc(sizeof(float *) * L);
  for (int l = 0; l < L; l++) {
    qkv[l] = filled((size_t)T * ld, (unsigned)l);
    att[l] = filled((size_t)T * qd, 0);
    lse[l] = filled((size_t)H * T, 0);
  }
  float *datt = filled((size_t)T * qd, 7), *dqkv = filled((size_t)T * ld, 0);
  float *scratch = filled((size_t)dt_attention_scratch(&d), 0);
  double best_f = 1e30, best_b = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (int l = 0; l < L; l++)
      if (dt_attention_forward(att[l], lse[l], qkv[l], NULL, NULL, &d, scratch) != DT_OK) {
        fprintf(stderr, "dt_attention_bench: %s\n", dt_error_message());
        return 1;
      }
    const double tf = now() - t0;
    t0 = now();
    for (int l = L - 1; l >= 0; l--)
      if (dt_attention_backward(dqkv, NULL, NULL, datt, att[l], lse[l], qkv[l], NULL, NULL, &d,
                                scratch) != DT_OK) {
        fprintf(stderr, "dt_attention_bench: %s\n", dt_error_message());
        return 1;
      }
    const double tb = now() - t0;
    printf("repetition %d: forward %.1f ms, backward %.1f ms (%d layers)\n", r + 1, 1e3 * tf, 1e3 * tb, L);
    if (tf < best_f) best_f = tf;
    if (tb < best_b) best_b = tb;
  }
  printf("best: forward %.1f ms, backward %.1f ms, %s products, T %d, %d heads of %d, %d layers\n",
         1e3 * best_f, 1e3 * best_b, bf16 ? "bf16" : "fp32", T, H, hd, L);
  dt_gemm_bf16_shutdown();
  return 0;
}
