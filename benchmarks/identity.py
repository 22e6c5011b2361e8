"""The benchmark's identity provider: an RSA key, its JWKS served over HTTP, and one token.

The template verifies RS256 tokens against it exactly as it would against a real provider
(fetched once, then cached), so the load pays production's verification cost per request.
"""

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://idp.bench.invalid/"
AUDIENCE = "orders"
KID = "bench-1"


@dataclass(frozen=True, slots=True)
class IdentityProvider:
    jwks_url: str
    token: str

    def settings(self) -> dict[str, str]:
        """The template's ORDERS_AUTH__* variables for this provider."""
        return {
            "ORDERS_AUTH__JWKS_URL": self.jwks_url,
            "ORDERS_AUTH__ISSUER": ISSUER,
            "ORDERS_AUTH__AUDIENCE": AUDIENCE,
        }


@contextlib.contextmanager
def identity_provider() -> Iterator[IdentityProvider]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": KID, "alg": "RS256"}
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    now = dt.datetime.now(dt.UTC)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "bench-client",
        "scope": "orders:read orders:write",
        "iat": now,
        "exp": now + dt.timedelta(hours=2),
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})
    try:
        yield IdentityProvider(f"http://127.0.0.1:{server.server_port}/jwks.json", token)
    finally:
        server.shutdown()
        server.server_close()
