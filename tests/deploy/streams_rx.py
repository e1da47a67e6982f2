#!/usr/bin/python3
"""Receivers of the log streams' end-to-end test and benchmark, and the
checker of what they received (tests/deploy/streams_test.sh,
tests/bench/streams.sh).

  streams_rx.py ca DIR
      a test CA (ca.pem) and a server certificate for 127.0.0.1, localhost
      and ::1 signed by it (server.pem, server.key), made with openssl.
  streams_rx.py serve KIND --port P --out FILE [--secret S] [--cert C --key K] [--close 1]
      KIND webhook: HTTPS when --cert is given; a request whose Standard
        Webhooks signature (webhook-id, webhook-timestamp,
        webhook-signature, HMAC-SHA256 with --secret whsec_...) does not
        verify, or whose timestamp is more than 5 minutes off, is answered
        401 and not recorded.
      KIND hec: POST /services/collector/event with "Authorization: Splunk
        <--secret>", one JSON object per line; answered {"code":0}.
      KIND s3: PUT /<bucket>/<key>, a gzipped NDJSON object (the S3
        receiver of record is s3rver; this one only records).
      Each accepted request is one JSON line of FILE: {"id": webhook-id |
      HEC batch_id | S3 object key, "sha": SHA-256 of the body (webhook:
      of its data member), "stream": stream id, "events": [event ids],
      "at": arrival (unix s, float)}. --close 1: the connection is closed
      after each answer. Prints nothing; exits on SIGTERM.
  streams_rx.py check FILE STREAM EXPECTED [--new-after N]
      the batches of STREAM in FILE: a batch id received more than once
      must carry the same body each time (it is counted once), an event id
      may not appear under two batch ids, and the events, in batch order,
      must be EXPECTED's lines exactly (in order). --new-after N: only the
      batches first received after the N-th line of FILE are looked at,
      and none of their ids may have been received before it (a replay's
      batches are new). Prints one line; exit 0 when it holds, 1 if not.
  streams_rx.py count FILE STREAM [--after N]
      the number of distinct events of STREAM received (after line N).
  streams_rx.py probe URL KEY N INTERVAL_MS PREFIX SENT
      posts N single events (ids PREFIX-1..N) to URL/v1/events, one every
      INTERVAL_MS, and appends "id unix-s" of each 201 to SENT.
  streams_rx.py lag FILE SENT
      SENT: lines "event-id unix-s" (the 201 of each probe event); prints
      "p50_ms p99_ms max_ms n" of arrival - 201.
"""
import base64
import gzip
import hashlib
import hmac
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time

LOCK = threading.Lock()


def record(out, rec):
    line = json.dumps(rec, separators=(",", ":")) + "\n"
    with LOCK:
        with open(out, "a") as f:
            f.write(line)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    kind = out = secret = None
    close = False

    def log_message(self, *a):
        pass

    def reply(self, status, body=b"", ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n)

    def do_POST(self):
        b = self.body()
        now = time.time()
        if self.kind == "webhook":
            wid = self.headers.get("webhook-id") or ""
            ts = self.headers.get("webhook-timestamp") or ""
            sig = self.headers.get("webhook-signature") or ""
            key = base64.b64decode(self.secret[len("whsec_"):])
            want = base64.b64encode(hmac.new(key, f"{wid}.{ts}.".encode() + b, hashlib.sha256).digest()).decode()
            good = any(hmac.compare_digest(s.split(",", 1)[-1], want) for s in sig.split() if s.startswith("v1,"))
            try:
                fresh = abs(now - int(ts)) <= 300
            except ValueError:
                fresh = False
            if not (good and fresh and wid):
                return self.reply(401, b'{"error":"bad signature"}')
            d = json.loads(b)["data"]
            # The data member: the same on every attempt (the envelope's
            # timestamp is the batch's, too).
            sha = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()
            record(self.out, {"id": wid, "sha": sha, "stream": d["stream_id"], "no": d.get("batch_no"),
                              "events": [e["id"] for e in d["events"]], "at": now})
            return self.reply(204)
        if self.kind == "hec":
            if self.headers.get("Authorization") != "Splunk " + self.secret:
                return self.reply(401, b'{"text":"Invalid token","code":4}')
            lines = [json.loads(x) for x in b.split(b"\n") if x.strip()]
            if not lines:
                return self.reply(400, b'{"text":"No data","code":5}')
            f = lines[0]["fields"]
            record(self.out, {"id": f["batch_id"], "sha": hashlib.sha256(b).hexdigest(), "stream": f["stream_id"],
                              "events": [x["event"]["id"] for x in lines], "at": now})
            return self.reply(200, b'{"text":"Success","code":0}')
        self.reply(405)

    def do_PUT(self):
        b = self.body()
        now = time.time()
        if self.kind != "s3":
            return self.reply(405)
        key = self.path.split("?", 1)[0].lstrip("/")
        parts = key.split("/")  # bucket, [prefix...], tenant, stream, NNN.ndjson.gz
        evs = [json.loads(x)["id"] for x in gzip.decompress(b).split(b"\n") if x.strip()]
        record(self.out, {"id": key, "sha": hashlib.sha256(b).hexdigest(), "stream": parts[-2],
                          "events": evs, "at": now})
        self.send_response(200)
        self.send_header("ETag", '"%s"' % hashlib.md5(b).hexdigest())
        self.send_header("Content-Length", "0")
        if self.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()


def serve(argv):
    kind = argv[0]
    opt = dict(zip(argv[1::2], argv[2::2]))
    Handler.kind, Handler.out, Handler.secret = kind, opt["--out"], opt.get("--secret")
    Handler.close = opt.get("--close") == "1"
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(opt["--port"])), Handler)
    srv.daemon_threads = True
    if "--cert" in opt:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opt["--cert"], opt["--key"])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


def make_ca(d):
    os.makedirs(d, exist_ok=True)

    def run(*a):
        subprocess.run(a, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-days", "2", "-subj", "/CN=Celltrail test CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr", "-subj", "/CN=localhost")
    with open(f"{d}/ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
        "-CAcreateserial", "-out", f"{d}/server.pem", "-days", "2", "-extfile", f"{d}/ext")


def batches(path, stream, after=0):
    """[(id, sha, events, first line no)] of STREAM in first-arrival order,
    and the problems found (a batch id re-sent with another body)."""
    seen, order, problems, before = {}, [], [], set()
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        lines = []
    for n, line in enumerate(lines, 1):
        r = json.loads(line)
        if r["stream"] != stream:
            continue
        if n <= after:
            before.add(r["id"])
            continue
        if r["id"] in seen:
            if seen[r["id"]][1] != r["sha"]:
                problems.append(f"batch {r['id']} re-sent with another body")
            continue
        seen[r["id"]] = (r["id"], r["sha"], r["events"], n)
        order.append(r["id"])
    return [seen[i] for i in order], problems, before


def check(argv):
    path, stream, expected = argv[:3]
    after = int(argv[4]) if len(argv) > 4 and argv[3] == "--new-after" else 0
    want = [x for x in open(expected).read().split("\n") if x]
    bs, problems, before = batches(path, stream, after)
    got, where = [], {}
    for bid, _, evs, _ in bs:
        if after and bid in before:
            problems.append(f"batch {bid} of the replay was delivered before it")
        for e in evs:
            if e in where and where[e] != bid:
                problems.append(f"event {e} delivered under batch {where[e]} and again under {bid}")
            where.setdefault(e, bid)
            got.append(e)
    if got != want:
        missing = [e for e in want if e not in set(got)]
        extra = [e for e in got if e not in set(want)]
        dup = len(got) - len(set(got))
        problems.append(f"events differ: {len(got)} received, {len(want)} expected, {len(missing)} missing "
                        f"(first {missing[:3]}), {len(extra)} unexpected (first {extra[:3]}), {dup} repeated, "
                        f"in order: {[e for e in got if e in set(want)] == [e for e in want if e in set(got)]}")
    if problems:
        print("; ".join(problems[:5]))
        return 1
    print(f"{len(got)} events in {len(bs)} batches, each once, in order")
    return 0


def count(argv):
    path, stream = argv[:2]
    after = int(argv[3]) if len(argv) > 3 and argv[2] == "--after" else 0
    bs, _, _ = batches(path, stream, after)
    print(len({e for _, _, evs, _ in bs for e in evs}))
    return 0


def lag(argv):
    path, sent = argv[:2]
    t201 = {}
    for line in open(sent):
        p = line.split()
        if len(p) == 2:
            t201[p[0]] = float(p[1])
    arr = {}
    for line in open(path):
        r = json.loads(line)
        for e in r["events"]:
            if e in t201 and e not in arr:
                arr[e] = r["at"]
    v = sorted((arr[e] - t201[e]) * 1000 for e in arr)
    if not v:
        print("- - - 0")
        return 0
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    print(f"{q(0.5):.0f} {q(0.99):.0f} {v[-1]:.0f} {len(v)}")
    return 0


def probe(argv):
    import http.client
    import urllib.parse
    url, key, n, every, prefix, sent = argv[:6]
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    with open(sent, "a") as out:
        for i in range(1, int(n) + 1):
            t0 = time.time()
            body = json.dumps({"id": f"{prefix}-{i}", "action": "stream.probe",
                               "actor": {"id": "probe", "type": "user"}})
            c.request("POST", "/v1/events", body, {"Authorization": "Bearer " + key,
                                                   "Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status == 201:
                out.write(f"{prefix}-{i} {time.time():.6f}\n")
            time.sleep(max(0, int(every) / 1000 - (time.time() - t0)))
    return 0


def main():
    a = sys.argv[1:]
    if not a or a[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if a[0] == "ca":
        make_ca(a[1])
        return 0
    if a[0] == "serve":
        serve(a[1:])
        return 0
    if a[0] == "check":
        return check(a[1:])
    if a[0] == "count":
        return count(a[1:])
    if a[0] == "probe":
        return probe(a[1:])
    if a[0] == "lag":
        return lag(a[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
