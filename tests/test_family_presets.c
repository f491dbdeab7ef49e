/* The synthetic presets of the real Qwen2.5 and Mistral models have the real
 * architecture: `plan` counts exactly the parameters the published
 * checkpoints hold (the Hugging Face hub's safetensors parameter count of
 * Qwen/Qwen2.5-14B, -32B, -72B, mistralai/Mistral-7B-v0.1, EleutherAI/gpt-neox-20b,
 * EleutherAI/pythia-12b, google/gemma-7b, google/gemma-2-9b,
 * google/gemma-2-27b, bigscience/bloom and bigscience/bloom-7b1;
 * docs/usage.md),
 * which the issue asks within 0.1%. Qwen2's q/k/v biases are 344,064
 * parameters of the 14B model (2.3e-5 of it), so the exact check is what
 * tells them present; a LLaMA-shaped preset would miss them. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static long long frozen_parameters(const char *model, const char *layout) {
  char *out = NULL;
  const int rc = dt_test_run(&out, "%s plan --model %s --method lora --json --compare-full no %s",
                             DT_BINARY, model, layout);
  json_error_t je;
  json_t *root = rc == 0 && out && strchr(out, '{') ? json_loads(strchr(out, '{'), 0, &je) : NULL;
  if (!root) fail_msg("plan --model %s: exit %d\n%s", model, rc, out ? out : "");
  free(out);
  const long long n =
      (long long)json_integer_value(json_object_get(json_object_get(root, "plan"), "frozen_parameters"));
  json_decref(root);
  return n;
}

static void test_published_counts(void **state) {
  (void)state;
  const struct {
    const char *preset;
    long long published;
    const char *layout; /* plan's layout (NULL: one rank) */
  } cases[] = {
      {"synthetic:qwen2.5-14b", 14770033664LL, NULL},
      {"synthetic:qwen2.5-32b", 32763876352LL, NULL},
      {"synthetic:qwen2.5-72b", 72706203648LL, NULL},
      {"synthetic:mistral-7b", 7241732096LL, NULL},
      /* EleutherAI/gpt-neox-20b and pythia-12b: 12 d^2 + 13 d a block, two
       * vocab x d embeddings (untied), the final LayerNorm */
      {"synthetic:gpt-neox-20b", 20554567680LL, NULL},
      {"synthetic:pythia-12b", 11846072320LL, NULL},
      /* Gemma: the tied embedding counted once; Gemma-2's four norms a block */
      {"synthetic:gemma-7b", 8537680896LL, NULL},
      {"synthetic:gemma2-9b", 9241705984LL, NULL},
      {"synthetic:gemma2-27b", 27227128320LL, NULL},
      /* bigscience/bloom and bloom-7b1: 12 d^2 + 13 d a block, the tied
       * vocab x d embedding, its LayerNorm and the final one (2 d each) */
      {"synthetic:bloom-176b", 176247271424LL, NULL},
      {"synthetic:bloom-176b", 176247271424LL, "--ranks-per-node 3 --tp 3"},
      {"synthetic:bloom-7b1", 7069016064LL, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const long long got =
        frozen_parameters(cases[i].preset, cases[i].layout ? cases[i].layout : "");
    const double rel = (double)llabs(got - cases[i].published) / (double)cases[i].published;
    printf("%s: %lld parameters, published %lld (relative difference %.2e)\n", cases[i].preset,
           got, cases[i].published, rel);
    if (!(rel <= 1e-3)) fail_msg("%s: %lld parameters, published %lld", cases[i].preset, got,
                                 cases[i].published);
    if (got != cases[i].published)
      fail_msg("%s: %lld parameters, the checkpoint holds exactly %lld", cases[i].preset, got,
               cases[i].published);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_published_counts)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
