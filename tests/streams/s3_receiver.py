#!/usr/bin/python3
"""An S3 stand-in for the tests of log streams that checks AWS Signature
Version 4 itself. s3rver 3.7.1 (tests/streams/s3rver.sh) stores what it is
sent but does not check a V4 signature (its authentication middleware
accepts any V4 request of a known access key id, whatever the secret or the
body's hash), so the signing of each request is verified here, with its own
code, against the secret it was given.

  s3_receiver.py make-ca DIR          as webhook_receiver.py's
  s3_receiver.py serve --dir DIR --bucket NAME [--bucket NAME...] [--region R]
                       [--tls CADIR] [--port P] [--control-port P]
      credentials: the environment's S3_CREDENTIALS ("KEYID:SECRET", comma-
      separated). Prints "PORT n" and "CONTROL n" (recvlib.py has the control
      routes). Path-style requests, header-signed (Authorization:
      AWS4-HMAC-SHA256), each checked in this order:
        no or malformed Authorization   403 AccessDenied
        unknown access key id           403 InvalidAccessKeyId
        scope not <date>/<region>/s3/aws4_request, or host, x-amz-date or
        x-amz-content-sha256 not signed 403 AuthorizationHeaderMalformed
        a signed header absent, or an x-amz-* header not signed
                                        403 AccessDenied
        x-amz-date more than 15 min off 403 RequestTimeTooSkewed
        x-amz-content-sha256 not the body's SHA-256 (hex)
                                        400 XAmzContentSHA256Mismatch
        the signature not the one the secret makes
                                        403 SignatureDoesNotMatch
        bucket unknown                  404 NoSuchBucket
      PUT /<bucket>/<key>: stores the body as DIR/objects/<bucket>/<key>
      (overwriting), appends {"bucket","key","sha256","size","batch_id"
      (x-amz-meta-batch-id),"content_type"} to DIR/puts.jsonl, 200 with an
      ETag. GET /<bucket>/<key>: the object (x-amz-meta-batch-id echoed), or
      404 NoSuchKey.
  s3_receiver.py check --dir DIR --bucket B --expect FILE [--prefix P] [--s3rver]
      exit 0 when the objects under P of bucket B, in key order, are named
      <P><tenant>/<stream>/<12 digits>.ndjson.gz, gunzip to NDJSON whose
      event ids are those of FILE (one a line), each exactly once and in
      order, and no key was ever written with two different bodies; else 1.
      --s3rver: DIR is an s3rver directory (<bucket>/<key>._S3rver_object).
"""
import argparse
import gzip
import hashlib
import hmac
import json
import os
import re
import sys
import time
import urllib.parse
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recvlib  # noqa: E402

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
NAME = re.compile(r"^[0-9a-zA-Z-]+/[0-9a-zA-Z-]+/[0-9]{12}\.ndjson\.gz$")


def uri_encode(s, slash):
    return urllib.parse.quote(s, safe=UNRESERVED + ("/" if slash else ""))


def s3_error(status, code, message):
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message></Error>").encode()
    return status, body


def verify_sigv4(method, raw_path, headers, body, creds, region):
    """None when the request is signed right, else (status, xml body)."""
    auth = headers.get("Authorization") or ""
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/,]+)/(\d{8})/([^/,]+)/([^/,]+)/aws4_request,\s*"
                     r"SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})", auth.strip())
    if not m:
        return s3_error(403, "AccessDenied", "Access Denied")
    key_id, date, reg, service, signed, signature = m.groups()
    secret = creds.get(key_id)
    if secret is None:
        return s3_error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist")
    names = signed.split(";")
    if reg != region or service != "s3" or not {"host", "x-amz-date", "x-amz-content-sha256"} <= set(names):
        return s3_error(403, "AuthorizationHeaderMalformed", "The authorization header is malformed")
    # As S3: a header signed must be there, and every x-amz-* header sent
    # must be signed.
    present = {k.lower() for k in headers.keys()}
    absent = [n for n in names if n not in present]
    unsigned = sorted(k for k in present if k.startswith("x-amz-") and k not in names)
    if names != sorted(set(names)) or absent or unsigned:
        return s3_error(403, "AccessDenied", f"Signed but absent: {absent}; sent but not signed: {unsigned}")
    amz_date = headers.get("x-amz-date") or ""
    try:
        t = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return s3_error(403, "AccessDenied", "x-amz-date is not a date")
    if abs(time.time() - t) > 900 or amz_date[:8] != date:
        return s3_error(403, "RequestTimeTooSkewed", "The difference between the request time and the "
                        "current time is too large")
    payload = headers.get("x-amz-content-sha256") or ""
    if payload != hashlib.sha256(body).hexdigest():
        return s3_error(400, "XAmzContentSHA256Mismatch",
                        "The provided 'x-amz-content-sha256' header does not match what was computed.")
    path, _, query = raw_path.partition("?")
    canon_uri = uri_encode(urllib.parse.unquote(path), True)
    pairs = sorted((uri_encode(k, False), uri_encode(v, False))
                   for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True))
    canon_query = "&".join(f"{k}={v}" for k, v in pairs)
    canon_headers = ""
    for n in names:
        vals = headers.get_all(n) or []
        canon_headers += n + ":" + ",".join(" ".join(v.split()) for v in vals) + "\n"
    creq = "\n".join([method, canon_uri, canon_query, canon_headers, signed, payload])
    scope = f"{date}/{region}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])

    def h(k, msg):
        return hmac.new(k, msg.encode(), hashlib.sha256).digest()

    k = h(h(h(h(("AWS4" + secret).encode(), date), region), "s3"), "aws4_request")
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want.encode(), signature.encode()):
        return s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match "
                        "the signature you provided. Check your key and signing method.")
    return None


class S3Receiver(recvlib.Receiver):
    def __init__(self, args, creds):
        super().__init__(args)
        self.creds = creds
        self.buckets = set(args.bucket)
        self.out = open(os.path.join(self.dir, "puts.jsonl"), "a")
        for name in ("puts", "gets", "refused"):
            self.counters[name] = 0

    def handle_post(self, h, path, headers, body):
        method = h.command
        bad = verify_sigv4(method, path, headers, body, self.creds, self.args.region)
        if bad:
            self.count("refused")
            return bad
        p = urllib.parse.unquote(path.split("?", 1)[0])
        bucket, _, key = p.lstrip("/").partition("/")
        if bucket not in self.buckets:
            return s3_error(404, "NoSuchBucket", "The specified bucket does not exist")
        if not key or ".." in key.split("/"):
            return s3_error(400, "InvalidRequest", "an object key is required")
        file = os.path.join(self.dir, "objects", bucket, key)
        if method == "GET":
            self.count("gets")
            if not os.path.isfile(file):
                return s3_error(404, "NoSuchKey", "The specified key does not exist.")
            with open(file, "rb") as f:
                data = f.read()
            meta = {}
            if os.path.isfile(file + ".meta"):
                with open(file + ".meta") as f:
                    meta = json.load(f)
            return 200, data, [("x-amz-meta-batch-id", meta.get("batch_id") or "")]
        if method != "PUT":
            return s3_error(405, "MethodNotAllowed", "The specified method is not allowed")
        os.makedirs(os.path.dirname(file), exist_ok=True)
        digest = hashlib.sha256(body).hexdigest()
        with self.lock:
            with open(file + ".tmp", "wb") as f:
                f.write(body)
            os.replace(file + ".tmp", file)
            with open(file + ".meta", "w") as f:
                json.dump({"batch_id": headers.get("x-amz-meta-batch-id")}, f)
            self.counters["puts"] += 1
            self.record(self.out, {"bucket": bucket, "key": key, "sha256": digest, "size": len(body),
                                   "signed_headers": headers.get("Authorization", "").split("SignedHeaders=")[1]
                                   .split(",")[0],
                                   "batch_id": headers.get("x-amz-meta-batch-id"),
                                   "content_type": headers.get("Content-Type")})
        return 200, b"", [("ETag", '"' + hashlib.md5(body).hexdigest() + '"')]


def objects(args):
    """(key, bytes) of the objects under the prefix, in key order."""
    root = os.path.join(args.dir, args.bucket) if args.s3rver else os.path.join(args.dir, "objects", args.bucket)
    suffix = "._S3rver_object" if args.s3rver else ""
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            full = os.path.join(d, f)
            key = os.path.relpath(full, root)
            if suffix:
                if not key.endswith(suffix):
                    continue
                key = key[:-len(suffix)]
            elif key.endswith(".meta") or key.endswith(".tmp"):
                continue
            if key.startswith(args.prefix or ""):
                with open(full, "rb") as fh:
                    out.append((key, fh.read()))
    return sorted(out)


def check(args):
    expected = recvlib.read_expected(args.expect)
    problems, got = [], []
    objs = objects(args)
    for key, data in objs:
        name = key[len(args.prefix or ""):]
        if not NAME.match(name):
            problems.append(f"object {key} is not named <tenant>/<stream>/<12 digits>.ndjson.gz")
        try:
            text = gzip.decompress(data).decode()
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"object {key} is not gzipped UTF-8: {e}")
            continue
        if text and not text.endswith("\n"):
            problems.append(f"object {key}: the last line has no newline")
        for line in text.splitlines():
            got.append(json.loads(line)["id"])
    if not args.s3rver:
        first = {}
        for r in recvlib.read_jsonl(os.path.join(args.dir, "puts.jsonl")):
            k = (r["bucket"], r["key"])
            if k in first and first[k] != r["sha256"]:
                problems.append(f"object {r['key']} was written with two different bodies")
            first.setdefault(k, r["sha256"])
    problems += recvlib.check_sequence(got, expected)
    for p in problems:
        print("check:", p)
    print(json.dumps({"objects": len(objs), "events": len(got), "expected": len(expected), "ok": not problems}))
    return 1 if problems else 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "make-ca":
        return recvlib.main_make_ca(sys.argv[2:])
    p = argparse.ArgumentParser(prog="s3_receiver.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    recvlib.common_args(s)
    s.add_argument("--bucket", action="append", required=True)
    s.add_argument("--region", default="us-east-1")
    c = sub.add_parser("check")
    c.add_argument("--dir", required=True)
    c.add_argument("--bucket", required=True)
    c.add_argument("--prefix", default="")
    c.add_argument("--expect", required=True)
    c.add_argument("--s3rver", action="store_true")
    args = p.parse_args()
    if args.cmd == "check":
        return check(args)
    creds = {}
    for pair in os.environ.get("S3_CREDENTIALS", "").split(","):
        if ":" in pair:
            k, v = pair.split(":", 1)
            creds[k] = v
    if not creds:
        print("s3_receiver.py: no credentials (S3_CREDENTIALS)", file=sys.stderr)
        return 2
    S3Receiver(args, creds).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
