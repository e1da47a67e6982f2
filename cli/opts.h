/* The command line of bin/celltrail: long options, positional arguments
 * and strict numbers, parsed against tables the commands declare.
 *
 * A command's options are its own table plus the global one, accepted
 * anywhere after the command's words: `--name value` or `--name=value` for
 * an option with a value, `--name` for a flag; `-h` is `--help`; `--` ends
 * the options; `-` alone is an argument (standard input, where a command
 * reads a file). Each option may be given once. Pure: no I/O, no
 * allocation; every string a result holds is borrowed from argv. */
#ifndef CLI_OPTS_H
#define CLI_OPTS_H

#include <stddef.h>

#define OPTS_MAX_SET 32 /* options given on one command line */
#define OPTS_MAX_POS 8  /* positional arguments */

struct opts_spec {
	const char *name;    /* without the leading "--"; NULL ends a table */
	const char *metavar; /* NULL: a flag, which takes no value */
	const char *help;    /* one line for --help */
};

struct opts {
	struct {
		const struct opts_spec *spec;
		const char *value; /* "" for a flag */
	} set[OPTS_MAX_SET];
	size_t nset;
	const char *pos[OPTS_MAX_POS];
	size_t npos;
	int help; /* --help or -h was given (before any "--") */
};

/* Parses argv[0..argc) against the tables of `tables` (NULL-terminated;
 * the first table that names an option wins). Returns 0, or -1 with a
 * sentence in `err` (an unknown option, a value missing or given to a
 * flag, an option given twice, too many arguments). A result with `help`
 * set is complete only up to the point the help was seen: the caller
 * prints help and looks no further. */
int opts_parse(int argc, char *const argv[], const struct opts_spec *const tables[], struct opts *o,
               char *err, size_t errlen) __attribute__((warn_unused_result));

/* The value of option `name` (a flag's is ""), or NULL when not given. */
const char *opts_get(const struct opts *o, const char *name);

/* Parses `text` as a decimal integer within [min, max], nothing else
 * around it. Returns 0, or -1 (then *out is untouched). */
int opts_int(const char *text, long long min, long long max, long long *out)
	__attribute__((warn_unused_result));

#endif
