/* Long options and positional arguments against tables (opts.h). */
#include "opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct opts_spec *find(const struct opts_spec *const tables[], const char *name, size_t len)
{
	for (size_t t = 0; tables[t]; t++)
		for (const struct opts_spec *s = tables[t]; s->name; s++)
			if (strlen(s->name) == len && !strncmp(s->name, name, len))
				return s;
	return NULL;
}

int opts_parse(int argc, char *const argv[], const struct opts_spec *const tables[], struct opts *o,
               char *err, size_t errlen)
{
	int options = 1;

	memset(o, 0, sizeof *o);
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (options && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
			o->help = 1;
			return 0;
		}
		if (options && !strcmp(a, "--")) {
			options = 0;
			continue;
		}
		if (!options || a[0] != '-' || !strcmp(a, "-")) {
			if (o->npos == OPTS_MAX_POS) {
				snprintf(err, errlen, "too many arguments (from '%.60s')", a);
				return -1;
			}
			o->pos[o->npos++] = a;
			continue;
		}
		if (a[1] != '-') {
			snprintf(err, errlen, "unknown option '%.60s' (options are long: --name)", a);
			return -1;
		}
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct opts_spec *s = find(tables, name, len);
		if (!s) {
			snprintf(err, errlen, "unknown option '--%.*s'", (int)(len > 60 ? 60 : len), name);
			return -1;
		}
		const char *value;
		if (!s->metavar) {
			if (eq) {
				snprintf(err, errlen, "option --%s takes no value", s->name);
				return -1;
			}
			value = "";
		} else if (eq) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			snprintf(err, errlen, "option --%s needs a value (%s)", s->name, s->metavar);
			return -1;
		}
		for (size_t k = 0; k < o->nset; k++)
			if (o->set[k].spec == s) {
				snprintf(err, errlen, "option --%s is given twice", s->name);
				return -1;
			}
		if (o->nset == OPTS_MAX_SET) {
			snprintf(err, errlen, "too many options");
			return -1;
		}
		o->set[o->nset].spec = s;
		o->set[o->nset].value = value;
		o->nset++;
	}
	return 0;
}

const char *opts_get(const struct opts *o, const char *name)
{
	for (size_t k = 0; k < o->nset; k++)
		if (!strcmp(o->set[k].spec->name, name))
			return o->set[k].value;
	return NULL;
}

int opts_int(const char *text, long long min, long long max, long long *out)
{
	char *end;
	/* strtoll takes leading spaces and a '+': a number is digits alone. */
	if (!text || !((text[0] >= '0' && text[0] <= '9') || (text[0] == '-' && text[1] >= '0' && text[1] <= '9')))
		return -1;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}
