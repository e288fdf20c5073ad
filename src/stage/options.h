/* options.h - the one command-line facility of the stages.
 *
 * A stage declares one static table of ch_opt rows, each naming a field of the stage's options
 * struct (offsetof), and a ch_opt_cmd around it. From the table come the parser (`--opt value`,
 * `--opt=value`, short `-o value`, `--` ends options, positional arguments where the stage takes
 * them), the number checks (whole-string parse, overflow and range, exit status 2 with a message
 * naming the option and the value) and the `--help` text (defaults and environment variables
 * shown), so that a stage's options are described exactly once.
 *
 *   static const ch_opt opts_table[] = {
 *       {"batch-tokens", 0, CH_OPT_INT, offsetof(opts, batch_tokens), "N", .def = "4096",
 *        .lo = 1, .hi = 1 << 30, .help = "tokens per forward pass; bounds memory"},
 *       ...};
 *   static const ch_opt_cmd cmd = {"extract", opts_table, CH_NOPTS(opts_table), .about = "..."};
 *   int help; CH_TRY(ch_opt_parse(&cmd, argc, argv, &o, &help));
 *   if (help) return ch_opt_help(&cmd, comm);
 */
#ifndef CH_OPTIONS_H
#define CH_OPTIONS_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    CH_OPT_FLAG,   /* int: 1 when given, no value */
    CH_OPT_STRING, /* const char *: the argument itself (argv outlives the run) */
    CH_OPT_PATH,   /* const char *: a file or directory name ("" refused) */
    CH_OPT_INT,    /* int, range [lo, hi] (both 0: all ints) */
    CH_OPT_INT64,  /* int64_t, range [lo, hi] (both 0: all int64) */
    CH_OPT_U64,    /* uint64_t, any non-negative value */
    CH_OPT_DOUBLE, /* double, finite, range [flo, fhi] (CH_OPT_LO_OPEN: flo excluded) */
    CH_OPT_CHOICE  /* int: the index of the value in choices ("last|mean": last = 0, mean = 1) */
} ch_opt_type;

enum {
    CH_OPT_REQUIRED = 1, /* the run cannot start without it */
    CH_OPT_LO_OPEN = 2   /* CH_OPT_DOUBLE: the value must be > flo, not >= */
};

typedef struct {
    const char *name;  /* long name without the dashes */
    char short_name;   /* 0: none */
    ch_opt_type type;
    size_t offset;     /* of the target field in the stage's options struct */
    const char *meta;  /* the value's placeholder in --help ("N", "FILE"); choices: generated */
    const char *def;   /* default, parsed like a command-line value before argv; NULL: the field
                          keeps what the stage put there (zero, or a sentinel the help explains) */
    int64_t lo, hi;    /* CH_OPT_INT, CH_OPT_INT64: accepted range */
    double flo, fhi;   /* CH_OPT_DOUBLE: accepted range */
    const char *choices; /* CH_OPT_CHOICE: "a|b|c" */
    const char *env;   /* environment variable that supplies the value when the option is absent */
    unsigned flags;    /* CH_OPT_REQUIRED, CH_OPT_LO_OPEN */
    const char *help;  /* what it does; '\n' starts an indented continuation line */
} ch_opt;

typedef struct {
    const char *stage;      /* "extract": the usage line and messages */
    const ch_opt *opts;
    int nopts;
    const char *positional; /* placeholder of the positional arguments ("FILE"); NULL: none */
    int min_pos, max_pos;   /* how many positional arguments (max_pos < 0: no limit) */
    size_t pos_offset;      /* char ** field: the positional arguments, in order (allocated) */
    size_t npos_offset;     /* int field: their count */
    const char *about;      /* paragraphs between the usage line and the options */
    void (*more_help)(FILE *f); /* printed after about (tables built at run time), or NULL */
    const char *epilog;     /* after the options (environment, notes), or NULL */
} ch_opt_cmd;

#define CH_NOPTS(table) ((int)(sizeof(table) / sizeof((table)[0])))
/* The --force entry every stage that writes has: the same flag and the same words everywhere. */
#define CH_OPT_FORCE(type, field)                                                                  \
    {"force", 0, CH_OPT_FLAG, offsetof(type, field),                                               \
     .help = "replace existing outputs (without it an existing one is refused)"}

/* Fill the struct at `out` from the defaults, the environment and argv (argv[0] is the stage
 * name). Sets *help and returns 0 at once when -h/--help is given. Positional arguments go into a
 * new array at pos_offset (free it with ch_opt_free). CH_EARG (exit status 2) with a message
 * naming the option and the value on anything else. */
int ch_opt_parse(const ch_opt_cmd *cmd, int argc, char **argv, void *out, int *help);
void ch_opt_free(const ch_opt_cmd *cmd, void *out);

/* The --help text, generated from the table. ch_opt_help prints it on rank 0 of comm. */
void ch_opt_print_help(const ch_opt_cmd *cmd, FILE *f);
int ch_opt_help(const ch_opt_cmd *cmd, MPI_Comm comm);

/* The number rules of the table, for values that come from elsewhere (a whole string, in range;
 * `what` names the value in the message). */
int ch_opt_int64(const char *what, const char *s, int64_t lo, int64_t hi, int64_t *out);
int ch_opt_u64(const char *what, const char *s, uint64_t *out);
int ch_opt_double(const char *what, const char *s, double lo, double hi, int lo_open, double *out);

/* "capheads extract --model m ...": the command line as given, for provenance (malloc'd). */
char *ch_opt_command_line(int argc, char **argv);

#endif
