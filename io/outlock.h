/* The advisory lock of an output folder (docs/usage.md, "Output folders").
 *
 * A run that writes into a folder (train --out, each 'out' of a sweep)
 * holds OUT/.deltatune.lock: the file is created if needed and locked with
 * flock (the kernel drops the lock when the process dies, so the lock of a
 * killed run is never left held), and holds "host pid" of the holder. A
 * second run on the same folder is refused with the holder's host and pid.
 * Where the file system has no flock (ENOLCK), the content decides: another
 * host's lock, or a live process of this host, is held; a dead process's
 * lock on this host is stale and taken over (said on stdout).
 *
 * Not collective: one rank per folder takes it (rank 0), and the caller
 * agrees on the result. Every held lock is released (the file removed) by
 * dt_outlock_release_all, which is also run at exit. */
#ifndef DT_OUTLOCK_H
#define DT_OUTLOCK_H

#define DT_OUTLOCK_NAME ".deltatune.lock"

/* Take the lock of folder dir (which must exist); `what` names the option
 * in messages ("--out", "tasks.ini [task a] out"). Taking a folder this
 * process already holds is an error too (two outputs of one run). */
int dt_outlock_take(const char *dir, const char *what);
/* Release every lock this process holds (idempotent). */
void dt_outlock_release_all(void);

#endif
