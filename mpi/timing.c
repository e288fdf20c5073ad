/* timing.c - see timing.h. */
#include "timing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agree.h"
#include "err.h"
#include "mpicheck.h"

static const char *const std_keys[] = {"stage", "ranks", "records", "tokens", "seconds", "io_seconds",
                                       "backend", "precision", "nodes", "source", "job", "label", "rc", NULL};

void ch_timing_start(ch_timing *t, const char *stage) {
    memset(t, 0, sizeof *t);
    t->stage = stage;
    t->records = t->tokens = -1;
    t->io_seconds = -1;
    t->t0 = MPI_Wtime();
}

int ch_timing_add(ch_timing *t, const char *key, int64_t value) {
    int ok = key && *key;
    for (const char *p = key; ok && *p; p++) ok = (*p >= 'a' && *p <= 'z') || *p == '_';
    for (int i = 0; ok && std_keys[i]; i++) ok = strcmp(key, std_keys[i]) != 0;
    for (int i = 0; ok && i < t->nextra; i++) ok = strcmp(key, t->extra_key[i]) != 0;
    if (!ok) CH_FAIL(CH_EARG, "timing record: bad or repeated key '%s'", key ? key : "(null)");
    if (t->nextra == CH_TIMING_MAX_EXTRA)
        CH_FAIL(CH_EARG, "timing record: more than %d stage fields ('%s')", CH_TIMING_MAX_EXTRA, key);
    t->extra_key[t->nextra] = key;
    t->extra_val[t->nextra++] = value;
    return 0;
}

/* append s to buf as a JSON string (the values are stage, backend and precision names) */
static size_t put_str(char *buf, size_t cap, size_t n, const char *s) {
    if (n < cap) buf[n] = '"';
    n++;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') n += (size_t)snprintf(n < cap ? buf + n : NULL, n < cap ? cap - n : 0, "\\%c", *p);
        else if (*p < 0x20) n += (size_t)snprintf(n < cap ? buf + n : NULL, n < cap ? cap - n : 0, "\\u%04x", *p);
        else if (n < cap) buf[n++] = (char)*p;
        else n++;
    }
    if (n < cap) buf[n] = '"';
    return n + 1;
}

#define PUT(...) n += (size_t)snprintf(n < sizeof line ? line + n : NULL, n < sizeof line ? sizeof line - n : 0, __VA_ARGS__)

static int append(const ch_timing *t, const char *path, int ranks, double seconds, double io) {
    char line[1024];
    size_t n = 0;
    PUT("{\"stage\":");
    n = put_str(line, sizeof line, n, t->stage ? t->stage : "");
    PUT(",\"ranks\":%d", ranks);
    if (t->records >= 0) PUT(",\"records\":%lld", (long long)t->records);
    else PUT(",\"records\":null");
    if (t->tokens >= 0) PUT(",\"tokens\":%lld", (long long)t->tokens);
    else PUT(",\"tokens\":null");
    PUT(",\"seconds\":%.6f", seconds);
    if (io >= 0) PUT(",\"io_seconds\":%.6f", io);
    else PUT(",\"io_seconds\":null");
    if (t->backend) {
        PUT(",\"backend\":");
        n = put_str(line, sizeof line, n, t->backend);
    }
    if (t->precision) {
        PUT(",\"precision\":");
        n = put_str(line, sizeof line, n, t->precision);
    }
    for (int i = 0; i < t->nextra; i++) PUT(",\"%s\":%lld", t->extra_key[i], (long long)t->extra_val[i]);
    PUT("}\n");
    if (n >= sizeof line) CH_FAIL(CH_EINTERNAL, "timing record for %s longer than %zu bytes", path, sizeof line);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) CH_FAIL(CH_EIO, "%s: cannot open the timing file: %s", path, strerror(errno));
    ssize_t w = write(fd, line, n);
    int werr = errno;
    if (close(fd) && w == (ssize_t)n) CH_FAIL(CH_EIO, "%s: closing the timing file failed: %s", path, strerror(errno));
    if (w != (ssize_t)n) CH_FAIL(CH_EIO, "%s: writing the timing record failed: %s", path, w < 0 ? strerror(werr) : "short write");
    return 0;
}

int ch_timing_finish(const ch_timing *t, const char *path, int rc, MPI_Comm comm) {
    if (!path) return rc;
    CH_TRY(ch_mpi_agree(comm, rc));
    int rank, size;
    double v[2] = {MPI_Wtime() - t->t0, t->io_seconds}, m[2];
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    CH_MPI_TRY(MPI_Comm_size(comm, &size));
    CH_MPI_TRY(MPI_Reduce(v, m, 2, MPI_DOUBLE, MPI_MAX, 0, comm));
    int wrc = rank == 0 ? append(t, path, size, m[0], m[1]) : 0;
    /* every rank reports the failure to write the record, with rank 0's message */
    int arc = ch_mpi_agree(comm, wrc);
    if (arc && !wrc) ch_err_wrap("%s: appending the timing record: ", path);
    return arc;
}
