/* capability.c - the capability names as an array, and lookup by name. */
#include <string.h>

#include "capability.h"

const char *const ch_capability_names[CH_NCAP] = {CH_CAP_FIRST CH_CAP_REST(CH_CAP_ELEM_)};

int ch_capability_index(const char *name) {
    for (int i = 0; i < CH_NCAP; i++)
        if (name && !strcmp(name, ch_capability_names[i])) return i;
    return -1;
}
