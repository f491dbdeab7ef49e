# Shared by the benchmark scripts: read deltatune train's summary lines.
# dt_summary OUTPUT -> "median_step_s tokens_per_s gflops rss_mb_per_rank sgemm_gflops blas_core loss0 comm_pct pss_mb_total"
# (pss_mb_total: the ranks' proportional set size at the end, shared pages once; 0 from older binaries)
# (missing values print as 0, ? or nan; an empty step means the run failed).
dt_summary() {
  local out=$1 step tps gf rss sg core l0 comm pss
  step=$(sed -nE 's/^summary: median step ([0-9.]+)s.*/\1/p' <<<"$out")
  tps=$(sed -nE 's/^summary: median step [0-9.]+s: ([0-9.]+) tokens.*/\1/p' <<<"$out")
  gf=$(sed -nE 's/^summary: median step .* tokens\/s, ([0-9.]+) GFLOP.*/\1/p' <<<"$out")
  rss=$(sed -nE 's/.*peak RSS per rank ([0-9.]+) MB.*/\1/p' <<<"$out")
  sg=$(sed -nE 's/^BLAS: .*sgemm 1024\^3 ([0-9.]+) GFLOP.*/\1/p' <<<"$out" | head -1)
  core=$(sed -nE 's/^BLAS: OpenBLAS core ([^,]+),.*/\1/p' <<<"$out" | head -1)
  l0=$(sed -nE 's/^summary: .* steps in .*; loss ([0-9.]+) ->.*/\1/p' <<<"$out")
  comm=$(sed -nE 's/^summary: communication .*\(([0-9.]+)%.*/\1/p' <<<"$out")
  pss=$(sed -nE 's/^summary: memory of the .* together at the end ([0-9.]+) MB.*/\1/p' <<<"$out")
  [[ -n $step ]] || return 1
  echo "$step $tps $gf $rss ${sg:-0} ${core:-?} ${l0:-nan} ${comm:-0} ${pss:-0}"
}
