/* deltatune inspect FILE.nc: what a checkpoint holds, and whether it is
 * complete and intact. Collective over MPI_COMM_WORLD; rank 0 prints. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "commands.h"
#include "error.h"
#include "options.h"

static const dt_optdef inspect_opts[] = {
    {"variables", DT_OPT_BOOL, "no", 0, 0, NULL,
     "list every variable: name, role, shape, checksum"},
    {"verify", DT_OPT_BOOL, "yes", 0, 0, NULL,
     "read every variable and check its xxh3 checksum"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static void print_info(const dt_ckpt_file *f, int list) {
  const dt_ckpt_info *i = &f->info;
  int64_t n_param = 0, numel = 0, opt_bytes = 0;
  for (int k = 0; k < i->n_vars; k++) {
    if (i->vars[k].role == DT_CKPT_PARAM) {
      n_param++;
      numel += i->vars[k].numel;
    } else {
      opt_bytes += i->vars[k].numel * 4;
    }
  }
  printf("checkpoint: %s\n", f->path);
  printf("format: %s version %d, written by deltatune %s at %s\n", DT_CKPT_FORMAT,
         i->format_version, i->version, i->created);
  printf("complete: %s\n", i->complete ? "yes"
                                       : "no (the write did not finish: complete attribute 0)");
  printf("methods: %s\n", i->methods);
  printf("step: %lld of %lld (next learning rate %.6g, last %.6g)\n", (long long)i->step,
         (long long)i->steps_total, i->lr_next, i->lr_last);
  printf("loss: first step %.6f, last step %.6f\n", i->loss_first, i->loss_last);
  printf("data: %s, %lld rows x %lld tokens, batch %lld, next row %lld\n", i->data_source,
         (long long)i->data_rows, (long long)i->data_seq_len, (long long)i->batch_size,
         (long long)i->data_next_row);
  printf("parameters: %lld tensors, %lld values (%lld bytes fp32)\n", (long long)n_param,
         (long long)numel, (long long)numel * 4);
  if (i->has_optimizer)
    printf("optimizer: AdamW exp_avg and exp_avg_sq (%lld bytes)\n", (long long)opt_bytes);
  else
    printf("optimizer: not stored (written with --save-optimizer no)\n");
  printf("file: %lld bytes (variables %lld, header %lld)\n", (long long)i->file_bytes,
         (long long)i->data_bytes, (long long)(i->file_bytes - i->data_bytes));
  printf("backbone: %s %s, id %s\n", i->backbone.kind, i->backbone.source, i->backbone.id);
  for (const char *p = i->backbone.desc; *p;) {
    const char *e = strchr(p, '\n');
    int len = e ? (int)(e - p) : (int)strlen(p);
    if (len) printf("  %.*s\n", len, p);
    if (!e) break;
    p = e + 1;
  }
  printf("  %s: %d layers, d=%d, %d heads / %d kv (head dim %d), ffn %d, vocab %d, ctx %d\n",
         i->arch, i->layers, i->d_model, i->heads, i->kv_heads, i->head_dim, i->ffn, i->vocab,
         i->ctx);
  printf("rank layout: %s\n", i->rank_layout);
  for (int k = 0; k < i->n_counters; k++) {
    printf("counters %s:", i->counters[k].method);
    for (int j = 0; j < i->counters[k].n; j++) printf(" %lld", (long long)i->counters[k].v[j]);
    printf("\n");
  }
  printf("options (* given on the command line):\n");
  for (int k = 0; k < i->n_opts; k++) {
    printf("  %s--%s=%s\n", dt_list_has(i->options_given, i->opts[k].name) ? "*" : " ", i->opts[k].name,
           i->opts[k].value[0] ? i->opts[k].value : "(unset)");
  }
  if (list) {
    static const char *const role[] = {"parameter", "exp_avg", "exp_avg_sq"};
    printf("variables:\n");
    for (int k = 0; k < i->n_vars; k++) {
      const dt_ckpt_var *v = &i->vars[k];
      char sh[96];
      int o = snprintf(sh, sizeof sh, "[");
      for (int d = 0; d < v->ndim; d++)
        o += snprintf(sh + o, sizeof sh - (size_t)o, "%s%lld", d ? ", " : "",
                      (long long)v->shape[d]);
      snprintf(sh + o, sizeof sh - (size_t)o, "]");
      printf("  %-10s %-14s %016llx  %s\n", role[v->role], sh, (unsigned long long)v->xxh3,
             v->name);
    }
  }
}

int dt_cmd_inspect(int argc, char **argv) {
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const dt_optgroup g = {"inspect", "Inspect", inspect_opts};
  const char *path = argc > 0 && argv[0][0] != '-' ? argv[0] : NULL;
  dt_options o;
  DT_CALL(dt_options_parse(&o, "inspect", &g, 1, path ? argc - 1 : argc, path ? argv + 1 : argv));
  if (o.help) {
    if (rank == 0)
      dt_options_print_help(stdout, "inspect FILE.nc",
                            "What a checkpoint holds: methods, options, step, parameters, bytes, "
                            "backbone identity, and whether it is complete and intact.",
                            &g, 1);
    return DT_OK;
  }
  DT_CHECK(path, DT_EUSAGE, "usage: deltatune inspect FILE.nc [--variables] [--verify no]");
  dt_ckpt_file f;
  DT_CALL(dt_ckpt_open(&f, path, MPI_COMM_WORLD));
  if (rank == 0) {
    print_info(&f, dt_opt_bool(&o, "variables"));
    fflush(stdout);
  }
  int rc = DT_OK;
  if (!dt_opt_bool(&o, "verify")) {
    if (rank == 0) printf("checksums: not verified (--verify no)\n");
  } else if (!f.info.complete) {
    if (rank == 0) printf("checksums: not verified (incomplete file)\n");
  } else {
    rc = dt_ckpt_verify(&f);
    if (rc == DT_OK && rank == 0)
      printf("checksums: %d variables verified (xxh3)\n", f.info.n_vars);
  }
  if (rank == 0) fflush(stdout);
  dt_ckpt_close(&f);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}
