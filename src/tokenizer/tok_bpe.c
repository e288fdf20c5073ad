/* tok_bpe.c - vocabulary and merge tables, and the BPE merge loop.
 *
 * The merge loop follows Hugging Face `tokenizers` (models/bpe/word.rs): symbols in a doubly
 * linked list, candidate merges in a binary min-heap ordered by (rank, position), stale entries
 * skipped when popped. That makes a word of n bytes cost O(n log n), not O(n^2). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tok_internal.h"

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)n;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static uint32_t table_size(size_t n) {
    uint32_t s = 1024;
    while (s < 2 * n) s <<= 1;
    return s;
}

int tok_bpe_init_vocab(tok_bpe *b, int32_t n_ids, size_t total_bytes) {
    b->n_ids = n_ids;
    CH_TRY(ch_malloc((void **)&b->bytes, total_bytes, "vocabulary bytes"));
    CH_TRY(CH_ALLOC(b->off, n_ids, "vocabulary offsets"));
    CH_TRY(CH_ALLOC(b->len, n_ids, "vocabulary lengths"));
    for (int32_t i = 0; i < n_ids; i++) b->len[i] = UINT32_MAX;
    uint32_t sz = table_size((size_t)n_ids);
    CH_TRY(CH_ALLOC(b->vtab, sz, "vocabulary table"));
    memset(b->vtab, 0xff, sizeof(int32_t) * sz);
    b->vmask = sz - 1;
    for (int i = 0; i < 256; i++) b->byte_id[i] = b->fb_id[i] = -1;
    for (int i = 0; i < 128; i++) b->ascii_id[i] = -1;
    b->unk_id = -1;
    return 0;
}

int32_t tok_bpe_lookup(const tok_bpe *b, const char *s, size_t n) {
    uint32_t i = (uint32_t)hash_bytes(s, n) & b->vmask;
    for (;;) {
        int32_t id = b->vtab[i];
        if (id < 0) return -1;
        if (b->len[id] == n && memcmp(b->bytes + b->off[id], s, n) == 0) return id;
        i = (i + 1) & b->vmask;
    }
}

/* Insert id whose bytes are already stored at off/len. Returns the id already there for the
 * same bytes, or -1 when inserted. */
int32_t tok_bpe_insert(tok_bpe *b, int32_t id) {
    const char *s = b->bytes + b->off[id];
    size_t n = b->len[id];
    uint32_t i = (uint32_t)hash_bytes(s, n) & b->vmask;
    for (;;) {
        int32_t o = b->vtab[i];
        if (o < 0) {
            b->vtab[i] = id;
            if (n == 1) b->byte_id[(unsigned char)s[0]] = id;
            if (n == 1 && (unsigned char)s[0] < 128) b->ascii_id[(unsigned char)s[0]] = id;
            return -1;
        }
        if (b->len[o] == n && memcmp(b->bytes + b->off[o], s, n) == 0) return o;
        i = (i + 1) & b->vmask;
    }
}

static int merges_grow(tok_bpe *b) {
    uint32_t old = b->merges ? b->mmask + 1 : 0, sz = old ? old * 2 : 1u << 16;
    tok_merge *m = NULL;
    CH_TRY(CH_ALLOC(m, sz, "merge table"));
    for (uint32_t i = 0; i < sz; i++) m[i].key = UINT64_MAX;
    for (uint32_t j = 0; j < old; j++) {
        if (b->merges[j].key == UINT64_MAX) continue;
        uint32_t i = (uint32_t)hash_pair(b->merges[j].key) & (sz - 1);
        while (m[i].key != UINT64_MAX) i = (i + 1) & (sz - 1);
        m[i] = b->merges[j];
    }
    free(b->merges);
    b->merges = m, b->mmask = sz - 1;
    return 0;
}

int tok_bpe_add_merge(tok_bpe *b, int32_t left, int32_t right, uint32_t rank, int32_t result) {
    if (!b->merges) CH_TRY(merges_grow(b));
    uint64_t k = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    uint32_t i = (uint32_t)hash_pair(k) & b->mmask, probes = 0;
    while (b->merges[i].key != UINT64_MAX) {
        if (b->merges[i].key == k) return 0; /* HF keeps the first (lowest-rank) occurrence */
        i = (i + 1) & b->mmask;
        probes++;
    }
    b->merges[i] = (tok_merge){k, rank, result};
    /* ranks count the entries (from 0), so this keeps the load under 1/2 */
    if (rank * 2 + 2 > b->mmask || probes > 64) CH_TRY(merges_grow(b));
    return 0;
}

static inline int merge_find(const tok_bpe *b, int32_t left, int32_t right, uint32_t *rank, int32_t *nw) {
    if (!b->merges) return 0;
    uint64_t k = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    uint32_t i = (uint32_t)hash_pair(k) & b->mmask;
    for (;;) {
        const tok_merge *m = &b->merges[i];
        if (m->key == k) {
            *rank = m->rank, *nw = m->result;
            return 1;
        }
        if (m->key == UINT64_MAX) return 0;
        i = (i + 1) & b->mmask;
    }
}

void tok_bpe_free(tok_bpe *b) {
    free(b->bytes), free(b->off), free(b->len), free(b->vtab);
    free(b->merges);
    memset(b, 0, sizeof *b);
}

/* ---- the merge loop ------------------------------------------------------------------------- */
typedef struct {
    int32_t id, prev, next;
    uint32_t len; /* 0: merged into its left neighbour */
} sym_t;

typedef struct {
    uint32_t rank;
    int32_t pos, new_id;
} cand_t;

static inline int cand_less(const cand_t *a, const cand_t *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(cand_t *h, size_t *n, cand_t c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static cand_t heap_pop(cand_t *h, size_t *n) {
    cand_t top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        const cand_t *best = &last;
        if (l < m && cand_less(&h[l], best)) s = l, best = &h[l];
        if (r < m && cand_less(&h[r], best)) s = r;
        if (s == i) break;
        h[i] = h[s];
        i = s;
    }
    if (m) h[i] = last;
    return top;
}

int tok_push_id(tok_ctx *c, int32_t id) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        int32_t *p = realloc(c->ids, cap * sizeof *p);
        if (!p) CH_FAIL(CH_ENOMEM, "out of memory growing the token id buffer to %zu ids", cap);
        c->ids = p, c->cap = cap;
    }
    c->ids[c->n++] = id;
    return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (*cap >= need) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) CH_FAIL(CH_ENOMEM, "out of memory for the merge loop of a %zu-byte word", need);
    *p = q, *cap = c;
    return 0;
}

/* Short words (most of them): the same rule as the heap loop below (lowest rank first, leftmost
 * on ties) by scanning a rank array, which beats the heap for a handful of symbols. id[0..m) holds
 * the initial symbols and is overwritten. */
#define SMALL_WORD 24

static int small_merge(const tok_bpe *b, tok_ctx *c, int32_t *id, size_t m) {
    int32_t nw[SMALL_WORD];
    uint32_t rk[SMALL_WORD]; /* rank of merging symbol i with i+1; UINT32_MAX: none */
    for (size_t i = 0; i + 1 < m; i++)
        if (!merge_find(b, id[i], id[i + 1], &rk[i], &nw[i])) rk[i] = UINT32_MAX;
    while (m > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (rk[i] < rk[best]) best = i;
        if (rk[best] == UINT32_MAX) break;
        id[best] = nw[best];
        memmove(id + best + 1, id + best + 2, (m - best - 2) * sizeof *id);
        memmove(rk + best + 1, rk + best + 2, (m - best - 2) * sizeof *rk);
        memmove(nw + best + 1, nw + best + 2, (m - best - 2) * sizeof *nw);
        m--;
        if (best > 0 && !merge_find(b, id[best - 1], id[best], &rk[best - 1], &nw[best - 1]))
            rk[best - 1] = UINT32_MAX;
        if (best + 1 < m && !merge_find(b, id[best], id[best + 1], &rk[best], &nw[best])) rk[best] = UINT32_MAX;
    }
    for (size_t i = 0; i < m; i++) CH_TRY(tok_push_id(c, id[i]));
    return 0;
}

/* The heap loop over n initial symbols: ids(k) gives symbol k. */
static int heap_merge(const tok_bpe *b, tok_ctx *c, const char *s, const int32_t *init, size_t n) {
    if (n > INT32_MAX / 4) CH_FAIL(CH_EARG, "pre-token of %zu symbols is too long to encode", n);
    CH_TRY(grow(&c->sym, &c->sym_cap, n, sizeof(sym_t)));
    CH_TRY(grow(&c->heap, &c->heap_cap, 3 * n, sizeof(cand_t)));
    sym_t *sym = c->sym;
    cand_t *heap = c->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++)
        sym[i] = (sym_t){init ? init[i] : b->byte_id[(unsigned char)s[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, 1};
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t r;
        int32_t nw;
        if (merge_find(b, sym[i].id, sym[i + 1].id, &r, &nw)) heap_push(heap, &hn, (cand_t){r, (int32_t)i, nw});
    }
    while (hn) {
        cand_t top = heap_pop(heap, &hn);
        sym_t *a = &sym[top.pos];
        if (a->len == 0 || a->next < 0) continue;
        sym_t *bb = &sym[a->next];
        uint32_t r;
        int32_t nw;
        if (!merge_find(b, a->id, bb->id, &r, &nw) || nw != top.new_id) continue; /* stale */
        a->id = nw;
        a->len += bb->len;
        a->next = bb->next;
        bb->len = 0;
        if (a->next >= 0) sym[a->next].prev = top.pos;
        if (a->prev >= 0 && merge_find(b, sym[a->prev].id, a->id, &r, &nw))
            heap_push(heap, &hn, (cand_t){r, a->prev, nw});
        if (a->next >= 0 && merge_find(b, a->id, sym[a->next].id, &r, &nw))
            heap_push(heap, &hn, (cand_t){r, top.pos, nw});
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) CH_TRY(tok_push_id(c, sym[i].id));
    return 0;
}

/* Length of the UTF-8 character at s[0..n) (the text is valid UTF-8 after repair; a stray byte
 * counts as one). */
static inline size_t char_len(const unsigned char *s, size_t n) {
    size_t k = s[0] < 0xc0 ? 1 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
    return k <= n ? k : 1;
}

/* SP mode: the initial symbols of a word into c->init, as HF's BPE::merge_word makes them. */
static int sp_symbols(const tok_bpe *b, tok_ctx *c, const char *s, size_t n, size_t *m) {
    CH_TRY(grow((void **)&c->init, &c->init_cap, n + 1, sizeof(int32_t)));
    int32_t *out = c->init, unk = -1; /* unk: a pending unk symbol (fused while fuse_unk) */
    size_t k = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = char_len(u + i, n - i);
        int32_t id = len == 1 ? (u[i] < 128 ? b->ascii_id[u[i]] : -1) : tok_bpe_lookup(b, s + i, len);
        if (id >= 0) {
            if (unk >= 0) out[k++] = unk, unk = -1;
            out[k++] = id;
        } else {
            int fb = b->byte_fallback;
            for (size_t j = 0; fb && j < len; j++) fb = b->fb_id[u[i + j]] >= 0;
            if (fb) { /* HF adds the byte tokens without flushing a pending unk first */
                for (size_t j = 0; j < len; j++) out[k++] = b->fb_id[u[i + j]];
            } else if (b->unk_id >= 0) {
                if (unk >= 0 && !b->fuse_unk) out[k++] = unk;
                unk = b->unk_id;
            } /* else: the character is dropped */
        }
        i += len;
    }
    if (unk >= 0) out[k++] = unk;
    *m = k;
    return 0;
}

int tok_bpe_word(const tok_bpe *b, tok_ctx *c, const char *s, size_t n) {
    if (n == 0) return 0;
    if (b->ignore_merges && (n > 1 || b->sp)) {
        int32_t id = tok_bpe_lookup(b, s, n);
        if (id >= 0) return tok_push_id(c, id);
    }
    int32_t id[SMALL_WORD];
    if (!b->sp) {
        if (n == 1) return tok_push_id(c, b->byte_id[(unsigned char)s[0]]);
        if (n > SMALL_WORD) return heap_merge(b, c, s, NULL, n);
        for (size_t i = 0; i < n; i++) id[i] = b->byte_id[(unsigned char)s[i]];
        return small_merge(b, c, id, n);
    }
    size_t m;
    CH_TRY(sp_symbols(b, c, s, n, &m));
    if (m == 0) return 0;
    if (m > SMALL_WORD) return heap_merge(b, c, s, c->init, m);
    memcpy(id, c->init, m * sizeof *id);
    return small_merge(b, c, id, m);
}
