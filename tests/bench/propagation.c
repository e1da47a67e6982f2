/* propagation-bench: how long a change at the control plane takes to be
 * applied by the data planes of every region.
 *   propagation-bench CP_URL ADMIN_TOKEN CHANGES DP_URL...
 * Each change renames a region of the catalog, which every region's
 * document lists, so every region must apply a new version. The time runs
 * from the control plane's answer to the moment the last data plane's
 * /readyz shows the new version. Prints "p50_ms p99_ms max_ms".
 * With PROPAGATION_REVOKE=FILE, each change instead revokes one API key,
 * line by line of FILE ("<tenant id> <key id>"): a change to one tenant,
 * which a cell's data plane gets as a delta document. An https URL is
 * checked against the CA file CURL_CA_BUNDLE names, as curl(1) does. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct body {
	char *p;
	size_t n;
};

static size_t grab(char *d, size_t s, size_t n, void *u)
{
	struct body *b = u;
	char *p = realloc(b->p, b->n + s * n + 1);
	if (!p)
		return 0;
	memcpy(p + b->n, d, s * n);
	b->p = p;
	b->n += s * n;
	b->p[b->n] = '\0';
	return s * n;
}

static json_t *request(CURL *c, const char *method, const char *url, const char *auth, const char *data)
{
	struct body b = { 0 };
	struct curl_slist *h = NULL;
	char hdr[300];
	if (auth) {
		snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", auth);
		h = curl_slist_append(h, hdr);
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, grab);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	if (data)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
	const char *ca = getenv("CURL_CA_BUNDLE"); /* like curl(1): the local stack's CA */
	if (ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	CURLcode rc = curl_easy_perform(c);
	curl_slist_free_all(h);
	json_error_t e;
	json_t *j = rc == CURLE_OK && b.p ? json_loads(b.p, 0, &e) : NULL;
	free(b.p);
	return j;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: propagation-bench CP_URL ADMIN_TOKEN CHANGES DP_URL...\n");
		return 2;
	}
	const char *cp = argv[1], *admin = argv[2];
	int changes = atoi(argv[3]), ndp = argc - 4;
	double *lat = calloc((size_t)changes, sizeof *lat);
	char url[512], data[128];
	CURL *c = curl_easy_init();
	const char *revoke = getenv("PROPAGATION_REVOKE");
	FILE *keys = revoke ? fopen(revoke, "r") : NULL;
	if (revoke && !keys) {
		fprintf(stderr, "propagation-bench: cannot read %s\n", revoke);
		return 2;
	}

	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (int i = 0; i < changes; i++) {
		json_t *r;
		if (keys) {
			char tenant[64], key[64];
			if (fscanf(keys, "%63s %63s", tenant, key) != 2) {
				fprintf(stderr, "propagation-bench: %s has fewer than %d keys\n", revoke, changes);
				return 2;
			}
			snprintf(url, sizeof url, "%s/v1/tenants/%s/api-keys/%s", cp, tenant, key);
			r = request(c, "DELETE", url, admin, NULL);
		} else {
			snprintf(url, sizeof url, "%s/v1/regions/in", cp);
			snprintf(data, sizeof data, "{\"display_name\":\"India %d\"}", i);
			r = request(c, "PATCH", url, admin, data);
		}
		double t0 = now_s();
		/* Every region's version after the change (the answer has in's only). */
		snprintf(url, sizeof url, "%s/v1/regions", cp);
		json_t *all = request(c, "GET", url, NULL, NULL);
		if (!r || !all) {
			fprintf(stderr, "propagation-bench: the control plane did not answer\n");
			return 1;
		}
		for (int d = 0; d < ndp; d++) {
			for (;;) {
				snprintf(url, sizeof url, "%s/readyz", argv[4 + d]);
				json_t *rz = request(c, "GET", url, NULL, NULL);
				const char *region = json_string_value(json_object_get(rz, "region"));
				long have = (long)json_integer_value(json_object_get(rz, "config_version")), want = -1;
				size_t k;
				json_t *reg;
				json_array_foreach(json_object_get(all, "items"), k, reg)
					if (region && !strcmp(json_string_value(json_object_get(reg, "name")), region))
						want = (long)json_integer_value(json_object_get(reg, "config_version"));
				json_decref(rz);
				if (want > 0 && have >= want)
					break;
				if (now_s() - t0 > 10) {
					fprintf(stderr, "propagation-bench: %s did not apply the change within 10 s\n", argv[4 + d]);
					return 1;
				}
				usleep(1000);
			}
		}
		lat[i] = now_s() - t0;
		json_decref(r);
		json_decref(all);
	}
	qsort(lat, (size_t)changes, sizeof *lat, cmp);
	printf("%.1f %.1f %.1f\n", lat[changes / 2] * 1000, lat[(size_t)((changes - 1) * 0.99)] * 1000,
	       lat[changes - 1] * 1000);
	curl_easy_cleanup(c);
	curl_global_cleanup();
	if (keys)
		fclose(keys);
	free(lat);
	return 0;
}
