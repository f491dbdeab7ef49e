/* The advisory lock of an output folder. See outlock.h. */
#include "outlock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

#define MAX_HELD 64

static struct {
  int fd;
  char path[4200];
} g_held[MAX_HELD];
static int g_n_held;
static int g_atexit;

/* "host pid time" of a lock file's content; 0 when it holds none. */
static int parse_holder(const char *s, char *host, size_t cap, long *pid, long long *since) {
  char h[256];
  long p = 0;
  long long t = 0;
  if (sscanf(s, "%255s %ld %lld", h, &p, &t) < 2 || p <= 0) return 0;
  snprintf(host, cap, "%s", h);
  *pid = p;
  *since = t;
  return 1;
}

static void since_str(long long t, char *buf, size_t cap) {
  buf[0] = 0;
  if (t <= 0) return;
  time_t tt = (time_t)t;
  struct tm tmv;
  gmtime_r(&tt, &tmv);
  strftime(buf, cap, ", since %Y-%m-%dT%H:%M:%SZ", &tmv);
}

/* Is process pid of this host alive? (EPERM: it exists, someone else's) */
static int pid_alive(long pid) { return kill((pid_t)pid, 0) == 0 || errno == EPERM; }

static int refuse(const char *what, const char *dir, const char *path, const char *host,
                  long pid, long long since) {
  char me[256] = "";
  gethostname(me, sizeof me - 1);
  char when[64];
  since_str(since, when, sizeof when);
  if (pid == (long)getpid() && strcmp(host, me) == 0)
    DT_ERR(DT_EUSAGE, "%s %s: this run writes into that folder already (another of its outputs "
           "resolves to the same folder; lock file %s)", what, dir, path);
  DT_ERR(DT_EUSAGE, "%s %s is in use by another deltatune run (host %s, pid %ld%s; lock file "
         "%s): two runs must not write into the same folder; wait for that run to end or "
         "choose another folder", what, dir, host, pid, when, path);
}

int dt_outlock_take(const char *dir, const char *what) {
  char path[4200], me[256] = "";
  size_t dl = strlen(dir);
  while (dl > 1 && dir[dl - 1] == '/') dl--; /* "out/" -> "out/.deltatune.lock" */
  snprintf(path, sizeof path, "%.*s/%s", (int)dl, dir, DT_OUTLOCK_NAME);
  gethostname(me, sizeof me - 1);
  DT_CHECK(g_n_held < MAX_HELD, DT_EUSAGE, "%s %s: more than %d output folders in one run",
           what, dir, MAX_HELD);
  for (int attempt = 0;; attempt++) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    DT_CHECK(fd >= 0, DT_EIO, "%s %s: cannot create the lock file %s: %s", what, dir, path,
             strerror(errno));
    char old[512] = "", host[256] = "";
    long pid = 0;
    long long since = 0;
    ssize_t n = pread(fd, old, sizeof old - 1, 0);
    old[n > 0 ? n : 0] = 0;
    const int had = parse_holder(old, host, sizeof host, &pid, &since);
    int locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
    const int e = errno;
    if (!locked && e == EWOULDBLOCK) {
      /* held: the holder's name may not be written yet; read it again */
      if (!had) {
        usleep(100000);
        n = pread(fd, old, sizeof old - 1, 0);
        old[n > 0 ? n : 0] = 0;
        if (!parse_holder(old, host, sizeof host, &pid, &since)) snprintf(host, sizeof host, "?");
      }
      close(fd);
      return refuse(what, dir, path, host, pid, since);
    }
    if (!locked && e != ENOLCK && e != EOPNOTSUPP && e != ENOSYS) {
      close(fd);
      DT_ERR(DT_EIO, "%s %s: cannot lock %s: %s", what, dir, path, strerror(e));
    }
    if (!locked && had && (strcmp(host, me) != 0 || (pid != (long)getpid() && pid_alive(pid)))) {
      /* no flock on this file system: the content decides */
      close(fd);
      return refuse(what, dir, path, host, pid, since);
    }
    if (locked) {
      /* the file may have been removed by its holder's release between our
       * open and our flock: then this lock guards nothing; start again */
      struct stat a, b;
      if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino ||
          a.st_dev != b.st_dev) {
        close(fd);
        DT_CHECK(attempt < 10, DT_EIO, "%s %s: the lock file %s keeps changing", what, dir,
                 path);
        continue;
      }
    }
    if (had) {
      char when[64];
      since_str(since, when, sizeof when);
      printf("lock: %s %s: took over the stale lock of a run that is gone (host %s, pid %ld%s)\n",
             what, dir, host, pid, when);
      fflush(stdout);
    }
    char mine[512];
    const int len = snprintf(mine, sizeof mine, "%s %ld %lld\n", me, (long)getpid(),
                             (long long)time(NULL));
    /* the holder's name is for the messages of others; the flock is the
     * lock, so a full disk (no block for the name) does not stop the run
     * here: its checkpoint write says what is wrong */
    if (ftruncate(fd, 0) != 0 || pwrite(fd, mine, (size_t)len, 0) != len || fsync(fd) != 0) {
      const int we = errno;
      if (!locked || (we != ENOSPC && we != EDQUOT)) {
        close(fd);
        unlink(path);
        DT_ERR(DT_EIO, "%s %s: cannot write the lock file %s: %s", what, dir, path,
               strerror(we));
      }
    }
    g_held[g_n_held].fd = fd;
    snprintf(g_held[g_n_held].path, sizeof g_held[0].path, "%s", path);
    g_n_held++;
    if (!g_atexit) {
      atexit(dt_outlock_release_all);
      g_atexit = 1;
    }
    return DT_OK;
  }
}

void dt_outlock_release_all(void) {
  for (int k = g_n_held - 1; k >= 0; k--) {
    unlink(g_held[k].path); /* still locked: nobody takes the old inode meanwhile */
    close(g_held[k].fd);
  }
  g_n_held = 0;
}
