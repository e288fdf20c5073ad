/* safetensors.h - memory-mapped reader for Hugging Face safetensors checkpoints.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}
 * then the byte buffer; offsets are relative to the start of the buffer. The reader validates
 * everything before handing out a pointer: header length within the file, JSON well formed,
 * dtype known, shape x dtype size == end - begin, offsets inside the buffer, no two tensors
 * overlapping. A model directory holds either model.safetensors or shards listed by
 * model.safetensors.index.json ({"weight_map": {"tensor": "model-00001-of-00002.safetensors"}});
 * ch_st_open_dir handles both and exposes one flat tensor namespace. */
#ifndef CH_SAFETENSORS_H
#define CH_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

#define CH_ST_MAXDIM 8

typedef struct {
    const char *name;   /* owned by the checkpoint */
    ch_dtype dtype;
    int ndim;
    int64_t shape[CH_ST_MAXDIM];
    size_t nbytes;
    const void *data;   /* points into the read-only mapping; may be unaligned for its dtype */
    const char *file;   /* path of the file that holds it (for messages) */
} ch_st_tensor;

typedef struct ch_st_file ch_st_file;   /* one mapped .safetensors file */
typedef struct ch_st_dir ch_st_dir;     /* a model directory: one file or an index + shards */

/* Open and validate one file. Errors (CH_EIO, CH_EFORMAT) name the path and the tensor. */
int ch_st_file_open(const char *path, ch_st_file **out);
void ch_st_file_close(ch_st_file *f);
int ch_st_file_count(const ch_st_file *f);
const ch_st_tensor *ch_st_file_tensor(const ch_st_file *f, int i);

/* Open a model directory (model.safetensors, or model.safetensors.index.json + every shard it
 * names; a missing shard is CH_EINCOMPLETE naming the shard and one tensor that lives in it). */
int ch_st_open_dir(const char *dir, ch_st_dir **out);
void ch_st_close_dir(ch_st_dir *d);
/* NULL when absent (no error set). */
const ch_st_tensor *ch_st_find(const ch_st_dir *d, const char *name);
int ch_st_count(const ch_st_dir *d);
/* The checkpoint files the directory was opened from, in the order opened (one, or the shards). */
int ch_st_dir_nfiles(const ch_st_dir *d);
const char *ch_st_dir_file(const ch_st_dir *d, int i);
const ch_st_tensor *ch_st_tensor_at(const ch_st_dir *d, int i);
/* Look up a tensor and check its dtype is a float type and its shape equals the expected one;
 * errors name the file, the tensor, and both shapes. ndim <= 2 in practice. */
int ch_st_get(const ch_st_dir *d, const char *name, int ndim, const int64_t *shape,
              const ch_st_tensor **out);


#endif
