/* Counter-based random numbers: value = f(key, counter), no state, so any
 * rank can generate any slice of a tensor and every rank count derives the
 * same numbers. The mixer is splitmix64's finaliser applied twice. */
#ifndef DT_RNG_H
#define DT_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t dt_mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* A key from a seed and a stream id (e.g. tensor index). */
static inline uint64_t dt_rng_key(uint64_t seed, uint64_t stream) {
  return dt_mix64(dt_mix64(seed) ^ (stream * 0xd1b54a32d192ed03ull));
}

static inline uint64_t dt_rng_u64(uint64_t key, uint64_t counter) {
  return dt_mix64(key ^ dt_mix64(counter));
}

/* Uniform in [0, 1). */
static inline double dt_rng_uniform(uint64_t key, uint64_t counter) {
  return (double)(dt_rng_u64(key, counter) >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal (Box-Muller on two counters). */
static inline double dt_rng_normal(uint64_t key, uint64_t counter) {
  double u1 = dt_rng_uniform(key, 2 * counter);
  double u2 = dt_rng_uniform(key, 2 * counter + 1);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
