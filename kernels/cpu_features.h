/* cpu_features.h - what this CPU can run, from CPUID and the OS's register-state bits (XGETBV),
 * never from a list of CPU models; and OpenBLAS's kernels made to match it.
 *
 * OpenBLAS (DYNAMIC_ARCH builds, as Debian's) picks its kernels once, in its load-time
 * constructor, from OPENBLAS_CORETYPE or else from its own table of CPU models. A CPU newer than
 * that table gets a generic core - "Prescott", SSE3 kernels - on a machine with AVX2 or AVX-512:
 * SGEMM several times slower. capheads therefore checks, before anything else runs
 * (ch_cpu_blas_fix, first thing in main), which kernel tier OpenBLAS chose against the tier the
 * CPU's features allow, and when OpenBLAS fell short it runs the program once more (execv of
 * /proc/self/exe, same argv) with OPENBLAS_CORETYPE set to the best core for the features:
 *   AVX-512 F/BW/VL/DQ/CD with the OS's ZMM state   Cooperlake (with AVX512-BF16), else SkylakeX
 *   AVX2 + FMA with the OS's YMM state              Zen (AMD), else Haswell
 *   AVX with the OS's YMM state                     Sandybridge
 * (older OpenBLAS builds without a name fall to the next one down). CAPHEADS_BLAS_FIXED, set in
 * the new process, records what OpenBLAS had chosen and stops a second round.
 *
 * CAPHEADS_BLAS_FIX chooses:
 *   auto (default)  correct OpenBLAS's own choice; an OPENBLAS_CORETYPE the user set is respected,
 *                   with a warning when it names a core below the CPU's tier on an AVX2 CPU
 *   force           also correct a user-set OPENBLAS_CORETYPE below the CPU's tier, as if
 *                   OpenBLAS's fallback had set it (site environments that pin a generic core;
 *                   and the test that proves the correction on any AVX2 machine)
 *   off             never re-execute (the backend's info string still names the core) */
#ifndef CH_CPU_FEATURES_H
#define CH_CPU_FEATURES_H

#include <stddef.h>

typedef struct {
    char vendor[13];   /* "GenuineIntel", "AuthenticAMD", ... */
    int family, model; /* for the record only (logs, benchmark tables): nothing is chosen by them */
    int avx;           /* AVX, OS saves YMM */
    int avx2;          /* AVX2 + FMA, OS saves YMM */
    int avx512;        /* AVX-512 F, BW, VL, DQ, CD, OS saves ZMM and opmasks */
    int avx512bf16;    /* avx512 + AVX512_BF16 (vdpbf16ps) */
    int amx_bf16;      /* CPUID says AMX-BF16 (whether this process may use it: ch_amx_usable) */
} ch_cpu_features;

/* This CPU's features (cached after the first call; thread-safe enough: same answer each time). */
const ch_cpu_features *ch_cpu_features_get(void);

/* Kernel tiers: 0 SSE only, 1 AVX, 2 AVX2+FMA, 3 AVX-512. */
int ch_cpu_tier(const ch_cpu_features *f);
/* The tier of an OpenBLAS core name (case-insensitive), -1 for a name this table does not know
 * (then it is left alone). */
int ch_cpu_blas_core_tier(const char *core);
/* The core OpenBLAS runs (openblas_get_corename), e.g. "Cooperlake". */
const char *ch_cpu_blas_core(void);

/* The check described above; call it first in main, before MPI_Init and before any thread is
 * started. Returns when nothing is to be done (or execv failed: a warning, and the run goes on
 * with OpenBLAS's choice); otherwise the process image is replaced. */
void ch_cpu_blas_fix(char **argv);

/* "OpenBLAS SkylakeX (set by capheads: OpenBLAS chose Prescott)", or a warning when the core is
 * below the CPU's tier. */
void ch_cpu_blas_describe(char *buf, size_t len);
/* "AuthenticAMD family 25 model 17: AVX2 AVX-512 AVX512-BF16" */
void ch_cpu_describe(char *buf, size_t len);

#endif
