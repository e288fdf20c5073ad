/* test_rand.h - reproducible random numbers for the CPU suites: xorshift64, one state per file. */
#ifndef CH_TESTS_RAND_H
#define CH_TESTS_RAND_H

/* uniform in [-1, 1); *s must not be 0 */
static inline float ch_test_frand(unsigned long long *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((*s >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

#endif
