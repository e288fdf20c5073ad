/* golden_ref.h - reading the golden files of tests/golden/models (expected.safetensors, made by
 * make_model_golden.py) and comparing pooled captures with them; shared by the CPU golden test and
 * the GPU one (header-only: test code). */
#ifndef CH_TESTS_GOLDEN_REF_H
#define CH_TESTS_GOLDEN_REF_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "safetensors.h"

/* Tensor NAME.i of the expected file (Check-aborts when missing); shape0 gets its first dim. */
static inline const float *golden_tensor(const ch_st_file *f, const char *name, int i, int64_t *shape0) {
    char full[64];
    snprintf(full, sizeof full, "%s.%d", name, i);
    for (int k = 0; k < ch_st_file_count(f); k++) {
        const ch_st_tensor *t = ch_st_file_tensor(f, k);
        if (!strcmp(t->name, full)) {
            if (shape0) *shape0 = t->shape[0];
            return t->data;
        }
    }
    ck_abort_msg("expected.safetensors has no tensor %s", full);
    return NULL;
}
/* got is [L][W] pooled; ref is [T][L][W] per token, pooled here in double */
static inline double golden_err(const float *got, const float *ref, int T, int L, int W, ch_pool pool) {
    double worst = 0;
    for (int l = 0; l < L; l++) {
        double maxref = 0, maxerr = 0;
        for (int j = 0; j < W; j++) {
            double r = 0;
            if (pool == CH_POOL_LAST)
                r = ref[((size_t)(T - 1) * L + l) * W + j];
            else {
                for (int t = 0; t < T; t++)
                    r += ref[((size_t)t * L + l) * W + j];
                r /= T;
            }
            double e = fabs(got[(size_t)l * W + j] - r);
            if (isnan(got[(size_t)l * W + j])) e = INFINITY;
            maxref = fabs(r) > maxref ? fabs(r) : maxref;
            maxerr = e > maxerr ? e : maxerr;
        }
        double rel = maxerr / (maxref > 0 ? maxref : 1);
        worst = rel > worst ? rel : worst;
    }
    return worst;
}
#endif
