/* outpath.c - see outpath.h. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "outpath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "h5seal.h"

#define PATHMAX 4096

/* The path with every existing part resolved (links, "..", "."): realpath of the longest
 * existing prefix, the rest appended as written. 0 on success. */
static int canon(const char *path, char *out) {
    char buf[PATHMAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    if (realpath(buf, out)) return 0;
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    char *slash = strrchr(buf, '/');
    const char *base = slash ? slash + 1 : buf;
    char parent[PATHMAX], rp[PATHMAX];
    if (!slash) snprintf(parent, sizeof parent, ".");
    else if (slash == buf) snprintf(parent, sizeof parent, "/");
    else snprintf(parent, sizeof parent, "%.*s", (int)(slash - buf), buf);
    if (!strcmp(base, ".") || !strcmp(base, "..")) return -1;
    if (canon(parent, rp)) return -1;
    if (snprintf(out, PATHMAX, "%s/%s", strcmp(rp, "/") ? rp : "", base) >= PATHMAX) return -1;
    return 0;
}

/* Same file: equal resolved paths, or (both existing) equal device and inode - a hard link. */
static int same_file(const char *a, const char *ca, const char *b, const char *cb) {
    if (!strcmp(ca, cb)) return 1;
    struct stat sa, sb;
    return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int inside(const char *child, const char *dir) {
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/') return child[0] == '/' && child[1];
    return !strncmp(child, dir, n) && child[n] == '/';
}

static int is_dir(const char *p) {
    struct stat sb;
    return !stat(p, &sb) && S_ISDIR(sb.st_mode);
}

/* An output against one input: the input itself, a file of an input directory, or (for an
 * output directory) an input below it. */
static int check_pair(const ch_path_role *in, const char *cin, const ch_path_role *out, const char *cout) {
    if (same_file(in->path, cin, out->path, cout))
        CH_FAIL(CH_EARG, "%s %s is the input %s %s: refusing to write over an input", out->option, out->path,
                in->option, in->path);
    if ((out->is_dir || is_dir(out->path)) && inside(cin, cout))
        CH_FAIL(CH_EARG, "%s %s is a directory that holds the input %s %s: refusing to write into it",
                out->option, out->path, in->option, in->path);
    if (!is_dir(in->path)) return 0;
    DIR *d = opendir(in->path);
    if (!d) return 0; /* unreadable: the stage's own open reports it */
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        char p[PATHMAX], cp[PATHMAX];
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        if (snprintf(p, sizeof p, "%s/%s", in->path, e->d_name) >= (int)sizeof p || canon(p, cp)) continue;
        if (same_file(p, cp, out->path, cout))
            rc = ch_err_set(CH_EARG, __FILE__, __LINE__,
                            "%s %s is %s, a file of the input directory %s %s: refusing to write over it",
                            out->option, out->path, p, in->option, in->path);
    }
    closedir(d);
    return rc;
}

int ch_paths_check(const ch_path_role *inputs, int nin, const ch_path_role *outputs, int nout) {
    char ci[PATHMAX], co[PATHMAX], co2[PATHMAX];
    for (int o = 0; o < nout; o++) {
        const ch_path_role *out = &outputs[o];
        if (!out->path || !*out->path) continue;
        if (canon(out->path, co)) CH_FAIL(CH_EARG, "%s %s: path cannot be resolved", out->option, out->path);
        for (int i = 0; i < nin; i++) {
            if (!inputs[i].path || !*inputs[i].path || canon(inputs[i].path, ci)) continue;
            CH_TRY(check_pair(&inputs[i], ci, out, co));
        }
        for (int o2 = o + 1; o2 < nout; o2++) {
            const ch_path_role *b = &outputs[o2];
            if (!b->path || !*b->path || canon(b->path, co2)) continue;
            if (same_file(out->path, co, b->path, co2) || (out->is_dir && inside(co2, co)) ||
                (b->is_dir && inside(co, co2)))
                CH_FAIL(CH_EARG, "%s %s and %s %s are the same place: each output needs its own", out->option,
                        out->path, b->option, b->path);
        }
    }
    return 0;
}

/* What an unfinished run leaves in an output directory (DIR/.NAME.partial, NAME.tmp.PID): not
 * an output, so a rerun after a kill needs no --force. */
static int leftover(const char *name) {
    size_t n = strlen(name);
    return (name[0] == '.' && n > 9 && !strcmp(name + n - 8, ".partial")) || strstr(name, ".tmp.") != NULL;
}

int ch_out_may_replace(const char *path, const char *option, int force) {
    struct stat sb;
    if (force || !path || !*path || stat(path, &sb)) return 0;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        int empty = 1;
        for (struct dirent *e; d && empty && (e = readdir(d));)
            empty = (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) ||
                    leftover(e->d_name);
        if (d) closedir(d);
        if (empty) return 0;
    }
    CH_FAIL(CH_EARG, "%s %s exists: add --force to replace it", option, path);
}

int ch_out_partial_name(const char *path, char *out, size_t outsz) {
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    const char *base = path + dirlen;
    if (!*base) CH_FAIL(CH_EARG, "%s: an output file needs a name, not a directory", path);
    if (snprintf(out, outsz, "%.*s.%s.partial", dirlen, path, base) >= (int)outsz)
        CH_FAIL(CH_EARG, "path too long: %s", path);
    return 0;
}

/* fsync of a file or directory by name; a file system that cannot sync a directory is fine. */
static int sync_path(const char *p, int dir) {
    int fd = open(p, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return dir ? 0 : -1;
    int bad = fsync(fd) && !(dir && (errno == EINVAL || errno == EBADF));
    close(fd);
    return bad ? -1 : 0;
}

int ch_out_publish(const char *partial, const char *path) {
    if (sync_path(partial, 0))
        CH_FAIL(CH_EIO, "%s: cannot flush the finished output to disk: %s", partial, strerror(errno));
    ch_out_kill_point("publish");
    if (rename(partial, path))
        CH_FAIL(CH_EIO, "%s: cannot rename the finished output onto %s: %s", partial, path, strerror(errno));
    char dir[PATHMAX];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    (void)sync_path(dir, 1); /* the rename itself on disk; nothing to report if it cannot be */
    return 0;
}

void ch_out_discard(const char *partial) {
    if (partial && *partial) (void)unlink(partial);
}

int ch_out_seal_publish(const char *partial, const char *path) {
    int rc = ch_h5_seal(partial);
    if (!rc) rc = ch_out_publish(partial, path);
    if (rc) ch_out_discard(partial);
    return rc;
}

void ch_out_kill_point(const char *point) {
    static int hits;
    const char *at = getenv("CAPHEADS_TEST_KILL_AT");
    size_t n = strlen(point);
    if (!at || strncmp(at, point, n) || (at[n] && at[n] != ':')) return;
    int want = at[n] == ':' ? atoi(at + n + 1) : 1;
    if (++hits >= want) raise(SIGKILL);
}
