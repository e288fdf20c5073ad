/* capability.c - the five capabilities of the method, in the order every file uses. */
#include <string.h>

#include "archive.h"

const char *const ch_capability_names[CH_NCAP] = {"math", "reading", "commonsense", "science",
                                                  "professional"};

int ch_capability_index(const char *name) {
    for (int i = 0; i < CH_NCAP; i++)
        if (name && !strcmp(name, ch_capability_names[i])) return i;
    return -1;
}
