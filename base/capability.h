/* capability.h - the five capabilities of the method, named once, in the order every file uses.
 *
 * The names are written only here, as string literals, so that the comma list of messages and
 * the JSON list stored in archives and probe files are compile-time strings built from them. */
#ifndef CH_CAPABILITY_H
#define CH_CAPABILITY_H

#define CH_NCAP 5
#define CH_CAP_FIRST "math"
#define CH_CAP_REST(X) X("reading") X("commonsense") X("science") X("professional")

#define CH_CAP_ELEM_(s) , s
#define CH_CAP_COMMA_(s) ", " s
#define CH_CAP_JSONQ_(s) ",\"" s "\""
/* "math, reading, commonsense, science, professional" */
#define CH_CAP_LIST CH_CAP_FIRST CH_CAP_REST(CH_CAP_COMMA_)
/* ["math","reading","commonsense","science","professional"] */
#define CH_CAP_JSON "[\"" CH_CAP_FIRST "\"" CH_CAP_REST(CH_CAP_JSONQ_) "]"

extern const char *const ch_capability_names[CH_NCAP];
/* Index of a capability name, -1 if it is not one of the five. */
int ch_capability_index(const char *name);

#endif
