#!/usr/bin/python3
"""An independent implementation of what a customer checks, written from
RFC 9162 (Certificate Transparency 2.0) section 2.1 and the README's
description of checkpoints and exports, not from the C code: the tree hash,
audit paths and consistency proofs and their verification, ES256 compact
JWS checkpoints against a JWK set, and an export's verification. Also
writes test fixtures (an export, saved checkpoints and a JWK set made with
a key of its own) with the tampering a database administrator could do.

  rfc9162.py verify-export --jwks F --checkpoints F [--max-lag S] EXPORT
  rfc9162.py verify-proof --jwks F --checkpoint JWS --event FILE --proof FILE
  rfc9162.py verify-consistency --jwks F --old JWS --new JWS --proof FILE
  rfc9162.py check-vectors FILE      (the JSON bin/merkle-vectors prints)
  rfc9162.py make-export --out DIR [--count N] [--events FILE] [--chunk K]
                         [--tamper KIND]

Exit 0 verified, 1 a check failed (FAIL lines), 2 usage error. Needs only
Debian's python3-cryptography.
"""
import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)


class Usage(Exception):
    pass


# ---- RFC 9162 2.1 ----

def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def largest_pow2_below(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(hashes, a=0, b=None):
    """MTH(D[a:b]) over leaf hashes (2.1.1)."""
    if b is None:
        b = len(hashes)
    n = b - a
    if n == 0:
        return sha256(b"")
    if n == 1:
        return hashes[a]
    k = largest_pow2_below(n)
    return node_hash(mth(hashes, a, a + k), mth(hashes, a + k, b))


def path(m, hashes, a=0, b=None):
    """PATH(m, D[a:b]) (2.1.3.1)."""
    if b is None:
        b = len(hashes)
    n = b - a
    if n == 1:
        return []
    k = largest_pow2_below(n)
    if m < k:
        return path(m, hashes, a, a + k) + [mth(hashes, a + k, b)]
    return path(m - k, hashes, a + k, b) + [mth(hashes, a, a + k)]


def subproof(m, hashes, a, b, whole):
    """SUBPROOF(m, D[a:b], b) (2.1.4.1)."""
    n = b - a
    if m == n:
        return [] if whole else [mth(hashes, a, b)]
    k = largest_pow2_below(n)
    if m <= k:
        return subproof(m, hashes, a, a + k, whole) + [mth(hashes, a + k, b)]
    return subproof(m - k, hashes, a + k, b, False) + [mth(hashes, a, a + k)]


def consistency_proof(m, hashes):
    return subproof(m, hashes, 0, len(hashes), True)


def verify_inclusion(leaf_index, tree_size, leaf, audit_path, root):
    """2.1.3.2, step by step."""
    if leaf_index >= tree_size or leaf_index < 0:
        return False
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in audit_path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, proof):
    """2.1.4.2, step by step (equal sizes: an empty proof and equal roots)."""
    if first < 1 or first > second:
        return False
    if first == second:
        return not proof and first_hash == second_hash
    if not proof:
        return False
    proof = list(proof)
    if first & (first - 1) == 0:
        proof = [first_hash] + proof
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


# ---- base64url, JWK, JWS ----

B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64d(s):
    """Strict: the alphabet, no padding, and the one canonical spelling."""
    if not isinstance(s, str) or not B64URL.match(s) or len(s) % 4 == 1:
        raise ValueError("not base64url")
    b = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if b64e(b) != s:
        raise ValueError("not canonical base64url")
    return b


def hash_of(s):
    b = b64d(s)
    if len(b) != 32:
        raise ValueError("not 32 bytes")
    return b


def thumbprint(x, y):
    """RFC 7638 for an EC key: the required members, sorted, no spaces."""
    text = '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' % (x, y)
    return b64e(sha256(text.encode()))


def load_jwks(path):
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise Usage("%s: %s" % (path, e))
    keys = {}
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list) or not doc["keys"]:
        raise Usage("%s: not a JWK set" % path)
    for k in doc["keys"]:
        try:
            if k.get("kty") != "EC" or k.get("crv") != "P-256":
                raise ValueError("not an EC P-256 key")
            x, y = b64d(k["x"]), b64d(k["y"])
            if len(x) != 32 or len(y) != 32:
                raise ValueError("x or y not 32 bytes")
            pub = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                                ec.SECP256R1()).public_key()
            if k.get("kid") != thumbprint(k["x"], k["y"]):
                raise ValueError("kid is not the RFC 7638 thumbprint")
        except (KeyError, ValueError, AttributeError, TypeError) as e:
            raise Usage("%s: unusable key: %s" % (path, e))
        keys[k["kid"]] = pub
    return keys


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def verify_checkpoint(token, keys):
    """A checkpoint's claims, or ValueError saying why not."""
    if not isinstance(token, str):
        raise ValueError("not a string")
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    try:
        header = json.loads(b64d(parts[0]))
    except ValueError:
        raise ValueError("the header is not base64url JSON")
    if not isinstance(header, dict):
        raise ValueError("the header is not an object")
    if header.get("alg") != "ES256":
        raise ValueError("header alg is %r; only ES256" % header.get("alg"))
    if header.get("typ") != "checkpoint+jwt":
        raise ValueError("header typ is %r" % header.get("typ"))
    if "crit" in header:
        raise ValueError("crit is not supported")
    key = keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
    if key is None:
        raise ValueError("kid %r is not in the JWK set" % header.get("kid"))
    sig = b64d(parts[2])
    if len(sig) != 64:
        raise ValueError("the signature is not 64 bytes")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        key.verify(der, (parts[0] + "." + parts[1]).encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("the signature does not verify")
    try:
        p = json.loads(b64d(parts[1]))
    except ValueError:
        raise ValueError("the payload is not base64url JSON")
    if not isinstance(p, dict):
        raise ValueError("the payload is not an object")
    if not isinstance(p.get("tenant_id"), str) or not UUID.match(p["tenant_id"]):
        raise ValueError("tenant_id is not a UUID")
    if not is_int(p.get("tree_size")) or p["tree_size"] < 1:
        raise ValueError("tree_size is not a positive integer")
    if not is_int(p.get("iat")) or p["iat"] < 0:
        raise ValueError("iat is not an integer")
    if not isinstance(p.get("region"), str) or not p["region"]:
        raise ValueError("region is missing")
    p["root"] = hash_of(p.get("root_hash"))
    return p


def iat_text(iat):
    return datetime.datetime.fromtimestamp(iat, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cp_name(c):
    return "checkpoint tree_size=%d iat=%s" % (c["tree_size"], iat_text(c["iat"]))


RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def parse_time(s):
    """RFC 3339 -> seconds since the epoch (float), or None."""
    if not isinstance(s, str):
        return None
    m = RFC3339.match(s)
    if not m:
        return None
    try:
        z = m.group(8)
        tz = datetime.timezone.utc if z in "Zz" else datetime.timezone(
            (1 if z[0] == "+" else -1) * datetime.timedelta(hours=int(z[1:3]), minutes=int(z[4:6])))
        d = datetime.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)),
                              int(m.group(5)), int(m.group(6)), tzinfo=tz)
    except ValueError:
        return None
    frac = float(m.group(7)) if m.group(7) else 0.0
    return d.timestamp() + frac


# ---- verify-export ----

def safe(s):
    return "".join("?" if (ord(c) < 0x20 or c in '"\\' or ord(c) == 0x7f) else c for c in s)[:100]


def verify_export(jwks, cpfile, max_lag, export):
    keys = load_jwks(jwks)
    fails = []  # (group, pos, sub, seq, text)

    def fail(group, pos, sub, text):
        fails.append((group, pos, sub, len(fails), text))

    cps = []
    try:
        with open(cpfile, "rb") as f:
            cplines = f.read().split(b"\n")
    except OSError as e:
        raise Usage("%s: %s" % (cpfile, e))
    for no, raw in enumerate(cplines, 1):
        text = raw.strip().decode("utf-8", "replace")
        if not text:
            continue
        try:
            if text.startswith("{"):
                tok = json.loads(text).get("checkpoint")
            else:
                tok = text
            c = verify_checkpoint(tok, keys)
            c["where"] = "line %d of %s" % (no, cpfile)
            cps.append(c)
        except (ValueError, AttributeError) as e:
            fail(1, 0, 0, "checkpoint on line %d of %s: %s" % (no, cpfile, e))

    try:
        with open(export, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Usage("%s: %s" % (export, e))
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()

    events, logs, own_tok = [], [], None
    stage, shape_ok = 0, True
    for no, line in enumerate(lines, 1):
        if line.startswith(b'{"log":'):
            kind = "log"
        elif line.startswith(b'{"checkpoint":'):
            kind = "checkpoint"
        else:
            kind = "event"
        if kind == "event":
            if stage > 0:
                if line == b"":
                    continue
                fail(0, no, 0, "export line %d: an event after the log" % no)
                shape_ok = False
                break
            events.append((no, line))
        elif kind == "log":
            if stage > 1:
                fail(0, no, 0, "export line %d: a log line after the checkpoint" % no)
                shape_ok = False
                break
            try:
                logs.append(json.loads(line)["log"])
            except (ValueError, KeyError, TypeError):
                fail(0, no, 0, "export line %d: a log line that is not JSON" % no)
                shape_ok = False
                break
            stage = 1
        else:
            if stage != 1:
                fail(0, no, 0, "export line %d: a misplaced checkpoint line" % no)
                shape_ok = False
                break
            try:
                own_tok = json.loads(line)["checkpoint"]
            except (ValueError, KeyError, TypeError):
                own_tok = None
            stage = 2

    leaves, removed, ids = [], set(), []
    tenant = size = complete = None
    if shape_ok and not logs:
        fail(0, 0, 0, "export: no log lines")
        shape_ok = False
    if shape_ok and own_tok is None:
        fail(0, 0, 0, "export: no checkpoint line after the log")
        shape_ok = False
    if shape_ok:
        try:
            for lg in logs:
                if tenant is None:
                    tenant, size, complete = lg["tenant_id"], lg["tree_size"], lg["complete"]
                if (lg["tenant_id"], lg["tree_size"], lg["complete"]) != (tenant, size, complete):
                    raise ValueError("log lines disagree")
                if not is_int(lg["from"]) or lg["from"] != len(leaves):
                    raise ValueError("a log line out of order")
                hs = lg["leaf_hashes"]
                if not isinstance(hs, list) or not 1 <= len(hs) <= 1000:
                    raise ValueError("a log line's leaf_hashes")
                start = len(leaves)
                leaves.extend(hash_of(h) for h in hs)
                rem = lg["removed"]
                if not isinstance(rem, list) or rem != sorted(set(rem)) or \
                        any(not is_int(r) or not start <= r < len(leaves) for r in rem):
                    raise ValueError("a log line's removed")
                removed.update(rem)
                # The database's ids (optional): they name failures, never decide one.
                eids = lg.get("event_ids", [None] * len(hs))
                if not isinstance(eids, list) or len(eids) != len(hs) or \
                        any(e is not None and not isinstance(e, str) for e in eids):
                    raise ValueError("a log line's event_ids")
                ids.extend(eids)
            if not is_int(size) or size != len(leaves) or not isinstance(complete, bool) or \
                    not isinstance(tenant, str):
                raise ValueError("the log lines do not hold tree_size leaves")
        except (ValueError, KeyError, TypeError) as e:
            fail(0, 0, 0, "export: %s" % e)
            shape_ok = False

    own = None
    if shape_ok:
        try:
            own = verify_checkpoint(own_tok, keys)
            own["where"] = "the export's own"
            cps.append(own)
            if own["tree_size"] != size:
                fail(1, own["tree_size"], 0, "%s (the export's own): not of its log's size %d" %
                     (cp_name(own), size))
        except ValueError as e:
            fail(1, 0, 0, "checkpoint of the export: %s" % e)

    if shape_ok:
        n = len(leaves)
        cps.sort(key=lambda c: (c["tree_size"], c["iat"]))
        mine = []
        for i, c in enumerate(cps):
            s = c["tree_size"]
            if c["tenant_id"] != tenant:
                fail(1, s, 0, "%s (%s): of another tenant, %s" % (cp_name(c), c["where"], c["tenant_id"]))
                continue
            mine.append(c)
            for d in cps[:i]:
                if d["tree_size"] == s and d["tenant_id"] == tenant and d["root"] != c["root"]:
                    fail(1, s, 1, "%s (%s): two roots for one size" % (cp_name(c), c["where"]))
                    break
            if s <= n:
                if mth(leaves, 0, s) != c["root"]:
                    fail(1, s, 0, "%s (%s): its root is not that of the log's first %d leaves" %
                         (cp_name(c), c["where"], s))
            elif own is not None and c["iat"] < own["iat"]:
                fail(1, s, 0, "%s (%s): larger than the export's log (%d leaves) but signed before its "
                     "checkpoint: the log was cut short" % (cp_name(c), c["where"], n))

        index = {}
        for i, h in enumerate(leaves):
            index.setdefault(h, []).append(i)
        newest = max(mine, key=lambda c: c["iat"]) if mine else None
        event_of = {}
        pending = []
        strays = {}  # id -> [index in fails, or None for a note], of event lines that are no leaf
        for no, line in events:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = None
            eid = ev.get("id") if isinstance(ev, dict) else None
            name = 'event "%s"' % safe(eid) if isinstance(eid, str) else "event on export line %d" % no
            rat = parse_time(ev.get("received_at")) if isinstance(ev, dict) else None
            h = leaf_hash(line)
            free = [i for i in index.get(h, []) if i not in event_of]
            if h in index:
                leaf = free[0] if free else index[h][0]
                for k in pending:
                    fails[k] = (fails[k][0], leaf + 1) + fails[k][2:]
                pending = []
                if not free:
                    fail(2, leaf, 0, "%s (leaf %d): appears twice" % (name, leaf))
                    continue
                event_of[leaf] = eid if isinstance(eid, str) else "?"
                if rat is None:
                    fail(2, leaf, 0, "%s (leaf %d): no RFC 3339 received_at" % (name, leaf))
                if leaf in removed:
                    fail(2, leaf, 0, "%s (leaf %d): its leaf is marked removed" % (name, leaf))
                older = [c for c in mine if c["tree_size"] <= leaf]
                if rat is not None and older:
                    c = max(older, key=lambda c: c["iat"])
                    if rat < c["iat"] - max_lag:
                        fail(2, leaf, 0, "%s (leaf %d): received before %s, which does not cover it: "
                             "backdated" % (name, leaf, cp_name(c)))
            else:
                late = newest is None or rat is None or rat < newest["iat"] - max_lag
                if complete and isinstance(eid, str):
                    strays.setdefault(eid, []).append(len(fails) if late else None)
                if late:
                    pending.append(len(fails))
                    fail(2, 0, 0, "%s (no leaf): not in the log%s" %
                         (name, ", and received before the newest %s" % cp_name(newest) if newest else ""))
        if complete:
            have = sorted(event_of)
            import bisect
            for i in range(n):
                if i in event_of or i in removed:
                    continue
                if ids[i] in strays and strays[ids[i]]:
                    k = strays[ids[i]].pop(0)
                    if k is not None:
                        fails[k] = None
                    fail(2, i, 1, 'event "%s" (leaf %d): its content is not what the log recorded: altered' %
                         (safe(ids[i]), i))
                    continue
                j = bisect.bisect_left(have, i)
                below = event_of[have[j - 1]] if j > 0 else None
                above = event_of[have[j]] if j < len(have) else None
                if below is not None and above is not None:
                    where = 'between events "%s" and "%s"' % (safe(below), safe(above))
                elif below is not None:
                    where = 'after event "%s"' % safe(below)
                elif above is not None:
                    where = 'before event "%s"' % safe(above)
                else:
                    where = "no event of the log is in the export"
                if ids[i] is not None:
                    where = 'event "%s", %s' % (safe(ids[i]), where)
                fail(2, i, 1, "leaf %d (%s): its event is not in the export (deleted?)" % (i, where))

    fails = [f for f in fails if f is not None]
    if fails:
        for f in sorted(fails):
            print("FAIL " + f[4])
        return 1
    print("verified: %d events, %d leaves (%d removed), %d checkpoints, newest tree size %d" %
          (len(events), len(leaves), len(removed), len(cps), max(c["tree_size"] for c in cps)))
    return 0


# ---- verify-proof, verify-consistency, check-vectors ----

def token_arg(s):
    """A checkpoint given inline or as a file holding it."""
    if os.path.isfile(s):
        with open(s) as f:
            s = f.read().strip()
        if s.startswith("{"):
            s = json.loads(s)["checkpoint"]
    return s


def read_json(path):
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise Usage("%s: %s" % (path, e))


def verify_proof(a):
    keys = load_jwks(a.jwks)
    try:
        c = verify_checkpoint(token_arg(a.checkpoint), keys)
    except ValueError as e:
        print("FAIL checkpoint: %s" % e)
        return 1
    try:
        with open(a.event, "rb") as f:
            ev = f.read()
    except OSError as e:
        raise Usage(str(e))
    if ev.endswith(b"\n"):
        ev = ev[:-1]
    p = read_json(a.proof)
    try:
        m, n, lh = p["leaf_index"], p["tree_size"], hash_of(p["leaf_hash"])
        ap = [hash_of(h) for h in p["audit_path"]]
        if not is_int(m) or not is_int(n):
            raise ValueError("leaf_index and tree_size must be integers")
    except (KeyError, ValueError, TypeError) as e:
        print("FAIL proof: malformed: %s" % e)
        return 1
    if lh != leaf_hash(ev):
        print("FAIL event: its leaf hash is not the proof's leaf_hash")
        return 1
    if n != c["tree_size"]:
        print("FAIL proof: for tree_size %d, the checkpoint is of %d" % (n, c["tree_size"]))
        return 1
    if not verify_inclusion(m, n, lh, ap, c["root"]):
        print("FAIL proof: leaf %d is not in %s" % (m, cp_name(c)))
        return 1
    print("verified: leaf %d in %s" % (m, cp_name(c)))
    return 0


def verify_consistency_cmd(a):
    keys = load_jwks(a.jwks)
    try:
        old = verify_checkpoint(token_arg(a.old), keys)
        new = verify_checkpoint(token_arg(a.new), keys)
    except ValueError as e:
        print("FAIL checkpoint: %s" % e)
        return 1
    p = read_json(a.proof)
    try:
        m, n = p["from"], p["to"]
        proof = [hash_of(h) for h in p["proof"]]
    except (KeyError, ValueError, TypeError) as e:
        print("FAIL proof: malformed: %s" % e)
        return 1
    if old["tenant_id"] != new["tenant_id"]:
        print("FAIL checkpoints of two tenants")
        return 1
    if m != old["tree_size"] or n != new["tree_size"]:
        print("FAIL proof: from %s to %s, the checkpoints are of %d and %d" %
              (m, n, old["tree_size"], new["tree_size"]))
        return 1
    if not verify_consistency(m, n, old["root"], new["root"], proof):
        print("FAIL %s is not a prefix of %s" % (cp_name(old), cp_name(new)))
        return 1
    print("verified: %s extends %s" % (cp_name(new), cp_name(old)))
    return 0


def check_vectors(vectors_file):
    v = read_json(vectors_file)
    datas = [s.encode() for s in v["leaves"]]
    bad = 0
    for s in v["sizes"]:
        n = s["n"]
        hs = [leaf_hash(d) for d in datas[:n]]
        root = mth(hs)
        if hash_of(s["root"]) != root:
            print("FAIL vectors: root of %d" % n)
            bad += 1
        for m, pth in enumerate(s["inclusion"]):
            got = [hash_of(h) for h in pth]
            if got != path(m, hs) or not verify_inclusion(m, n, hs[m], got, root):
                print("FAIL vectors: inclusion %d in %d" % (m, n))
                bad += 1
            if got and verify_inclusion(m, n, hs[m], got[:-1], root):
                print("FAIL vectors: truncated inclusion %d in %d verifies" % (m, n))
                bad += 1
        if len(s["inclusion"]) != n or len(s["consistency"]) != n:
            print("FAIL vectors: proofs missing for %d" % n)
            bad += 1
        for m, prf in enumerate(s["consistency"], 1):
            got = [hash_of(h) for h in prf]
            if got != consistency_proof(m, hs) or not verify_consistency(m, n, mth(hs[:m]), root, got):
                print("FAIL vectors: consistency %d -> %d" % (m, n))
                bad += 1
            if got and verify_consistency(m, n, mth(hs[:m]), root, got[1:]):
                print("FAIL vectors: truncated consistency %d -> %d verifies" % (m, n))
                bad += 1
    if bad:
        return 1
    print("verified: %d tree sizes of vectors" % len(v["sizes"]))
    return 0


# ---- make-export ----

T0 = 1765000000
GAP = 60  # seconds between events: a backdated one is well past --max-lag
TENANT = "5b0c8f0e-2a43-4c1e-9d1a-7c2f3e4d5a6b"


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_key():
    k = ec.generate_private_key(ec.SECP256R1())
    nums = k.public_key().public_numbers()
    x, y = b64e(nums.x.to_bytes(32, "big")), b64e(nums.y.to_bytes(32, "big"))
    jwk = {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": thumbprint(x, y), "alg": "ES256", "use": "sig"}
    return k, jwk


def sign_checkpoint(key, jwk, tree_size, root, iat):
    header = {"alg": "ES256", "kid": jwk["kid"], "typ": "checkpoint+jwt"}
    payload = {"tenant_id": TENANT, "tree_size": tree_size, "root_hash": b64e(root), "iat": iat,
               "region": "eu"}
    inp = b64e(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64e(json.dumps(payload, separators=(",", ":")).encode())
    r, s = decode_dss_signature(key.sign(inp.encode(), ec.ECDSA(hashes.SHA256())))
    return inp + "." + b64e(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


# "fork": the region signed two roots for one size (a saved checkpoint
# disagrees). The last three are not tampering: retention removed the
# oldest events (their leaves are marked removed), an event arrived after
# the export's checkpoint (not in the log yet, within --max-lag), and an
# export with a filter (not complete: events may be missing): all verify.
TAMPERS = ["none", "alter-metadata", "delete-middle", "cut-newest", "swap", "backdate-absent",
           "backdate-appended", "fork", "retention", "late-event", "filtered"]


def make_export(a):
    """Events i = 0..N-1 received at T0 + GAP i, in the log in that order;
    saved checkpoints at sizes SAVED, each signed 5 s before the next event
    arrived; the export's own at the head. `expect` (written beside) says
    what the first failure must name."""
    key, jwk = new_key()
    _, other = new_key()  # a second key in the set, unused: kids must pick
    if a.events:
        with open(a.events, "rb") as f:
            lines = [ln for ln in f.read().split(b"\n") if ln]
    else:
        lines = [json.dumps({"id": "ev-%04d" % i, "action": "user.login",
                             "actor": {"id": "u-%d" % (i % 3), "type": "user"},
                             "received_at": rfc3339(T0 + GAP * i), "metadata": {"n": i}},
                            separators=(",", ":")).encode() for i in range(a.count)]
    n = len(lines)
    if n < 12:
        raise Usage("make-export needs at least 12 events")
    ids = [json.loads(ln)["id"] for ln in lines]
    saved = sorted({3, n // 3, n // 2, n - 3, n})
    k = n // 2  # the event tampered with: in the middle
    export_lines = list(lines)  # oldest first here; reversed when written
    leaves = [leaf_hash(ln) for ln in lines]
    leaf_ids = list(ids)  # event_ids: what log_leaves records for each leaf
    own_iat = T0 + GAP * n + 5
    expect = ""
    removed = []
    t = a.tamper
    if t == "alter-metadata":
        ev = json.loads(lines[k])
        ev["metadata"] = {"n": -1}
        export_lines[k] = json.dumps(ev, separators=(",", ":")).encode()
        expect = 'event "%s" (leaf %d): its content is not what the log recorded: altered' % (ids[k], k)
    elif t == "delete-middle":
        del export_lines[k]
        expect = 'leaf %d (event "%s", between' % (k, ids[k])
    elif t == "cut-newest":
        cut = 5
        export_lines = export_lines[:n - cut]
        leaves = leaves[:n - cut]
        leaf_ids = leaf_ids[:n - cut]
        own_iat = T0 + GAP * n + 600  # the region signs the cut head later
        expect = "checkpoint tree_size=%d " % min(s for s in saved if s > n - cut)
    elif t == "swap":
        i, j = 4, n - 4
        leaves[i], leaves[j] = leaves[j], leaves[i]
        leaf_ids[i], leaf_ids[j] = leaf_ids[j], leaf_ids[i]
        expect = "checkpoint tree_size=%d " % min(s for s in saved if s > i)
    elif t == "backdate-absent":
        forged = json.dumps({"id": "forged-1", "action": "user.delete", "actor": {"id": "u-9", "type": "user"},
                             "received_at": rfc3339(T0 + GAP * k + 1), "metadata": {}},
                            separators=(",", ":")).encode()
        export_lines.insert(k + 1, forged)
        expect = 'event "forged-1" (no leaf)'
    elif t == "backdate-appended":
        forged = json.dumps({"id": "forged-1", "action": "user.delete", "actor": {"id": "u-9", "type": "user"},
                             "received_at": rfc3339(T0 + GAP * k + 1), "metadata": {}},
                            separators=(",", ":")).encode()
        export_lines.insert(k + 1, forged)
        leaves.append(leaf_hash(forged))
        leaf_ids.append("forged-1")
        own_iat = T0 + GAP * n + 120
        expect = 'event "forged-1" (leaf %d)' % n
    elif t == "fork":
        expect = "checkpoint tree_size=%d " % saved[2]
    elif t == "filtered":
        export_lines = export_lines[::2]
    elif t == "retention":
        export_lines = export_lines[3:]
        removed = [0, 1, 2]
        leaf_ids[:3] = [None] * 3
    elif t == "late-event":
        late = json.dumps({"id": "late-1", "action": "user.login", "actor": {"id": "u-1", "type": "user"},
                           "received_at": rfc3339(own_iat + 2), "metadata": {}}, separators=(",", ":")).encode()
        export_lines.append(late)
    elif t != "none":
        raise Usage("unknown tamper %s" % t)

    # Saved checkpoints are over the true log (signed before any tampering).
    true_leaves = [leaf_hash(ln) for ln in lines]
    os.makedirs(a.out, exist_ok=True)
    saved_tok = {}
    with open(os.path.join(a.out, "checkpoints"), "w") as f:
        for i, s in enumerate(saved):
            tok = sign_checkpoint(key, jwk, s, mth(true_leaves[:s]), T0 + GAP * s - 5)
            saved_tok[s] = tok
            # one as the JSON form, and a blank line: both accepted
            f.write(json.dumps({"checkpoint": tok}) + "\n\n" if i == 1 else tok + "\n")
            if t == "fork" and i == 2:
                f.write(sign_checkpoint(key, jwk, s, mth(true_leaves[1:s + 1]), T0 + GAP * s - 4) + "\n")
    with open(os.path.join(a.out, "jwks.json"), "w") as f:
        json.dump({"keys": [other, jwk]}, f)
    with open(os.path.join(a.out, "export.ndjson"), "wb") as f:
        for ln in reversed(export_lines):
            f.write(ln + b"\n")
        chunk = a.chunk
        for start in range(0, len(leaves), chunk):
            part = leaves[start:start + chunk]
            f.write(json.dumps({"log": {"tenant_id": TENANT, "tree_size": len(leaves),
                                        "complete": t != "filtered",
                                        "from": start, "leaf_hashes": [b64e(h) for h in part],
                                        "event_ids": leaf_ids[start:start + chunk],
                                        "removed": [r for r in removed if start <= r < start + chunk]}}, separators=(",", ":")).encode() + b"\n")
        own = sign_checkpoint(key, jwk, len(leaves), mth(leaves), own_iat)
        f.write(json.dumps({"checkpoint": own}).encode() + b"\n")
    # What the proof routes answer, for verify-proof and verify-consistency:
    # event k's inclusion in the head, and the second saved checkpoint
    # extended by the head.
    with open(os.path.join(a.out, "head.jws"), "w") as f:
        f.write(own + "\n")
    with open(os.path.join(a.out, "event.json"), "wb") as f:
        f.write(lines[k] + b"\n")
    with open(os.path.join(a.out, "proof.json"), "w") as f:
        json.dump({"event_id": ids[k], "leaf_index": k, "tree_size": len(leaves),
                   "leaf_hash": b64e(leaves[k]), "audit_path": [b64e(h) for h in path(k, leaves)]}, f)
    with open(os.path.join(a.out, "old.jws"), "w") as f:
        f.write(saved_tok[saved[1]] + "\n")
    with open(os.path.join(a.out, "consistency.json"), "w") as f:
        json.dump({"from": saved[1], "to": len(leaves),
                   "proof": [b64e(h) for h in consistency_proof(saved[1], leaves)]}, f)
    with open(os.path.join(a.out, "expect"), "w") as f:
        f.write(expect + "\n")
    return 0


def main(argv):
    ap = argparse.ArgumentParser(prog="rfc9162.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("verify-export")
    p.add_argument("--jwks", required=True)
    p.add_argument("--checkpoints", required=True)
    p.add_argument("--max-lag", type=int, default=300)
    p.add_argument("export")
    p = sub.add_parser("verify-proof")
    p.add_argument("--jwks", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--event", required=True)
    p.add_argument("--proof", required=True)
    p = sub.add_parser("verify-consistency")
    p.add_argument("--jwks", required=True)
    p.add_argument("--old", required=True)
    p.add_argument("--new", required=True)
    p.add_argument("--proof", required=True)
    p = sub.add_parser("check-vectors")
    p.add_argument("file")
    p = sub.add_parser("make-export")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--events")
    p.add_argument("--chunk", type=int, default=1000)
    p.add_argument("--tamper", default="none", choices=TAMPERS)
    a = ap.parse_args(argv)  # exits 2 on a usage error
    try:
        if a.cmd == "verify-export":
            if a.max_lag < 0:
                raise Usage("--max-lag must not be negative")
            return verify_export(a.jwks, a.checkpoints, a.max_lag, a.export)
        if a.cmd == "verify-proof":
            return verify_proof(a)
        if a.cmd == "verify-consistency":
            return verify_consistency_cmd(a)
        if a.cmd == "check-vectors":
            return check_vectors(a.file)
        if a.chunk < 1 or a.chunk > 1000:
            raise Usage("--chunk is 1..1000")
        return make_export(a)
    except Usage as e:
        print("rfc9162.py: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
