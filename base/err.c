/* err.c - thread-local error message, see err.h. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CH_ERR_MAX 2048

typedef struct {
    int code;
    char msg[CH_ERR_MAX];
    char where[256];
} err_state;

static _Thread_local err_state st;

int ch_err_set(int code, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st.msg, sizeof st.msg, fmt, ap);
    va_end(ap);
    const char *base = file ? strrchr(file, '/') : NULL;
    snprintf(st.where, sizeof st.where, "%s:%d", base ? base + 1 : (file ? file : "?"), line);
    st.code = code;
    return code;
}

int ch_err_wrap(const char *fmt, ...) {
    char prefix[CH_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t pl = n < 0 ? 0 : ((size_t)n < sizeof prefix ? (size_t)n : sizeof prefix - 1);
    size_t ol = strlen(st.msg);
    if (pl + ol >= CH_ERR_MAX) ol = CH_ERR_MAX - 1 - pl; /* keep the context, cut the tail */
    memmove(st.msg + pl, st.msg, ol);
    memcpy(st.msg, prefix, pl);
    st.msg[pl + ol] = 0;
    return st.code ? st.code : CH_EINTERNAL;
}

const char *ch_err_msg(void) { return st.msg[0] ? st.msg : "no error"; }
int ch_err_code(void) { return st.code; }
const char *ch_err_where(void) { return st.where; }
void ch_err_clear(void) {
    st.code = 0;
    st.msg[0] = 0;
    st.where[0] = 0;
}

const char *ch_err_name(int code) {
    static const char *names[] = {"ok",      "argument", "io",       "format",
                                  "unsupported", "memory", "mpi",   "hdf5",
                                  "device",  "mismatch", "incomplete", "internal", "busy"};
    if (code < 0 || code > CH_EBUSY) return "unknown";
    return names[code];
}

/* Exit statuses: 1 generic, 2 usage, 3 bad input data, 4 unsupported, 5 system resource. */
int ch_err_exit_status(int code) {
    switch (code) {
    case CH_OK: return 0;
    case CH_EARG: return 2;
    case CH_EFORMAT:
    case CH_EMISMATCH:
    case CH_EINCOMPLETE: return 3;
    case CH_EUNSUPPORTED: return 4;
    case CH_EIO:
    case CH_ENOMEM: return 5;
    case CH_EBUSY: return 6;
    default: return 1;
    }
}

int ch_malloc(void **out, size_t bytes, const char *what) {
    *out = malloc(bytes ? bytes : 1);
    if (!*out)
        return ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory allocating %zu bytes for %s",
                          bytes, what);
    return 0;
}

int ch_calloc(void **out, size_t n, size_t size, const char *what) {
    if (size && n > (size_t)-1 / size)
        return ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "size overflow allocating %zu x %zu for %s",
                          n, size, what);
    *out = calloc(n ? n : 1, size ? size : 1);
    if (!*out)
        return ch_err_set(CH_ENOMEM, __FILE__, __LINE__, "out of memory allocating %zu bytes for %s",
                          n * size, what);
    return 0;
}
