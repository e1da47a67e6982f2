/* The generic runner of bin/celltrail's commands and the helpers the
 * commands with a `run` of their own share (cli.h). */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "table.h"

#define SECRET_MAX 4096
#define LIST_MAX_PAGES 10000 /* --all stops there */
#define LIST_COL_WIDTH 60    /* a list's cells are cut beyond this */

int cli_usage(struct cli *c, const char *fmt, ...)
{
	va_list ap;
	fputs("celltrail: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (c->group && c->cmd)
		fprintf(stderr, "\nTry 'celltrail %s %s --help'.\n", c->group->name, c->cmd->name);
	else
		fputc('\n', stderr);
	return API_USAGE;
}

int cli_path(struct cli *c, char *out, size_t outlen, const char *tmpl, const char *const args[])
{
	if (api_path(out, outlen, tmpl, args) != 0)
		return cli_usage(c, "an argument is empty, missing or too long");
	return 0;
}

int cli_print_json(const json_t *doc)
{
	if (json_dumpf(doc, stdout, JSON_COMPACT | JSON_REAL_PRECISION(15)) != 0 || fputc('\n', stdout) == EOF) {
		fprintf(stderr, "celltrail: cannot write the answer\n");
		return API_FAILED;
	}
	return API_OK;
}

char *cli_read_secret(struct cli *c, const char *opt, const char *path)
{
	char *s = NULL;
	int fd = !strcmp(path, "-") ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		cli_usage(c, "--%s %s: %s", opt, path, strerror(errno));
		return NULL;
	}
	if (!(s = malloc(SECRET_MAX + 2))) {
		cli_usage(c, "out of memory");
		goto out;
	}
	size_t len = 0;
	while (len < SECRET_MAX + 1) {
		ssize_t r = read(fd, s + len, SECRET_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cli_usage(c, "--%s %s: %s", opt, path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > SECRET_MAX) {
		cli_usage(c, "--%s %s: longer than %d bytes", opt, path, SECRET_MAX);
		goto fail;
	}
	if (memchr(s, '\0', len)) {
		cli_usage(c, "--%s %s: holds a NUL byte", opt, path);
		goto fail;
	}
	if (len && s[len - 1] == '\n')
		len--;
	if (len && s[len - 1] == '\r')
		len--;
	s[len] = '\0';
	if (!len) {
		cli_usage(c, "--%s %s: empty", opt, path);
		goto fail;
	}
	goto out;
fail:
	explicit_bzero(s, SECRET_MAX + 2);
	free(s);
	s = NULL;
out:
	if (fd != STDIN_FILENO)
		close(fd);
	return s;
}

/* The value of one field as JSON; NULL with a usage error printed. */
static json_t *field_value(struct cli *c, const struct cli_field *f, const char *v)
{
	long long n;
	json_t *jv = NULL;
	switch (f->type) {
	case CF_STR:
		if (!(jv = json_string(v)))
			cli_usage(c, "--%s: not UTF-8", f->opt);
		return jv;
	case CF_INT:
		if (opts_int(v, f->min, f->max, &n) != 0) {
			cli_usage(c, "--%s must be an integer from %lld to %lld", f->opt, f->min, f->max);
			return NULL;
		}
		return json_integer(n);
	case CF_FLAG:
		return json_true();
	case CF_LIST:
		jv = json_array();
		for (const char *p = v; jv;) {
			size_t n0 = strcspn(p, ",");
			const char *s = p;
			size_t len = n0;
			while (len && *s == ' ')
				s++, len--;
			while (len && s[len - 1] == ' ')
				len--;
			json_t *item = len ? json_stringn(s, len) : NULL;
			if (!item || json_array_append_new(jv, item) != 0) {
				cli_usage(c, "--%s: an empty or non-UTF-8 item in '%s'", f->opt, v);
				json_decref(jv);
				return NULL;
			}
			if (!p[n0])
				break;
			p += n0 + 1;
		}
		return jv;
	case CF_FILE: {
		char *s = cli_read_secret(c, f->opt, v);
		if (!s)
			return NULL;
		if (!(jv = json_string(s)))
			cli_usage(c, "--%s: the file is not UTF-8", f->opt);
		explicit_bzero(s, strlen(s));
		free(s);
		return jv;
	}
	}
	return NULL;
}

void cli_body_free(json_t *body)
{
	const char *key;
	json_t *v;
	json_object_foreach(body, key, v)
		if (json_is_string(v))
			explicit_bzero((char *)json_string_value(v), json_string_length(v));
	json_decref(body);
}

int cli_request_from(struct cli *c, const struct cli_cmd *cmd, const struct opts *o, char *path, size_t cap,
                     json_t **body)
{
	char wanted[256] = "";
	int given = 0, ret = API_USAGE;
	json_t *b = json_object();

	*body = NULL;
	if (!b)
		return cli_usage(c, "out of memory");
	for (const struct cli_field *f = cmd->fields; f && f->opt; f++) {
		const char *v = opts_get(o, f->opt);
		if (!(f->flags & F_QUERY))
			snprintf(wanted + strlen(wanted), sizeof wanted - strlen(wanted), "%s--%s", *wanted ? ", " : "",
			         f->opt);
		if (!v) {
			if (f->flags & F_REQUIRED) {
				cli_usage(c, "--%s is required", f->opt);
				goto out;
			}
			continue;
		}
		if (!f->member) { /* the command's own code reads it */
			given += !(f->flags & F_QUERY);
			continue;
		}
		if (f->flags & F_QUERY) {
			long long n;
			if (f->type == CF_INT && opts_int(v, f->min, f->max, &n) != 0) {
				cli_usage(c, "--%s must be an integer from %lld to %lld", f->opt, f->min, f->max);
				goto out;
			}
			if (api_query(path, cap, f->member, v) != 0) {
				cli_usage(c, "--%s: too long", f->opt);
				goto out;
			}
			continue;
		}
		json_t *jv = field_value(c, f, v);
		if (!jv)
			goto out;
		json_object_set_new(b, f->member, jv);
		given++;
	}
	if (!strcmp(cmd->method, "PATCH") && !given) {
		cli_usage(c, "nothing to change: give at least one of %s", wanted);
		goto out;
	}
	if (!strcmp(cmd->method, "GET") || !strcmp(cmd->method, "DELETE")) {
		json_decref(b);
		b = NULL;
	}
	*body = b;
	b = NULL;
	ret = 0;
out:
	cli_body_free(b);
	return ret;
}

struct table *cli_table_new(const struct cli_col *cols, const char *first_header)
{
	const char *h[TABLE_MAX_COLS];
	size_t n = 0;
	if (first_header)
		h[n++] = first_header;
	for (const struct cli_col *col = cols; col->header && n < TABLE_MAX_COLS; col++)
		h[n++] = col->header;
	return table_new(n, h);
}

int cli_table_rows(struct table *t, const struct cli_col *cols, const json_t *items, const char *first_value)
{
	size_t i;
	const json_t *item;
	json_array_foreach(items, i, item) {
		char *cells[TABLE_MAX_COLS] = { 0 };
		size_t n = 0;
		int ok = 1;
		if (first_value && !(cells[n++] = strdup(first_value)))
			ok = 0;
		for (const struct cli_col *col = cols; ok && col->header && n < TABLE_MAX_COLS; col++)
			if (!(cells[n++] = table_field(item, col->spec)))
				ok = 0;
		if (ok)
			ok = table_add_row(t, (const char *const *)cells) == 0;
		for (size_t k = 0; k < n; k++)
			free(cells[k]);
		if (!ok)
			return -1;
	}
	return 0;
}

int cli_print_answer(struct cli *c, const struct api_answer *ans, const char *done)
{
	if (c->json) {
		if (!ans->len)
			return API_OK;
		if (fwrite(ans->body, 1, ans->len, stdout) != ans->len ||
		    (ans->body[ans->len - 1] != '\n' && fputc('\n', stdout) == EOF)) {
			fprintf(stderr, "celltrail: cannot write the answer\n");
			return API_FAILED;
		}
		return API_OK;
	}
	if (!ans->json) {
		printf("%s\n", done ? done : "Done.");
		return API_OK;
	}
	if (!json_is_object(ans->json)) {
		char *s = table_value_text(ans->json);
		printf("%s\n", s ? s : "-");
		free(s);
		return API_OK;
	}
	if (table_print_object(stdout, ans->json) != 0) {
		fprintf(stderr, "celltrail: out of memory\n");
		return API_FAILED;
	}
	return API_OK;
}

int cli_show(struct cli *c, const char *method, const char *path, const json_t *body, const char *done)
{
	struct api_answer ans;
	int rc = api_call(c->api, method, path, body, &ans);
	if (rc != API_OK)
		return rc;
	rc = cli_print_answer(c, &ans, done);
	api_answer_free(&ans);
	return rc;
}

/* The items of a list answer; NULL (printed) when it has none. */
static const json_t *items_of(const struct api_answer *ans, const char *path)
{
	const json_t *items = json_object_get(ans->json, "items");
	if (!json_is_array(items))
		fprintf(stderr, "celltrail: GET %s: the answer is not a list (no items)\n", path);
	return json_is_array(items) ? items : NULL;
}

int cli_list(struct cli *c, const struct cli_cmd *cmd, const struct opts *o, const char *path)
{
	char p[API_PATH_MAX];
	const char *limit = opts_get(o, "limit"), *cursor = opts_get(o, "cursor");
	int all = opts_get(o, "all") != NULL, rc = API_FAILED;
	char *owned = NULL;
	long long n;
	json_t *merged = NULL;
	struct table *t = NULL;
	struct api_answer ans = { 0 };

	if (limit && opts_int(limit, 1, 100, &n) != 0)
		return cli_usage(c, "--limit must be an integer from 1 to 100");
	if (all && !(merged = json_array()))
		goto oom;
	if (!c->json && !(t = cli_table_new(cmd->cols, NULL)))
		goto oom;
	for (int page = 0;; page++) {
		snprintf(p, sizeof p, "%s", path);
		if (api_query(p, sizeof p, "limit", limit) != 0 || api_query(p, sizeof p, "cursor", cursor) != 0) {
			rc = cli_usage(c, "--cursor: too long");
			goto out;
		}
		if ((rc = api_call(c->api, "GET", p, NULL, &ans)) != API_OK)
			goto out;
		rc = API_FAILED;
		const json_t *items = items_of(&ans, p);
		if (!items)
			goto out;
		const char *next = json_string_value(json_object_get(ans.json, "next_cursor"));
		int more = json_is_true(json_object_get(ans.json, "has_more")) && next;
		if (!all) {
			if (c->json) {
				rc = cli_print_answer(c, &ans, NULL);
				goto out;
			}
			if (cli_table_rows(t, cmd->cols, items, NULL) != 0 || table_print(t, stdout, LIST_COL_WIDTH) != 0)
				goto oom;
			if (more)
				fprintf(stderr, "celltrail: more follow: --cursor %s (or --all)\n", next);
			rc = API_OK;
			goto out;
		}
		if (c->json ? json_array_extend(merged, (json_t *)items) != 0
		            : cli_table_rows(t, cmd->cols, items, NULL) != 0)
			goto oom;
		if (!more)
			break;
		if (!(cmd->flags & CMD_PAGED) || page + 1 >= LIST_MAX_PAGES) {
			fprintf(stderr, "celltrail: GET %s: more than %d pages; stopped\n", path, LIST_MAX_PAGES);
			goto out;
		}
		/* The next page's cursor outlives this answer. */
		free(owned);
		if (!(cursor = owned = strdup(next)))
			goto oom;
		api_answer_free(&ans);
	}
	if (c->json) {
		json_t *doc = json_pack("{sOsb}", "items", merged, "has_more", 0);
		if (!doc)
			goto oom;
		rc = cli_print_json(doc);
		json_decref(doc);
	} else {
		rc = table_print(t, stdout, LIST_COL_WIDTH) == 0 ? API_OK : API_FAILED;
	}
	goto out;
oom:
	fprintf(stderr, "celltrail: out of memory\n");
	rc = API_FAILED;
out:
	free(owned);
	api_answer_free(&ans);
	json_decref(merged);
	table_free(t);
	return rc;
}

int cli_run(struct cli *c, const struct cli_cmd *cmd, const struct opts *o)
{
	char path[API_PATH_MAX];
	const char *args[OPTS_MAX_POS + 1] = { 0 };
	json_t *body = NULL;
	int rc;

	for (size_t i = 0; i < o->npos; i++)
		args[i] = o->pos[i];
	if ((cmd->flags & CMD_CONFIRM) && !opts_get(o, "yes"))
		return cli_usage(c, "'%s %s' cannot be undone: add --yes", c->group->name, cmd->name);
	if ((rc = cli_path(c, path, sizeof path, cmd->path, args)) != 0 ||
	    (rc = cli_request_from(c, cmd, o, path, sizeof path, &body)) != 0)
		return rc;
	if (cmd->cols)
		rc = cli_list(c, cmd, o, path);
	else
		rc = cli_show(c, cmd->method, path, body, cmd->done);
	if (rc == API_OK && cmd->note && !c->json)
		fprintf(stderr, "celltrail: %s\n", cmd->note);
	cli_body_free(body);
	return rc;
}
