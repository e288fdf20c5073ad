/* lock.c - see lock.h. */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

struct ch_lock {
    char path[4200];
    char stamp[320]; /* what we wrote: compared before unlinking */
};

static double stale_after(void) {
    const char *s = getenv("CAPHEADS_LOCK_STALE_S");
    char *end = NULL;
    double v = s ? strtod(s, &end) : 0;
    return s && end != s && !*end && v > 0 ? v : 900.0;
}

static int read_small(const char *path, char *buf, size_t n) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t r = read(fd, buf, n - 1);
    close(fd);
    if (r < 0) return -1;
    buf[r] = 0;
    return 0;
}

/* A pid of this host that still runs: it exists (kill 0) and is not a zombie - a killed process
 * whose parent has not reaped it yet holds nothing. */
static int pid_alive(long pid) {
    if (kill((pid_t)pid, 0) && errno == ESRCH) return 0;
    char p[64], buf[512];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    if (read_small(p, buf, sizeof buf)) return 1; /* no /proc: kill's word stands */
    const char *rp = strrchr(buf, ')'); /* "pid (comm) S ...": comm may hold spaces */
    return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* Is the lock at lp held by a live run? Fills who with a description of the holder. */
static int holder_alive(const char *lp, char *who, size_t whosz, int *alive) {
    char buf[320] = "", host[256] = "?", me[256] = "", job[64] = "-";
    long pid = 0;
    long long start = 0;
    struct stat sb;
    if (stat(lp, &sb)) return -1; /* gone meanwhile: the caller retries */
    if (read_small(lp, buf, sizeof buf) == 0) sscanf(buf, "%255s %ld %lld %63s", host, &pid, &start, job);
    gethostname(me, sizeof me - 1);
    time_t st = (time_t)start;
    char when[32] = "?";
    if (start > 0) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&st));
    double age = difftime(time(NULL), sb.st_mtime);
    const char *myjob = getenv("SLURM_JOB_ID");
    if (myjob && strcmp(job, "-") && !strcmp(job, myjob) && (strcmp(host, me) || pid != (long)getpid()))
        *alive = 0; /* an earlier start of this very job (requeued after preemption) */
    else if (!strcmp(host, me) && pid > 0)
        *alive = pid_alive(pid);
    else
        *alive = age < stale_after();
    snprintf(who, whosz, "host %s pid %ld, started %s, last heartbeat %.0f s ago", host, pid, when, age);
    return 0;
}

int ch_lock_take(const char *path, int take_stale, ch_lock **out) {
    *out = NULL;
    ch_lock *l = calloc(1, sizeof *l);
    if (!l) CH_FAIL(CH_ENOMEM, "out of memory for the lock of %s", path);
    if (snprintf(l->path, sizeof l->path, "%s.lock", path) >= (int)sizeof l->path) {
        free(l);
        CH_FAIL(CH_EARG, "%s: path too long", path);
    }
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    const char *job = getenv("SLURM_JOB_ID");
    snprintf(l->stamp, sizeof l->stamp, "%s %ld %lld %.60s\n", host, (long)getpid(), (long long)time(NULL),
             job && *job ? job : "-");
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd = open(l->path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd >= 0) {
            size_t n = strlen(l->stamp);
            int bad = write(fd, l->stamp, n) != (ssize_t)n;
            if (close(fd) || bad) {
                unlink(l->path);
                free(l);
                CH_FAIL(CH_EIO, "%s.lock: cannot write the lock", path);
            }
            *out = l;
            return 0;
        }
        if (errno != EEXIST) {
            int e = errno;
            free(l);
            CH_FAIL(CH_EIO, "%s.lock: cannot create the lock: %s", path, strerror(e));
        }
        char who[512];
        int alive = 0;
        if (holder_alive(l->path, who, sizeof who, &alive)) continue;
        if (alive) {
            free(l);
            CH_FAIL(CH_EBUSY, "%s is being written by another run (%s; lock %s.lock): wait for it, or stop it",
                    path, who, path);
        }
        if (!take_stale) {
            free(l);
            CH_FAIL(CH_EBUSY,
                    "%s has a stale lock from a run that did not finish (%s): rerun with --resume to take it "
                    "over and continue, or remove %s.lock if that run is surely gone",
                    path, who, path);
        }
        /* Move the stale lock aside: a rename succeeds for one taker only, the others see it gone. */
        char aside[4300];
        snprintf(aside, sizeof aside, "%s.stale.%ld", l->path, (long)getpid());
        if (!rename(l->path, aside)) unlink(aside);
    }
    free(l);
    CH_FAIL(CH_EBUSY, "%s.lock: could not take the lock (other runs keep taking it)", path);
}

int ch_lock_refresh(ch_lock *l) {
    if (l && utimensat(AT_FDCWD, l->path, NULL, 0))
        CH_FAIL(CH_EIO, "%s: cannot refresh the lock: %s", l->path, strerror(errno));
    return 0;
}

void ch_lock_release(ch_lock *l) {
    if (!l) return;
    char buf[320] = "";
    if (read_small(l->path, buf, sizeof buf) == 0 && !strcmp(buf, l->stamp)) unlink(l->path);
    free(l);
}
