/* probe_format.h - the corpus side of the format-only baseline (src/probe_format.c); the
 * per-text features are ch_probe_text_features in probe.h. */
#ifndef CH_PROBE_FORMAT_H
#define CH_PROBE_FORMAT_H

#include <stdint.h>

/* Stream the JSONL corpus and fill feat [n][CH_PROBE_NFEAT] for the rows i with keep[i], matched
 * by id (ids[i]); ntok [n] the archive's token counts. A kept row whose id the corpus lacks is
 * CH_EFORMAT naming the corpus and the id; a bad line is "corpus:line: ...". */
int ch_probe_corpus_features(const char *corpus, char *const *ids, const uint8_t *keep, int64_t n,
                             const int32_t *ntok, float *feat);

#endif
