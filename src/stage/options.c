/* options.c - see options.h. */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mpicheck.h"

/* ---- numbers: the whole string, no blanks, in range ------------------------------------------- */

/* strtoll/strtod skip leading blanks and stop at the first bad character: both are refused here,
 * so "12x", " 5" and "" name the option instead of becoming 12, 5 and 0. */
static int starts_clean(const char *s) { return s && *s && !isspace((unsigned char)*s); }

static int int_fail(const char *what, const char *s, int64_t lo, int64_t hi) {
    if (lo == 0 && hi == INT64_MAX)
        CH_FAIL(CH_EARG, "%s expects a non-negative integer, got '%s'", what, s ? s : "");
    if (hi == INT64_MAX)
        CH_FAIL(CH_EARG, "%s expects an integer >= %lld, got '%s'", what, (long long)lo, s ? s : "");
    CH_FAIL(CH_EARG, "%s expects an integer from %lld to %lld, got '%s'", what, (long long)lo, (long long)hi,
            s ? s : "");
}

int ch_opt_int64(const char *what, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end = NULL;
    errno = 0;
    long long v = starts_clean(s) ? strtoll(s, &end, 10) : 0;
    if (!end || end == s || *end || errno == ERANGE || v < lo || v > hi) return int_fail(what, s, lo, hi);
    *out = (int64_t)v;
    return 0;
}

int ch_opt_u64(const char *what, const char *s, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    /* strtoull takes "-1" as ULLONG_MAX: a sign is refused before it gets there */
    unsigned long long v = starts_clean(s) && *s != '-' ? strtoull(s, &end, 10) : 0;
    if (!end || end == s || *end || errno == ERANGE)
        CH_FAIL(CH_EARG, "%s expects a non-negative integer, got '%s'", what, s ? s : "");
    *out = (uint64_t)v;
    return 0;
}

int ch_opt_double(const char *what, const char *s, double lo, double hi, int lo_open, double *out) {
    char *end = NULL;
    errno = 0;
    double v = starts_clean(s) ? strtod(s, &end) : 0;
    int ok = end && end != s && !*end && errno != ERANGE && isfinite(v);
    if (ok && (lo_open ? !(v > lo) : !(v >= lo))) ok = 0;
    if (ok && !(v <= hi)) ok = 0;
    if (ok) {
        *out = v;
        return 0;
    }
    const char *open = lo_open ? "(" : "[";
    if (isinf(hi) && isinf(lo)) CH_FAIL(CH_EARG, "%s expects a number, got '%s'", what, s ? s : "");
    if (isinf(hi))
        CH_FAIL(CH_EARG, "%s expects a number %s %g, got '%s'", what, lo_open ? ">" : ">=", lo, s ? s : "");
    CH_FAIL(CH_EARG, "%s expects a number in %s%g, %g], got '%s'", what, open, lo, hi, s ? s : "");
}

/* ---- one value into its field ---------------------------------------------------------------- */

static void int_range(const ch_opt *o, int64_t *lo, int64_t *hi) {
    *lo = o->lo, *hi = o->hi;
    if (o->lo == 0 && o->hi == 0) {
        *lo = o->type == CH_OPT_INT ? INT_MIN : INT64_MIN;
        *hi = o->type == CH_OPT_INT ? INT_MAX : INT64_MAX;
    }
}

static int choice_index(const ch_opt *o, const char *what, const char *v, int *out) {
    const char *c = o->choices;
    for (int i = 0; c && *c; i++) {
        size_t n = strcspn(c, "|");
        if (strlen(v) == n && !strncmp(c, v, n)) {
            *out = i;
            return 0;
        }
        c += n + (c[n] == '|');
    }
    /* "last|mean" -> "last or mean", "a|b|c" -> "a, b or c" */
    char list[256] = "";
    size_t len = 0;
    for (c = o->choices; *c;) {
        size_t n = strcspn(c, "|");
        const char *sep = c[n] != '|' ? "" : strchr(c + n + 1, '|') ? ", " : " or ";
        len += (size_t)snprintf(list + len, len < sizeof list ? sizeof list - len : 0, "%.*s%s", (int)n, c, sep);
        c += n + (c[n] == '|');
    }
    CH_FAIL(CH_EARG, "%s must be %s, got '%s'", what, list, v);
}

static int set_value(const ch_opt *o, const char *what, const char *v, void *out, int check_range) {
    char *field = (char *)out + o->offset;
    int64_t lo, hi, i64;
    switch (o->type) {
    case CH_OPT_FLAG: *(int *)field = 1; return 0;
    case CH_OPT_PATH:
        if (!*v) CH_FAIL(CH_EARG, "%s expects a file name, got ''", what);
        /* fall through */
    case CH_OPT_STRING: *(const char **)field = v; return 0;
    case CH_OPT_INT:
    case CH_OPT_INT64:
        int_range(o, &lo, &hi);
        if (!check_range) lo = o->type == CH_OPT_INT ? INT_MIN : INT64_MIN, hi = o->type == CH_OPT_INT ? INT_MAX : INT64_MAX;
        CH_TRY(ch_opt_int64(what, v, lo, hi, &i64));
        if (o->type == CH_OPT_INT) *(int *)field = (int)i64;
        else *(int64_t *)field = i64;
        return 0;
    case CH_OPT_U64: return ch_opt_u64(what, v, (uint64_t *)field);
    case CH_OPT_DOUBLE:
        return check_range ? ch_opt_double(what, v, o->flo, o->fhi, (o->flags & CH_OPT_LO_OPEN) != 0, (double *)field)
                           : ch_opt_double(what, v, -INFINITY, INFINITY, 0, (double *)field);
    case CH_OPT_CHOICE: return choice_index(o, what, v, (int *)field);
    }
    CH_FAIL(CH_EINTERNAL, "option --%s: unknown type %d", o->name, (int)o->type);
}

/* ---- the command line -------------------------------------------------------------------------- */

static const ch_opt *find_long(const ch_opt_cmd *cmd, const char *name, size_t n) {
    for (int i = 0; i < cmd->nopts; i++)
        if (strlen(cmd->opts[i].name) == n && !strncmp(cmd->opts[i].name, name, n)) return &cmd->opts[i];
    return NULL;
}

static const ch_opt *find_short(const ch_opt_cmd *cmd, char c) {
    for (int i = 0; i < cmd->nopts; i++)
        if (cmd->opts[i].short_name && cmd->opts[i].short_name == c) return &cmd->opts[i];
    return NULL;
}

static int is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

/* Defaults first, then the environment: both are overridden by the command line. */
static int apply_defaults(const ch_opt_cmd *cmd, void *out) {
    for (int i = 0; i < cmd->nopts; i++) {
        const ch_opt *o = &cmd->opts[i];
        char what[128];
        snprintf(what, sizeof what, "--%s (default)", o->name);
        if (o->def && o->type != CH_OPT_FLAG) CH_TRY(set_value(o, what, o->def, out, 0));
        const char *e = o->env ? getenv(o->env) : NULL;
        if (!e || !*e) continue;
        snprintf(what, sizeof what, "--%s (from %s)", o->name, o->env);
        if (o->type == CH_OPT_FLAG) *(int *)((char *)out + o->offset) = strcmp(e, "0") != 0;
        else CH_TRY(set_value(o, what, e, out, 1));
    }
    return 0;
}

/* One option at argv[*i]; takes its value from "=value", the rest of a short cluster or the next
 * argument. */
static int parse_one(const ch_opt_cmd *cmd, int argc, char **argv, int *i, void *out, unsigned char *given) {
    const char *a = argv[*i], *val = NULL;
    const ch_opt *o;
    if (a[1] == '-') {
        const char *eq = strchr(a + 2, '=');
        o = find_long(cmd, a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
        if (eq) val = eq + 1;
    } else {
        o = find_short(cmd, a[1]);
        if (o && a[2]) val = a + 2;
    }
    if (!o) CH_FAIL(CH_EARG, "unknown option '%s' (see --help)", a);
    char what[128];
    snprintf(what, sizeof what, "--%s", o->name);
    given[o - cmd->opts] = 1;
    if (o->type == CH_OPT_FLAG) {
        if (val) CH_FAIL(CH_EARG, "%s takes no value, got '%s'", what, a);
        return set_value(o, what, "", out, 1);
    }
    if (!val) {
        if (*i + 1 >= argc) CH_FAIL(CH_EARG, "%s needs a value (see --help)", what);
        val = argv[++*i];
    }
    return set_value(o, what, val, out, 1);
}

static int check_required(const ch_opt_cmd *cmd, const void *out, const unsigned char *given) {
    char missing[512] = "";
    size_t len = 0;
    for (int i = 0; i < cmd->nopts; i++) {
        const ch_opt *o = &cmd->opts[i];
        if (!(o->flags & CH_OPT_REQUIRED) || given[i]) continue;
        if ((o->type == CH_OPT_STRING || o->type == CH_OPT_PATH) && *(char *const *)((const char *)out + o->offset))
            continue; /* from the environment */
        len += (size_t)snprintf(missing + len, len < sizeof missing ? sizeof missing - len : 0, "%s--%s %s",
                                len ? ", " : "", o->name, o->meta ? o->meta : "VALUE");
    }
    if (len) CH_FAIL(CH_EARG, "missing %s (required; see capheads %s --help)", missing, cmd->stage);
    return 0;
}

static int check_positional(const ch_opt_cmd *cmd, int npos, char **pos) {
    if (npos && !cmd->positional) CH_FAIL(CH_EARG, "unexpected argument '%s' (see --help)", pos[0]);
    if (npos < cmd->min_pos)
        CH_FAIL(CH_EARG, "missing %s (see capheads %s --help)", cmd->positional, cmd->stage);
    if (cmd->max_pos >= 0 && npos > cmd->max_pos)
        CH_FAIL(CH_EARG, "%s takes %s, got also '%s' (see --help)", cmd->stage, cmd->positional, pos[cmd->max_pos]);
    return 0;
}

int ch_opt_parse(const ch_opt_cmd *cmd, int argc, char **argv, void *out, int *help) {
    *help = 0;
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (is_help(argv[i])) return *help = 1, 0;
    CH_TRY(apply_defaults(cmd, out));
    unsigned char given[64] = {0};
    if (cmd->nopts > (int)sizeof given) CH_FAIL(CH_EINTERNAL, "%s: too many options", cmd->stage);
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (!pos) CH_FAIL(CH_ENOMEM, "out of memory");
    int npos = 0, rc = 0, only_pos = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!only_pos && !strcmp(a, "--")) only_pos = 1;
        else if (!only_pos && a[0] == '-' && a[1]) rc = parse_one(cmd, argc, argv, &i, out, given);
        else pos[npos++] = argv[i];
    }
    if (!rc) rc = check_positional(cmd, npos, pos);
    if (!rc) rc = check_required(cmd, out, given);
    if (rc || !cmd->positional) {
        free(pos);
        return rc;
    }
    *(char ***)((char *)out + cmd->pos_offset) = pos;
    *(int *)((char *)out + cmd->npos_offset) = npos;
    return 0;
}

void ch_opt_free(const ch_opt_cmd *cmd, void *out) {
    if (!cmd->positional) return;
    char ***pos = (char ***)((char *)out + cmd->pos_offset);
    free(*pos);
    *pos = NULL;
}

/* ---- --help -------------------------------------------------------------------------------------- */

static void opt_label(const ch_opt *o, char *buf, size_t cap) {
    size_t n = o->short_name ? (size_t)snprintf(buf, cap, "-%c, --%s", o->short_name, o->name)
                             : (size_t)snprintf(buf, cap, "--%s", o->name);
    if (o->type == CH_OPT_FLAG || n >= cap) return;
    snprintf(buf + n, cap - n, " %s", o->meta ? o->meta : o->type == CH_OPT_CHOICE ? o->choices : "VALUE");
}

/* The synopsis: required options as they must be written, the others in brackets, wrapped. */
static void print_usage(const ch_opt_cmd *cmd, FILE *f) {
    char head[128];
    int col = snprintf(head, sizeof head, "usage: [mpirun -n R] capheads %s", cmd->stage);
    fputs(head, f);
    if (cmd->positional) col += fprintf(f, " %s", cmd->positional);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < cmd->nopts; i++) {
            const ch_opt *o = &cmd->opts[i];
            if ((!(o->flags & CH_OPT_REQUIRED)) != pass) continue;
            char lab[96], item[104];
            opt_label(o, lab, sizeof lab);
            const char *l = o->short_name ? lab + 4 : lab; /* the long form only */
            snprintf(item, sizeof item, pass ? "[%s]" : "%s", l);
            if (col + 1 + (int)strlen(item) > 100) col = fprintf(f, "\n          ") - 1;
            col += fprintf(f, " %s", item);
        }
    fputs("\n", f);
}

static void print_option(const ch_opt *o, FILE *f) {
    char lab[96];
    opt_label(o, lab, sizeof lab);
    int w = fprintf(f, "  %s", lab);
    if (w < 24) fprintf(f, "%*s", 24 - w, "");
    else fprintf(f, "\n%24s", ""); /* a long label gets a line of its own */
    for (const char *h = o->help ? o->help : ""; *h; h++) {
        fputc(*h, f);
        if (*h == '\n') fprintf(f, "%24s", "");
    }
    const char *tail[3] = {0};
    char def[96] = "", env[96] = "";
    int nt = 0;
    if (o->flags & CH_OPT_REQUIRED) tail[nt++] = "required";
    if (o->def) snprintf(def, sizeof def, "default %s", o->def), tail[nt++] = def;
    if (o->env) snprintf(env, sizeof env, "environment %s", o->env), tail[nt++] = env;
    for (int i = 0; i < nt; i++) fprintf(f, "%s%s", i ? "; " : " (", tail[i]);
    fputs(nt ? ")\n" : "\n", f);
}

void ch_opt_print_help(const ch_opt_cmd *cmd, FILE *f) {
    print_usage(cmd, f);
    if (cmd->about) fprintf(f, "\n%s", cmd->about);
    if (cmd->more_help) cmd->more_help(f);
    fputs("\noptions:\n", f);
    for (int i = 0; i < cmd->nopts; i++) print_option(&cmd->opts[i], f);
    fprintf(f, "  %-21s this text\n", "-h, --help");
    if (cmd->epilog) fprintf(f, "\n%s", cmd->epilog);
}

int ch_opt_help(const ch_opt_cmd *cmd, MPI_Comm comm) {
    int rank = 0;
    CH_MPI_TRY(MPI_Comm_rank(comm, &rank));
    if (rank == 0) ch_opt_print_help(cmd, stdout);
    return 0;
}

char *ch_opt_command_line(int argc, char **argv) {
    size_t n = 16;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 1;
    char *s = malloc(n);
    if (!s) return NULL;
    strcpy(s, "capheads");
    for (int i = 0; i < argc; i++) strcat(s, " "), strcat(s, argv[i]);
    return s;
}
