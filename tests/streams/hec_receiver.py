#!/usr/bin/python3
"""A receiver speaking Splunk's HTTP Event Collector protocol, for the tests
of log streams.

  hec_receiver.py make-ca DIR          as webhook_receiver.py's
  hec_receiver.py serve --dir DIR [--tls CADIR] [--port P] [--control-port P]
      tokens: the environment's HEC_TOKENS (comma-separated) or the lines of
      --token-file. Prints "PORT n" and "CONTROL n" (recvlib.py has the
      control routes). POST /services/collector/event (and .../event/1.0):
        no Authorization             401 {"text":"Token is required","code":2}
        not "Splunk <known token>"   401 {"text":"Invalid authorization","code":3}
        a body that is not JSON objects one after another
                                     400 {"text":"Invalid data format","code":6,
                                          "invalid-event-number":i}
        an object without "event"    400 {"text":"Event field is required","code":12,...}
        an empty "event"             400 {"text":"Event field cannot be blank","code":13,...}
        else                         200 {"text":"Success","code":0}
      other paths 404 {"text":"The requested URL was not found on this server.","code":404}.
      As HEC, a request is all or nothing, and it keeps every copy: each
      event of an accepted request is appended to DIR/events.jsonl as
        {"batch_id","event_id","stream_id","sha256","time"}
  hec_receiver.py check --dir DIR --expect FILE [--stream ID]
      exit 0 when, after removing repeats (same fields.batch_id and event
      id, which must then be the same bytes), the events carry the ids of
      FILE (one a line) each exactly once and in that order; prints the
      number of repeats; else 1.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recvlib  # noqa: E402

PATHS = ("/services/collector/event", "/services/collector/event/1.0")


def parse_events(body):
    """The JSON objects of a HEC body, or (code, text, index) of the first fault."""
    dec = json.JSONDecoder()
    text = body.decode("utf-8", errors="strict")
    i, out = 0, []
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i == len(text):
            break
        try:
            obj, end = dec.raw_decode(text, i)
        except ValueError:
            return None, (6, "Invalid data format", len(out))
        if not isinstance(obj, dict):
            return None, (6, "Invalid data format", len(out))
        if "event" not in obj:
            return None, (12, "Event field is required", len(out))
        if obj["event"] in ("", None, {}, []):
            return None, (13, "Event field cannot be blank", len(out))
        out.append((obj, text[i:end]))
        i = end
    if not out:
        return None, (5, "No data", 0)
    return out, None


class HecReceiver(recvlib.Receiver):
    def __init__(self, args, tokens):
        super().__init__(args)
        self.tokens = tokens
        self.out = open(os.path.join(self.dir, "events.jsonl"), "a")
        for name in ("accepted", "bad_token", "bad_request", "events"):
            self.counters[name] = 0

    def handle_post(self, h, path, headers, body):
        if path.split("?", 1)[0] not in PATHS:
            return 404, {"text": "The requested URL was not found on this server.", "code": 404}
        auth = headers.get("Authorization")
        if not auth:
            self.count("bad_token")
            return 401, {"text": "Token is required", "code": 2}
        scheme, _, token = auth.partition(" ")
        if scheme != "Splunk" or not any(recvlib.hmac_equal(token, t) for t in self.tokens):
            self.count("bad_token")
            return 401, {"text": "Invalid authorization", "code": 3}
        try:
            events, fault = parse_events(body)
        except UnicodeDecodeError:
            events, fault = None, (6, "Invalid data format", 0)
        if fault:
            self.count("bad_request")
            code, text, n = fault
            return 400, {"text": text, "code": code, "invalid-event-number": n}
        with self.lock:
            self.counters["accepted"] += 1
            self.counters["events"] += len(events)
            for obj, raw in events:
                ev, fields = obj["event"], obj.get("fields") or {}
                self.record(self.out, {
                    "batch_id": fields.get("batch_id"), "stream_id": fields.get("stream_id"),
                    "event_id": ev.get("id") if isinstance(ev, dict) else None,
                    "time": obj.get("time"), "sha256": recvlib.sha256(raw.encode())})
        return 200, {"text": "Success", "code": 0}


def check(args):
    expected = recvlib.read_expected(args.expect)
    rows = [r for r in recvlib.read_jsonl(os.path.join(args.dir, "events.jsonl"))
            if not args.stream or r.get("stream_id") == args.stream]
    first, got, repeats, problems = {}, [], 0, []
    for r in rows:
        k = (r["batch_id"], r["event_id"])
        if k in first:
            repeats += 1
            if first[k] != r["sha256"]:
                problems.append(f"event {r['event_id']} of batch {r['batch_id']} came with two different bodies")
            continue
        first[k] = r["sha256"]
        got.append(r["event_id"])
    problems += recvlib.check_sequence(got, expected)
    for p in problems:
        print("check:", p)
    print(json.dumps({"events": len(rows), "repeats": repeats, "expected": len(expected),
                      "ok": not problems}))
    return 1 if problems else 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "make-ca":
        return recvlib.main_make_ca(sys.argv[2:])
    p = argparse.ArgumentParser(prog="hec_receiver.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    recvlib.common_args(s)
    s.add_argument("--token-file")
    c = sub.add_parser("check")
    c.add_argument("--dir", required=True)
    c.add_argument("--expect", required=True)
    c.add_argument("--stream")
    args = p.parse_args()
    if args.cmd == "check":
        return check(args)
    tokens = [x for x in os.environ.get("HEC_TOKENS", "").split(",") if x]
    if args.token_file:
        with open(args.token_file) as f:
            tokens += [l.strip() for l in f if l.strip()]
    if not tokens:
        print("hec_receiver.py: no token (HEC_TOKENS or --token-file)", file=sys.stderr)
        return 2
    HecReceiver(args, tokens).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
