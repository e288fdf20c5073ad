/* cpu_features.c - CPU features from CPUID/XGETBV, and OpenBLAS's core made to match them
 * (cpu_features.h). */
#include "cpu_features.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#define CH_X86 1
#endif

static ch_cpu_features feat;
static int feat_done;

const ch_cpu_features *ch_cpu_features_get(void) {
    if (feat_done) return &feat;
    ch_cpu_features f;
    memset(&f, 0, sizeof f);
#ifdef CH_X86
    unsigned a, b, c, d;
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        unsigned max = a;
        memcpy(f.vendor, &b, 4), memcpy(f.vendor + 4, &d, 4), memcpy(f.vendor + 8, &c, 4);
        __get_cpuid(1, &a, &b, &c, &d);
        unsigned fam = (a >> 8) & 0xf, mod = (a >> 4) & 0xf;
        if (fam == 0xf) fam += (a >> 20) & 0xff;
        if (fam == 6 || fam >= 0xf) mod |= ((a >> 16) & 0xf) << 4;
        f.family = (int)fam, f.model = (int)mod;
        int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
        unsigned xcr0 = 0;
        if (osxsave) {
            unsigned hi;
            __asm__ volatile("xgetbv" : "=a"(xcr0), "=d"(hi) : "c"(0));
            (void)hi;
        }
        int ymm = (xcr0 & 0x6u) == 0x6u, zmm = ymm && (xcr0 & 0xe0u) == 0xe0u;
        f.avx = avx && ymm;
        if (max >= 7) {
            unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0, t;
            __get_cpuid_count(7, 0, &a, &b7, &c7, &d7);
            unsigned sub = a;
            if (sub >= 1) __get_cpuid_count(7, 1, &a71, &t, &t, &t);
            f.avx2 = f.avx && fma && ((b7 >> 5) & 1);
            unsigned need512 = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31); /* F DQ CD BW VL */
            f.avx512 = f.avx2 && zmm && (b7 & need512) == need512;
            f.avx512bf16 = f.avx512 && ((a71 >> 5) & 1);
            f.amx_bf16 = ((d7 >> 22) & 1) && ((d7 >> 24) & 1);
        }
    }
#endif
    feat = f;
    feat_done = 1;
    return &feat;
}

int ch_cpu_tier(const ch_cpu_features *f) { return f->avx512 ? 3 : f->avx2 ? 2 : f->avx ? 1 : 0; }

/* OpenBLAS's x86-64 core names (driver/others/dynamic.c) by the widest vectors their kernels use.
 * A table of OpenBLAS's kernel sets, not of CPUs: what the CPU can run comes from CPUID. */
static const struct {
    const char *name;
    int tier;
} cores[] = {
    {"SapphireRapids", 3}, {"Cooperlake", 3}, {"SkylakeX", 3},
    {"Haswell", 2}, {"Zen", 2}, {"Excavator", 2},
    {"Sandybridge", 1}, {"Bulldozer", 1}, {"Piledriver", 1}, {"Steamroller", 1},
    {"Prescott", 0}, {"Core2", 0}, {"Penryn", 0}, {"Dunnington", 0}, {"Nehalem", 0}, {"Atom", 0},
    {"Katmai", 0}, {"Coppermine", 0}, {"Northwood", 0}, {"Banias", 0}, {"Athlon", 0}, {"Opteron", 0},
    {"Opteron(SSE3)", 0}, {"Barcelona", 0}, {"Nano", 0}, {"Bobcat", 0}, {"Unknown", 0}, {"Generic", 0},
};

int ch_cpu_blas_core_tier(const char *core) {
    if (!core) return -1;
    for (size_t i = 0; i < sizeof cores / sizeof cores[0]; i++)
        if (!strcasecmp(core, cores[i].name)) return cores[i].tier;
    return -1;
}

const char *ch_cpu_blas_core(void) {
    const char *c = openblas_get_corename();
    return c && *c ? c : "unknown";
}

/* The cores to ask for, best first, for these features; NULL-terminated. */
static int candidates(const ch_cpu_features *f, const char **out) {
    int n = 0;
    if (f->avx512) {
        if (f->avx512bf16) out[n++] = "Cooperlake";
        out[n++] = "SkylakeX";
    }
    if (f->avx2) {
        if (!strcmp(f->vendor, "AuthenticAMD") || !strcmp(f->vendor, "HygonGenuine")) out[n++] = "Zen";
        out[n++] = "Haswell";
    }
    if (f->avx) out[n++] = "Sandybridge";
    out[n] = NULL;
    return n;
}

static const char *tier_name(int t) { return t >= 3 ? "AVX-512" : t == 2 ? "AVX2" : t == 1 ? "AVX" : "SSE"; }

/* Warnings before MPI_Init: rank 0 only, as the launchers number the ranks. */
static int first_rank(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v) == 0;
    }
    return 1;
}

void ch_cpu_blas_fix(char **argv) {
    const ch_cpu_features *f = ch_cpu_features_get();
    const char *mode = getenv("CAPHEADS_BLAS_FIX");
    if (!mode || !*mode) mode = "auto";
    int force = !strcmp(mode, "force");
    if (!strcmp(mode, "off") || !strcmp(mode, "0")) return;
    if (!force && strcmp(mode, "auto")) {
        if (first_rank())
            fprintf(stderr, "capheads: warning: CAPHEADS_BLAS_FIX=%s is not auto, force or off; using auto\n", mode);
    }
    const char *core = ch_cpu_blas_core();
    int cpu = ch_cpu_tier(f), have = ch_cpu_blas_core_tier(core);
    if (have < 0 || have >= cpu || cpu < 1) return; /* unknown name (left alone), or good enough */
    const char *user = getenv("OPENBLAS_CORETYPE"), *fixed = getenv("CAPHEADS_BLAS_FIXED");
    const char *cand[8];
    int nc = candidates(f, cand);
    if (fixed) {
        /* a second round: the name we set was unknown to this OpenBLAS, try the next one down */
        const char *tried = user ? user : "";
        int i = 0;
        while (i < nc && strcasecmp(cand[i], tried)) i++;
        if (i + 1 >= nc) {
            if (first_rank())
                fprintf(stderr, "capheads: warning: OpenBLAS runs its %s kernels on a CPU with %s (no better core of "
                        "this OpenBLAS took)\n", core, tier_name(cpu));
            return;
        }
        cand[0] = cand[i + 1];
    } else if (user && *user && !force) {
        if (cpu >= 2 && first_rank())
            fprintf(stderr, "capheads: warning: OPENBLAS_CORETYPE=%s runs OpenBLAS's %s kernels (%s) on a CPU with %s;"
                    " unset it (or CAPHEADS_BLAS_FIX=force) for %s\n", user, core, tier_name(have), tier_name(cpu),
                    cand[0]);
        return;
    }
    if (nc == 0) return;
    char exe[4096], note[160];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        if (first_rank()) fprintf(stderr, "capheads: warning: OpenBLAS chose %s on a CPU with %s, and /proc/self/exe "
                                  "cannot be read to restart with %s\n", core, tier_name(cpu), cand[0]);
        return;
    }
    exe[n] = '\0';
    /* what OpenBLAS had chosen, kept across the rounds for the info string */
    snprintf(note, sizeof note, "%s", fixed ? fixed : core);
    setenv("CAPHEADS_BLAS_FIXED", note, 1);
    setenv("OPENBLAS_CORETYPE", cand[0], 1);
    fflush(stdout), fflush(stderr);
    execv(exe, argv);
    if (first_rank()) perror("capheads: warning: restarting with a better OpenBLAS core failed (execv)");
}

void ch_cpu_blas_describe(char *buf, size_t len) {
    const ch_cpu_features *f = ch_cpu_features_get();
    const char *core = ch_cpu_blas_core(), *fixed = getenv("CAPHEADS_BLAS_FIXED");
    int cpu = ch_cpu_tier(f), have = ch_cpu_blas_core_tier(core);
    if (fixed)
        snprintf(buf, len, "OpenBLAS %s (set by capheads, not %s)", core, fixed);
    else if (have >= 0 && have < cpu && cpu >= 2)
        snprintf(buf, len, "OpenBLAS %s (%s kernels on a CPU with %s)", core, tier_name(have), tier_name(cpu));
    else
        snprintf(buf, len, "OpenBLAS %s", core);
}

void ch_cpu_describe(char *buf, size_t len) {
    const ch_cpu_features *f = ch_cpu_features_get();
    snprintf(buf, len, "%s family %d model %d:%s%s%s%s%s", f->vendor[0] ? f->vendor : "unknown CPU", f->family,
             f->model, f->avx2 ? " AVX2" : f->avx ? " AVX" : " no AVX", f->avx512 ? " AVX-512" : "",
             f->avx512bf16 ? " AVX512-BF16" : "", f->amx_bf16 ? " AMX-BF16" : "", "");
}
