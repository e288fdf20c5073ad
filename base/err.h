/* err.h - the one error facility of capheads.
 *
 * Library functions return an int status (0 = ok, otherwise one of ch_errcode) and record a
 * human message naming the file and the place. The message lives in thread-local storage, like
 * errno: it is the only per-thread state in the library and is never shared between threads.
 * Library code never prints and never exits; the CLI prints ch_err_msg() and maps the code to an
 * exit status with ch_err_exit_status(). */
#ifndef CH_ERR_H
#define CH_ERR_H

#include <stddef.h>

typedef enum {
    CH_OK = 0,
    CH_EARG,         /* bad command line or API argument */
    CH_EIO,          /* open/read/write/mmap failed */
    CH_EFORMAT,      /* malformed input file (JSON, safetensors, CSV, archive) */
    CH_EUNSUPPORTED, /* well-formed but not implemented (architecture, config value, dtype) */
    CH_ENOMEM,       /* allocation failed */
    CH_EMPI,         /* an MPI call failed */
    CH_EHDF5,        /* an HDF5 call failed */
    CH_EDEVICE,      /* a compute device's runtime call failed (CUDA, cuBLAS, ...) */
    CH_EMISMATCH,    /* inputs that must agree do not (resume into another model's archive, ...) */
    CH_EINCOMPLETE,  /* data is missing (incomplete archive rows, missing shard) */
    CH_EINTERNAL,    /* a bug: an invariant did not hold */
    CH_EBUSY         /* another run holds the output (its lock is live or stale) */
} ch_errcode;

/* Record a message (printf format) for the calling thread and return code. file/line are kept
 * for debugging (shown when CAPHEADS_DEBUG is set in the environment by the CLI). */
int ch_err_set(int code, const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Prepend context to the current message ("reading model dir X: " + old message); returns the
 * current code. Use when a low-level failure needs the caller's point of view. */
int ch_err_wrap(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
const char *ch_err_msg(void);
int ch_err_code(void);
const char *ch_err_where(void); /* "file.c:123" of the ch_err_set call */
void ch_err_clear(void);
const char *ch_err_name(int code);
int ch_err_exit_status(int code); /* process exit status for a code (0 for CH_OK) */

#define CH_FAIL(code, ...) return ch_err_set((code), __FILE__, __LINE__, __VA_ARGS__)
#define CH_TRY(expr)                                                                              \
    do {                                                                                          \
        int ch_rc_ = (expr);                                                                      \
        if (ch_rc_) return ch_rc_;                                                                \
    } while (0)
/* Jump to a cleanup label instead of returning (for functions that own resources). The
 * function must declare `int rc = 0;`. */
#define CH_TRY_GOTO(expr, label)                                                                  \
    do {                                                                                          \
        rc = (expr);                                                                              \
        if (rc) goto label;                                                                       \
    } while (0)
#define CH_FAIL_GOTO(label, code, ...)                                                            \
    do {                                                                                          \
        rc = ch_err_set((code), __FILE__, __LINE__, __VA_ARGS__);                                 \
        goto label;                                                                               \
    } while (0)

/* Checked allocation: sets CH_ENOMEM with the size on failure. */
int ch_malloc(void **out, size_t bytes, const char *what);
int ch_calloc(void **out, size_t n, size_t size, const char *what);
#define CH_ALLOC(ptr, n, what) ch_calloc((void **)&(ptr), (size_t)(n), sizeof(*(ptr)), (what))

#endif
