/* One trainer (src/trainer.h): the part of a training step after backward,
 * and its metrics line, for train and sweep alike. */
#include "trainer.h"

#include <jansson.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gradsync.h"
#include "mpicheck.h"
#include "params_dist.h"
#include "timer.h"

const char *dt_num(double v, char *buf) {
  if (isnan(v)) return "NaN";
  if (isinf(v)) return v > 0 ? "inf" : "-inf";
  snprintf(buf, 32, "%.6g", v);
  return buf;
}

int dt_fault_options_check(const dt_options *o) {
  DT_CHECK(!dt_opt_given(o, "nan-max-skips") || strcmp(dt_opt_str(o, "nan-policy"), "skip") == 0,
           DT_EUSAGE, "--nan-max-skips %lld applies to --nan-policy skip (this run has "
           "--nan-policy %s)", (long long)dt_opt_int(o, "nan-max-skips"),
           dt_opt_str(o, "nan-policy"));
  return DT_OK;
}

int dt_loss_stats_sum(dt_loss_stats *s, MPI_Comm dp) {
  double v[5] = {s->loss_sum, (double)s->n_scored, (double)s->n_correct_tokens,
                 (double)s->n_rows_exact, (double)s->n_rows_scored};
  DT_MPI(MPI_Allreduce(MPI_IN_PLACE, v, 5, MPI_DOUBLE, MPI_SUM, dp),
         "MPI_Allreduce of the loss statistics over the data-parallel group");
  s->loss_sum = v[0];
  s->n_scored = (int64_t)v[1];
  s->n_correct_tokens = (int64_t)v[2];
  s->n_rows_exact = (int64_t)v[3];
  s->n_rows_scored = (int64_t)v[4];
  return DT_OK;
}

int dt_trainer_init(dt_trainer *tr, const dt_options *o, dt_params *params, dt_dist *dist) {
  memset(tr, 0, sizeof *tr);
  tr->dist = dist;
  tr->params = params;
  MPI_Comm_rank(MPI_COMM_WORLD, &tr->rank);
  tr->loss0 = tr->last = NAN;
  tr->t_start = dt_now();
  double betas[2];
  int nb;
  DT_CALL(dt_opt_floats(o, "betas", betas, 2, &nb));
  DT_CHECK(nb == 2 && betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1,
           DT_EUSAGE, "--betas expects two numbers in [0,1), got '%s'", dt_opt_str(o, "betas"));
  dt_adamw *a = &tr->optim;
  a->lr = dt_opt_float(o, "lr");
  a->beta1 = betas[0];
  a->beta2 = betas[1];
  a->eps = dt_opt_float(o, "eps");
  a->weight_decay = dt_opt_float(o, "weight-decay");
  a->clip_norm = dt_opt_float(o, "clip-norm");
  const char *sch = dt_opt_str(o, "schedule");
  a->schedule = !strcmp(sch, "linear")   ? DT_SCHED_LINEAR
                : !strcmp(sch, "cosine") ? DT_SCHED_COSINE
                                         : DT_SCHED_CONSTANT;
  a->warmup_steps = dt_opt_int(o, "warmup-steps");
  tr->steps = dt_opt_int(o, "steps");
  a->total_steps = tr->steps;
  tr->nan_skip = strcmp(dt_opt_str(o, "nan-policy"), "skip") == 0;
  tr->nan_max = dt_opt_int(o, "nan-max-skips");
  if (dt_opt_exists(o, "dump-grads") && dt_opt_is_set(o, "dump-grads"))
    tr->dump_grads = dt_opt_str(o, "dump-grads");
  DT_CALL(dt_adamw_init(a, params));
  return DT_OK;
}

int dt_trainer_open_metrics(dt_trainer *tr, const dt_options *o, int64_t start) {
  if (tr->rank != 0 || !dt_opt_is_set(o, "metrics")) return DT_OK;
  tr->metrics = fopen(dt_opt_str(o, "metrics"), start > 0 ? "a" : "w");
  DT_CHECK(tr->metrics, DT_EIO, "--metrics: cannot write '%s'", dt_opt_str(o, "metrics"));
  return DT_OK;
}

void dt_trainer_free(dt_trainer *tr) {
  if (tr->metrics) fclose(tr->metrics);
  tr->metrics = NULL;
  dt_adamw_free(&tr->optim);
  free(tr->gbuf);
  tr->gbuf = NULL;
  tr->gbuf_n = 0;
}

/* The step's metrics line (rank 0, with --metrics). */
static void write_metrics(dt_trainer *tr, int64_t step, const dt_step_out *s) {
  FILE *f = tr->metrics;
  if (!f) return;
  fprintf(f, "{\"step\": %lld, ", (long long)step);
  /* JSON has no NaN or infinity: a non-finite loss or norm (a skipped step,
   * or any step of --comm-lockstep) is null */
  char lb[32] = "null", gb[32] = "null";
  if (!s->skipped && isfinite(s->loss)) snprintf(lb, sizeof lb, "%.9g", s->loss);
  if (!s->skipped && isfinite(s->grad_norm)) snprintf(gb, sizeof gb, "%.9g", s->grad_norm);
  fprintf(f, "\"loss\": %s, \"lr\": %.9g, \"grad_norm\": %s, ", lb, s->lr, gb);
  fprintf(f, "\"scored_tokens\": %.0f, \"elapsed_s\": %.6g, \"tokens_per_s\": %.6g, %s"
          "\"skipped_steps\": %lld", s->scored, dt_now() - tr->t_start, s->tokens_per_s,
          s->skipped ? "\"skipped\": true, " : "", (long long)tr->skipped);
  if (tr->task) {
    json_t *name = json_string(tr->task);
    char *q = name ? json_dumps(name, JSON_ENCODE_ANY) : NULL;
    fprintf(f, ", \"task\": %s", q ? q : "null");
    free(q);
    json_decref(name);
  }
  fputs("}\n", f);
  fflush(f);
}

int dt_trainer_step(dt_trainer *tr, int64_t step, dt_loss_stats *st, double tokens, double t0,
                    const dt_train_ckpt *ck, dt_step_out *out) {
  memset(out, 0, sizeof *out);
  const double t_sync = dt_now();
  DT_CALL(dt_grad_sync(tr->dist, tr->params, &tr->gbuf, &tr->gbuf_n));
  DT_CALL(dt_loss_stats_sum(st, tr->dist->dp));
  const double loss = st->n_scored ? st->loss_sum / st->n_scored : 0.0;
  /* the loss and the gradient norm are the same on every rank (summed),
   * so every rank takes the same decision */
  double gnorm = 0;
  DT_CALL(dt_grad_norm(tr->params, tr->dist, &gnorm));
  tr->sync_s += dt_now() - t_sync;
  out->loss = loss;
  out->grad_norm = gnorm;
  tr->grad_norm = gnorm;
  out->scored = (double)st->n_scored;
  const char *who = tr->task ? tr->task : "", *sep = tr->task ? ": " : "";
  /* --comm-lockstep moves no data, so its losses are not the model's and may
   * well be non-finite (a 13B shape's were, 2026-12-05): the step goes on
   * whatever the numbers are, but a non-finite update is not applied, so
   * that the next steps still run on finite values like the real run's (a
   * 13B lockstep run went NaN for the rest of its steps; docs/performance.md) */
  const int lockstep = tr->dist && tr->dist->lockstep;
  if ((!isfinite(loss) || !isfinite(gnorm)) && lockstep) {
    if (step == 0) tr->loss0 = loss;
    tr->last = loss;
    tr->optim.step++; /* (not counted as skipped: the timing run's step ran) */
    out->lr = dt_adamw_lr(&tr->optim, step);
    out->tokens_per_s = tokens / (dt_now() - t0);
    write_metrics(tr, step, out);
    return DT_OK;
  }
  if (!isfinite(loss) || !isfinite(gnorm)) {
    char last[4400] = "no checkpoint was written";
    if (ck && ck->dir && ck->saved_step >= 0)
      snprintf(last, sizeof last, "the last good checkpoint is %s (step %lld)", ck->saved_path,
               (long long)ck->saved_step);
    char lb[32], gb[32];
    if (!tr->nan_skip || tr->skipped_run + 1 >= tr->nan_max) {
      if (!tr->nan_skip)
        dt_error_set(DT_ENUMERIC, __FILE__, __LINE__, __func__,
                     "step %lld/%d: the loss is %s and the gradient norm %s; stopping "
                     "(--nan-policy stop); %s", (long long)step + 1, tr->steps,
                     dt_num(loss, lb), dt_num(gnorm, gb), last);
      else
        dt_error_set(DT_ENUMERIC, __FILE__, __LINE__, __func__,
                     "step %lld/%d: the loss is %s and the gradient norm %s: %d "
                     "consecutive steps not finite (--nan-max-skips %d); stopping "
                     "after %lld skipped steps; %s", (long long)step + 1, tr->steps,
                     dt_num(loss, lb), dt_num(gnorm, gb), tr->skipped_run + 1, tr->nan_max,
                     (long long)tr->skipped + 1, last);
      dt_error_mark_agreed();
      return DT_ENUMERIC;
    }
    /* drop the update; the step still counts (schedule, data, numbering) */
    tr->skipped++;
    tr->skipped_run++;
    tr->optim.step++;
    out->skipped = 1;
    out->lr = dt_adamw_lr(&tr->optim, step);
    out->tokens_per_s = tokens / (dt_now() - t0);
    if (tr->rank == 0) {
      printf("%s%sstep %6lld/%d  loss %s  gradient norm %s: update skipped (%d consecutive, "
             "%lld in all; --nan-policy skip)\n", who, sep, (long long)step + 1, tr->steps,
             dt_num(loss, lb), dt_num(gnorm, gb), tr->skipped_run, (long long)tr->skipped);
      fflush(stdout);
    }
    write_metrics(tr, step, out);
    return DT_OK;
  }
  tr->skipped_run = 0;
  if (step == 0) tr->loss0 = loss;
  tr->last = loss;
  if (step == 0 && tr->dump_grads)
    DT_CALL(dt_params_save_dist(tr->params, tr->dump_grads, 1, tr->dist));
  const double t_opt = dt_now();
  out->lr = dt_adamw_step(&tr->optim, tr->params, gnorm);
  tr->opt_s += dt_now() - t_opt;
  out->tokens_per_s = tokens / (dt_now() - t0);
  write_metrics(tr, step, out);
  return DT_OK;
}

/* Are the trainable values finite on every rank? Collective over the
 * world; bad names a non-finite tensor of this rank. */
static int params_finite(const dt_params *t, char *bad, size_t cap, int *finite) {
  int ok = 1;
  bad[0] = 0;
  for (int i = 0; i < t->n && ok; i++)
    for (int64_t j = 0; j < t->p[i].numel_l; j++)
      if (!isfinite(t->p[i].data[j])) {
        snprintf(bad, cap, "%s", t->p[i].name);
        ok = 0;
        break;
      }
  int all = ok;
  DT_MPI(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD),
         "MPI_Allreduce of the finiteness of the deltas");
  if (!all && !bad[0]) snprintf(bad, cap, "a tensor of another rank");
  *finite = all;
  return DT_OK;
}

int dt_trainer_checkpoint(dt_trainer *tr, dt_train_ckpt *ck, const dt_train_state *ts,
                          int64_t done) {
  /* a checkpoint holds finite values only: an update that overflowed
   * stops the run before it is saved */
  if (ck->dir && (done == tr->steps || (ck->save_every > 0 && done % ck->save_every == 0))) {
    char bad[DT_PARAM_NAME_MAX + 32];
    int finite = 1;
    DT_CALL(params_finite(tr->params, bad, sizeof bad, &finite));
    if (!finite) {
      dt_error_set(DT_ENUMERIC, __FILE__, __LINE__, __func__,
                   "step %lld/%d: the update made %s non-finite (loss %g, gradient norm %g); "
                   "stopping without saving it; the last good checkpoint is %s",
                   (long long)done, tr->steps, bad, tr->last, tr->grad_norm,
                   ck->saved_step >= 0 ? ck->saved_path : "none (none was written)");
      dt_error_mark_agreed();
      return DT_ENUMERIC;
    }
  }
  DT_CALL(dt_train_ckpt_save(ck, ts, done, 0, tr->loss0, tr->last));
  return DT_OK;
}
