/* The configuration file of bin/celltrail (conf.h). */
#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Sets *slot to a copy of `v` (`n` bytes); -1 when it was set already or
 * memory runs out. */
static int set_once(char **slot, const char *v, size_t n, const char *key, unsigned line, char *err, size_t errlen)
{
	if (*slot) {
		snprintf(err, errlen, "line %u: %s is given twice", line, key);
		return -1;
	}
	if (!(*slot = strndup(v, n))) {
		snprintf(err, errlen, "line %u: out of memory", line);
		return -1;
	}
	return 0;
}

int conf_parse(const char *text, size_t len, struct conf *c, char *err, size_t errlen)
{
	unsigned line = 0;
	memset(c, 0, sizeof *c);
	if (memchr(text, '\0', len)) {
		snprintf(err, errlen, "the file holds a NUL byte");
		return -1;
	}
	for (size_t at = 0; at < len;) {
		const char *l = text + at, *nl = memchr(l, '\n', len - at);
		size_t n = nl ? (size_t)(nl - l) : len - at;
		at += n + (nl ? 1 : 0);
		line++;
		if (n && l[n - 1] == '\r')
			n--;
		while (n && is_space(*l))
			l++, n--;
		while (n && is_space(l[n - 1]))
			n--;
		if (!n || *l == '#')
			continue;
		const char *eq = memchr(l, '=', n);
		if (!eq) {
			snprintf(err, errlen, "line %u: expected 'key = value'", line);
			goto fail;
		}
		size_t klen = (size_t)(eq - l);
		while (klen && is_space(l[klen - 1]))
			klen--;
		const char *v = eq + 1;
		size_t vlen = n - (size_t)(v - l);
		while (vlen && is_space(*v))
			v++, vlen--;
		if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"')
			v++, vlen -= 2;
		char key[16];
		snprintf(key, sizeof key, "%.*s", (int)(klen < sizeof key - 1 ? klen : sizeof key - 1), l);
		char **slot = klen == 3 && !strncmp(l, "url", 3)      ? &c->url
		            : klen == 5 && !strncmp(l, "token", 5)    ? &c->token
		            : klen == 6 && !strncmp(l, "cacert", 6)   ? &c->cacert
		                                                      : NULL;
		if (!slot) {
			snprintf(err, errlen, "line %u: unknown key '%.*s' (known: url, token, cacert)", line,
			         (int)(klen > 40 ? 40 : klen), l);
			goto fail;
		}
		if (!vlen) {
			snprintf(err, errlen, "line %u: %s has no value", line, key);
			goto fail;
		}
		if (set_once(slot, v, vlen, key, line, err, errlen) != 0)
			goto fail;
	}
	return 0;
fail:
	conf_clear(c);
	return -1;
}

int conf_load(const char *path, int must_exist, struct conf *c, char *err, size_t errlen)
{
	int ret = -1, fd;
	char *text = NULL;
	struct stat st;

	memset(c, 0, sizeof *c);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		if (errno == ENOENT && !must_exist)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: owned by uid %u, not by this user; it holds a token: refused", path,
		         (unsigned)st.st_uid);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "%s: mode %04o lets other users read or change it; it holds a token: "
		         "refused (chmod 600 %s)", path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_size > CONF_MAX_BYTES) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, CONF_MAX_BYTES);
		goto out;
	}
	if (!(text = malloc((size_t)st.st_size + 1))) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	size_t len = 0;
	for (ssize_t r; len <= (size_t)st.st_size; len += (size_t)r) {
		r = read(fd, text + len, (size_t)st.st_size + 1 - len);
		if (r < 0 && errno == EINTR) {
			r = 0;
			continue;
		}
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
	}
	if (len > (size_t)st.st_size) {
		snprintf(err, errlen, "%s: grew while it was read", path);
		goto out;
	}
	char perr[200];
	if (conf_parse(text, len, c, perr, sizeof perr) != 0) {
		snprintf(err, errlen, "%s: %s", path, perr);
		goto out;
	}
	ret = 1;
out:
	if (text) {
		explicit_bzero(text, (size_t)st.st_size + 1);
		free(text);
	}
	close(fd);
	return ret;
}

void conf_clear(struct conf *c)
{
	if (c->token)
		explicit_bzero(c->token, strlen(c->token));
	free(c->url);
	free(c->token);
	free(c->cacert);
	memset(c, 0, sizeof *c);
}
