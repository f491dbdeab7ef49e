/* bf16 <-> fp32 conversion (round to nearest even, NaN kept quiet). The
 * arithmetic of the bf16 weights, independent of any file format: the
 * safetensors reader, the bf16 products and the forward pass share it. */
#ifndef DT_BF16_H
#define DT_BF16_H

#include <stdint.h>

static inline float dt_bf16_to_f32(uint16_t h) {
  union { uint32_t u; float f; } v;
  v.u = (uint32_t)h << 16;
  return v.f;
}
static inline uint16_t dt_f32_to_bf16(float f) {
  union { uint32_t u; float f; } v;
  v.f = f;
  if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40); /* NaN */
  uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
  return (uint16_t)((v.u + rounding) >> 16);
}

#endif
