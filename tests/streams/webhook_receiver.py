#!/usr/bin/python3
"""A webhook consumer for the tests of log streams: checks each delivery's
Standard Webhooks signature with its own HMAC code and keeps each batch
once, as a careful real consumer would.

  webhook_receiver.py make-ca DIR
      a throwaway CA (DIR/ca.crt) and a server certificate for 127.0.0.1
      and localhost (DIR/server.crt, DIR/server.key), made with openssl
  webhook_receiver.py serve --dir DIR [--tls CADIR] [--port P] [--control-port P]
                            [--tolerance SECONDS] [--no-bodies]
      secrets ("whsec_..."): the environment's WEBHOOK_SECRETS (comma-
      separated) or the lines of --secret-file; a delivery is accepted when
      one of them signed it. Prints "PORT n" and "CONTROL n" (recvlib.py has
      the control routes). Answers 400 without the three webhook headers or
      with a body that is not a batch, 401 on a signature that no secret
      made or a webhook-timestamp further than --tolerance (300 s) from now,
      else 200, and appends to DIR/deliveries.jsonl
        {"webhook_id","stream_id","batch_no","sha256","events":[ids],"body"}
      for the first delivery of each webhook-id ("body" null with
      --no-bodies, for a benchmark); a repeat with the same
      body is counted ("repeats"), one with another body is appended to
      DIR/conflicts.jsonl.
  webhook_receiver.py check --dir DIR --expect FILE [--stream ID]
      exit 0 when the accepted deliveries (of stream ID) carry the event ids
      of FILE (one a line), each exactly once and in that order, in batches
      of increasing batch_no, and no webhook-id came with two bodies;
      else 1, naming what is wrong.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recvlib  # noqa: E402


def signature_ok(secrets, msg_id, ts, body, header):
    """Standard Webhooks: v1,<base64 HMAC-SHA256(key, id.ts.body)>, the key
    the base64 after whsec_; any of the space-separated signatures."""
    signed = msg_id.encode() + b"." + ts.encode() + b"." + body
    given = [s.split(",", 1)[1] for s in header.split() if s.startswith("v1,")]
    for secret in secrets:
        if not secret.startswith("whsec_"):
            continue
        try:
            key = base64.b64decode(secret[6:], validate=True)
        except ValueError:
            continue
        want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for g in given:
            if hmac.compare_digest(want.encode(), g.encode()):
                return True
    return False


class WebhookReceiver(recvlib.Receiver):
    def __init__(self, args, secrets):
        super().__init__(args)
        self.secrets = secrets
        self.seen = {}  # webhook-id -> sha256 of the body
        self.out = open(os.path.join(self.dir, "deliveries.jsonl"), "a")
        self.conflicts = open(os.path.join(self.dir, "conflicts.jsonl"), "a")
        for name in ("accepted", "repeats", "conflicts", "bad_signature", "bad_request", "events"):
            self.counters[name] = 0

    def handle_post(self, h, path, headers, body):
        msg_id = headers.get("webhook-id")
        ts = headers.get("webhook-timestamp")
        sig = headers.get("webhook-signature")
        if not msg_id or not ts or not sig:
            self.count("bad_request")
            return 400, {"error": "webhook-id, webhook-timestamp and webhook-signature are required"}
        if not signature_ok(self.secrets, msg_id, ts, body, sig):
            self.count("bad_signature")
            return 401, {"error": "bad signature"}
        try:
            if abs(time.time() - int(ts)) > self.args.tolerance:
                self.count("bad_signature")
                return 401, {"error": "timestamp outside the tolerance"}
        except ValueError:
            self.count("bad_signature")
            return 401, {"error": "bad timestamp"}
        try:
            doc = json.loads(body)
            data = doc["data"]
            ids = [e["id"] for e in data["events"]]
            if doc.get("type") != "audit_events.batch" or data.get("batch_id") != msg_id:
                raise ValueError("not a batch, or its batch_id is not the webhook-id")
        except (ValueError, KeyError, TypeError) as e:
            self.count("bad_request")
            return 400, {"error": f"not a batch: {e}"}
        digest = recvlib.sha256(body)
        with self.lock:
            prev = self.seen.get(msg_id)
            if prev is None:
                self.seen[msg_id] = digest
                self.counters["accepted"] += 1
                self.counters["events"] += len(ids)
                self.record(self.out, {"webhook_id": msg_id, "stream_id": data.get("stream_id"),
                                       "batch_no": data.get("batch_no"), "sha256": digest,
                                       "events": ids, "body": None if self.args.no_bodies else body.decode()})
            elif prev == digest:
                self.counters["repeats"] += 1
            else:
                self.counters["conflicts"] += 1
                self.record(self.conflicts, {"webhook_id": msg_id, "first": prev, "again": digest})
        return 200, {"ok": True}


def check(args):
    expected = recvlib.read_expected(args.expect)
    rows = [r for r in recvlib.read_jsonl(os.path.join(args.dir, "deliveries.jsonl"))
            if not args.stream or r.get("stream_id") == args.stream]
    got = [e for r in rows for e in r["events"]]
    problems = recvlib.check_sequence(got, expected)
    last = {}
    for r in rows:
        s = r.get("stream_id")
        if s in last and r["batch_no"] <= last[s]:
            problems.append(f"batch {r['webhook_id']} (no {r['batch_no']}) after batch no {last[s]}")
        last[s] = r["batch_no"]
    conflicts = recvlib.read_jsonl(os.path.join(args.dir, "conflicts.jsonl"))
    if conflicts:
        problems.append(f"{len(conflicts)} webhook-id(s) came with two different bodies, "
                        f"first {conflicts[0]['webhook_id']}")
    for p in problems:
        print("check:", p)
    print(json.dumps({"batches": len(rows), "events": len(got), "expected": len(expected),
                      "ok": not problems}))
    return 1 if problems else 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "make-ca":
        return recvlib.main_make_ca(sys.argv[2:])
    p = argparse.ArgumentParser(prog="webhook_receiver.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    recvlib.common_args(s)
    s.add_argument("--secret-file")
    s.add_argument("--tolerance", type=int, default=300)
    s.add_argument("--no-bodies", action="store_true", help="record no body (for a benchmark)")
    c = sub.add_parser("check")
    c.add_argument("--dir", required=True)
    c.add_argument("--expect", required=True)
    c.add_argument("--stream")
    args = p.parse_args()
    if args.cmd == "check":
        return check(args)
    secrets = [x for x in os.environ.get("WEBHOOK_SECRETS", "").split(",") if x]
    if args.secret_file:
        with open(args.secret_file) as f:
            secrets += [l.strip() for l in f if l.strip()]
    if not secrets:
        print("webhook_receiver.py: no secret (WEBHOOK_SECRETS or --secret-file)", file=sys.stderr)
        return 2
    WebhookReceiver(args, secrets).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
