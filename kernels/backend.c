/* backend.c - the registry of compute backends: choose one by name, check its table. */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* The registry's create takes the thread count; a GPU backend picks its device itself. */
static int cuda_create(int threads, ch_backend **out) {
    (void)threads;
    return ch_backend_cuda_create(-1, out);
}

#ifdef CAPHEADS_HAVE_CUDA
#define CUDA_COMPILED_IN 1
#else
#define CUDA_COMPILED_IN 0 /* kernels/cuda_stub.c: create says why */
#endif

/* In the order "auto" tries them: a device first, the CPU (always usable) last. */
static const ch_backend_reg backends[] = {
    {"cuda", cuda_create, CUDA_COMPILED_IN},
    {"cpu", ch_backend_cpu_create, 1},
};
enum { NBACKENDS = (int)(sizeof backends / sizeof backends[0]) };

const ch_backend_reg *ch_backend_registry(int *n) {
    *n = NBACKENDS;
    return backends;
}

int ch_backend_check(const ch_backend *be) {
    const char *missing = NULL;
#define REQUIRED(entry)                                                                           \
    if (!missing && !be->entry) missing = #entry;
    REQUIRED(name) REQUIRED(mem_name)
    /* device and stream */
    REQUIRED(alloc) REQUIRED(free) REQUIRED(upload) REQUIRED(download) REQUIRED(sync)
    REQUIRED(host_alloc) REQUIRED(host_free) REQUIRED(download_async) REQUIRED(event_create)
    REQUIRED(event_destroy) REQUIRED(event_record) REQUIRED(event_wait)
    /* compute ops (gemm_workspace, mlp and, above, mem_info are optional) */
    REQUIRED(load_weight) REQUIRED(free_weight) REQUIRED(embed) REQUIRED(gemm) REQUIRED(add_bias)
    REQUIRED(rmsnorm) REQUIRED(rope) REQUIRED(attention) REQUIRED(swiglu) REQUIRED(geglu) REQUIRED(scale)
    REQUIRED(add) REQUIRED(pool)
    REQUIRED(destroy)
#undef REQUIRED
    if (missing)
        CH_FAIL(CH_EINTERNAL, "backend '%s' leaves the required entry '%s' of its table unset",
                be->name ? be->name : "?", missing);
    return 0;
}

static int create_checked(const ch_backend_reg *r, int threads, ch_backend **out) {
    CH_TRY(r->create(threads, out));
    int rc = ch_backend_check(*out);
    if (rc) {
        if ((*out)->destroy) (*out)->destroy(*out);
        *out = NULL;
    }
    return rc;
}

int ch_backend_create(const char *name, int threads, ch_backend **out) {
    *out = NULL;
    if (!name || !*name) name = getenv("CAPHEADS_BACKEND");
    if (!name || !*name) name = "auto";
    int is_auto = strcmp(name, "auto") == 0;
    for (int i = 0; i < NBACKENDS; i++) {
        if (!is_auto && strcmp(name, backends[i].name)) continue;
        int rc = create_checked(&backends[i], threads, out);
        /* auto: unsupported here (not built, no device) means the next one */
        if (!is_auto || rc != CH_EUNSUPPORTED || i == NBACKENDS - 1) return rc;
        ch_err_clear();
    }
    char names[256] = "";
    size_t len = 0;
    for (int i = 0; i < NBACKENDS && len < sizeof names; i++)
        len += (size_t)snprintf(names + len, sizeof names - len, "%s, ", backends[i].name);
    CH_FAIL(CH_EARG, "unknown backend '%s' (expected %sor auto)", name, names);
}
