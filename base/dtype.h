/* dtype.h - the element types of checkpoints and device tensors. */
#ifndef CH_DTYPE_H
#define CH_DTYPE_H

#include <stddef.h>

typedef enum { CH_DT_F32 = 0, CH_DT_F16, CH_DT_BF16, CH_DT_I32, CH_DT_I64, CH_DT_U8 } ch_dtype;

size_t ch_dtype_size(ch_dtype dt);         /* 0 for a value outside the enum */
const char *ch_dtype_name(ch_dtype dt);    /* "F32", "BF16", ... as in safetensors */
int ch_dtype_parse(const char *name, ch_dtype *out); /* 1 when name is one of those names */

/* The scalar conversions (ch_bf16_to_f32, ch_f16_to_f32, ch_f32_to_f16, ch_f32_to_bf16) are the
 * inline functions of numfmt.h, shared with the CUDA kernels. */
/* Convert n elements of a float tensor (F32/F16/BF16) to f32. src need not be aligned (tensor
 * data in a mapping is only as aligned as the header length makes it). */
void ch_convert_to_f32(const void *src, ch_dtype dt, size_t n, float *dst);

#endif
