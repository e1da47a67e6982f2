/* Configuration from environment variables, one table per service.
 *
 * A service describes each variable once (name, type, default, meaning);
 * cfg_load() reads them all at start-up into a struct that is immutable
 * afterwards, and cfg_print_help() prints the same table for --help. */
#ifndef CT_CONFIG_H
#define CT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_type {
	CFG_STR,      /* const char *; NULL when unset and no default        */
	CFG_SECRET,   /* like CFG_STR, but --help never shows a value        */
	CFG_INT,      /* long, bounded by [min, max]                          */
	CFG_BOOL,     /* int: true/false/1/0/yes/no/on/off                    */
	CFG_DURATION, /* int64_t milliseconds: "250ms", "30s", "5m", "2h", "7d" */
	CFG_ADDR,     /* struct cfg_addr: "host:port", "[v6]:port"            */
	CFG_ENUM,     /* int: index into `choices`                            */
};

struct cfg_addr {
	char host[64];
	uint16_t port;
};

struct cfg_var {
	const char *name;
	enum cfg_type type;
	const char *def;      /* default as text; NULL: none */
	int required;         /* unset and no default is an error */
	size_t offset;        /* where in the destination struct */
	long min, max;        /* CFG_INT bounds; CFG_DURATION bounds in ms */
	const char *const *choices; /* CFG_ENUM: NULL-terminated */
	const char *help;
};

#define CFG_END { NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL }

/* Parses one value of `v`'s type into `dst` (the field itself).
 * Returns 0, or -1 with a sentence in `err`. */
int cfg_parse_value(const struct cfg_var *v, const char *text, void *dst, char *err,
                    size_t errlen) __attribute__((warn_unused_result));

/* Reads every variable of `tab` from the environment into `dst`.
 * Returns 0, or -1 with "NAME: reason" in `err`. */
int cfg_load(const struct cfg_var *tab, void *dst, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Prints usage and the configuration table. */
void cfg_print_help(FILE *out, const char *usage, const struct cfg_var *tab);

/* Formats an address as "host:port" (brackets around IPv6). */
void cfg_addr_format(const struct cfg_addr *a, char *buf, size_t len);

#endif
