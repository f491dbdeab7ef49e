# Environment for running deltatune here (sourced by the job scripts, the
# quickstart and the tests).
# - OpenBLAS 0.3.21 does not recognise some AVX-512 CPUs and falls back to a
#   kernel 4-6x slower on sgemm: choose SkylakeX there unless the user chose.
# - Open MPI refuses to run as root unless told that it is intended.
if [[ -z "${OPENBLAS_CORETYPE:-}" ]] && grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
