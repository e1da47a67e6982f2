#!/usr/bin/python3
"""An independent implementation of common/seal.h's format (python3-jwcrypto),
for tests/unit/test_seal.c: it opens what the C code sealed and seals what the
C code must open.
  seal_interop.py open KEY.pem STREAM SEALED   prints the secret
  seal_interop.py seal KEY.pem STREAM SECRET   prints a sealed value (to the
                                               public half of KEY.pem)"""
import json
import sys

from jwcrypto import jwe, jwk


def main():
    if sys.argv[1:] == ["--help"]:
        print(__doc__)
        return 0
    if len(sys.argv) != 5 or sys.argv[1] not in ("open", "seal"):
        print(__doc__, file=sys.stderr)
        return 2
    op, pem, stream, arg = sys.argv[1:]
    with open(pem, "rb") as f:
        key = jwk.JWK.from_pem(f.read())
    kid = key.thumbprint()
    if op == "open":
        tok = jwe.JWE()
        tok.deserialize(arg, key=key)
        hdr = tok.jose_header
        assert hdr["alg"] == "ECDH-ES" and hdr["enc"] == "A256GCM", hdr
        assert hdr["kid"] == kid and hdr["cty"] == "celltrail-secret", hdr
        assert arg.split(".")[1] == "", "an encrypted key with ECDH-ES"
        body = json.loads(tok.payload)
        assert body["stream"] == stream, body["stream"]
        print(body["secret"], end="")
        return 0
    pub = jwk.JWK.from_json(key.export_public())
    hdr = {"alg": "ECDH-ES", "enc": "A256GCM", "kid": kid, "cty": "celltrail-secret"}
    tok = jwe.JWE(json.dumps({"stream": stream, "secret": arg}).encode(), json.dumps(hdr))
    tok.add_recipient(pub)
    print(tok.serialize(compact=True), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
