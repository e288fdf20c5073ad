/* outpath.h - a stage's outputs may never land on its inputs, nor on each other.
 *
 * A stage names every path it reads and every path it will write, each with the option that
 * gave it, and calls ch_paths_check before it opens anything for writing. An output is refused
 * (CH_EARG, naming both paths and both options) when it
 *   - is an input (the same file, however spelt: links and "./a/../a" resolve to one identity),
 *   - is a file inside an input directory (a model directory: its weights, config, tokenizer),
 *   - is a directory that holds an input (select --output DIR over the pool it reads),
 *   - or is another output of the same run.
 * Paths that do not exist yet are compared by their resolved parent directory and name. */
#ifndef CH_OUTPATH_H
#define CH_OUTPATH_H

#include <stddef.h>

typedef struct {
    const char *path;   /* NULL or "": skipped */
    const char *option; /* "--input", "--model", ... (for the message) */
    int is_dir;         /* an output that is a directory the stage writes files into */
} ch_path_role;

int ch_paths_check(const ch_path_role *inputs, int nin, const ch_path_role *outputs, int nout);

/* An existing output is replaced only when the user asked (--force): CH_EARG naming the path and
 * the option otherwise. A directory output counts as existing when it holds anything. */
int ch_out_may_replace(const char *path, const char *option, int force);

/* The name an output is written under until it is complete: DIR/.NAME.partial, a hidden sibling
 * in the same directory (so the rename that publishes it is atomic), the same on every rank and
 * in every run, so a resumed run finds it. */
int ch_out_partial_name(const char *path, char *out, size_t outsz);
/* Publish a finished output: flush it to disk, rename it onto PATH (replacing an older one in
 * one step), flush the directory. A reader sees the old complete file or the new complete one. */
int ch_out_publish(const char *partial, const char *path);
/* Remove an unfinished output (a missing one is fine): a failed stage leaves no partial file. */
void ch_out_discard(const char *partial);
/* Serial, for the small HDF5 outputs: seal (h5seal.h) and publish; discard on failure. */
int ch_out_seal_publish(const char *partial, const char *path);
/* Fault injection for tests/test_faults.sh: when CAPHEADS_TEST_KILL_AT is "POINT" or "POINT:N",
 * the process dies by SIGKILL at the first (N-th) time it passes this point, as a preempted job
 * dies: no cleanup, no close. Points: "start" (every stage, after its output checks), "write"
 * (part-way through the writing: a write round, a record, a task, a file of several),
 * "publish" (complete and flushed, just before the rename). */
void ch_out_kill_point(const char *point);

#endif
