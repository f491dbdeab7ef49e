# Checkpoints of tensors sharded by tensor parallelism (full, lastlayer,
# bitfit at --tp 2): round trip, resume on the same layout (bit for bit) and
# on --tp 1 and --tp 3 (to 1e-5), through the command line.
dt_add_test(test_ckpt_tp SOURCES test_ckpt_tp.c clitest.c ARGS ${DT_MPIRUN} RANKS 4 TIMEOUT 600
            LABELS parallel)
