"""A real identity provider for the tests: signing keys made here, their JWKS served over HTTP."""

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.types import Receive, Scope, Send

from core.settings import AuthSettings
from tests.support import free_port

ISSUER = "https://idp.test/"
AUDIENCE = "orders-api"


@dataclass
class IdentityProvider:
    """Serves `GET /jwks.json` from `keys` with `status`, or `body` when one is set (garbage);
    counts the fetches."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    body: bytes | None = None
    fetches: int = 0
    port: int = field(default_factory=free_port)

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    async def __call__(self, scope: Scope, _receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.fetches += 1
        body = self.body if self.body is not None else json.dumps({"keys": self.keys}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    def jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        family = RSAAlgorithm if self.algorithm.startswith("RS") else ECAlgorithm
        public = family.to_jwk(self.private.public_key(), as_dict=True)
        alg = {"alg": self.algorithm} if with_alg else {}
        return {**public, "kid": self.kid, "use": "sig", **alg}

    def sign(self, **overrides: Any) -> str:
        return jwt.encode(
            claims(**overrides), self.private, algorithm=self.algorithm, headers={"kid": self.kid}
        )


def claims(**overrides: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    values = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "scope": "orders:read orders:write",
        "iat": now,
        "exp": now + dt.timedelta(minutes=5),
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str, algorithm: str = "ES256") -> SigningKey:
    curves = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1()}
    return SigningKey(kid, algorithm, ec.generate_private_key(curves[algorithm]))


RSA_KEY = rsa_key("rsa-1")
EC_KEY = ec_key("ec-1")


def trusting(auth: AuthSettings, idp: IdentityProvider, **overrides: Any) -> AuthSettings:
    """`auth` trusting the provider's keys and expecting its tokens."""
    update = {"jwks_url": idp.jwks_url, "issuer": ISSUER, "audience": AUDIENCE, **overrides}
    return auth.model_copy(update=update)
