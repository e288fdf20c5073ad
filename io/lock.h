/* lock.h - one writer per output: a lock file beside it, made with O_CREAT|O_EXCL.
 *
 * HDF5's own file locking (flock) is off on many parallel file systems (Lustre mounted without
 * flock, HDF5_USE_FILE_LOCKING=FALSE on clusters), and it would not stop a second run that
 * opens the archive with MPI-IO anyway. An exclusive create is atomic on local disks, NFS v3+,
 * Lustre, GPFS and BeeGFS, so capheads uses that: PATH.lock holds "host pid start-time", and the
 * holder touches it (ch_lock_refresh) as it works, so its modification time is a heartbeat.
 *
 * The lock holds "host pid start-time slurm-job-id". It is stale when its holder is gone: an
 * earlier start of the same Slurm job (a requeued job keeps its id, and may start on another
 * node); on the same host, a pid that no longer exists; on another host, a heartbeat older than
 * CAPHEADS_LOCK_STALE_S seconds (default 900: a running extract refreshes at every write round). A stale lock is taken over only when the
 * caller says so (extract --resume); otherwise it is reported with what to do. */
#ifndef CH_LOCK_H
#define CH_LOCK_H

typedef struct ch_lock ch_lock;

/* Take PATH.lock. Held by a live run: CH_EBUSY naming the holder's host, pid and start.
 * Stale and take_stale == 0: CH_EBUSY saying it is stale and that --resume takes it over. */
int ch_lock_take(const char *path, int take_stale, ch_lock **out);
/* Heartbeat: update the lock's modification time (cheap; call once per batch or write round). */
int ch_lock_refresh(ch_lock *l);
/* Remove the lock if it is still this process's; NULL is fine. */
void ch_lock_release(ch_lock *l);

#endif
