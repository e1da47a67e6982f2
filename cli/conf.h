/* The configuration file of bin/celltrail: where the control plane is,
 * the token to call it with and the CA to trust, for an operator who does
 * not want to give them on every command line.
 *
 * The file ($CELLTRAIL_CONFIG, default ~/.config/celltrail/config) holds
 * `key = value` lines; keys `url`, `token`, `cacert`; blank lines and
 * lines starting with '#' are ignored; a value may be wrapped in double
 * quotes (kept as written inside, no escapes). An unknown key, a key given
 * twice, a line without '=', an empty value or a NUL byte is an error
 * naming the line. Since it holds a token, a file that a group or other
 * users may read or write, or that another user owns, is refused. */
#ifndef CLI_CONF_H
#define CLI_CONF_H

#include <stddef.h>

#define CONF_MAX_BYTES 65536 /* a larger file is refused */

struct conf {
	char *url;    /* each malloc'd, or NULL when the file does not set it */
	char *token;
	char *cacert;
};

/* Parses `len` bytes of file text into `c` (zeroed first). Returns 0, or
 * -1 with "line N: reason" in `err` (then `c` holds nothing). The caller
 * releases `c` with conf_clear(). */
int conf_parse(const char *text, size_t len, struct conf *c, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Reads and parses the file at `path` into `c` (zeroed first). Returns 1
 * when it was read, 0 when it does not exist and `must_exist` is 0, or -1
 * with a sentence in `err` (missing while it must exist, unreadable, not
 * a regular file, owned by another user, open to the group or others,
 * larger than CONF_MAX_BYTES, or not well formed). */
int conf_load(const char *path, int must_exist, struct conf *c, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Frees the values (the token's bytes wiped first) and zeroes `c`;
 * accepts a zeroed `c`. */
void conf_clear(struct conf *c);

#endif
