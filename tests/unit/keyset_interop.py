#!/usr/bin/python3
"""An independent reading and writing of common/keyset.h's format (the
signed key set, a JWS in the general JSON serialization) with
python3-jwcrypto, for tests/unit/test_keyset.c:
  keyset_interop.py verify SET.json KEY.pem...   verifies each signature of
        SET.json by the public half of each KEY.pem (each must have one);
        prints the set's version and its key ids, sorted
  keyset_interop.py sign VER KEY.pem...          prints a set of the public
        halves of the KEY.pem files at version VER, signed by each"""
import json
import sys

from jwcrypto import jwk, jws
from jwcrypto.common import json_decode

ISS = "celltrail-control-plane"


def load(path):
    with open(path, "rb") as f:
        return jwk.JWK.from_pem(f.read())


def verify(doc_path, pems):
    with open(doc_path) as f:
        text = f.read()
    keys = [load(p) for p in pems]
    for k in keys:
        tok = jws.JWS()
        tok.deserialize(text)
        # Verify with this key only: jwcrypto checks the signature whose
        # protected header names its kid.
        tok.verify(k, alg="ES256")
        hdr = [s for s in json_decode(text)["signatures"]
               if json_decode(jws.base64url_decode(s["protected"]))["kid"] == k.thumbprint()]
        assert len(hdr) == 1, "no signature by %s" % k.thumbprint()
        h = json_decode(jws.base64url_decode(hdr[0]["protected"]))
        assert h["alg"] == "ES256" and h["typ"] == "celltrail-keyset", h
    claims = json_decode(tok.payload)
    assert claims["iss"] == ISS, claims
    for k in claims["keys"]:
        assert jwk.JWK(**k).thumbprint() == k["kid"], k
    print(claims["ver"], " ".join(sorted(k["kid"] for k in claims["keys"])))


def sign(ver, pems):
    keys = [load(p) for p in pems]
    claims = {"iss": ISS, "ver": int(ver), "iat": 1700000000,
              "keys": [dict(json.loads(k.export_public()), kid=k.thumbprint(), alg="ES256", use="sig")
                       for k in keys]}
    tok = jws.JWS(json.dumps(claims).encode())
    for k in keys:
        tok.add_signature(k, alg="ES256",
                          protected={"alg": "ES256", "kid": k.thumbprint(), "typ": "celltrail-keyset"})
    print(tok.serialize(compact=False))


def main():
    if sys.argv[1:] == ["--help"]:
        print(__doc__)
        return 0
    if len(sys.argv) < 4 or sys.argv[1] not in ("verify", "sign"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "verify":
        verify(sys.argv[2], sys.argv[3:])
    else:
        sign(sys.argv[2], sys.argv[3:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
