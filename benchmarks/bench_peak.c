/* bench_peak.c - this CPU's arithmetic peak for the instructions capheads' CPU Linears run on:
 * VFMADD231PS (the f32 path: OpenBLAS's SGEMM) and VDPBF16PS (the bf16 path without AMX:
 * kernels/cpu_avx512bf16.c), 512 bits wide where the CPU has AVX-512, else 256-bit FMA.
 * usage: bench_peak [THREADS [SECONDS]]
 * Prints "f32_gflops X" and "bf16_gflops Y" (Y 0 without AVX512-BF16), each the best of three
 * timed runs of THREADS threads (default: OpenMP's count) of independent multiply-adds.
 * bench_prefill.py runs it in the same session as the engines, so its tables can say what share
 * of this CPU's peak each engine reaches and how far above a peer any engine could be here. AMX
 * is not measured: on an AMX CPU the bf16 figure is not the ceiling. */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cpu_features.h"

/* 16 chains: more than latency x issue rate on any current core (4 x 2), so the units never wait */
#define CHAINS 16

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Each returns a value from every chain so that the compiler keeps the work. */
__attribute__((target("avx512f"))) static float fma512(long iters) {
    __m512 acc[CHAINS], a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
#pragma GCC unroll 16
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 16 /* keeps the chains in registers: a chain through memory is latency-bound */
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    __m512 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma256(long iters) {
    __m256 acc[CHAINS], a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
#pragma GCC unroll 16
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 16 /* keeps the chains in registers: a chain through memory is latency-bound */
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    __m256 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm256_add_ps(s, acc[c]);
    float v[8];
    _mm256_storeu_ps(v, s);
    return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}

__attribute__((target("avx512f,avx512bf16"))) static float dpbf16(long iters) {
    __m512 acc[CHAINS];
    __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
    __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
#pragma GCC unroll 16
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 16 /* keeps the chains in registers: a chain through memory is latency-bound */
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
    __m512 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
    return _mm512_reduce_add_ps(s);
}

/* kind 0: f32 FMA, 1: bf16 dot products. FLOPs per instruction: lanes x 2 (f32), x 4 (bf16:
 * two products and two adds per f32 lane). */
static double flops_per_insn(int kind, int wide) { return kind ? 64.0 : wide ? 32.0 : 16.0; }

static float run(int kind, int wide, long iters) {
    return kind ? dpbf16(iters) : wide ? fma512(iters) : fma256(iters);
}

/* Best of three runs of `threads` threads for about `seconds` each, in GFLOP/s. */
static double measure(int kind, int wide, int threads, double seconds) {
    volatile float sink = 0;
    long iters = 1 << 14;
    for (;;) { /* calibrate on one thread: iterations for about `seconds` */
        double t0 = now();
        sink += run(kind, wide, iters);
        double dt = now() - t0;
        if (dt > seconds / 4) {
            iters = (long)(iters * seconds / dt);
            break;
        }
        iters *= 2;
    }
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        float sum = 0;
        double t0 = now();
#pragma omp parallel num_threads(threads) reduction(+ : sum)
        sum += run(kind, wide, iters);
        double dt = now() - t0;
        sink += sum;
        double g = flops_per_insn(kind, wide) * CHAINS * (double)iters * threads / dt * 1e-9;
        if (g > best) best = g;
    }
    return best;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    double seconds = argc > 2 ? atof(argv[2]) : 0.5;
    if (threads < 1 || !(seconds > 0)) {
        fprintf(stderr, "usage: bench_peak [THREADS [SECONDS]]\n");
        return 2;
    }
    const ch_cpu_features *f = ch_cpu_features_get();
    char cpu[256];
    ch_cpu_describe(cpu, sizeof cpu);
    printf("cpu %s\nthreads %d\n", cpu, threads);
    if (!f->avx2) {
        fprintf(stderr, "bench_peak: the CPU has no AVX2+FMA: nothing to measure\n");
        return 1;
    }
    printf("f32_insn %s\n", f->avx512 ? "vfmadd231ps zmm" : "vfmadd231ps ymm");
    printf("f32_gflops %.1f\n", measure(0, f->avx512, threads, seconds));
    printf("bf16_insn %s\n", f->avx512bf16 ? "vdpbf16ps zmm" : "none");
    printf("bf16_gflops %.1f\n", f->avx512bf16 ? measure(1, 1, threads, seconds) : 0.0);
    return 0;
}
