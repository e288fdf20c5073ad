/* backend.c - choose a compute backend by name. */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

int ch_backend_create(const char *name, int threads, ch_backend **out) {
    *out = NULL;
    if (!name || !*name) name = getenv("CAPHEADS_BACKEND");
    if (!name || !*name) name = "auto";
    if (strcmp(name, "cpu") == 0) return ch_backend_cpu_create(threads, out);
    if (strcmp(name, "cuda") == 0) return ch_backend_cuda_create(-1, out);
    if (strcmp(name, "auto") == 0) {
        /* a GPU that exists but fails is an error to report, not a reason to fall back */
        int rc = ch_backend_cuda_create(-1, out);
        if (rc != CH_EUNSUPPORTED) return rc;
        ch_err_clear();
        return ch_backend_cpu_create(threads, out);
    }
    CH_FAIL(CH_EARG, "unknown backend '%s' (expected cpu, cuda or auto)", name);
}
