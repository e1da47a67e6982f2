"""What the test receivers of log streams share (webhook_receiver.py,
hec_receiver.py): a threaded HTTP/1.1 server on 127.0.0.1 that can go down
and come back on the same port, faults set through a control port, a
throwaway CA made with the openssl CLI, and an append-only record.

The receiver prints "PORT <n>" (the service) then "CONTROL <n>" (plain
http on 127.0.0.1) on stdout. Control routes (answers are JSON):
  POST /down?seconds=S        close the listening socket for S seconds (and
                              drop the requests of open connections)
  POST /fail?n=N&status=C&retry_after=R   answer C (503) to the next N requests,
                              with Retry-After: R when given
  POST /slow?n=N&ms=M         wait M ms before answering the next N requests
  POST /drip?n=N              answer the next N requests 200 with a body sent
                              one byte every 200 ms, never ending
  POST /huge?n=N&status=C     answer the next N requests C with 64 MiB of body
  POST /redirect?n=N&to=URL   answer the next N requests 302 Location: URL
  POST /echo?n=N&status=C     answer the next N requests C with their headers
                              as the body (a destination that quotes back)
  POST /reset                 no fault
  GET  /stats                 counters: requests, connections, faulted, dropped_down,
                              and the receiver's own (accepted, repeats, ...)
"""
import hashlib
import hmac
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler


def make_ca(directory, name="celltrail-test"):
    """Writes ca.crt/ca.key and server.crt/server.key (for 127.0.0.1 and
    localhost, signed by that CA) into `directory`, with the openssl CLI."""
    os.makedirs(directory, exist_ok=True)
    d = directory

    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt", "-days", "2", "-subj", f"/CN={name} CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr", "-subj", "/CN=127.0.0.1")
    with open(f"{d}/server.ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
        "-CAcreateserial", "-out", f"{d}/server.crt", "-days", "2", "-extfile", f"{d}/server.ext")


class Faults:
    """The faults set through the control port, each for its next N requests."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.fail_n, self.fail_status, self.retry_after = 0, 503, None
        self.slow_n, self.slow_ms = 0, 0
        self.drip_n = 0
        self.huge_n, self.huge_status = 0, 200
        self.redirect_n, self.redirect_to = 0, ""
        self.echo_n, self.echo_status = 0, 400

    def take(self):
        """The fault the next request gets: (kind, args) or (None, None)."""
        with self.lock:
            if self.fail_n:
                self.fail_n -= 1
                return "fail", (self.fail_status, self.retry_after)
            if self.redirect_n:
                self.redirect_n -= 1
                return "redirect", self.redirect_to
            if self.echo_n:
                self.echo_n -= 1
                return "echo", self.echo_status
            if self.huge_n:
                self.huge_n -= 1
                return "huge", self.huge_status
            if self.drip_n:
                self.drip_n -= 1
                return "drip", None
            if self.slow_n:
                self.slow_n -= 1
                return "slow", self.slow_ms
            return None, None


class Receiver:
    """A server: `handle_post(handler, path, headers, body)` (a subclass's)
    returns (status, json-able answer) for a request that got no fault."""

    def __init__(self, args):
        self.args = args
        self.dir = args.dir
        os.makedirs(self.dir, exist_ok=True)
        self.faults = Faults()
        self.lock = threading.Lock()
        self.counters = {"requests": 0, "faulted": 0, "dropped_down": 0, "connections": 0}
        self.down_until = 0.0
        self.sock = None
        self.port = args.port
        self.tls = None
        self.handler = make_handler(self)
        if args.tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(os.path.join(args.tls, "server.crt"),
                                     os.path.join(args.tls, "server.key"))

    def count(self, name, n=1):
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + n

    def stats(self):
        with self.lock:
            return dict(self.counters)

    def record(self, f, obj):
        """Appends one JSON line and flushes it (a check reads it while the
        receiver runs); the caller holds self.lock."""
        f.write(json.dumps(obj, separators=(",", ":")) + "\n")
        f.flush()

    # --- the service socket ---
    def listen(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(256)
        s.settimeout(0.1)
        self.port = s.getsockname()[1]
        self.sock = s

    def serve(self):
        while True:
            if time.monotonic() < self.down_until:
                if self.sock:
                    self.sock.close()
                    self.sock = None
                time.sleep(0.05)
                continue
            if not self.sock:
                self.listen()
            try:
                conn, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                continue
            threading.Thread(target=self.connection, args=(conn, addr), daemon=True).start()

    def connection(self, conn, addr):
        self.count("connections")
        try:
            conn.settimeout(30)
            # The headers and the body of an answer go out in two writes:
            # without this, Nagle's algorithm holds the second until the
            # client's delayed ACK, 40 ms a request.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handler(conn, addr, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    # --- the control socket ---
    def control(self, path, query):
        q = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
        f = self.faults
        with f.lock:
            if path == "/down":
                self.down_until = time.monotonic() + float(q.get("seconds", "1"))
            elif path == "/fail":
                f.fail_n, f.fail_status = int(q.get("n", "1")), int(q.get("status", "503"))
                f.retry_after = q.get("retry_after")
            elif path == "/slow":
                f.slow_n, f.slow_ms = int(q.get("n", "1")), int(q.get("ms", "1000"))
            elif path == "/drip":
                f.drip_n = int(q.get("n", "1"))
            elif path == "/huge":
                f.huge_n, f.huge_status = int(q.get("n", "1")), int(q.get("status", "200"))
            elif path == "/redirect":
                f.redirect_n, f.redirect_to = int(q.get("n", "1")), q.get("to", "http://127.0.0.1:9/")
            elif path == "/echo":
                f.echo_n, f.echo_status = int(q.get("n", "1")), int(q.get("status", "400"))
            elif path == "/reset":
                f.reset()
                self.down_until = 0.0
            else:
                return None
        return {"ok": True}

    def control_server(self):
        from http.server import ThreadingHTTPServer
        rx = self

        class C(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self, status, obj):
                b = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                if u.path == "/stats":
                    self.answer(200, rx.stats())
                else:
                    self.answer(404, {"error": "no such control route"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                u = urllib.parse.urlsplit(self.path)
                r = rx.control(u.path, u.query)
                self.answer(200 if r else 404, r or {"error": "no such control route"})

        srv = ThreadingHTTPServer(("127.0.0.1", self.args.control_port), C)
        srv.daemon_threads = True
        return srv

    def run(self):
        self.listen()
        ctl = self.control_server()
        print(f"PORT {self.port}", flush=True)
        print(f"CONTROL {ctl.server_address[1]}", flush=True)
        threading.Thread(target=ctl.serve_forever, daemon=True).start()
        self.serve()


def make_handler(rx):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send(self, status, body, ctype="application/json", extra=()):
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.serve_one()

        def do_PUT(self):
            self.serve_one()

        def do_GET(self):
            self.serve_one()

        def serve_one(self):
            if time.monotonic() < rx.down_until:
                # Down: an open connection gets no answer either.
                rx.count("dropped_down")
                self.close_connection = True
                return
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            rx.count("requests")
            kind, arg = rx.faults.take()
            if kind:
                rx.count("faulted")
            if kind == "fail":
                status, ra = arg
                self.send(status, {"text": "unavailable (test fault)", "code": 9},
                          extra=[("Retry-After", ra)] if ra else ())
                return
            if kind == "redirect":
                self.send(302, b"", "text/plain", extra=[("Location", arg)])
                return
            if kind == "echo":
                self.send(arg, str(self.headers).encode(), "text/plain")
                return
            if kind == "huge":
                self.send_response(arg)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(64 << 20))
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    for _ in range(1024):
                        self.wfile.write(chunk)
                except OSError:
                    pass
                self.close_connection = True
                return
            if kind == "drip":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(1 << 30))
                self.end_headers()
                try:
                    for _ in range(3000):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:
                    pass
                self.close_connection = True
                return
            if kind == "slow":
                time.sleep(arg / 1000.0)
            res = rx.handle_post(self, self.path, self.headers, body)
            status, answer, extra = res if len(res) == 3 else (res[0], res[1], ())
            ctype = "application/json"
            if isinstance(answer, bytes):
                ctype = "application/xml" if answer.startswith(b"<?xml") else "application/octet-stream"
            self.send(status, answer, ctype, extra)

    return H


def hmac_equal(a, b):
    """Constant-time equality of two strings."""
    return hmac.compare_digest(a.encode(), b.encode())


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def read_jsonl(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path, "rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                out.append(json.loads(line))
    return out


def read_expected(path):
    with open(path) as f:
        return [l.strip() for l in f if l.strip()]


def check_sequence(got, expected):
    """Problems (strings) with the event ids `got` against `expected`:
    each exactly once, in order."""
    problems = []
    seen = {}
    for i, e in enumerate(got):
        if e in seen:
            problems.append(f"event {e} delivered twice (positions {seen[e]} and {i})")
        seen[e] = i
    exp = set(expected)
    missing = [e for e in expected if e not in seen]
    extra = [e for e in seen if e not in exp]
    if missing:
        problems.append(f"{len(missing)} event(s) missing, first {missing[:3]}")
    if extra:
        problems.append(f"{len(extra)} unexpected event(s), first {extra[:3]}")
    order = [e for e in got if e in exp]
    dedup = list(dict.fromkeys(order))
    want = [e for e in expected if e in seen]
    if dedup != want:
        for i, (a, b) in enumerate(zip(dedup, want)):
            if a != b:
                problems.append(f"out of order at position {i}: got {a}, expected {b}")
                break
    return problems


def common_args(p):
    p.add_argument("--dir", required=True, help="where the record is written")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("--tls", help="directory with server.crt and server.key (make-ca); plain http without")


def main_make_ca(argv):
    if len(argv) != 1:
        print("usage: make-ca DIR", file=sys.stderr)
        return 2
    make_ca(argv[0])
    return 0
