# Reliability (docs/reliability.md): bad input at every entry point, one
# message and the exit code on 2 ranks; faults (a rank killed, a non-finite
# loss, a read-only or full output folder) end the job with the last good
# checkpoint intact.
dt_add_test(test_bad_input SOURCES test_bad_input.c RANKS 2 TIMEOUT 900 LABELS reliability)
dt_add_test(test_faults SOURCES test_faults.c RANKS 2 TIMEOUT 600 LABELS reliability)
