/* Delivering one batch of a log stream to its destination: the one owner
 * of the three wire protocols a stream speaks (the engine, stream.c, owns
 * which events make a batch and when it is sent).
 *
 * A batch is sent the same way on every attempt: the same id, the same
 * events, the same body bytes (only a webhook's webhook-timestamp header and
 * its signature change), so a destination that has it already keeps one copy.
 *   batch id  "<stream id>-<batch no, 12 digits, zero-padded>"
 *
 * webhook (Standard Webhooks): POST <url>, Content-Type: application/json,
 *   headers webhook-id: <batch id>, webhook-timestamp: <unix s, now>,
 *   webhook-signature: "v1,<base64 HMAC-SHA256(key, id "." timestamp "." body)>"
 *   where the secret is "whsec_<base64 of the key>" (key 24 to 64 bytes).
 *   Body: {"type":"audit_events.batch","timestamp":<made_at, RFC 3339>,
 *          "data":{"stream_id","tenant_id","batch_id","batch_no",
 *                  "events":[<each event's stored JSON, byte for byte>, ...]}}
 *   Delivered: any 2xx.
 * splunk_hec (HTTP Event Collector): POST <url> (…/services/collector/event),
 *   Authorization: Splunk <token>, Content-Type: application/json, body: one
 *   JSON object per event, each on its own line:
 *     {"time":<received_at, seconds with 6 decimals>,"source":"celltrail",
 *      "sourcetype":"celltrail:audit_event","event":<stored JSON>,
 *      "fields":{"tenant_id","stream_id","batch_id"}}
 *   Delivered: 200 with {"code":0}. HEC itself keeps no ids, so a batch
 *   re-sent after a lost answer is stored twice there; each copy carries
 *   the same batch_id and event id, by which a search removes the repeat.
 * s3: PUT <endpoint>/<bucket>/<prefix><tenant id>/<stream id>/<batch no, 12 digits>.ndjson.gz
 *   (path style), the body the batch's events as NDJSON (each stored JSON and
 *   "\n"), gzipped with no timestamp (gzip.h: same bytes every attempt),
 *   Content-Type: application/gzip, x-amz-meta-batch-id: <batch id>, signed
 *   with AWS Signature V4 by libcurl (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3",
 *   x-amz-content-sha256 of the body). Delivered: 200. A re-sent batch
 *   overwrites its own object with the same bytes.
 * Every URL is checked against the region's residency rule (residency.h) by
 * the caller before each attempt; redirects are not followed. */
#ifndef CT_STREAM_SEND_H
#define CT_STREAM_SEND_H

#include <stddef.h>
#include <stdint.h>

enum stream_kind { STREAM_WEBHOOK, STREAM_SPLUNK_HEC, STREAM_S3 };

/* "webhook", "splunk_hec", "s3" <-> enum; stream_kind_parse returns -1 for another name. */
const char *stream_kind_name(enum stream_kind k);
int stream_kind_parse(const char *name);

struct stream_dest {
	enum stream_kind kind;
	const char *stream_id, *tenant_id;
	const char *url;                  /* webhook, splunk_hec: the URL; s3: the endpoint */
	const char *bucket, *s3_region, *access_key_id, *prefix;   /* s3 */
	const char *secret;               /* opened (seal.h): whsec_…, the HEC token, the S3 secret key */
	size_t secret_len;
};

struct stream_event {
	const char *json;                 /* the stored JSON text, not NUL-terminated */
	size_t len;
	int64_t received_at_us;
};

struct stream_batch {
	char id[64];                      /* stream_batch_id() */
	int64_t no;
	int64_t made_at;                  /* unix seconds: when the batch was made (stored with it) */
	const struct stream_event *events;
	size_t n;
};

/* Writes the batch id of batch `no` of `stream_id` into `out` (64 bytes). */
void stream_batch_id(const char *stream_id, int64_t no, char out[64]);

struct stream_send_opts {
	const char *ca_file;              /* NULL: the system's trust store */
	long timeout_ms;                  /* whole request */
	long connect_timeout_ms;
	const char *user_agent;
};

/* One per delivery thread: holds a libcurl handle so that connections to a
 * destination are reused. */
struct stream_sender;
struct stream_sender *stream_sender_new(const struct stream_send_opts *o);
void stream_sender_free(struct stream_sender *s);   /* accepts NULL */

/* What an attempt came to. */
struct stream_send_result {
	long http_status;                 /* 0 when no answer came */
	int64_t retry_after_s;            /* the destination's Retry-After, 0 when none */
	double seconds;                   /* time taken */
	size_t bytes;                     /* body bytes sent */
};

/* Sends batch `b` to `d`. Returns 0 when the destination acknowledged it,
 * -1 otherwise with `err` a short sentence for last_error (status, or
 * connect/TLS/timeout cause; never a secret, never the destination's body
 * beyond 200 printable bytes). */
int stream_send(struct stream_sender *s, const struct stream_dest *d, const struct stream_batch *b,
                struct stream_send_result *r, char *err, size_t errlen);

#endif
