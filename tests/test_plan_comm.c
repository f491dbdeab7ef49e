/* deltatune plan counts the tensor-group sums of a training step exactly as
 * the engine makes them: a forward (with gradient) and a backward of the
 * real model on this rank layout, counted by the dt_dist operators, against
 * dt_plan_compute's count, floats and shared-memory share, for several
 * shapes and methods (LoRA on row-parallel sites adds its own sums), with
 * and without --recompute. Run under mpirun -np 2 and 4 (all ranks one
 * node), and on the virtual cluster under srun -N 2 (multinode_plan: the
 * plan of --nodes 2, tensor groups spanning the nodes, no shared-memory
 * sums). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "machine.h"
#include "plan.h"
#include "testutil.h"

static const dt_optdef k_extra[] = {
    {"init-from", DT_OPT_STRING, NULL, 0, 0, NULL, "(plan and train accept it)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

typedef struct {
  const char *model, *methods;
  const char *args[6];
  int nargs, tp, batch, seq, recompute;
  int micro; /* rows per pass (train's --micro-batch), 0 = the whole batch */
} comm_case;

static const comm_case k_cases[] = {
    {"synthetic:gpt2:layers=2,d=64,heads=4,vocab=700,ctx=64", "lora",
     {"--lora-targets", "c_attn,attn.c_proj,mlp.c_proj", "--lora-rank", "4"}, 4, 0, 4, 20, 0, 0},
    {"synthetic:gpt2:layers=2,d=64,heads=4,vocab=700,ctx=64", "lora",
     {"--lora-targets", "c_attn,attn.c_proj,mlp.c_proj", "--lora-rank", "4"}, 4, 0, 4, 20, 1, 0},
    {"synthetic:llama:layers=3,d=64,heads=4,kv_heads=2,vocab=900,ctx=128", "adapter,ia3",
     {"--adapter-size", "8"}, 2, 0, 2, 300, 0, 0},
    {"synthetic:llama:layers=2,d=96,heads=6,kv_heads=3,vocab=500,ctx=64", "prompt",
     {"--prompt-tokens", "3"}, 2, 2, 4, 16, 1, 0},
    {"synthetic:gpt2:layers=1,d=128,heads=4,vocab=300,ctx=64", "full", {0}, 0, 0, 2, 12, 0, 0},
    /* micro-batches: passes of 2 rows (on 2 ranks 3 passes of 2; on 4
     * ranks, 2 replicas of 3 rows: passes of 2 and 1) */
    {"synthetic:gpt2:layers=2,d=64,heads=4,vocab=700,ctx=64", "lora",
     {"--lora-targets", "c_attn,attn.c_proj", "--lora-rank", "4"}, 4, 2, 6, 20, 0, 2},
    {"synthetic:llama:layers=2,d=96,heads=6,kv_heads=3,vocab=500,ctx=64", "prompt",
     {"--prompt-tokens", "3"}, 2, 2, 4, 16, 1, 3},
};

static void run_case(const comm_case *k, int size, int *bad) {
  const int tp = k->tp ? k->tp : size;
  if (size % tp) return;
  dt_dist d;
  assert_int_equal(dt_dist_init(&d, tp), DT_OK);
  dt_optgroup g[32];
  int ng = 0;
  g[ng++] = (dt_optgroup){"x", "x", k_extra};
  for (int i = 0; i < dt_method_count(); i++)
    if (dt_method_at(i)->options) g[ng++] = *dt_method_at(i)->options;
  dt_options *o = calloc(1, sizeof *o);
  char *argv[6];
  for (int i = 0; i < k->nargs; i++) argv[i] = (char *)k->args[i];
  assert_int_equal(dt_options_parse(o, "train", g, ng, k->nargs, argv), DT_OK);
  dt_model m;
  dt_params p;
  memset(&p, 0, sizeof p);
  dt_method **ms = NULL;
  int n = 0;
  assert_int_equal(dt_model_load(&m, k->model, 0, 1, &d, 0), DT_OK);
  assert_int_equal(dt_methods_create(k->methods, o, &m, &p, 1, &ms, &n), DT_OK);
  assert_int_equal(dt_model_set_methods(&m, ms, n), DT_OK);
  const int B = k->batch / d.dp_size;
  const int Bp = k->micro > 0 && k->micro < B ? k->micro : B;
  assert_int_equal(dt_model_plan(&m, Bp, k->seq, k->recompute), DT_OK);
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * k->seq);
  for (int i = 0; i < B * k->seq; i++) ids[i] = (int32_t)((i * 7919 + 13) % m.bb->cfg.vocab);
  const long long s0 = d.n_tp_sum, f0 = d.tp_sum_floats, h0 = d.n_tp_sum_shm;
  dt_loss_stats st;
  /* one step as train runs it: passes of Bp rows between step begin/end */
  assert_int_equal(dt_model_step_begin(&m, 1), DT_OK);
  for (int r0 = 0; r0 < B; r0 += Bp) {
    const int nb = B - r0 < Bp ? B - r0 : Bp;
    assert_int_equal(dt_model_set_shape(&m, nb, k->seq), DT_OK);
    assert_int_equal(dt_model_forward(&m, ids + (size_t)r0 * k->seq, NULL, 1,
                                      (double)k->batch * (k->seq - 1), &st, NULL), DT_OK);
    assert_int_equal(dt_model_backward(&m), DT_OK);
  }
  assert_int_equal(dt_model_step_end(&m, 1), DT_OK);
  const long long sums = d.n_tp_sum - s0, floats = d.tp_sum_floats - f0, shm = d.n_tp_sum_shm - h0;
  /* the plan of the same layout: the nodes the ranks run on (as many on
   * each), placed by block */
  int nodes = 0;
  {
    MPI_Comm node;
    int nrank;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &nrank);
    MPI_Comm_free(&node);
    nrank = nrank == 0;
    MPI_Allreduce(&nrank, &nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  }
  assert_int_equal(size % nodes, 0);
  dt_plan_in in = {k->model, k->methods, o, nodes, size / nodes, tp, k->batch, k->seq, 0, 1,
                   k->recompute, -1, 0, 1, k->micro, 0, NULL, 0};
  dt_machine mc;
  dt_machine_defaults(&mc);
  dt_plan_out out;
  assert_int_equal(dt_plan_compute(&in, &mc, &out), DT_OK);
  if (getenv("DT_TEST_VERBOSE") && d.rank == 0) fprintf(stderr, "%s tp %d rec %d: %lld sums %lld floats %lld shm; plan %lld %lld %lld\n", k->methods, tp, k->recompute, sums, floats, shm, out.tp_sums, out.tp_sum_floats, out.tp_sums_shm);
  if (out.tp_sums != sums || out.tp_sum_floats != floats || out.tp_sums_shm != shm) {
    (*bad)++;
    fprintf(stderr,
            "rank %d: %s on %s, %d ranks on %d node(s), tp %d%s: the step made %lld sums (%lld floats, %lld "
            "through shared memory); the plan counts %lld (%lld floats, %lld)\n",
            d.rank, k->methods, k->model, size, nodes, tp, k->recompute ? ", --recompute" : "", sums,
            floats, shm, out.tp_sums, out.tp_sum_floats, out.tp_sums_shm);
  }
  free(ids);
  dt_methods_destroy(ms, n);
  dt_params_free(&p);
  dt_model_free(&m);
  dt_dist_free(&d);
  free(o);
}

static void test_comm_counts(void **state) {
  (void)state;
  int size, bad = 0, all = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  for (size_t i = 0; i < sizeof k_cases / sizeof *k_cases; i++) run_case(&k_cases[i], size, &bad);
  MPI_Allreduce(&bad, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  assert_int_equal(all, 0);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_comm_counts)};
  const int rc = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return rc;
}
